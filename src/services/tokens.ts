// API and deploy tokens. Secrets are random (256 bits), carry a recognisable prefix per kind (so secret scanners can
// spot a leaked one), are shown once and stored only as SHA-256 digests: a high-entropy secret needs no slow KDF, and a
// digest lookup keeps verification cheap on every request. Verified principals are cached for at most
// CACHE_TTL_MS, which bounds how long a revoked token keeps working.
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../db/database.ts';
import { WharfError } from '../errors.ts';

export const ADMIN_TOKEN_PREFIX = 'wharf_admin_';
export const DEPLOY_TOKEN_PREFIX = 'wharf_deploy_';
export const SCOPES = ['read', 'push', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];
/**
 * push: upload only (what a CI release job needs; trusted publishing mints it); write: push and yank; admin: manage
 * repositories and tokens. Each implies the ones before it.
 */
const IMPLIED: Record<Scope, readonly Scope[]> = {
  read: ['read'],
  push: ['read', 'push'],
  write: ['read', 'push', 'write'],
  admin: ['read', 'push', 'write', 'admin'],
};

export interface Principal {
  /** the stored token's id; 0 for a Wharf JWT (which is never stored) */
  readonly tokenId: number;
  /** admin and deploy tokens are stored secrets; jwt: a short-lived token Wharf signed (trusted publishing) */
  readonly kind: 'admin' | 'deploy' | 'jwt';
  readonly scopes: readonly Scope[];
  /** null: every organisation (the server admin) */
  readonly orgId: number | null;
  /** null: every repository of the organisation */
  readonly repoId: number | null;
  /** jwt: its subject (e.g. publisher:5) */
  readonly subject?: string;
  /** jwt from trusted publishing: the CI identity recorded with every package it pushes */
  readonly provenance?: Readonly<Record<string, unknown>>;
}

/** Prefix of JWTs (a base64url JSON header): how a presented secret is told apart from a stored token. */
export function looksLikeJwt(secret: string): boolean {
  return secret.startsWith('eyJ') && secret.split('.').length === 3;
}

/** The user name that goes with a JWT in HTTP Basic (as PyPI's __token__), for apt, dnf and push. */
export const JWT_BASIC_USERNAME = '__token__';

/**
 * The principal of a verified Wharf JWT: its scopes, bound to the organisation and repository it names. Claims that
 * are missing or malformed give no principal rather than a wider one.
 */
export function principalFromClaims(c: Readonly<Record<string, unknown>>): Principal | undefined {
  const scopes = Array.isArray(c.scopes) ? c.scopes.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s as string)) : [];
  const orgId = c.org_id;
  const repoId = c.repo_id;
  if (scopes.length === 0 || typeof orgId !== 'number' || typeof repoId !== 'number' || typeof c.sub !== 'string') return undefined;
  const ci = c.ci;
  return {
    tokenId: 0,
    kind: 'jwt',
    scopes,
    orgId,
    repoId,
    subject: c.sub,
    ...(ci && typeof ci === 'object' && !Array.isArray(ci) ? { provenance: ci as Record<string, unknown> } : {}),
  };
}
export interface TokenInfo {
  id: number;
  name: string;
  username: string;
  scopes: Scope[];
  org: string;
  repo: string | null;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  rotation_grace_until: string | null;
}

export interface CreatedToken {
  id: number;
  name: string;
  username: string;
  token: string;
  scopes: Scope[];
  expires_at: string | null;
}

function digest(secret: string): string {
  return hash('sha256', secret, 'hex');
}

export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

const iso = (t: number | null) => (t === null ? null : new Date(Number(t)).toISOString());

/** True when `p` may do `scope` in repository `repoId` of organisation `orgId`. */
export function allows(p: Principal | undefined, scope: Scope, orgId: number, repoId: number): boolean {
  if (!p) return false;
  if (p.kind === 'admin') return true;
  if (p.orgId !== orgId || (p.repoId !== null && p.repoId !== repoId)) return false;
  return p.scopes.some((s) => IMPLIED[s].includes(scope));
}

