// Builds and publishes the signed metadata of one APT distribution.
//
// Order of writes (what keeps `apt-get update` working while a publish runs):
//   1. index files under by-hash/ (content-addressed: never overwritten with different bytes),
//   2. the named index files (Packages, Packages.gz, Packages.xz),
//   3. Release, Release.gpg, and InRelease last.
// A client holding the previous InRelease keeps finding the by-hash files it names until the retention period ends.
//
// Work grows with the change, not with the repository: an index is a run of chunks with content-defined boundaries,
// each chunk compressed once (a gzip member; an xz block) and cached, and the published .gz/.xz are assembled from the
// cached pieces. Appending a package recompresses one chunk.
import { createHash } from 'node:crypto';
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Config } from '../config.ts';
import type { SigningKey } from '../signing/openpgp.ts';
import { renderRelease, type IndexFileEntry } from '../formats/deb/release.ts';
import { gzipMember, xzCompress } from '../formats/compress.ts';
import { assembleXz, parseXzStream } from '../formats/xz.ts';
import { repoTreePrefix, INTERNAL_PREFIX } from './tree.ts';
import { deferred, mapLimit, type Deferred } from './async.ts';
import type { Logger } from '../log.ts';

export interface PublishedIndex {
  /** sha256 over the chunk ids: equal fingerprints mean identical files */
  fingerprint: string;
  files: IndexFileEntry[];
}

export interface PublishedState {
  date: number;
  architectures: string[];
  components: string[];
  indexes: Record<string, PublishedIndex>;
}

export interface PublishResult {
  generation: number;
  date: number;
}

export interface AptPublisherDeps {
  readonly db: Db;
  readonly store: BlobStore;
  readonly config: Config;
  readonly signingKey: () => Promise<SigningKey>;
  readonly log: Logger;
  readonly now?: () => number;
}

interface ChunkPieces {
  gz: Uint8Array;
  xz: Uint8Array;
}

/** Average chunk: 1 in 128 packages ends a chunk (about 64 KB of stanzas). */
function endsChunk(sha256: string): boolean {
  return parseInt(sha256.slice(0, 2), 16) < 2;
}

function hashes(data: Uint8Array): Omit<IndexFileEntry, 'path'> {
  const h = (alg: string) => createHash(alg).update(data).digest('hex');
  return { size: data.byteLength, md5: h('md5'), sha1: h('sha1'), sha256: h('sha256'), sha512: h('sha512') };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts as Uint8Array[]);
}

export class AptPublisher {
  readonly #deps: AptPublisherDeps;
  readonly #queues = new Map<number, { running: boolean; waiting: Deferred<PublishResult>[] }>();
  /** Bounded cache of compressed chunks (by chunk id), so a publish rarely reads them back from storage. */
  readonly #chunkCache = new Map<string, ChunkPieces>();
  #chunkCacheBytes = 0;
  static readonly CHUNK_CACHE_LIMIT = 64 * 1024 * 1024;

  constructor(deps: AptPublisherDeps) {
    this.#deps = deps;
  }

  /**
   * Asks for the distribution to be published and resolves once metadata that includes every change committed before
   * this call is live. Requests that arrive while a publish runs share the next one (group commit).
   */
  request(distributionId: number): Promise<PublishResult> {
    let q = this.#queues.get(distributionId);
    if (!q) {
      q = { running: false, waiting: [] };
      this.#queues.set(distributionId, q);
    }
    const d = deferred<PublishResult>();
    q.waiting.push(d);
    if (!q.running) void this.#drain(distributionId, q);
    return d.promise;
  }

