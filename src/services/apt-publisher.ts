// Builds and publishes the signed metadata of one APT distribution.
//
// Order of writes (what keeps `apt-get update` working while a publish runs):
//   1. index files under by-hash/ (content-addressed: never overwritten with different bytes),
//   2. the named index files (Packages.gz, Packages.xz; the uncompressed Packages is listed in Release for its hashes
//      but not stored, as on Debian's mirrors: apt fetches a compressed one, and Wharf serves it decompressed),
//   3. Release, Release.gpg and InRelease, together, last.
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
import { gzipMemberAsync, xzCompressParts } from '../formats/compress.ts';
import { assembleXz, parseXzStream, XZ_CHECK_CRC32, type XzPart } from '../formats/xz.ts';
import { IncrementalIndex, type BuiltIndex, type ChunkPieces } from './apt-index.ts';
import { repoTreePrefix, INTERNAL_PREFIX } from './tree.ts';
import { PublishQueue, phaseTimer, type AfterRelease, type PublishResult, type PublishRequestOptions } from './publish-queue.ts';
import { collectRetiredFiles, collectRetiredPackages, RetentionSchedule, type PackageSweep } from './retention.ts';
import { recordPublish } from './distributions.ts';
import type { Logger } from '../log.ts';
import type { UploadTracker } from './upload-tracker.ts';
import type { Metrics } from '../metrics.ts';
import type { Locks } from './locks.ts';

export interface PublishedIndex {
  /** sha256 of the plain Packages: equal fingerprints mean the same text (its .gz and .xz bytes may still differ) */
  fingerprint: string;
  files: IndexFileEntry[];
}

export interface PublishedState {
  date: number;
  architectures: string[];
  components: string[];
  indexes: Record<string, PublishedIndex>;
  /** false: the uncompressed Packages files are listed in Release but not stored (absent: an older Wharf stored them) */
  plainStored?: boolean;
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

  readonly #retention: RetentionSchedule;

