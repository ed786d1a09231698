// Builds and publishes the signed metadata of one RPM distribution: for each architecture directory (x86_64, aarch64,
// ..., with noarch packages in every one) and SRPMS, repodata/<sha256>-{primary,filelists,other}.xml.gz and
// repomd.xml with its detached signature repomd.xml.asc and the key repomd.xml.key.
//
// Order: package files and data files first (content-addressed names), flushed; repomd.xml.asc and repomd.xml last.
// Superseded data files stay for the retention period. As for APT, documents are kept in memory between publishes as
// content-defined chunks of package fragments, each chunk compressed once into a gzip member: a .xml.gz is the header
// member, the chunk members and the footer member (multi-member gzip, which zlib's readers, and so librepo, libsolv
// and zypper, read as one stream).
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Config } from '../config.ts';
import type { SigningKey } from '../signing/openpgp.ts';
import type { Logger } from '../log.ts';
import { rpmBaseArch } from '../formats/rpm/arch.ts';
import { gzipMember, gzipMemberAsync } from '../formats/compress.ts';
import { mapLimit } from './async.ts';
import { DigestWorker, sharedCopy, type DigestPrefix, type Part } from './digest-worker.ts';
import {
  FILELISTS_FOOTER,
  OTHER_FOOTER,
  PRIMARY_FOOTER,
  filelistsHeader,
  otherHeader,
  primaryHeader,
  repomdXml,
  type RepomdRecord,
} from '../formats/rpm/repodata.ts';
import { endsChunk } from './apt-index.ts';
import { repoTreePrefix } from './tree.ts';
import { PublishQueue, phaseTimer, type AfterRelease, type PublishResult, type PublishRequestOptions } from './publish-queue.ts';
import type { Locks } from './locks.ts';
import { collectRetiredFiles, collectRetiredPackages, RetentionSchedule, type PackageSweep } from './retention.ts';
import type { UploadTracker } from './upload-tracker.ts';
import type { Metrics } from '../metrics.ts';
import { noarchCopyKey, noarchOriginKey, relocatedKey, rpmBlobDir } from './rpm-packages.ts';
import { recordPublish } from './distributions.ts';

export interface RpmPublisherDeps {
  readonly db: Db;
  readonly store: BlobStore;
  readonly config: Config;
  readonly metadataKey: () => Promise<SigningKey>;
  readonly packageKey: (repoId: number) => Promise<SigningKey>;
  readonly log: Logger;
  readonly uploads: UploadTracker;
  /** the per-distribution publish lock (across nodes on PostgreSQL) */
  readonly locks: Locks;
  /** called after a publish went live */
  readonly onPublished?: (distributionId: number, result: PublishResult) => void;
  readonly metrics?: Metrics;
  readonly now?: () => number;
}

type DocType = 'primary' | 'filelists' | 'other';


/**
 * gzip level of the documents' chunks: zlib's default, as createrepo_c writes them (its primary.xml.gz of the
 * benchmark's 10,000 packages is within 0.5 % of `gzip -6`'s). Level 9 made them 4 % smaller for half again the CPU.
 */
const GZIP_LEVEL = 6;
const DOC_TYPES: readonly DocType[] = ['primary', 'filelists', 'other'];
const HEADER: Record<DocType, (n: number) => string> = { primary: primaryHeader, filelists: filelistsHeader, other: otherHeader };
const FOOTER: Record<DocType, string> = { primary: PRIMARY_FOOTER, filelists: FILELISTS_FOOTER, other: OTHER_FOOTER };

/** What a built document is: its .xml.gz as members, and the checksums repomd.xml gives for it. */
interface BuiltDocument {
  /** the .xml.gz as its members (never concatenated: written with one writev) */
  gz: Uint8Array[];
  size: number;
  checksum: Promise<string>;
  openSize: number;
  openChecksum: Promise<string>;
}

