// Builds and publishes the signed metadata of one RPM distribution: for each architecture directory (x86_64, aarch64,
// ..., with noarch packages in every one) and SRPMS, repodata/<sha256>-{primary,filelists,other}.xml.gz and
// repomd.xml with its detached signature repomd.xml.asc and the key repomd.xml.key.
//
// Order: package files and data files first (content-addressed names), flushed; repomd.xml.asc and repomd.xml last.
// Superseded data files stay for the retention period. As for APT, documents are kept in memory between publishes as
// content-defined chunks of package fragments, each chunk compressed once into a gzip member: a .xml.gz is the header
// member, the chunk members and the footer member (multi-member gzip, which zlib's readers, and so librepo, libsolv
// and zypper, read as one stream).
import { createHash, type Hash } from 'node:crypto';
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Config } from '../config.ts';
import type { SigningKey } from '../signing/openpgp.ts';
import type { Logger } from '../log.ts';
import { gzipMember } from '../formats/compress.ts';
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
import { PublishQueue, type PublishResult, type PublishRequestOptions } from './publish-queue.ts';
import type { Locks } from './locks.ts';
import { collectRetiredFiles } from './retention.ts';
import type { UploadTracker } from './upload-tracker.ts';
import type { Metrics } from '../metrics.ts';
import { rpmBlobDir } from './rpm-packages.ts';

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
const DOC_TYPES: readonly DocType[] = ['primary', 'filelists', 'other'];
const HEADER: Record<DocType, (n: number) => string> = { primary: primaryHeader, filelists: filelistsHeader, other: otherHeader };
const FOOTER: Record<DocType, string> = { primary: PRIMARY_FOOTER, filelists: FILELISTS_FOOTER, other: OTHER_FOOTER };

/** One metadata document (e.g. primary.xml of x86_64) as sealed chunks plus an open tail. */
class ChunkedDocument {
  readonly sealed: { plain: Buffer; gz: Uint8Array }[] = [];
  tail: string[] = [];

  add(fragment: string, sha256: string): void {
    this.tail.push(fragment);
    if (endsChunk(sha256)) {
      const plain = Buffer.from(this.tail.join(''), 'utf8');
      this.sealed.push({ plain, gz: gzipMember(plain) });
      this.tail = [];
    }
  }

  build(type: DocType, count: number): { gz: Uint8Array; openSize: number; openChecksum: string } {
    const head = Buffer.from(HEADER[type](count), 'utf8');
    const foot = Buffer.from(FOOTER[type], 'utf8');
    const tail = Buffer.from(this.tail.join(''), 'utf8');
    const open: Hash = createHash('sha256').update(head);
    let openSize = head.byteLength;
    const members: Uint8Array[] = [gzipMember(head, 1)];
    for (const c of this.sealed) {
      open.update(c.plain);
      openSize += c.plain.byteLength;
      members.push(c.gz);
    }
    open.update(tail).update(foot);
    openSize += tail.byteLength + foot.byteLength;
    if (tail.byteLength > 0) members.push(gzipMember(tail, 1));
    members.push(gzipMember(foot, 1));
    return { gz: Buffer.concat(members), openSize, openChecksum: open.digest('hex') };
  }
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

