// Adding and removing Debian packages in a distribution. Packages are immutable: the same
// name+version+architecture can only ever be the same bytes.
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Config } from '../config.ts';
import { WharfError } from '../errors.ts';
import { validateDistRef, type RepoRef } from '../names.ts';
import { stagedByteSource, type StagedUpload } from './upload.ts';
import { repoTreePrefix } from './tree.ts';
import { checkDeb, type CheckedDeb } from './package-check.ts';
import type { FileDigests } from '../formats/digests.ts';
import { bumpChanges } from './distributions.ts';
import type { Locks } from './locks.ts';
import type { WriteBatcher } from './write-batcher.ts';
import type { PublishRequestOptions, PublishResult } from './publish-queue.ts';
import type { RepositoryInfo, RepositoryService } from './repositories.ts';
import type { AptPublisher } from './apt-publisher.ts';
import { ingestLockName, publishStored, storeInDistribution, type PackageTable, type PreparedPackage } from './ingest.ts';
import type { Insertable, Selectable } from 'kysely';
import type { DebPackageTable } from '../db/schema.ts';

export interface DebPackageInfo {
  distribution: string;
  name: string;
  version: string;
  architecture: string;
  filename: string;
  size: number;
  sha256: string;
  created_at: string;
  /** the CI identity of a trusted publish (issuer, project, ref, sha, run, workflow, environment), else null */
  provenance: Provenance | null;
}

/** What a trusted publish records about its CI job; stored as JSON with the package. */
export type Provenance = Readonly<Record<string, unknown>>;

export function parseProvenance(text: string | null | undefined): Provenance | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as Provenance;
  } catch {
    return null;
  }
}

export interface PushResult {
  /** created: new in the distribution; unchanged: the identical file was already there */
  status: 'created' | 'unchanged';
  package: DebPackageInfo;
}

export interface AptPackageServiceDeps {
  readonly db: Db;
  readonly store: BlobStore;
  readonly config: Config;
  readonly repos: RepositoryService;
  readonly publisher: AptPublisher;
  /** the 'ingest' lock serialises check-store-insert per distribution (across nodes), so two different files never race to one pool path */
  readonly locks: Locks;
  /** small write transactions committed together */
  readonly writes: WriteBatcher;
}

const WRITE = { sync: 'deferred', exactStat: false } as const;

/** A deb_packages row before it has a distribution. */
export type DebRow = Omit<Insertable<DebPackageTable>, 'distribution_id'> & { created_at: number; provenance: string | null; size: number; sha256: string };
type DebExisting = Selectable<DebPackageTable>;

/** The deb_packages table, for storeInDistribution. */
const DEB_PACKAGES_TABLE: PackageTable<DebRow, DebExisting, DebPackageInfo> = {
  kind: 'deb',
  table: 'deb_packages',
  uploadSha256Of: (e) => e.sha256,
  info: (distribution, r) => info(distribution, r),
};

/** A checked .deb, ready to store. */
export type PreparedDeb = PreparedPackage<DebRow>;

/** The row of a checked .deb with these digests (of the file as stored: Debian packages are stored as uploaded). */
export function debRow(checked: CheckedDeb, digests: FileDigests, provenance: Provenance | undefined): DebRow {
  return {
    ...checked.fields,
    size: digests.size,
    md5: digests.md5,
    sha1: digests.sha1,
    sha256: digests.sha256,
    sha512: digests.sha512,
    created_at: Date.now(),
    provenance: provenance ? JSON.stringify(provenance) : null,
  };
}

export interface IngestOptions {
  /**
   * false: store only; the caller requests one publish for many packages (a batch push). 'background': request the
   * publish and answer without waiting for it (an asynchronous push). Default: wait until the metadata is live.
   */
  publish?: boolean | 'background';
  /** the distribution's id when the caller already knows it exists with this kind (a batch, after its first package) */
  distributionId?: number;
  /** called once the package is stored, with its distribution and change number (undefined: it was there already) */
  onStored?: (distributionId: number, target: number | undefined) => void;
}

export class AptPackageService {
  readonly #d: AptPackageServiceDeps;

  constructor(deps: AptPackageServiceDeps) {
    this.#d = deps;
  }

  /** Makes the package files stored so far durable (an asynchronous push answers before any publish does it). */
  flushStored(): Promise<void> {
    return this.#d.store.flush();
  }