  constructor(deps: AptPublisherDeps) {
    this.#deps = deps;
    this.#retention = new RetentionSchedule(deps.config.retentionSeconds, deps.now);
    this.#queue = new PublishQueue({
      db: deps.db,
      locks: deps.locks,
      ...(deps.onPublished ? { onPublished: deps.onPublished } : {}),
      publish: (id) => this.#publishOnce(id),
      afterPublish: (id) => this.#cleanup(id),
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
    const cached = this.#indexCache.get(distributionId);
    if (cached && (await this.#addNewRows(distributionId, cached, changes))) return cached;
    const stats = await db
      .selectFrom('deb_packages')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('id').as('m')])
      .where('distribution_id', '=', distributionId)
      .executeTakeFirstOrThrow();
    const count = Number(stats.n);
    // What the rows above `afterId` hold: how many, and which components and architectures (checked before any row
    // is read: the rows themselves are then read a page at a time, so a rebuild of a large distribution never holds
    // all its stanzas twice).
    const shape = async (afterId: number) => {
      const groups = await db
        .selectFrom('deb_packages')
        .select((eb) => ['component', 'architecture', eb.fn.countAll<number>().as('n')])
        .where('distribution_id', '=', distributionId)
        .where('id', '>', afterId)
        .groupBy(['component', 'architecture'])
        .execute();
      return { rows: groups.reduce((n, g) => n + Number(g.n), 0), groups };
    };
    let cache = this.#indexCache.get(distributionId);
    if (cache) {
      const known = cache;
      const fresh = await shape(known.maxId);
      // A removal shows as a count that disagrees, or (a removal and an addition between two publishes, possibly on
      // other nodes) as more changes than new rows; a row committed late with a lower id as a count that disagrees.
      if (known.count + fresh.rows !== count || changes - known.changes > fresh.rows || !fresh.groups.every((r) => fitsIndexes(known, r))) cache = undefined;
    }
    if (!cache) {
      this.#deps.log.debug({ distributionId }, 'rebuilding indexes');
      const all = await shape(0);
      const components = [...new Set(['main', ...all.groups.map((r) => r.component)])].sort();
      const architectures = [...new Set([...config.defaultArchitectures, ...all.groups.map((r) => r.architecture).filter((a) => a !== 'all')])].sort();
      cache = { components, architectures, count: 0, maxId: 0, changes, indexes: new Map() };
      for (const c of components) {
        for (const a of architectures) cache.indexes.set(`${c}/binary-${a}`, new IncrementalIndex((chunks) => this.#chunks(chunks)));
      }
      this.#indexCache.set(distributionId, cache);
    }
    for (;;) {
      const rows = await this.#rowsAfter(distributionId, cache.maxId).execute();
      const known = cache;
      // A row committed since the check above, of a component or architecture the indexes lack: built from scratch next time.
      if (!rows.every((r) => fitsIndexes(known, r))) {
        this.#indexCache.delete(distributionId);
        return this.#indexes(distributionId, changes);
      }
      await addRows(cache, rows);
      if (rows.length < AptPublisher.rowsPerRead) break;
    }
    cache.changes = changes;
    return cache;
  }

  /**
   * The usual publish (a few new rows since the last one, nothing removed) in one statement: the new rows and the
   * distribution's row count, read in one snapshot, so they agree. Adds them and answers true when every check of
   * the general path holds: all new rows fit one page, none was removed (the count adds up, and `changes` moved by
   * no more than the new rows), and they fit the known components and architectures. Otherwise it changes nothing
   * and answers false, and the general path reads again.
   */
  async #addNewRows(distributionId: number, cache: DistIndexCache, changes: number): Promise<boolean> {
    const { db } = this.#deps;
    const page = await db
      .selectFrom(
        db
          .selectFrom('deb_packages')
          .select((eb) => eb.fn.countAll<number>().as('total'))
          .where('distribution_id', '=', distributionId)
          .as('t'),
      )
      .leftJoin(this.#rowsAfter(distributionId, cache.maxId).as('p'), (join) => join.onTrue())
      .select(['t.total', 'p.id', 'p.component', 'p.architecture', 'p.sha256', 'p.stanza'])
      .orderBy('p.id')
      .execute();
    const total = Number(page[0]?.total);
    const rows = page.filter((r): r is typeof r & { id: number; component: string; architecture: string; sha256: string; stanza: string } => r.id !== null);
    if (rows.length >= AptPublisher.rowsPerRead || cache.count + rows.length !== total || changes - cache.changes > rows.length || !rows.every((r) => fitsIndexes(cache, r))) return false;
    await addRows(cache, rows);
    cache.changes = changes;
    return true;
  }

  /** A page of the distribution's rows above `afterId`, in id order. */
  #rowsAfter(distributionId: number, afterId: number) {
    return this.#deps.db
      .selectFrom('deb_packages')
      .select(['id', 'component', 'architecture', 'sha256', 'stanza'])
      .where('distribution_id', '=', distributionId)
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(AptPublisher.rowsPerRead);
  }

  /** Rows read from the database at once while bringing the indexes up to date (tests lower it). */
  static rowsPerRead = 2000;

  async #publishOnce(distributionId: number): Promise<PublishResult> {
    const { db, store } = this.#deps;
    const now = this.#deps.now ?? Date.now;
    const { timings, lap } = phaseTimer();
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
    // Every changed index is built in memory first: Release can then be rendered and signed while the index files
    // are being written.
    const indexes: Record<string, PublishedIndex> = {};
    const retired: string[] = [];
    const builds: [string, BuiltIndex][] = [];
    for (const [dir, index] of current) {
      const old = prev?.indexes[dir];
      if (old && !index.dirty) {
        indexes[dir] = old;
        continue;
      }
      const built = await index.build();
      builds.push([dir, built]);
      indexes[dir] = publishedIndexOf(dir, built);
      // Retired file by file, not when the plain fingerprint changes: the same plain text can be compressed into
      // other bytes (chunks stored provisionally on one build, compressed on another, after a restart or on another
      // node), and a by-hash file no longer named must not be kept forever.
      if (old) {
        const kept = new Set(indexes[dir]!.files.map((f) => f.sha256));
        for (const f of old.files) if (!kept.has(f.sha256)) retired.push(...byHashKeys(distDir, f));
      }
    }
    // Indexes that disappeared (an architecture or component no longer listed) are retired as a whole.
    for (const [dir, old] of Object.entries(prev?.indexes ?? {})) {
      if (!indexes[dir]) for (const f of old.files) retired.push(`${distDir}/${f.path}`, ...byHashKeys(distDir, f));
    }
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
    const signed = Promise.all([key.clearsign(release), key.detachSign(release)]);
    signed.catch(() => {}); // awaited below, after the writes (which may fail first)
    await Promise.all(builds.map(([dir, built]) => this.#writeIndex(`${distDir}/${dir}`, dir, built)));
    lap('write');
    const [inRelease, detached] = await signed;
    lap('sign');
    // Everything the release files name is durable before they are replaced; they are made durable together before
    // the publish is acknowledged. The three are written at once: InRelease stands alone, and a client reading the
    // Release + Release.gpg pair could meet a mismatched pair in the moment between two writes in any order.
    const deferred = { sync: 'deferred' } as const;
    if (!prev) await store.put(`${treePrefix}/gpgkey`, key.armoredPublicKey, deferred);
    await store.flush();
    const unnamed = { ...deferred, exactStat: false } as const;
    await Promise.all([store.put(`${distDir}/Release`, release, unnamed), store.put(`${distDir}/Release.gpg`, detached, unnamed), store.put(`${distDir}/InRelease`, inRelease, unnamed)]);
    await store.flush();
    // Published by an older Wharf, which stored the uncompressed indexes: they would now be stale (they are never
    // served, but a static copy of the tree would hold them). Deleted after the pushes are answered.
    const stalePlain =
      prev && prev.plainStored !== false
        ? Object.values(prev.indexes)
            .flatMap((ix) => ix.files.filter((f) => f.path.endsWith('/Packages')))
            .flatMap((f) => [`${distDir}/${f.path}`, ...byHashKeys(distDir, f)])
        : [];

    const state: PublishedState = { date, architectures, components, indexes, plainStored: false };
    const generation = dist.generation + 1;
    const t = now();
    await recordPublish(db, distributionId, { generation, published_state: JSON.stringify(state), published_at: t, published_changes: Number(dist.changes) }, retired);
    // Deleting what was retired long enough ago waits until the pushes are answered (afterPublish).
    this.#pendingCleanup.set(distributionId, async () => {
      await Promise.all(stalePlain.map((k) => store.delete(k)));
      return this.#collectGarbage(distributionId, `${dist.org}/${dist.repo}/${dist.os}/${dist.name}`, `${treePrefix}/${dist.os}`, distDir, state, t);
    });
    lap('release');
    const packages = this.#indexCache.get(distributionId)?.count;
    this.#deps.log.info({ distribution: `${dist.org}/${dist.repo}/${dist.os}/${dist.name}`, generation, packages, ms: timings }, 'published');
    return { generation, date, changes: Number(dist.changes) };
  }

