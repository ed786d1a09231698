// Builds and publishes the signed metadata of one APT distribution.
//
// Order of writes (what keeps `apt-get update` working while a publish runs):
//   1. index files under by-hash/ (content-addressed: never overwritten with different bytes),
//   2. the named index files (Packages, Packages.gz, Packages.xz),
//   3. Release, Release.gpg, and InRelease last.
// A client holding the previous InRelease keeps finding the by-hash files it names until the retention period ends.
//
// Work grows with the change, not with the repository: each index is kept in memory as a run of chunks with
// content-defined boundaries (apt-index.ts), each chunk compressed once (a gzip member; an xz block) and cached, and
// the published .gz/.xz are assembled from the cached pieces. Appending a package recompresses one chunk and hashes
// one chunk's bytes; only the rows added since the last publish are read from the database.
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Config } from '../config.ts';
import type { SigningKey } from '../signing/openpgp.ts';
import { renderRelease, type IndexFileEntry } from '../formats/deb/release.ts';
import { gzipMember, xzCompress } from '../formats/compress.ts';
import { parseXzStream, XZ_CHECK_CRC32, type XzPart } from '../formats/xz.ts';
import { IncrementalIndex, type ChunkPieces } from './apt-index.ts';
import { repoTreePrefix, INTERNAL_PREFIX } from './tree.ts';
import { PublishQueue, type PublishResult, type PublishRequestOptions } from './publish-queue.ts';
import { collectRetiredFiles } from './retention.ts';
import type { Logger } from '../log.ts';
import type { UploadTracker } from './upload-tracker.ts';
import type { Metrics } from '../metrics.ts';
import type { Locks } from './locks.ts';

export interface PublishedIndex {
  /** sha256 of the plain Packages: equal fingerprints mean identical files */
  fingerprint: string;
  files: IndexFileEntry[];
}

export interface PublishedState {
  date: number;
  architectures: string[];
  components: string[];
  indexes: Record<string, PublishedIndex>;
}

export type { PublishResult };

export interface AptPublisherDeps {
  readonly db: Db;
  readonly store: BlobStore;
  readonly config: Config;
  readonly signingKey: () => Promise<SigningKey>;
  readonly log: Logger;
  /** uploads in flight: a publish waits for them so that a burst becomes one generation */
  readonly uploads: UploadTracker;
  /** the per-distribution publish lock (across nodes on PostgreSQL) */
  readonly locks: Locks;
  /** called after a publish went live */
  readonly onPublished?: (distributionId: number, result: PublishResult) => void;
  readonly metrics?: Metrics;
  readonly now?: () => number;
}

interface DistIndexCache {
  /** components and architectures the indexes were built for (sorted) */
  components: string[];
  architectures: string[];
  /** rows included, and the highest row id */
  count: number;
  maxId: number;
  /** the distribution's `changes` when the rows were read */
  changes: number;
  indexes: Map<string, IncrementalIndex>;
}

export class AptPublisher {
  readonly #deps: AptPublisherDeps;
  readonly #queue: PublishQueue;
  /** Per distribution: its indexes in memory, so a publish applies only the rows added since the last one. */
  readonly #indexCache = new Map<number, DistIndexCache>();
  /** Bounded cache of compressed chunks (by chunk id), so a rebuild rarely reads them back from storage. */
  readonly #chunkCache = new Map<string, ChunkPieces>();
  #chunkCacheBytes = 0;
  static readonly CHUNK_CACHE_LIMIT = 64 * 1024 * 1024;

