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

  readonly #stats = new Map<string, { stat: BlobStat | undefined; generation: number; until: number }>();

  /** A blob's stat, remembered under the same rule (the download path checks a package exists before redirecting). */
  async stat(key: string): Promise<BlobStat | undefined> {
    const now = Date.now();
    const generation = this.#store.generation;
    const hit = this.#stats.get(key);
    if (hit && hit.generation === generation && hit.until > now) return hit.stat;
    const stat = await this.#store.stat(key);
    if (this.#stats.size >= MetadataCache.MAX_ENTRIES * 10) this.#stats.clear();
    this.#stats.set(key, { stat, generation, until: now + MetadataCache.TTL_MS });
    return stat;
  }

  /** The blob from memory, or read and remembered when small; undefined when absent or too large to keep. */
  async get(key: string): Promise<CachedBlob | 'absent' | 'large'> {
    const now = Date.now();
    const generation = this.#store.generation;
    const hit = this.#entries.get(key);
    if (hit && hit.generation === generation && hit.until > now) return hit.blob ?? 'absent';
    const stat = await this.#store.stat(key);
    if (!stat) return 'absent';
    if (stat.size > MetadataCache.MAX_FILE) return 'large';
    const body = await this.#store.get(key);
    if (!body) return 'absent';
    // Replaced between the stat and the read: do not remember a mismatched pair; the caller reads it again uncached.
    if (body.byteLength !== stat.size || this.#store.generation !== generation) return 'large';
    if (this.#entries.size >= MetadataCache.MAX_ENTRIES) this.#entries.clear();
    const blob = { stat, body, latin1: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1') };
    this.#entries.set(key, { blob, generation, until: now + MetadataCache.TTL_MS });
    return blob;
  }
}