export class TokenService {
  static readonly CACHE_TTL_MS = 4000;
  readonly #db: Db;
  readonly #cache = new Map<string, { principal: Principal | undefined; username: string | null; until: number }>();
  readonly #lastUsedWritten = new Map<number, number>();

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * On first start (no admin token at all) creates the admin token: `preset` if given, otherwise a random one; writes it
   * to DATA/admin-token (0600). Returns the secret when one was created, so the caller can print it once.
   */
  async bootstrapAdmin(dataDir: string, preset: string | undefined): Promise<string | undefined> {
    const any = await this.#db.selectFrom('tokens').select(['id']).where('kind', '=', 'admin').executeTakeFirst();
    if (any) return undefined;
    const secret = preset ?? newSecret(ADMIN_TOKEN_PREFIX);
    if (secret.length < 16) throw new WharfError('CONFIG_INVALID', ['WHARF_ADMIN_TOKEN must be at least 16 characters']);
    await this.#db
      .insertInto('tokens')
      .values({
        kind: 'admin',
        name: 'admin',
        secret_sha256: digest(secret),
        scopes: 'admin',
        created_at: Date.now(),
        expires_at: null,
        revoked_at: null,
        last_used_at: null,
        org_id: null,
        repo_id: null,
        username: 'admin',
        previous_secret_sha256: null,
        previous_valid_until: null,
      })
      .execute();
    await writeFile(join(dataDir, 'admin-token'), secret + '\n', { mode: 0o600 });
    return secret;
  }