  /**
   * Adds a staged .deb to a distribution and waits for the publish that lists it (see IngestOptions.publish for the
   * other ways). `ingested` is called once the package is stored (so the publisher stops waiting for this upload).
   */
  async ingest(
    ref: RepoRef,
    repo: RepositoryInfo,
    os: string,
    dist: string,
    staged: StagedUpload,
    ingested: () => void,
    provenance?: Provenance,
    opts: IngestOptions = {},
  ): Promise<PushResult> {
    const prepared = await this.prepare(ref, repo, os, dist, staged, provenance);
    const { distributionId, target, results } = await this.store(ref, repo, os, dist, [prepared], opts);
    ingested();
    const result = results[0]!;
    if (result instanceof WharfError) throw result;
    opts.onStored?.(distributionId, target);
    await publishStored(this.#d, `${ref.org}/${ref.repo}/${os}/${dist}`, distributionId, target, opts.publish);
    return result;
  }

  /** Checks a staged .deb and derives everything stored about it (its Packages stanza, pool path, row). */
  async prepare(ref: RepoRef, repo: RepositoryInfo, os: string, dist: string, staged: StagedUpload, provenance?: Provenance): Promise<PreparedDeb> {
    const src = await stagedByteSource(staged);
    let checked;
    try {
      checked = await checkDeb(src, staged, dist);
    } finally {
      await src.close();
    }
    const key = `${repoTreePrefix(ref.org, ref.repo, repo.private)}/${os}/${checked.poolKey}`;
    return {
      filename: checked.filename,
      uploadSha256: staged.sha256,
      key,
      identity: checked.identity,
      // Durable with the publish that lists it (the publisher flushes the store before InRelease). A small package
      // never touched the disk: written straight into place; a large one is moved from its scratch file.
      write: async (store, opts) => {
        if (staged.bytes) await store.put(key, staged.bytes, opts?.concurrent ? { ...WRITE, concurrent: true } : WRITE);
        else await store.putFile(key, await staged.localPath(), WRITE);
      },
      row: debRow(checked, staged, provenance),
    };
  }

  /**
   * Stores prepared packages in the distribution (created if new), without publishing: one result per package, in
   * order (a refused one as its error), and the change number a publish must reach to list what was stored.
   */
  async store(
    ref: RepoRef,
    repo: RepositoryInfo,
    os: string,
    dist: string,
    items: readonly PreparedDeb[],
    opts: { distributionId?: number } = {},
  ): Promise<{ distributionId: number; target: number | undefined; results: (PushResult | WharfError)[] }> {
    return storeInDistribution(
      this.#d,
      DEB_PACKAGES_TABLE,
      { repoId: repo.id, label: `${ref.org}/${ref.repo}/${os}/${dist}`, os, dist, ...(opts.distributionId !== undefined ? { distributionId: opts.distributionId } : {}) },
      items,
    );
  }

  /** Publishes the distribution (a batch push stores many packages, then asks once). */
  publish(distributionId: number, opts: PublishRequestOptions): Promise<PublishResult> {
    return this.#d.publisher.request(distributionId, opts);
  }

  async list(ref: RepoRef, filter?: { os: string; dist: string }): Promise<DebPackageInfo[]> {
    const repo = await this.#d.repos.get(ref);
    let q = this.#d.db
      .selectFrom('deb_packages')
      .innerJoin('distributions', 'distributions.id', 'deb_packages.distribution_id')
      .select([
        'distributions.os',
        'distributions.name as dist',
        'deb_packages.name',
        'deb_packages.version',
        'deb_packages.architecture',
        'deb_packages.filename',
        'deb_packages.size',
        'deb_packages.sha256',
        'deb_packages.created_at',
        'deb_packages.provenance',
      ])
      .where('distributions.repo_id', '=', repo.id);
    if (filter) {
      validateDistRef(filter.os, filter.dist);
      q = q.where('distributions.os', '=', filter.os).where('distributions.name', '=', filter.dist);
    }
    const rows = await q.orderBy('distributions.os').orderBy('distributions.name').orderBy('deb_packages.name').orderBy('deb_packages.id').execute();
    return rows.map((r) => info(`${r.os}/${r.dist}`, r));
  }

  /** Removes a package from a distribution and republishes. Its file stays downloadable for the retention period. */
  async yank(ref: RepoRef, os: string, dist: string, filename: string): Promise<DebPackageInfo> {
    validateDistRef(os, dist);
    const repo = await this.#d.repos.get(ref);
    const distLabel = `${ref.org}/${ref.repo}/${os}/${dist}`;
    const { distributionId, target, removed } = await this.#d.locks.run('ingest', ingestLockName(distLabel, filename), async () => {
      const d = await this.#d.db
        .selectFrom('distributions')
        .select(['id'])
        .where('repo_id', '=', repo.id)
        .where('os', '=', os)
        .where('name', '=', dist)
        .executeTakeFirst();
      const row =
        d &&
        (await this.#d.db.selectFrom('deb_packages').selectAll().where('distribution_id', '=', d.id).where('filename', '=', filename).executeTakeFirst());
      if (!d || !row) throw new WharfError('PACKAGE_NOT_FOUND', [String(filename).slice(0, 200), distLabel]);
      const treePrefix = repoTreePrefix(ref.org, ref.repo, repo.private);
      const target = await this.#d.db.transaction().execute(async (tx) => {
        await tx.deleteFrom('deb_packages').where('id', '=', row.id).execute();
        await tx
          .insertInto('retired_files')
          .values({ distribution_id: d.id, key: `${treePrefix}/${os}/${row.pool_key}`, retired_at: Date.now() })
          .execute();
        return bumpChanges(tx, d.id);
      });
      return { distributionId: d.id, target, removed: info(`${os}/${dist}`, row) };
    });
    await this.#d.publisher.request(distributionId, { coalesce: true, target });
    return removed;
  }

}

function info(
  distribution: string,
  r: { name: string; version: string; architecture: string; filename: string; size: number; sha256: string; created_at: number; provenance: string | null },
): DebPackageInfo {
  return {
    distribution,
    name: r.name,
    version: r.version,
    architecture: r.architecture,
    filename: r.filename,
    size: Number(r.size),
    sha256: r.sha256,
    created_at: new Date(Number(r.created_at)).toISOString(),
    provenance: parseProvenance(r.provenance),
  };
}