  constructor(deps: AptPublisherDeps) {
    this.#deps = deps;
    this.#queue = new PublishQueue({
      db: deps.db,
      locks: deps.locks,
      ...(deps.onPublished ? { onPublished: deps.onPublished } : {}),
      publish: (id) => this.#publishOnce(id),
      uploads: deps.uploads,
      log: deps.log,
      observe: (s) => deps.metrics?.publishDuration.observe({ format: 'deb' }, s),
      // The in-memory documents may have moved ahead of what was written: rebuild them next time.
      onFailure: (id) => this.#indexCache.delete(id),
    });
  }

  /**
   * Asks for the distribution to be published and resolves once metadata that includes every change committed before
   * this call is live. Requests that arrive while a publish runs are served by the next one together (group commit).
   */
  request(distributionId: number, opts: PublishRequestOptions = {}): Promise<PublishResult> {
    return this.#queue.request(distributionId, opts);
  }

  /** requests answered by a publish another run had already made (on any node) */
  get coalesced(): number {
    return this.#queue.coalesced;
  }

  /** A publish of the distribution went live on some node: answers the requests here that it covers. */
  published(distributionId: number, result: PublishResult): void {
    this.#queue.published(distributionId, result);
  }

  /**
   * The in-memory indexes of a distribution, brought up to date with the database: only rows added since the last
   * publish are read. A removal (the row count disagrees) or a new component or architecture rebuilds from all rows.
   */
  async #indexes(distributionId: number, changes: number): Promise<DistIndexCache> {
    const { db, config } = this.#deps;
    const stats = await db
      .selectFrom('deb_packages')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('id').as('m')])
      .where('distribution_id', '=', distributionId)
      .executeTakeFirstOrThrow();
    const count = Number(stats.n);
    let cache = this.#indexCache.get(distributionId);
    let rows: { id: number; component: string; architecture: string; sha256: string; stanza: string }[] = [];
    const select = () =>
      db.selectFrom('deb_packages').select(['id', 'component', 'architecture', 'sha256', 'stanza']).where('distribution_id', '=', distributionId);
    if (cache) {
      const known = cache;
      rows = await select().where('id', '>', known.maxId).orderBy('id').execute();
      const fits = (r: { component: string; architecture: string }) =>
        known.components.includes(r.component) && (r.architecture === 'all' || known.architectures.includes(r.architecture));
      // A removal shows as a count that disagrees, or (a removal and an addition between two publishes, possibly on
      // other nodes) as more changes than new rows; a row committed late with a lower id as a count that disagrees.
      if (known.count + rows.length !== count || changes - known.changes > rows.length || !rows.every(fits)) cache = undefined;
    }
    if (!cache) {
      this.#deps.log.debug({ distributionId }, 'rebuilding indexes');
      rows = await select().orderBy('id').execute();
      const components = [...new Set(['main', ...rows.map((r) => r.component)])].sort();
      const architectures = [
        ...new Set([...config.defaultArchitectures, ...rows.map((r) => r.architecture).filter((a) => a !== 'all')]),
      ].sort();
      cache = { components, architectures, count: 0, maxId: 0, changes, indexes: new Map() };
      for (const c of components) {
        for (const a of architectures) cache.indexes.set(`${c}/binary-${a}`, new IncrementalIndex((id, plain) => this.#chunk(id, plain)));
      }
      this.#indexCache.set(distributionId, cache);
    }
    for (const [dir, index] of cache.indexes) {
      const [component, binArch] = dir.split('/') as [string, string];
      const arch = binArch.slice('binary-'.length);
      await index.add(rows.filter((r) => r.component === component && (r.architecture === arch || r.architecture === 'all')));
    }
    cache.count += rows.length;
    cache.changes = changes;
    if (rows.length > 0) cache.maxId = rows[rows.length - 1]!.id;
    return cache;
  }

  async #publishOnce(distributionId: number): Promise<PublishResult> {
    const { db, store } = this.#deps;
    const now = this.#deps.now ?? Date.now;
    const timings: Record<string, number> = {};
    let mark = performance.now();
    const lap = (name: string) => {
      const t = performance.now();
      timings[name] = Math.round(t - mark);
      mark = t;
    };
    const dist = await db
      .selectFrom('distributions')
      .innerJoin('repos', 'repos.id', 'distributions.repo_id')
      .innerJoin('orgs', 'orgs.id', 'repos.org_id')
      .select([
        'distributions.id',
        'distributions.os',
        'distributions.name',
        'distributions.generation',
        'distributions.published_state',
        'distributions.changes',
        'repos.name as repo',
        'repos.private',
        'orgs.name as org',
      ])
      .where('distributions.id', '=', distributionId)
      .executeTakeFirstOrThrow();
    const prev: PublishedState | null = dist.published_state ? JSON.parse(dist.published_state) : null;

    const treePrefix = repoTreePrefix(dist.org, dist.repo, dist.private === 1);
    const distDir = `${treePrefix}/${dist.os}/dists/${dist.name}`;
    lap('load');
    const { components, architectures, indexes: current } = await this.#indexes(distributionId, Number(dist.changes));
    lap('indexes');
    const indexes: Record<string, PublishedIndex> = {};
    const retired: string[] = [];
    // Every changed index is built and written concurrently (Release lists them in a fixed order below).
    await Promise.all(
      [...current].map(async ([dir, index]) => {
        const old = prev?.indexes[dir];
        if (old && !index.dirty) {
          indexes[dir] = old;
          return;
        }
        const built = await this.#writeIndex(`${distDir}/${dir}`, dir, index);
        indexes[dir] = built;
        if (old && old.fingerprint !== built.fingerprint) {
          for (const f of old.files) retired.push(...byHashKeys(distDir, f));
        }
      }),
    );
    // Indexes that disappeared (an architecture or component no longer listed) are retired as a whole.
    for (const [dir, old] of Object.entries(prev?.indexes ?? {})) {
      if (!indexes[dir]) for (const f of old.files) retired.push(`${distDir}/${f.path}`, ...byHashKeys(distDir, f));
    }

    lap('write');
    const date = Math.max(Math.floor(now() / 1000), prev?.date ?? 0);
    const release = renderRelease({
      origin: `${dist.org}/${dist.repo}`,
      label: `${dist.org}/${dist.repo}`,
      suite: dist.name,
      codename: dist.name,
      date,
      architectures,
      components,
      description: `${dist.org}/${dist.repo} ${dist.os} ${dist.name}, published by Wharf`,
      files: [...current.keys()].flatMap((dir) => indexes[dir]!.files),
    });
    const key = await this.#deps.signingKey();
    const [inRelease, detached] = await Promise.all([key.clearsign(release), key.detachSign(release)]);
    lap('sign');
    // Everything InRelease names is durable before InRelease is replaced; the three release files are made durable
    // together before the publish is acknowledged.
    const deferred = { sync: 'deferred' } as const;
    if (!prev) await store.put(`${treePrefix}/gpgkey`, key.armoredPublicKey, deferred);
    await store.flush();
    const unnamed = { ...deferred, exactStat: false } as const;
    await Promise.all([store.put(`${distDir}/Release`, release, unnamed), store.put(`${distDir}/Release.gpg`, detached, unnamed)]);
    await store.put(`${distDir}/InRelease`, inRelease, unnamed);
    await store.flush();

    const state: PublishedState = { date, architectures, components, indexes };
    const generation = dist.generation + 1;
    const t = now();
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('distributions')
        .set({ generation, published_state: JSON.stringify(state), published_at: t, published_changes: Number(dist.changes) })
        .where('id', '=', distributionId)
        .execute();
      if (retired.length > 0) {
        await tx
          .insertInto('retired_files')
          .values(retired.map((k) => ({ distribution_id: distributionId, key: k, retired_at: t })))
          .execute();
      }
    });
    await this.#collectGarbage(distributionId, `${treePrefix}/${dist.os}`, distDir, state, t);
    lap('release+gc');
    const packages = this.#indexCache.get(distributionId)?.count;
    this.#deps.log.info({ distribution: `${dist.org}/${dist.repo}/${dist.os}/${dist.name}`, generation, packages, ms: timings }, 'published');
    return { generation, date, changes: Number(dist.changes) };
  }

  /**
   * Deletes files retired more than the retention period ago, and never those retired by this very publish: a file
   * survives at least one publish cycle plus the retention period. Files that are live again are kept (the same index
   * content or package file can come back after a yank and a re-push).
   */
  async #collectGarbage(distributionId: number, osDir: string, distDir: string, state: PublishedState, publishedAt: number): Promise<void> {
    const { db, store, config } = this.#deps;
    const cutoff = Math.min(publishedAt - 1, (this.#deps.now ?? Date.now)() - config.retentionSeconds * 1000);
    await collectRetiredFiles(db, store, distributionId, cutoff, async (keys) => {
      const live = new Set<string>();
      for (const index of Object.values(state.indexes)) {
        for (const f of index.files) {
          live.add(`${distDir}/${f.path}`);
          for (const k of byHashKeys(distDir, f)) live.add(k);
        }
      }
      const poolKeys = keys.filter((k) => k.startsWith(`${osDir}/pool/`)).map((k) => k.slice(osDir.length + 1));
      for (let i = 0; i < poolKeys.length; i += 500) {
        const rows = await db
          .selectFrom('deb_packages')
          .select('pool_key')
          .where('distribution_id', '=', distributionId)
          .where('pool_key', 'in', poolKeys.slice(i, i + 500))
          .execute();
        for (const r of rows) live.add(`${osDir}/${r.pool_key}`);
      }
      return live;
    });
  }


  /** Writes an index: by-hash files first (content-addressed), then the named files. */
  async #writeIndex(dirKey: string, dir: string, index: IncrementalIndex): Promise<PublishedIndex> {
    const built = await index.build();
    const files: IndexFileEntry[] = [];
    const { store } = this.#deps;
    // Nothing names these files yet (Release comes later), so they are written concurrently: on object storage each
    // write is a request, and a publish is mostly waiting for them. The by-hash file first, then its two copies.
    const deferred = { sync: 'deferred', exactStat: false } as const;
    const written = [
      ['Packages', built.plain, built.digests.plain],
      ['Packages.gz', built.gz, built.digests.gz],
      ['Packages.xz', built.xz, built.digests.xz],
    ] as const;
    await Promise.all(
      written.map(async ([name, data, digests]) => {
        const entry: IndexFileEntry = { path: `${dir}/${name}`, ...digests };
        const sha256Key = `${dirKey}/by-hash/SHA256/${entry.sha256}`;
        await store.put(sha256Key, data, deferred);
        await Promise.all([store.copy(sha256Key, `${dirKey}/by-hash/SHA512/${entry.sha512}`, deferred), store.copy(sha256Key, `${dirKey}/${name}`, deferred)]);
        files.push(entry);
      }),
    );
    files.sort((a, b) => written.findIndex((w) => `${dir}/${w[0]}` === a.path) - written.findIndex((w) => `${dir}/${w[0]}` === b.path));
    return { fingerprint: files[0]!.sha256, files };
  }

  async #chunk(id: string, plain: Uint8Array): Promise<ChunkPieces> {
    const cached = this.#chunkCache.get(id);
    if (cached) {
      this.#chunkCache.delete(id); // move to the most recently used end
      this.#chunkCache.set(id, cached);
      return cached;
    }
    const base = `${INTERNAL_PREFIX}/apt-chunks/${id.slice(0, 2)}/${id}`;
    const { store } = this.#deps;
    let [gz, xz] = await Promise.all([store.get(`${base}.gz`), store.get(`${base}.xz`)]);
    let xzPart = xz && parseXzStreamOrUndefined(xz);
    // Pieces written by an older version (another xz check type) or damaged ones are simply made again.
    if (!gz || !xzPart || xzPart.checkType !== XZ_CHECK_CRC32) {
      [gz, xz] = await Promise.all([Promise.resolve(gzipMember(plain)), xzCompress(plain)]);
      xzPart = parseXzStream(xz);
      await Promise.all([store.put(`${base}.gz`, gz), store.put(`${base}.xz`, xz)]);
    }
    const pieces = { gz, xz: xzPart };
    this.#chunkCache.set(id, pieces);
    this.#chunkCacheBytes += gz.byteLength + pieces.xz.blocks.byteLength;
    for (const [k, v] of this.#chunkCache) {
      if (this.#chunkCacheBytes <= AptPublisher.CHUNK_CACHE_LIMIT) break;
      this.#chunkCache.delete(k);
      this.#chunkCacheBytes -= v.gz.byteLength + v.xz.blocks.byteLength;
    }
    return pieces;
  }
}

function byHashKeys(distDir: string, f: IndexFileEntry): string[] {
  const dir = f.path.slice(0, f.path.lastIndexOf('/'));
  return [`${distDir}/${dir}/by-hash/SHA256/${f.sha256}`, `${distDir}/${dir}/by-hash/SHA512/${f.sha512}`];
}

function parseXzStreamOrUndefined(bytes: Uint8Array): XzPart | undefined {
  try {
    return parseXzStream(bytes);
  } catch {
    return undefined;
  }
}