/**
 * One metadata document (e.g. primary.xml of x86_64) as sealed chunks plus an open tail.
 *
 * Both checksums cover the whole document, from a header that holds the package count, so every publish hashes it
 * all (16 MB of primary.xml at 10,000 packages, ~9 ms). After a publish, while the distribution is idle, the
 * publisher hashes ahead the beginning of the most likely next document: the header with one package more, then the
 * sealed chunks (ahead()). A single push then only hashes its own chunk, the tail and the footer; any other change
 * (another count, a rebuilt document) hashes the whole document as before.
 */
class ChunkedDocument {
  /**
   * sealed chunks; their bytes live in SharedArrayBuffers kept on the digest worker (plainKey, gzKey), which reads
   * them without a copy
   */
  readonly sealed: { plain: Uint8Array; gz: Uint8Array; plainKey: number; gzKey: number }[] = [];
  tail: string[] = [];
  /** chunks sealed by add() and not yet compressed (seal() compresses them, all at once) */
  #sealing: Buffer[] = [];
  /** prefixes hashed ahead: for a document of `count` packages whose first `sealed` chunks are today's */
  #ahead: { count: number; sealed: number; headMember: Uint8Array; open: DigestPrefix; gz: DigestPrefix } | undefined;

  readonly type: DocType;
  readonly digests: DigestWorker;

  constructor(type: DocType, digests: DigestWorker) {
    this.type = type;
    this.digests = digests;
  }

  add(fragment: string, sha256: string): void {
    this.tail.push(fragment);
    if (endsChunk(sha256)) {
      this.#sealing.push(Buffer.from(this.tail.join(''), 'utf8'));
      this.tail = [];
    }
  }

  /** the seals in flight, in order: each appends its chunks after the one before it */
  #sealed: Promise<void> = Promise.resolve();

