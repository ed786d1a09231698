// Organisations and repositories.
import type { Db } from '../db/database.ts';
import { WharfError } from '../errors.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { validateOrgName, validateRepoName, type RepoRef } from '../names.ts';

export interface RepositoryInfo {
  id: number;
  org_id: number;
  org: string;
  name: string;
  private: boolean;
  /** RPMs are re-signed with the repository's package key on upload */
  sign_packages: boolean;
  created_at: string;
}

export class RepositoryService {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  async create(ref: RepoRef, opts: { private: boolean; signPackages?: boolean }): Promise<RepositoryInfo> {
    const signPackages = opts.signPackages ?? true;
    validateOrgName(ref.org);
    validateRepoName(ref.repo);
    try {
      return await this.#create(ref, opts.private, signPackages);
    } catch (e) {
      // Another node created the organisation (or the repository) between our check and our insert: on the retry the
      // organisation is found, and a repository that now exists is REPO_EXISTS like any other.
      if (isUniqueViolation(e)) return this.#create(ref, opts.private, signPackages);
      throw e;
    }
  }

  async #create(ref: RepoRef, isPrivate: boolean, signPackages: boolean): Promise<RepositoryInfo> {
    const now = Date.now();
    return this.#db.transaction().execute(async (tx) => {
      let org = await tx.selectFrom('orgs').select(['id']).where('name', '=', ref.org).executeTakeFirst();
      if (!org) org = await tx.insertInto('orgs').values({ name: ref.org, created_at: now }).returning(['id']).executeTakeFirstOrThrow();
      const existing = await tx
        .selectFrom('repos')
        .select(['id'])
        .where('org_id', '=', org.id)
        .where('name', '=', ref.repo)
        .executeTakeFirst();
      if (existing) throw new WharfError('REPO_EXISTS', [`${ref.org}/${ref.repo}`]);
      const row = await tx
        .insertInto('repos')
        .values({ org_id: org.id, name: ref.repo, private: isPrivate ? 1 : 0, sign_packages: signPackages ? 1 : 0, created_at: now })
        .returning(['id'])
        .executeTakeFirstOrThrow();
      this.#recent.delete(`${ref.org}/${ref.repo}`);
      queueMicrotask(() => this.onChange?.(`${ref.org}/${ref.repo}`));
      return { id: row.id, org_id: org.id, org: ref.org, name: ref.repo, private: isPrivate, sign_packages: signPackages, created_at: new Date(now).toISOString() };
    });
  }

  async list(): Promise<RepositoryInfo[]> {
    const rows = await this.#db
      .selectFrom('repos')
      .innerJoin('orgs', 'orgs.id', 'repos.org_id')
      .select(['repos.id', 'repos.org_id', 'orgs.name as org', 'repos.name', 'repos.private', 'repos.sign_packages', 'repos.created_at'])
      .orderBy('orgs.name')
      .orderBy('repos.name')
      .execute();
    return rows.map(toInfo);
  }

  /** The repository, or REPO_NOT_FOUND. */
  async get(ref: RepoRef): Promise<RepositoryInfo> {
    const r = await this.find(ref.org, ref.repo);
    if (!r) throw new WharfError('REPO_NOT_FOUND', [`${ref.org}/${ref.repo}`, `${ref.org}/${ref.repo}`]);
    return r;
  }

  /** Short-lived lookups for the download path, which asks for the same few repositories on every request. */
  /** Called after a repository was created, so other nodes forget a cached "no such repository" at once. */
  onChange: ((name: string) => void) | undefined;

  /** Forgets cached lookups (another node changed a repository): one, or all. */
  invalidate(name?: string): void {
    if (name) this.#recent.delete(name);
    else this.#recent.clear();
  }

  readonly #recent = new Map<string, { repo: RepositoryInfo | undefined; until: number }>();
  static readonly CACHE_TTL_MS = 2000;

  /** findCached()'s answer while it is cached, without a promise (the download path); false when not cached. */
  peekCached(org: string, repo: string): RepositoryInfo | undefined | false {
    const hit = this.#recent.get(`${org}/${repo}`);
    return hit && hit.until > Date.now() ? hit.repo : false;
  }

  /** find(), answered from a cache of at most CACHE_TTL_MS (a change of visibility is seen within that time). */
  async findCached(org: string, repo: string): Promise<RepositoryInfo | undefined> {
    const k = `${org}/${repo}`;
    const now = Date.now();
    const hit = this.#recent.get(k);
    if (hit && hit.until > now) return hit.repo;
    const found = await this.find(org, repo);
    if (this.#recent.size > 10_000) this.#recent.clear();
    this.#recent.set(k, { repo: found, until: now + RepositoryService.CACHE_TTL_MS });
    return found;
  }

  async orgId(name: string): Promise<number | undefined> {
    return (await this.#db.selectFrom('orgs').select('id').where('name', '=', name).executeTakeFirst())?.id;
  }

  async byId(id: number): Promise<RepositoryInfo | undefined> {
    const r = await this.#db
      .selectFrom('repos')
      .innerJoin('orgs', 'orgs.id', 'repos.org_id')
      .select(['repos.id', 'repos.org_id', 'orgs.name as org', 'repos.name', 'repos.private', 'repos.sign_packages', 'repos.created_at'])
      .where('repos.id', '=', id)
      .executeTakeFirst();
    return r && toInfo(r);
  }

  async find(org: string, repo: string): Promise<RepositoryInfo | undefined> {
    const r = await this.#db
      .selectFrom('repos')
      .innerJoin('orgs', 'orgs.id', 'repos.org_id')
      .select(['repos.id', 'repos.org_id', 'orgs.name as org', 'repos.name', 'repos.private', 'repos.sign_packages', 'repos.created_at'])
      .where('orgs.name', '=', org)
      .where('repos.name', '=', repo)
      .executeTakeFirst();
    return r && toInfo(r);
  }
}

function toInfo(r: { id: number; org_id: number; org: string; name: string; private: number; sign_packages: number; created_at: number }): RepositoryInfo {
  return { id: r.id, org_id: r.org_id, org: r.org, name: r.name, private: r.private === 1, sign_packages: r.sign_packages === 1, created_at: new Date(Number(r.created_at)).toISOString() };
}
