// Small metadata files (InRelease, Release, Packages of small repositories, repomd.xml, keys) are requested far more
// often than they change: they are served from memory. An entry is valid while the blob store has written nothing
// since it was filled (the store's generation) and for at most TTL_MS, which bounds staleness when other nodes write.
import type { BlobStat, BlobStore } from '../storage/blob-store.ts';

export interface CachedBlob {
  readonly stat: BlobStat;
  readonly body: Uint8Array;
  /**
   * The same bytes as a latin1 string (lossless for any bytes). Node writes a string body together with the headers
   * in one write, where a Buffer body costs a second iovec: for small files the write is most of the cost.
   */
  readonly latin1: string;
  /** stat.mtime as an HTTP date, formatted once */
  readonly lastModified: string;
}

export class MetadataCache {
  static readonly TTL_MS = 1000;
  static readonly MAX_FILE = 256 * 1024;
  static readonly MAX_ENTRIES = 2000;
  readonly #store: BlobStore;
  readonly #entries = new Map<string, { blob: CachedBlob | undefined; generation: number; until: number }>();

  constructor(store: BlobStore) {
    this.#store = store;
  }

  /** Forgets everything (another node published): the next request reads the store. */
  invalidate(): void {
    this.#entries.clear();
    this.#stats.clear();
  }

  readonly #stats = new Map<string, { stat: BlobStat | undefined; generation: number; until: number }>();
  /** Loads under way, by key: the requests that arrive while an entry is refilled share one read of the store. */
  readonly #statLoads = new Map<string, { generation: number; promise: Promise<BlobStat | undefined> }>();
  readonly #blobLoads = new Map<string, { generation: number; promise: Promise<CachedBlob | 'absent' | 'large'> }>();

  /**
   * The remembered stat while it is valid, without a promise (the download path asks on every request); `false` when
   * nothing valid is remembered (then call stat()).
   */
  peekStat(key: string): BlobStat | undefined | false {
    const hit = this.#stats.get(key);
    return hit && hit.generation === this.#store.generation && hit.until > Date.now() ? hit.stat : false;
  }

  /** A blob's stat, remembered under the same rule (the download path checks a package exists before redirecting). */
  async stat(key: string): Promise<BlobStat | undefined> {
    const hit = this.peekStat(key);
    if (hit !== false) return hit;
    const generation = this.#store.generation;
    const loading = this.#statLoads.get(key);
    if (loading && loading.generation === generation) return loading.promise;
    const promise = this.#loadStat(key, generation);
    this.#statLoads.set(key, { generation, promise });
    try {
      return await promise;
    } finally {
      if (this.#statLoads.get(key)?.promise === promise) this.#statLoads.delete(key);
    }
  }

  async #loadStat(key: string, generation: number): Promise<BlobStat | undefined> {
    const now = Date.now();
    const stat = await this.#store.stat(key);
    if (this.#stats.size >= MetadataCache.MAX_ENTRIES * 10) this.#stats.clear();
    this.#stats.set(key, { stat, generation, until: now + MetadataCache.TTL_MS });
    return stat;
  }

  /** The blob while it is in memory and valid, without a promise (the hot path); undefined when get() must be asked. */
  peek(key: string): CachedBlob | 'absent' | undefined {
    const hit = this.#entries.get(key);
    if (hit && hit.generation === this.#store.generation && hit.until > Date.now()) return hit.blob ?? 'absent';
    return undefined;
  }

  /** The blob from memory, or read and remembered when small; undefined when absent or too large to keep. */
  async get(key: string): Promise<CachedBlob | 'absent' | 'large'> {
    const hit = this.peek(key);
    if (hit !== undefined) return hit;
    const generation = this.#store.generation;
    const loading = this.#blobLoads.get(key);
    if (loading && loading.generation === generation) return loading.promise;
    const promise = this.#load(key, generation);
    this.#blobLoads.set(key, { generation, promise });
    try {
      return await promise;
    } finally {
      if (this.#blobLoads.get(key)?.promise === promise) this.#blobLoads.delete(key);
    }
  }

  async #load(key: string, generation: number): Promise<CachedBlob | 'absent' | 'large'> {
    const now = Date.now();
    const stat = await this.#store.stat(key);
    if (!stat) return 'absent';
    if (stat.size > MetadataCache.MAX_FILE) return 'large';
    const body = await this.#store.get(key);
    if (!body) return 'absent';
    // Replaced between the stat and the read: do not remember a mismatched pair; the caller reads it again uncached.
    if (body.byteLength !== stat.size || this.#store.generation !== generation) return 'large';
    if (this.#entries.size >= MetadataCache.MAX_ENTRIES) this.#entries.clear();
    const blob = {
      stat,
      body,
      latin1: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1'),
      lastModified: stat.mtime.toUTCString(),
    };
    this.#entries.set(key, { blob, generation, until: now + MetadataCache.TTL_MS });
    return blob;
  }
}