  /**
   * Compresses the chunks sealed since the last call, in parallel on the thread pool; they join `sealed` in order,
   * after those of earlier calls. The caller may go on adding meanwhile (the next page of rows).
   */
  seal(): Promise<void> {
    const plains = this.#sealing;
    this.#sealing = [];
    const gzipped = Promise.all(plains.map((p) => gzipMemberAsync(p, GZIP_LEVEL)));
    gzipped.catch(() => {}); // reported through the chain below
    this.#sealed = this.#sealed.then(async () => {
      const gzs = await gzipped;
      const shared = plains.flatMap((plain, i) => [sharedCopy(plain), sharedCopy(gzs[i]!)]);
      const keys = this.digests.keep(shared);
      for (let i = 0; i < shared.length; i += 2) this.sealed.push({ plain: shared[i]!, gz: shared[i + 1]!, plainKey: keys[i]!, gzKey: keys[i + 1]! });
    });
    return this.#sealed;
  }

  /** Hashes ahead, on the digest worker, the beginning of this document as it will be with `count` packages. */
  ahead(count: number): void {
    this.#dropAhead();
    const head = Buffer.from(HEADER[this.type](count), 'utf8');
    const headMember = gzipMember(head, 1);
    this.#ahead = {
      count,
      sealed: this.sealed.length,
      headMember,
      open: this.digests.prefix('sha256', [head, ...this.sealed.map((c) => c.plainKey)]),
      gz: this.digests.prefix('sha256', [headMember, ...this.sealed.map((c) => c.gzKey)]),
    };
  }

  /** Releases what the document holds on the digest worker. */
  dispose(): void {
    this.#dropAhead();
    this.digests.release(this.sealed.flatMap((c) => [c.plainKey, c.gzKey]));
  }

  #dropAhead(): void {
    if (!this.#ahead) return;
    this.digests.drop(this.#ahead.open);
    this.digests.drop(this.#ahead.gz);
    this.#ahead = undefined;
  }

  /** The document with `count` packages; its checksums are computed on the digest worker. */
  build(count: number): BuiltDocument {
    const ahead = this.#ahead?.count === count && this.#ahead.sealed <= this.sealed.length ? this.#ahead : undefined;
    if (ahead) this.#ahead = undefined;
    else this.#dropAhead();
    const head = Buffer.from(HEADER[this.type](count), 'utf8');
    const foot = Buffer.from(FOOTER[this.type], 'utf8');
    const tail = Buffer.from(this.tail.join(''), 'utf8');
    // What the worker hashes: sealed chunks by their keys, the rest as bytes.
    const openParts: Part[] = [head];
    let openSize = head.byteLength;
    const headMember = ahead?.headMember ?? gzipMember(head, 1);
    const gz: Uint8Array[] = [headMember];
    const gzParts: Part[] = [headMember];
    for (const c of this.sealed) {
      openParts.push(c.plainKey);
      openSize += c.plain.byteLength;
      gz.push(c.gz);
      gzParts.push(c.gzKey);
    }
    openParts.push(tail, foot);
    openSize += tail.byteLength + foot.byteLength;
    const last = tail.byteLength > 0 ? [gzipMember(tail, 1), gzipMember(foot, 1)] : [gzipMember(foot, 1)];
    gz.push(...last);
    gzParts.push(...last);
    let size = 0;
    for (const m of gz) size += m.byteLength;
    if (!ahead) return { gz, size, checksum: this.digests.digest('sha256', gzParts), openSize, openChecksum: this.digests.digest('sha256', openParts) };
    // The parts after the prefix: chunks sealed since it was hashed, then the tail and the footer.
    const from = 1 + ahead.sealed;
    return {
      gz,
      size,
      checksum: this.digests.finish(ahead.gz, gzParts.slice(from), gzParts),
      openSize,
      openChecksum: this.digests.finish(ahead.open, openParts.slice(from), openParts),
    };
  }
}

/** A directory a publish keeps once published: SRPMS and the $basearch names (not i686/ or armv7hl/ of old). */
function keptDir(dir: string): boolean {
  return dir === 'SRPMS' || rpmBaseArch(dir) === dir;
}

/** Whether the cached documents have a directory for a package of `arch` (noarch goes into every one). */
function fitsDirs(cache: { dirs: Map<string, unknown> }, arch: string): boolean {
  return arch === 'noarch' || cache.dirs.has(rpmBlobDir(arch));
}

interface RepoDirState {
  count: number;
  docs: Record<DocType, ChunkedDocument>;
  dirty: boolean;
}

interface DistCache {
  count: number;
  maxId: number;
  /** the distribution's `changes` when the rows were read */
  changes: number;
  /** repository directories: binary architectures and SRPMS */
  dirs: Map<string, RepoDirState>;
}

interface PublishedRpmState {
  timestamp: number;
  /** per directory: the repomd records */
  dirs: Record<string, RepomdRecord[]>;
}

export class RpmPublisher {
  readonly #d: RpmPublisherDeps;
  readonly #queue: PublishQueue;
  readonly #cache = new Map<number, DistCache>();
  /** hashes the whole uncompressed documents off the main thread */
  readonly #digests = new DigestWorker();

  readonly #retention: RetentionSchedule;

  constructor(deps: RpmPublisherDeps) {
    this.#d = deps;
    this.#retention = new RetentionSchedule(deps.config.retentionSeconds, deps.now);
    this.#queue = new PublishQueue({
      db: deps.db,
      locks: deps.locks,
      ...(deps.onPublished ? { onPublished: deps.onPublished } : {}),
      publish: (id) => this.#publishOnce(id),
      afterPublish: (id, idle) => this.#cleanup(id, idle),
      uploads: deps.uploads,
      log: deps.log,
      observe: (s) => deps.metrics?.publishDuration.observe({ format: 'rpm' }, s),
      // The in-memory documents may have moved ahead of what was written: rebuild them next time.
      onFailure: (id) => this.#forget(id),
    });
  }

  request(distributionId: number, opts: PublishRequestOptions = {}): Promise<PublishResult> {
    return this.#queue.request(distributionId, opts);
  }

  /** Waits for the publishes and housekeeping under way, then stops the digest workers. */
  async close(): Promise<void> {
    await this.#queue.close();
    await this.#digests.close();
  }

  /** checksums finished from a prefix hashed ahead (the others hashed their whole document) */
  get checksumsFromPrefix(): number {
    return this.#digests.finishedFromPrefix;
  }

  /** requests answered by a publish another run had already made (on any node) */
  get coalesced(): number {
    return this.#queue.coalesced;
  }

  /** A publish of the distribution went live on some node: answers the requests here that it covers. */
  published(distributionId: number, result: PublishResult): void {
    this.#queue.published(distributionId, result);
  }

  /** The distribution's row with its repository's, as a publish reads it. */
  #distribution(distributionId: number) {
    return this.#d.db
      .selectFrom('distributions')
      .innerJoin('repos', 'repos.id', 'distributions.repo_id')
      .innerJoin('orgs', 'orgs.id', 'repos.org_id')
      .select(['distributions.os', 'distributions.name', 'distributions.generation', 'distributions.published_state', 'distributions.changes', 'repos.id as repoId', 'repos.name as repo', 'repos.private', 'repos.sign_packages', 'orgs.name as org'])
      .where('distributions.id', '=', distributionId)
      .executeTakeFirstOrThrow();
  }

  async #publishOnce(distributionId: number): Promise<PublishResult> {
    const { db, store } = this.#d;
    const now = this.#d.now ?? Date.now;
    const { timings, lap } = phaseTimer();
    const dist = await this.#distribution(distributionId);
    const treePrefix = repoTreePrefix(dist.org, dist.repo, dist.private === 1);
    const distDir = `${treePrefix}/${dist.os}/${dist.name}`;
    const prev: PublishedRpmState | null = dist.published_state ? JSON.parse(dist.published_state) : null;

    lap('load');
    const cache = await this.#update(distributionId, `${treePrefix}/${dist.os}`, Number(dist.changes), Object.keys(prev?.dirs ?? {}));
    lap('documents');
    const timestamp = Math.max(Math.floor(now() / 1000), prev?.timestamp ?? 0);
    const metadataKey = await this.#d.metadataKey();
    const state: PublishedRpmState = { timestamp, dirs: Object.create(null) as PublishedRpmState['dirs'] };
    const retired: string[] = [];
    const repomds: { dir: string; xml: string }[] = [];
    const repoDirs: { dir: string; old: RepomdRecord[] | undefined; records: Promise<RepomdRecord[]> }[] = [];
    const writes: Promise<unknown>[] = [];
    // Awaited together below; marked handled now, so a failure before that point cannot crash the process.
    const write = (p: Promise<unknown>) => {
      p.catch(() => {});
      writes.push(p);
    };
    for (const [dir, s] of cache.dirs) {
      const old = prev && Object.hasOwn(prev.dirs, dir) ? prev.dirs[dir] : undefined;
      if (old && !s.dirty) {
        state.dirs[dir] = old;
        continue;
      }
      const records: Promise<RepomdRecord>[] = [];
      for (const type of DOC_TYPES) {
        const built = s.docs[type].build(s.count);
        // (Both digests are owed by the digest worker: if one fails, say the worker is stopped by close(), the
        // other must not become an unhandled rejection, which ends the process.)
        built.openChecksum.catch(() => {});
        const record = (async (): Promise<RepomdRecord> => {
          const checksum = await built.checksum;
          const href = `repodata/${checksum}-${type}.xml.gz`;
          // Content-addressed and not yet named by any repomd.xml: written concurrently, awaited before the flush.
          write(store.put(`${distDir}/${dir}/${href}`, built.gz, { sync: 'deferred', exactStat: false }));
          return { type, checksum, openChecksum: await built.openChecksum, href, timestamp, size: built.size, openSize: built.openSize };
        })();
        record.catch(() => {}); // awaited below
        records.push(record);
      }
      s.dirty = false;
      repoDirs.push({ dir, old, records: Promise.all(records) });
    }
    // A directory published before and no longer made (only one named before the $basearch mapping): its metadata
    // and noarch copies are retired like superseded files, so a client still pointed at it gets an error, not a
    // repository that silently stopped changing. The files of its packages stay as long as their rows name them.
    const gone = Object.entries(prev?.dirs ?? {}).filter(([dir]) => !cache.dirs.has(dir) && !keptDir(dir));
    const noarch = gone.length > 0 ? await db.selectFrom('rpm_packages').select('blob_key').where('distribution_id', '=', distributionId).where('arch', '=', 'noarch').execute() : [];
    for (const [dir, old] of gone) {
      for (const r of old) retired.push(`${distDir}/${dir}/${r.href}`);
      for (const f of ['repomd.xml', 'repomd.xml.asc', 'repomd.xml.key']) retired.push(`${distDir}/${dir}/repodata/${f}`);
      for (const r of noarch) retired.push(`${treePrefix}/${dist.os}/${noarchCopyKey(r.blob_key, dir)}`);
    }
    // The checksums are computed on the digest worker; each data file is written as soon as its name is known.
    for (const { dir, old, records } of repoDirs) {
      const data = await records;
      state.dirs[dir] = data;
      for (const r of old ?? []) if (!data.some((n) => n.href === r.href)) retired.push(`${distDir}/${dir}/${r.href}`);
      repomds.push({ dir, xml: repomdXml({ revision: String(timestamp), data }) });
    }
    // Package files, data files and keys are durable before any repomd.xml names them.
    // A repository without package signing has no package key: none is made for it, and none is published.
    const packageKey = dist.sign_packages ? await this.#d.packageKey(dist.repoId) : undefined;
    const deferred = { sync: 'deferred', exactStat: false } as const;
    if (!prev) {
      write(store.put(`${treePrefix}/gpgkey`, metadataKey.armoredPublicKey, deferred));
      if (packageKey) write(store.put(`${treePrefix}/package-gpgkey`, packageKey.armoredPublicKey, deferred));
    }
    for (const { dir } of repomds) write(store.put(`${distDir}/${dir}/repodata/repomd.xml.key`, metadataKey.armoredPublicKey, deferred));
    const signatures = Promise.all(repomds.map(({ xml }) => metadataKey.detachSign(xml)));
    signatures.catch(() => {});
    lap('build');
    await Promise.all(writes);
    await store.flush();
    lap('write');
    // Per directory the signature goes first and repomd.xml right after it; directories are independent.
    const ascs = await signatures;
    await Promise.all(
      repomds.map(async ({ dir, xml }, i) => {
        await store.put(`${distDir}/${dir}/repodata/repomd.xml.asc`, ascs[i]!, deferred);
        await store.put(`${distDir}/${dir}/repodata/repomd.xml`, xml, deferred);
      }),
    );
    await store.flush();
    lap('sign+repomd');

    const generation = dist.generation + 1;
    const t = now();
    await recordPublish(db, distributionId, { generation, published_state: JSON.stringify(state), published_at: t, published_changes: Number(dist.changes) }, retired);
    // Deleting what was retired long enough ago waits until the pushes are answered (afterPublish).
    const label = `${dist.org}/${dist.repo}/${dist.os}/${dist.name}`;
    this.#pendingCleanup.set(distributionId, () => this.#collectGarbage(distributionId, label, treePrefix, dist.os, distDir, state, t));
    lap('release');
    this.#d.log.info({ distribution: label, generation, packages: cache.count, ms: timings }, 'published');
    return { generation, date: timestamp, changes: Number(dist.changes) };
  }

  /** Garbage collection left by the last publish of each distribution (run by the queue once its pushes are answered). */
  readonly #pendingCleanup = new Map<number, () => Promise<AfterRelease>>();

  async #cleanup(distributionId: number, idle: boolean): Promise<AfterRelease> {
    const run = this.#pendingCleanup.get(distributionId);
    this.#pendingCleanup.delete(distributionId);
    // Nothing else waits to be published: hash ahead for a push of one more package (see ChunkedDocument). Not while
    // pushes queue up, when the next count is anyone's guess and the hashing would only take CPU from them.
    const cache = this.#cache.get(distributionId);
    if (idle && cache) for (const s of cache.dirs.values()) for (const t of DOC_TYPES) s.docs[t].ahead(s.count + 1);
    return run?.();
  }

  /** Deletes files retired more than the retention period ago (never those this publish retired), unless live again. */
  async #collectGarbage(distributionId: number, label: string, treePrefix: string, os: string, distDir: string, state: PublishedRpmState, publishedAt: number): Promise<AfterRelease> {
    const { db, store } = this.#d;
    const now = this.#d.now ?? Date.now;
    const cutoff = Math.min(publishedAt - 1, now() - this.#d.config.retentionSeconds * 1000);
    const stillLive = async (keys: string[]) => {
      const live = new Set<string>();
      for (const [dir, records] of Object.entries(state.dirs)) for (const r of records) live.add(`${distDir}/${dir}/${r.href}`);
      const osDir = `${treePrefix}/${os}`;
      const blobKeys = keys.filter((k) => k.startsWith(`${osDir}/`)).map((k) => k.slice(osDir.length + 1));
      // A package file is live while a row names it; a noarch package's copies in the architecture directories
      // while a row names the package (pushed again after a yank, say).
      const copiesOf = new Map<string, string[]>();
      for (const k of blobKeys) {
        const origin = noarchOriginKey(k);
        // (in a directory a publish keeps: those of a retired one, i686/ or armv7hl/ of old, go with it; not "in
        // this publish's state", which a later publish, maybe on another node, may already have outgrown)
        if (origin && keptDir(k.split('/')[1]!)) copiesOf.set(origin, [...(copiesOf.get(origin) ?? []), k]);
      }
      const asked = [...new Set([...blobKeys, ...copiesOf.keys()])];
      for (let i = 0; i < asked.length; i += 500) {
        const rows = await db.selectFrom('rpm_packages').select('blob_key').where('distribution_id', '=', distributionId).where('blob_key', 'in', asked.slice(i, i + 500)).execute();
        for (const r of rows) {
          live.add(`${osDir}/${r.blob_key}`);
          for (const copy of copiesOf.get(r.blob_key) ?? []) live.add(`${osDir}/${copy}`);
        }
      }
      return live;
    };
    // Package files (and their noarch copies and links) after the publish lock is released, under their ingest locks.
    const packages: PackageSweep = { isPackage: (k) => /\/Packages\/[^/]\/[^/]+\.rpm$/.test(k), label, locks: this.#d.locks };
    const { packagesDue } = await collectRetiredFiles(db, store, distributionId, cutoff, stillLive, this.#retention, packages);
    return packagesDue ? () => collectRetiredPackages(db, store, distributionId, cutoff, stillLive, packages) : undefined;
  }

  /** Drops a distribution's documents (and their prefixes hashed ahead). */
  #forget(distributionId: number): void {
    const cache = this.#cache.get(distributionId);
    this.#cache.delete(distributionId);
    if (cache) for (const s of cache.dirs.values()) for (const t of DOC_TYPES) s.docs[t].dispose();
  }

  /** Brings the in-memory documents up to date: only new rows are read; a removal or a new architecture rebuilds. */
  async #update(distributionId: number, osDir: string, changes: number, published: readonly string[]): Promise<DistCache> {
    const { db, config, store } = this.#d;
    const stats = await db
      .selectFrom('rpm_packages')
      .select((eb) => [eb.fn.countAll<number>().as('n')])
      .where('distribution_id', '=', distributionId)
      .executeTakeFirstOrThrow();
    const count = Number(stats.n);
    // What the rows above `afterId` hold: how many, and which architectures (checked before any row is read: the
    // rows, with their XML fragments, are then read a page at a time).
    const shape = async (afterId: number) => {
      const groups = await db
        .selectFrom('rpm_packages')
        .select((eb) => ['arch', eb.fn.countAll<number>().as('n')])
        .where('distribution_id', '=', distributionId)
        .where('id', '>', afterId)
        .groupBy('arch')
        .execute();
      return { rows: groups.reduce((n, g) => n + Number(g.n), 0), arches: groups.map((g) => g.arch) };
    };
    let cache = this.#cache.get(distributionId);
    if (cache) {
      const known = cache;
      const fresh = await shape(known.maxId);
      // A removal (also one hidden by an addition, counted by `changes`) or a row committed late with a lower id.
      // Or a directory published meanwhile (by another node, whose architectures may differ) that it lacks.
      if (
        known.count + fresh.rows !== count ||
        changes - known.changes > fresh.rows ||
        !fresh.arches.every((a) => fitsDirs(known, a)) ||
        published.some((d) => keptDir(d) && !known.dirs.has(d))
      ) {
        cache = undefined;
      }
    }
    if (!cache) {
      this.#forget(distributionId);
      const all = await shape(0);
      const arches = new Set<string>(config.defaultRpmArchitectures);
      for (const a of all.arches) if (a !== 'noarch') arches.add(rpmBlobDir(a));
      // A directory once published stays published, empty if its last package went (metadata that still listed
      // deleted packages would send clients to files that are gone) -- except one that is no longer any
      // architecture's name (i686/, armv7hl/ before $basearch): retired by #publishOnce.
      for (const d of published) if (keptDir(d)) arches.add(d);
      cache = { count: 0, maxId: 0, changes, dirs: new Map() };
      for (const a of [...arches].sort()) {
        cache.dirs.set(a, { count: 0, dirty: true, docs: { primary: new ChunkedDocument('primary', this.#digests), filelists: new ChunkedDocument('filelists', this.#digests), other: new ChunkedDocument('other', this.#digests) } });
      }
      this.#cache.set(distributionId, cache);
    }
    // A page of rows is compressed (on the thread pool) while the next one is read; at most two pages in flight.
    const inFlight: Promise<unknown>[] = [];
    const settle = () => Promise.allSettled(inFlight.splice(0));
    try {
      for (;;) {
        if (inFlight.length >= 2) await inFlight.shift();
        const rows = await db
          .selectFrom('rpm_packages')
          .select(['id', 'arch', 'sha256', 'blob_key', 'filename', 'primary_xml', 'filelists_xml', 'other_xml'])
          .where('distribution_id', '=', distributionId)
          .where('id', '>', cache.maxId)
          .orderBy('id')
          .limit(RpmPublisher.rowsPerRead)
          .execute();
        const known = cache;
        // A row committed since the check above, of an architecture the documents lack: built from scratch.
        if (!rows.every((r) => fitsDirs(known, r.arch))) {
          await settle();
          this.#forget(distributionId);
          return this.#update(distributionId, osDir, changes, published);
        }
        const links: [string, string][] = [];
        for (const r of rows) {
          const targets = r.arch === 'noarch' ? [...cache.dirs.keys()].filter((d) => d !== 'SRPMS') : [rpmBlobDir(r.arch)];
          for (const dir of targets) {
            const s = cache.dirs.get(dir)!;
            s.docs.primary.add(r.primary_xml, r.sha256);
            s.docs.filelists.add(r.filelists_xml, r.sha256);
            s.docs.other.add(r.other_xml, r.sha256);
            s.count++;
            s.dirty = true;
            // noarch packages are linked into every architecture directory, so locations never need "..".
            if (r.arch === 'noarch') links.push([`${osDir}/${r.blob_key}`, `${osDir}/${noarchCopyKey(r.blob_key, dir)}`]);
          }
          const relocated = relocatedKey(r.blob_key, r.arch);
          if (relocated) links.push([`${osDir}/${r.blob_key}`, `${osDir}/${relocated}`]);
        }
        // If compressing or linking fails, the documents have moved ahead of the database: rebuilt next time (onFailure).
        // A page ends when all of its parts have ended, failed or not: a failure must not leave a compression
        // running that would hand its chunks to documents already dropped.
        const page = Promise.allSettled([
          ...[...cache.dirs.values()].flatMap((s) => DOC_TYPES.map((t) => s.docs[t].seal())),
          mapLimit(links, 16, ([from, to]) => store.copy(from, to, { sync: 'deferred' })),
        ]).then((parts) => {
          const failed = parts.find((p) => p.status === 'rejected');
          if (failed) throw failed.reason;
        });
        page.catch(() => {}); // awaited below
        inFlight.push(page);
        cache.count += rows.length;
        if (rows.length > 0) cache.maxId = rows[rows.length - 1]!.id;
        if (rows.length < RpmPublisher.rowsPerRead) break;
      }
      await Promise.all(inFlight);
    } finally {
      // Nothing of this update still runs when it returns or fails (a failure drops the documents: onFailure).
      await settle();
    }
    cache.changes = changes;
    return cache;
  }

  /** Rows read from the database at once while bringing the documents up to date (tests lower it). */
  static rowsPerRead = 2000;
}