  /**
   * The principal for presented credentials, or undefined when they are unknown, revoked or expired. `username`, when
   * given (HTTP Basic with a user name and the token as password), must be the token's user name.
   */
  async verify(secret: string, username?: string): Promise<Principal | undefined> {
    if (!secret || secret.length > 512) return undefined;
    const d = digest(secret);
    const now = Date.now();
    const cached = this.#cache.get(d);
    let principal: Principal | undefined;
    let tokenUsername: string | null = null;
    if (cached && cached.until > now) {
      principal = cached.principal;
      tokenUsername = cached.username;
    } else {
      const row = await this.#db
        .selectFrom('tokens')
        .select(['id', 'kind', 'scopes', 'secret_sha256', 'previous_secret_sha256', 'previous_valid_until', 'expires_at', 'revoked_at', 'org_id', 'repo_id', 'username'])
        .where((eb) => eb.or([eb('secret_sha256', '=', d), eb('previous_secret_sha256', '=', d)]))
        .executeTakeFirst();
      const matches =
        row &&
        (safeEqualHex(row.secret_sha256, d) ||
          (row.previous_secret_sha256 !== null && safeEqualHex(row.previous_secret_sha256, d) && row.previous_valid_until !== null && row.previous_valid_until > now));
      if (row && matches && row.revoked_at === null && (row.expires_at === null || row.expires_at > now)) {
        principal = {
          tokenId: row.id,
          kind: row.kind === 'admin' ? 'admin' : 'deploy',
          scopes: row.scopes.split(' ').filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)),
          orgId: row.org_id,
          repoId: row.repo_id,
        };
        tokenUsername = row.username;
      }
      // Never cache past an expiry or the end of a rotation grace period.
      let until = now + TokenService.CACHE_TTL_MS;
      if (row?.expires_at) until = Math.min(until, row.expires_at);
      if (row?.previous_valid_until && row.previous_secret_sha256 === d) until = Math.min(until, row.previous_valid_until);
      if (this.#cache.size > 10_000) this.#cache.clear();
      this.#cache.set(d, { principal, username: tokenUsername, until });
    }
    // The user name is the public half of the credential (it sits in auth.conf and .repo files next to nothing secret):
    // a plain comparison. The secret itself was matched through its digest above.
    if (principal && username !== undefined && username !== secret && username !== tokenUsername) return undefined;
    if (principal) this.#touch(principal.tokenId, now);
    return principal;
  }

  /** Records last use at most once a minute per token, off the request path. */
  #touch(id: number, now: number): void {
    if ((this.#lastUsedWritten.get(id) ?? 0) > now - 60_000) return;
    this.#lastUsedWritten.set(id, now);
    void this.#db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', id).execute().catch(() => {});
  }

  async create(opts: { orgId: number; repoId: number | null; name: string; scopes: Scope[]; expiresAt: number | null }): Promise<CreatedToken> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(opts.name)) {
      throw new WharfError('BAD_REQUEST', [`token name "${opts.name.slice(0, 80)}" must be 1-64 characters from A-Z a-z 0-9 . _ -`]);
    }
    if (opts.scopes.length === 0) throw new WharfError('BAD_REQUEST', ['at least one scope is required: read, push, write or admin']);
    for (const s of opts.scopes) if (!(SCOPES as readonly string[]).includes(s)) throw new WharfError('BAD_REQUEST', [`unknown scope "${String(s).slice(0, 40)}": use read, push, write or admin`]);
    if (opts.expiresAt !== null && opts.expiresAt <= Date.now()) throw new WharfError('BAD_REQUEST', ['the expiry must be in the future']);
    const clash = await this.#db
      .selectFrom('tokens')
      .select('id')
      .where('org_id', '=', opts.orgId)
      .where('repo_id', opts.repoId === null ? 'is' : '=', opts.repoId)
      .where('name', '=', opts.name)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (clash) throw new WharfError('TOKEN_EXISTS', [opts.name]);
    const secret = newSecret(DEPLOY_TOKEN_PREFIX);
    const now = Date.now();
    const row = await this.#db
      .insertInto('tokens')
      .values({
        kind: 'deploy',
        name: opts.name,
        secret_sha256: digest(secret),
        scopes: [...new Set(opts.scopes)].join(' '),
        created_at: now,
        expires_at: opts.expiresAt,
        revoked_at: null,
        last_used_at: null,
        org_id: opts.orgId,
        repo_id: opts.repoId,
        username: null,
        previous_secret_sha256: null,
        previous_valid_until: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const username = `wharf-deploy-${row.id}`;
    await this.#db.updateTable('tokens').set({ username }).where('id', '=', row.id).execute();
    return { id: row.id, name: opts.name, username, token: secret, scopes: [...new Set(opts.scopes)], expires_at: iso(opts.expiresAt) };
  }

  async list(orgId: number, repoId: number | null): Promise<TokenInfo[]> {
    let q = this.#db
      .selectFrom('tokens')
      .innerJoin('orgs', 'orgs.id', 'tokens.org_id')
      .leftJoin('repos', 'repos.id', 'tokens.repo_id')
      .select([
        'tokens.id',
        'tokens.name',
        'tokens.username',
        'tokens.scopes',
        'tokens.expires_at',
        'tokens.created_at',
        'tokens.last_used_at',
        'tokens.revoked_at',
        'tokens.previous_valid_until',
        'orgs.name as org',
        'repos.name as repo',
      ])
      .where('tokens.org_id', '=', orgId);
    if (repoId !== null) q = q.where('tokens.repo_id', '=', repoId);
    const rows = await q.orderBy('tokens.id').execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      username: r.username ?? '',
      scopes: r.scopes.split(' ') as Scope[],
      org: r.org,
      repo: r.repo,
      expires_at: iso(r.expires_at),
      created_at: iso(r.created_at)!,
      last_used_at: iso(r.last_used_at),
      revoked_at: iso(r.revoked_at),
      rotation_grace_until: r.previous_valid_until !== null && r.previous_valid_until > Date.now() ? iso(r.previous_valid_until) : null,
    }));
  }

  async #owned(id: number, orgId: number, repoId: number | null) {
    const row = await this.#db.selectFrom('tokens').selectAll().where('id', '=', id).where('kind', '=', 'deploy').where('org_id', '=', orgId).executeTakeFirst();
    if (!row || (repoId !== null && row.repo_id !== repoId)) throw new WharfError('TOKEN_NOT_FOUND', [id]);
    return row;
  }

  async revoke(id: number, orgId: number, repoId: number | null): Promise<void> {
    await this.#owned(id, orgId, repoId);
    await this.#db.updateTable('tokens').set({ revoked_at: Date.now(), previous_valid_until: null }).where('id', '=', id).execute();
    this.#cache.clear();
    this.onChange?.();
  }

  /**
   * Called after a token was revoked or rotated, so other nodes drop their caches at once (the cluster bus); without
   * it they still stop accepting a revoked token within CACHE_TTL_MS.
   */
  onChange: (() => void) | undefined;

  /** Forgets every cached verification (another node changed a token). */
  invalidate(): void {
    this.#cache.clear();
  }

  /** Issues a new secret; the old one stays valid for `graceSeconds`. */
  async rotate(id: number, orgId: number, repoId: number | null, graceSeconds: number): Promise<CreatedToken> {
    const row = await this.#owned(id, orgId, repoId);
    if (row.revoked_at !== null) throw new WharfError('TOKEN_NOT_FOUND', [id]);
    const secret = newSecret(DEPLOY_TOKEN_PREFIX);
    await this.#db
      .updateTable('tokens')
      .set({ secret_sha256: digest(secret), previous_secret_sha256: row.secret_sha256, previous_valid_until: Date.now() + graceSeconds * 1000 })
      .where('id', '=', id)
      .execute();
    this.#cache.clear();
    this.onChange?.();
    return { id, name: row.name, username: row.username ?? '', token: secret, scopes: row.scopes.split(' ') as Scope[], expires_at: iso(row.expires_at) };
  }
}

function safeEqualHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}