  /** compressions of provisionally sealed chunks still running (close() waits for them) */
  readonly #background = new Set<Promise<unknown>>();
  #closed = false;

  /** Resolves once the publishes under way and the background work started after them have ended. */
  async idle(): Promise<void> {
    await this.#queue.settled();
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  /** Waits for the publishes under way and the background work started after them; starts none after. */
  async close(): Promise<void> {
    await this.#queue.close(); // the publishes and housekeeping under way
    this.#closed = true;
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  /** Garbage collection left by the last publish of each distribution (run by the queue once its pushes are answered). */
  readonly #pendingCleanup = new Map<number, () => Promise<AfterRelease>>();

  async #cleanup(distributionId: number): Promise<AfterRelease> {
    // Chunks this publish sealed provisionally are compressed for the next publishes, outside the lock: nothing
    // waits for it (an index the queue drops on a failure simply loses the work).
    const cache = this.#indexCache.get(distributionId);
    if (cache && !this.#closed) {
      for (const index of cache.indexes.values()) {
        if (index.provisionalChunks === 0) continue;
        const work = index
          .finishPending()
          .catch((e: unknown) => this.#deps.log.warn({ err: e, distributionId }, 'compressing sealed index chunks failed; they stay stored until the next try'))
          .finally(() => this.#background.delete(work));
        this.#background.add(work);
      }
    }
    const run = this.#pendingCleanup.get(distributionId);
    this.#pendingCleanup.delete(distributionId);
    return run?.();
  }

  /**
   * Deletes files retired more than the retention period ago, and never those retired by this very publish: a file
   * survives at least one publish cycle plus the retention period. Files that are live again are kept (the same index
   * content or package file can come back after a yank and a re-push).
   */
  async #collectGarbage(distributionId: number, label: string, osDir: string, distDir: string, state: PublishedState, publishedAt: number): Promise<AfterRelease> {
    const { db, store, config } = this.#deps;
    const cutoff = Math.min(publishedAt - 1, (this.#deps.now ?? Date.now)() - config.retentionSeconds * 1000);
    const stillLive = async (keys: string[]) => {
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
    };
    // Package files after the publish lock is released, under their ingest locks.
    const packages: PackageSweep = { isPackage: (k) => k.startsWith(`${osDir}/pool/`), label, locks: this.#deps.locks };
    const { packagesDue } = await collectRetiredFiles(db, store, distributionId, cutoff, stillLive, this.#retention, packages);
    return packagesDue ? () => collectRetiredPackages(db, store, distributionId, cutoff, stillLive, packages) : undefined;
  }


  /** Writes an index's compressed files: by-hash first (content-addressed), then the named files. */
  async #writeIndex(dirKey: string, dir: string, built: BuiltIndex): Promise<void> {
    const { store } = this.#deps;
    // Nothing names these files yet (Release comes later), so they are written concurrently: on object storage each
    // write is a request, and a publish is mostly waiting for them. On the filesystem the by-hash file first, then
    // its two hard links; on object storage the three at once.
    const deferred = { sync: 'deferred', exactStat: false } as const;
    await Promise.all(
      // The uncompressed Packages is listed in Release but not stored (see serve/plain-index.ts).
      indexFiles(dir, built).filter(({ name }) => name !== 'Packages').map(async ({ name, data, entry }) => {
        const sha256Key = `${dirKey}/by-hash/SHA256/${entry.sha256}`;
        const others = [`${dirKey}/by-hash/SHA512/${entry.sha512}`, `${dirKey}/${name}`];
        if (store.cheapCopy) {
          await store.put(sha256Key, data, deferred);
          await Promise.all(others.map((k) => store.copy(sha256Key, k, deferred)));
        } else {
          // Object storage: three writes at once, one round trip instead of a write and then two copies.
          await Promise.all([sha256Key, ...others].map((k) => store.put(k, data, deferred)));
        }
      }),
    );
  }

  /** The compressed pieces of index chunks: from memory, else from the store, else compressed now (all at once). */
  async #chunks(chunks: readonly { id: string; plain: Uint8Array }[]): Promise<ChunkPieces[]> {
    const { store } = this.#deps;
    const base = (id: string) => `${INTERNAL_PREFIX}/apt-chunks/${id.slice(0, 2)}/${id}`;
    const out: (ChunkPieces | undefined)[] = await Promise.all(
      chunks.map(async ({ id }) => {
        const cached = this.#chunkCache.get(id);
        if (cached) {
          this.#chunkCache.delete(id); // move to the most recently used end
          this.#chunkCache.set(id, cached);
          return cached;
        }
        const [gz, xz] = await Promise.all([store.get(`${base(id)}.gz`), store.get(`${base(id)}.xz`)]);
        const xzPart = xz && parseXzStreamOrUndefined(xz);
        // Pieces written by an older version (another xz check type) or damaged ones are simply made again.
        return gz && xzPart && xzPart.checkType === XZ_CHECK_CRC32 ? this.#remember(id, { gz, xz: xzPart }) : undefined;
      }),
    );
    const missing = chunks.flatMap((c, i) => (out[i] ? [] : [i]));
    if (missing.length > 0) {
      const [xzParts, gzs] = await Promise.all([
        xzCompressParts(missing.map((i) => chunks[i]!.plain)),
        Promise.all(missing.map((i) => gzipMemberAsync(chunks[i]!.plain))),
      ]);
      await Promise.all(
        missing.map(async (i, j) => {
          const { id } = chunks[i]!;
          const pieces = { gz: gzs[j]!, xz: xzParts[j]! };
          await Promise.all([store.put(`${base(id)}.gz`, pieces.gz), store.put(`${base(id)}.xz`, assembleXz([pieces.xz], { checkType: XZ_CHECK_CRC32 }))]);
          out[i] = this.#remember(id, pieces);
        }),
      );
    }
    return out as ChunkPieces[];
  }

  #remember(id: string, pieces: ChunkPieces): ChunkPieces {
    this.#chunkCache.set(id, pieces);
    this.#chunkCacheBytes += pieces.gz.byteLength + pieces.xz.blocks.byteLength;
    for (const [k, v] of this.#chunkCache) {
      if (this.#chunkCacheBytes <= AptPublisher.CHUNK_CACHE_LIMIT) break;
      this.#chunkCache.delete(k);
      this.#chunkCacheBytes -= v.gz.byteLength + v.xz.blocks.byteLength;
    }
    return pieces;
  }
}

/** Whether the cached indexes have a place for a row of this component and architecture ('all': every one). */
/** Adds rows (in id order, all above cache.maxId) to the indexes of their component and architecture. */
async function addRows(cache: DistIndexCache, rows: readonly { id: number; component: string; architecture: string; sha256: string; stanza: string }[]): Promise<void> {
  for (const [dir, index] of cache.indexes) {
    const [component, binArch] = dir.split('/') as [string, string];
    const arch = binArch.slice('binary-'.length);
    await index.add(rows.filter((r) => r.component === component && (r.architecture === arch || r.architecture === 'all')));
  }
  cache.count += rows.length;
  if (rows.length > 0) cache.maxId = rows[rows.length - 1]!.id;
}

function fitsIndexes(cache: { components: string[]; architectures: string[] }, r: { component: string; architecture: string }): boolean {
  return cache.components.includes(r.component) && (r.architecture === 'all' || cache.architectures.includes(r.architecture));
}

/** The files of an index (in Release order): name, bytes (as pieces) and Release entry. */
function indexFiles(dir: string, built: BuiltIndex): { name: string; data: readonly Uint8Array[]; entry: IndexFileEntry }[] {
  return [
    { name: 'Packages', data: built.plain, entry: { path: `${dir}/Packages`, ...built.digests.plain } },
    { name: 'Packages.gz', data: built.gz, entry: { path: `${dir}/Packages.gz`, ...built.digests.gz } },
    { name: 'Packages.xz', data: built.xz, entry: { path: `${dir}/Packages.xz`, ...built.digests.xz } },
  ];
}

function publishedIndexOf(dir: string, built: BuiltIndex): PublishedIndex {
  const files = indexFiles(dir, built).map((f) => f.entry);
  return { fingerprint: files[0]!.sha256, files };
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