  async #drain(id: number, q: { running: boolean; waiting: Deferred<PublishResult>[] }): Promise<void> {
    q.running = true;
    try {
      while (q.waiting.length > 0) {
        const batch = q.waiting.splice(0);
        try {
          const r = await this.#publish(id);
          for (const d of batch) d.resolve(r);
        } catch (e) {
          this.#deps.log.error({ err: e, distributionId: id }, 'publish failed');
          for (const d of batch) d.reject(e);
        }
      }
    } finally {
      q.running = false;
      this.#queues.delete(id);
    }
  }

  async #publish(distributionId: number): Promise<PublishResult> {
    const { db, store, config } = this.#deps;
    const now = this.#deps.now ?? Date.now;
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
        'repos.name as repo',
        'repos.private',
        'orgs.name as org',
      ])
      .where('distributions.id', '=', distributionId)
      .executeTakeFirstOrThrow();
    const rows = await db
      .selectFrom('deb_packages')
      .select(['component', 'architecture', 'sha256', 'stanza', 'pool_key'])
      .where('distribution_id', '=', distributionId)
      .orderBy('id')
      .execute();
    const prev: PublishedState | null = dist.published_state ? JSON.parse(dist.published_state) : null;

    const treePrefix = repoTreePrefix(dist.org, dist.repo, dist.private === 1);
    const distDir = `${treePrefix}/${dist.os}/dists/${dist.name}`;
    const components = [...new Set(['main', ...rows.map((r) => r.component)])].sort();
    const architectures = [
      ...new Set([...config.defaultArchitectures, ...rows.map((r) => r.architecture).filter((a) => a !== 'all')]),
    ].sort();

    const indexes: Record<string, PublishedIndex> = {};
    const retired: string[] = [];
    for (const component of components) {
      for (const arch of architectures) {
        const dir = `${component}/binary-${arch}`;
        const selected = rows.filter((r) => r.component === component && (r.architecture === arch || r.architecture === 'all'));
        const index = await this.#buildIndex(`${distDir}/${dir}`, dir, selected, prev?.indexes[dir]);
        indexes[dir] = index;
        const old = prev?.indexes[dir];
        if (old && old.fingerprint !== index.fingerprint) {
          for (const f of old.files) retired.push(...byHashKeys(distDir, f));
        }
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
      files: Object.values(indexes).flatMap((i) => i.files),
    });
    const key = await this.#deps.signingKey();
    const [inRelease, detached] = await Promise.all([key.clearsign(release), key.detachSign(release)]);
    await store.put(`${treePrefix}/gpgkey`, key.armoredPublicKey);
    await store.put(`${distDir}/Release`, release);
    await store.put(`${distDir}/Release.gpg`, detached);
    await store.put(`${distDir}/InRelease`, inRelease);

    const state: PublishedState = { date, architectures, components, indexes };
    const generation = dist.generation + 1;
    const t = now();
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('distributions')
        .set({ generation, published_state: JSON.stringify(state), published_at: t })
        .where('id', '=', distributionId)
        .execute();
      if (retired.length > 0) {
        await tx
          .insertInto('retired_files')
          .values(retired.map((k) => ({ distribution_id: distributionId, key: k, retired_at: t })))
          .execute();
      }
    });
    await this.#collectGarbage(distributionId, distDir, state, new Set(rows.map((r) => `${treePrefix}/${dist.os}/${r.pool_key}`)), t);
    this.#deps.log.info({ distribution: `${dist.org}/${dist.repo}/${dist.os}/${dist.name}`, generation, packages: rows.length }, 'published');
    return { generation, date };
  }

  /**
   * Deletes files retired more than the retention period ago, and never those retired by this very publish: a file
   * survives at least one publish cycle plus the retention period. Files that are live again are kept (the same index
   * content or package file can come back after a yank and a re-push).
   */
  async #collectGarbage(distributionId: number, distDir: string, state: PublishedState, livePool: Set<string>, publishedAt: number): Promise<void> {
    const { db, store, config } = this.#deps;
    const cutoff = Math.min(publishedAt - 1, (this.#deps.now ?? Date.now)() - config.retentionSeconds * 1000);
    const due = await db
      .selectFrom('retired_files')
      .select(['id', 'key'])
      .where('distribution_id', '=', distributionId)
      .where('retired_at', '<=', cutoff)
      .execute();
    if (due.length === 0) return;
    const live = new Set(livePool);
    for (const index of Object.values(state.indexes)) {
      for (const f of index.files) {
        live.add(`${distDir}/${f.path}`);
        for (const k of byHashKeys(distDir, f)) live.add(k);
      }
    }
    for (const r of due) if (!live.has(r.key)) await store.delete(r.key);
    for (let i = 0; i < due.length; i += 500) {
      await db.deleteFrom('retired_files').where('id', 'in', due.slice(i, i + 500).map((r) => r.id)).execute();
    }
  }

  async #buildIndex(
    dirKey: string,
    dir: string,
    rows: readonly { sha256: string; stanza: string }[],
    prev: PublishedIndex | undefined,
  ): Promise<PublishedIndex> {
    // Split into chunks at content-defined boundaries: inserting or removing a package changes one chunk.
    const chunkTexts: string[] = [];
    let current: string[] = [];
    for (const r of rows) {
      current.push(r.stanza, '\n');
      if (endsChunk(r.sha256)) {
        chunkTexts.push(current.join(''));
        current = [];
      }
    }
    if (current.length > 0) chunkTexts.push(current.join(''));
    const chunkBytes = chunkTexts.map((t) => Buffer.from(t, 'utf8'));
    const chunkIds = chunkBytes.map((b) => createHash('sha256').update(b).digest('hex'));
    const fingerprint = createHash('sha256').update(chunkIds.join('\n')).digest('hex');
    if (prev && prev.fingerprint === fingerprint) return prev;

    const pieces = await mapLimit(chunkIds, 2, (id, i) => this.#chunk(id, chunkBytes[i]!));
    const plain = concat(chunkBytes);
    const gz = pieces.length > 0 ? concat(pieces.map((p) => p.gz)) : gzipMember(new Uint8Array(0));
    const xz = assembleXz(pieces.map((p) => parseXzStream(p.xz)));

    const files: IndexFileEntry[] = [];
    for (const [name, data] of [
      ['Packages', plain],
      ['Packages.gz', gz],
      ['Packages.xz', xz],
    ] as const) {
      const entry: IndexFileEntry = { path: `${dir}/${name}`, ...hashes(data) };
      const [sha256Key, sha512Key] = [`${dirKey}/by-hash/SHA256/${entry.sha256}`, `${dirKey}/by-hash/SHA512/${entry.sha512}`];
      await this.#deps.store.put(sha256Key, data);
      await this.#deps.store.copy(sha256Key, sha512Key);
      await this.#deps.store.copy(sha256Key, `${dirKey}/${name}`);
      files.push(entry);
    }
    return { fingerprint, files };
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
    if (!gz || !xz) {
      gz = gzipMember(plain);
      xz = await xzCompress(plain);
      await Promise.all([store.put(`${base}.gz`, gz), store.put(`${base}.xz`, xz)]);
    }
    const pieces = { gz, xz };
    this.#chunkCache.set(id, pieces);
    this.#chunkCacheBytes += gz.byteLength + xz.byteLength;
    for (const [k, v] of this.#chunkCache) {
      if (this.#chunkCacheBytes <= AptPublisher.CHUNK_CACHE_LIMIT) break;
      this.#chunkCache.delete(k);
      this.#chunkCacheBytes -= v.gz.byteLength + v.xz.byteLength;
    }
    return pieces;
  }
}

function byHashKeys(distDir: string, f: IndexFileEntry): string[] {
  const dir = f.path.slice(0, f.path.lastIndexOf('/'));
  return [`${distDir}/${dir}/by-hash/SHA256/${f.sha256}`, `${distDir}/${dir}/by-hash/SHA512/${f.sha512}`];
}