  constructor(deps: RpmPublisherDeps) {
    this.#d = deps;
    this.#queue = new PublishQueue({
      db: deps.db,
      locks: deps.locks,
      ...(deps.onPublished ? { onPublished: deps.onPublished } : {}),
      publish: (id) => this.#publishOnce(id),
      uploads: deps.uploads,
      log: deps.log,
      observe: (s) => deps.metrics?.publishDuration.observe({ format: 'rpm' }, s),
      // The in-memory documents may have moved ahead of what was written: rebuild them next time.
      onFailure: (id) => this.#cache.delete(id),
    });
  }

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

  async #publishOnce(distributionId: number): Promise<PublishResult> {
    const { db, store } = this.#d;
    const now = this.#d.now ?? Date.now;
    const dist = await db
      .selectFrom('distributions')
      .innerJoin('repos', 'repos.id', 'distributions.repo_id')
      .innerJoin('orgs', 'orgs.id', 'repos.org_id')
      .select(['distributions.os', 'distributions.name', 'distributions.generation', 'distributions.published_state', 'distributions.changes', 'repos.id as repoId', 'repos.name as repo', 'repos.private', 'orgs.name as org'])
      .where('distributions.id', '=', distributionId)
      .executeTakeFirstOrThrow();
    const treePrefix = repoTreePrefix(dist.org, dist.repo, dist.private === 1);
    const distDir = `${treePrefix}/${dist.os}/${dist.name}`;
    const prev: PublishedRpmState | null = dist.published_state ? JSON.parse(dist.published_state) : null;

    const cache = await this.#update(distributionId, `${treePrefix}/${dist.os}`, Number(dist.changes));
    const timestamp = Math.max(Math.floor(now() / 1000), prev?.timestamp ?? 0);
    const metadataKey = await this.#d.metadataKey();
    const state: PublishedRpmState = { timestamp, dirs: {} };
    const retired: string[] = [];
    const repomds: { dir: string; xml: string }[] = [];
    const writes: Promise<unknown>[] = [];
    // Awaited together below; marked handled now, so a failure before that point cannot crash the process.
    const write = (p: Promise<unknown>) => {
      p.catch(() => {});
      writes.push(p);
    };
    for (const [dir, s] of cache.dirs) {
      const old = prev?.dirs[dir];
      if (old && !s.dirty) {
        state.dirs[dir] = old;
        continue;
      }
      const records: RepomdRecord[] = [];
      for (const type of DOC_TYPES) {
        const built = s.docs[type].build(type, s.count);
        const checksum = createHash('sha256').update(built.gz).digest('hex');
        const href = `repodata/${checksum}-${type}.xml.gz`;
        // Content-addressed and not yet named by any repomd.xml: written concurrently, awaited before the flush.
        write(store.put(`${distDir}/${dir}/${href}`, built.gz, { sync: 'deferred', exactStat: false }));
        records.push({ type, checksum, openChecksum: built.openChecksum, href, timestamp, size: built.gz.byteLength, openSize: built.openSize });
      }
      s.dirty = false;
      state.dirs[dir] = records;
      for (const r of old ?? []) if (!records.some((n) => n.href === r.href)) retired.push(`${distDir}/${dir}/${r.href}`);
      repomds.push({ dir, xml: repomdXml({ revision: String(timestamp), data: records }) });
    }
    // Package files, data files and keys are durable before any repomd.xml names them.
    const packageKey = await this.#d.packageKey(dist.repoId);
    const deferred = { sync: 'deferred', exactStat: false } as const;
    if (!prev) {
      write(store.put(`${treePrefix}/gpgkey`, metadataKey.armoredPublicKey, deferred));
      write(store.put(`${treePrefix}/package-gpgkey`, packageKey.armoredPublicKey, deferred));
    }
    for (const { dir } of repomds) write(store.put(`${distDir}/${dir}/repodata/repomd.xml.key`, metadataKey.armoredPublicKey, deferred));
    const signatures = Promise.all(repomds.map(({ xml }) => metadataKey.detachSign(xml)));
    signatures.catch(() => {});
    await Promise.all(writes);
    await store.flush();
    // Per directory the signature goes first and repomd.xml right after it; directories are independent.
    const ascs = await signatures;
    await Promise.all(
      repomds.map(async ({ dir, xml }, i) => {
        await store.put(`${distDir}/${dir}/repodata/repomd.xml.asc`, ascs[i]!, deferred);
        await store.put(`${distDir}/${dir}/repodata/repomd.xml`, xml, deferred);
      }),
    );
    await store.flush();

    const generation = dist.generation + 1;
    const t = now();
    await db.transaction().execute(async (tx) => {
      await tx.updateTable('distributions').set({ generation, published_state: JSON.stringify(state), published_at: t, published_changes: Number(dist.changes) }).where('id', '=', distributionId).execute();
      if (retired.length > 0) {
        await tx.insertInto('retired_files').values(retired.map((key) => ({ distribution_id: distributionId, key, retired_at: t }))).execute();
      }
    });
    const cutoff = Math.min(t - 1, now() - this.#d.config.retentionSeconds * 1000);
    await collectRetiredFiles(db, store, distributionId, cutoff, async (keys) => {
      const live = new Set<string>();
      for (const [dir, records] of Object.entries(state.dirs)) for (const r of records) live.add(`${distDir}/${dir}/${r.href}`);
      const osDir = `${treePrefix}/${dist.os}`;
      const blobKeys = keys.filter((k) => k.startsWith(`${osDir}/`)).map((k) => k.slice(osDir.length + 1));
      for (let i = 0; i < blobKeys.length; i += 500) {
        const rows = await db.selectFrom('rpm_packages').select('blob_key').where('distribution_id', '=', distributionId).where('blob_key', 'in', blobKeys.slice(i, i + 500)).execute();
        for (const r of rows) live.add(`${osDir}/${r.blob_key}`);
      }
      return live;
    });
    this.#d.log.info({ distribution: `${dist.org}/${dist.repo}/${dist.os}/${dist.name}`, generation, packages: cache.count }, 'published');
    return { generation, date: timestamp, changes: Number(dist.changes) };
  }

  /** Brings the in-memory documents up to date: only new rows are read; a removal or a new architecture rebuilds. */
  async #update(distributionId: number, osDir: string, changes: number): Promise<DistCache> {
    const { db, config, store } = this.#d;
    const stats = await db
      .selectFrom('rpm_packages')
      .select((eb) => [eb.fn.countAll<number>().as('n')])
      .where('distribution_id', '=', distributionId)
      .executeTakeFirstOrThrow();
    const count = Number(stats.n);
    const select = () =>
      db
        .selectFrom('rpm_packages')
        .select(['id', 'arch', 'sha256', 'blob_key', 'filename', 'primary_xml', 'filelists_xml', 'other_xml'])
        .where('distribution_id', '=', distributionId);
    let cache = this.#cache.get(distributionId);
    let rows: Awaited<ReturnType<ReturnType<typeof select>['execute']>> = [];
    if (cache) {
      const known = cache;
      rows = await select().where('id', '>', known.maxId).orderBy('id').execute();
      const fits = (r: { arch: string }) => r.arch === 'noarch' || known.dirs.has(rpmBlobDir(r.arch));
      // A removal (also one hidden by an addition, counted by `changes`) or a row committed late with a lower id.
      if (known.count + rows.length !== count || changes - known.changes > rows.length || !rows.every(fits)) cache = undefined;
    }
    if (!cache) {
      rows = await select().orderBy('id').execute();
      const arches = new Set<string>(config.defaultRpmArchitectures);
      for (const r of rows) if (r.arch !== 'noarch') arches.add(rpmBlobDir(r.arch));
      cache = { count: 0, maxId: 0, changes, dirs: new Map() };
      for (const a of [...arches].sort()) {
        cache.dirs.set(a, { count: 0, dirty: true, docs: { primary: new ChunkedDocument(), filelists: new ChunkedDocument(), other: new ChunkedDocument() } });
      }
      this.#cache.set(distributionId, cache);
    }
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
        if (r.arch === 'noarch') await store.copy(`${osDir}/${r.blob_key}`, `${osDir}/${r.blob_key.replace(/^([^/]+)\/noarch\//, `$1/${dir}/`)}`, { sync: 'deferred' });
      }
    }
    cache.count += rows.length;
    cache.changes = changes;
    if (rows.length > 0) cache.maxId = rows[rows.length - 1]!.id;
    return cache;
  }
}
