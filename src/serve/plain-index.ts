// The uncompressed APT index. Release lists dists/DIST/COMPONENT/binary-ARCH/Packages with its size and hashes (apt
// compares them to tell whether the index changed), but apt downloads Packages.xz or Packages.gz whenever Release
// lists them, so, as on Debian's own mirrors, the uncompressed file is not stored: writing megabytes of it on every
// publish was most of a one-package publish in a large distribution. For people and tools that fetch it anyway,
// Wharf serves it by decompressing Packages.gz (a static copy of the tree simply lacks it, as Debian's does).
import { gunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import type { BlobStat, BlobStore } from '../storage/blob-store.ts';

/** `path` (below the repository) names an uncompressed APT index: OS/dists/DIST/COMPONENT/binary-ARCH/Packages. */
export function isPlainIndexPath(path: string): boolean {
  return /\/dists\/[^/]+\/.+\/binary-[^/]+\/Packages$/.test(`/${path}`);
}

/** Largest uncompressed index served (a Packages file of a few hundred thousand packages is far smaller). */
const MAX_PLAIN_BYTES = 1 << 30;
/** Decompressed indexes kept in memory, most recently used last. */
const CACHE_BYTES = 128 * 1024 * 1024;

interface Plain {
  gzEtag: string;
  stat: BlobStat;
  bytes: Buffer;
}

export class PlainIndexes {
  readonly #cache = new Map<string, Plain>();
  #bytes = 0;
  /** decompressions under way, by key and .gz ETag: concurrent requests for one index share one */
  readonly #inflight = new Map<string, Promise<Plain | undefined>>();
  /** decompressions running at once (each holds a whole index in memory) */
  static readonly CONCURRENCY = 2;
  #running = 0;
  readonly #queue: (() => void)[] = [];

  /** The ETag the uncompressed index has while its .gz has `gzEtag`. */
  static etagOf(gzEtag: string): string {
    return `"${gzEtag.replace(/^W\//, '').replace(/"/g, '')}-plain"`;
  }

  /**
   * A read-only view of the store in which `key` (an uncompressed index, never served from storage: a copy an older
   * Wharf stored could be stale) holds the decompressed `key`.gz: what sendBlob needs to answer ranges and
   * conditional requests like for any stored file. Undefined when there is no `key`.gz.
   */
  async view(store: BlobStore, key: string, gzStat?: BlobStat): Promise<Pick<BlobStore, 'stat' | 'open'> | undefined> {
    gzStat ??= await store.stat(`${key}.gz`);
    if (!gzStat) return undefined;
    let plain = this.#cache.get(key);
    if (plain && plain.gzEtag === gzStat.etag) {
      this.#cache.delete(key); // most recently used last
      this.#cache.set(key, plain);
    } else {
      const id = `${key}\0${gzStat.etag}`;
      let p = this.#inflight.get(id);
      if (!p) {
        p = this.#limited(() => this.#decompress(store, key, gzStat)).finally(() => this.#inflight.delete(id));
        this.#inflight.set(id, p);
      }
      plain = await p;
      if (!plain) return undefined;
    }
    const found = plain;
    return {
      stat: async (k) => (k === key ? found.stat : undefined),
      open: async (k, range) => (k === key ? Readable.from([range ? found.bytes.subarray(range.start, range.end) : found.bytes]) : undefined),
    };
  }

  async #decompress(store: BlobStore, key: string, gzStat: BlobStat): Promise<Plain | undefined> {
    const gz = await store.get(`${key}.gz`);
    if (!gz) return undefined;
    // Replaced between the stat and the read (a publish): the bytes read are the newer file; take its stat.
    const now = await store.stat(`${key}.gz`);
    if (!now) return undefined;
    if (now.etag !== gzStat.etag) gzStat = now;
    const bytes = await new Promise<Buffer>((resolve, reject) => gunzip(gz, { maxOutputLength: MAX_PLAIN_BYTES }, (e, r) => (e ? reject(e) : resolve(r))));
    // Its own strong ETag, derived from the .gz's: a new .gz is a new Packages.
    const plain = { gzEtag: gzStat.etag, bytes, stat: { size: bytes.byteLength, mtime: gzStat.mtime, etag: PlainIndexes.etagOf(gzStat.etag) } };
    this.#remember(key, plain);
    return plain;
  }

  async #limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= PlainIndexes.CONCURRENCY) await new Promise<void>((r) => this.#queue.push(r));
    this.#running++;
    try {
      return await fn();
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }

  #remember(key: string, plain: Plain): void {
    const old = this.#cache.get(key);
    if (old) this.#bytes -= old.bytes.byteLength;
    this.#cache.delete(key);
    this.#cache.set(key, plain);
    this.#bytes += plain.bytes.byteLength;
    for (const [k, v] of this.#cache) {
      if (this.#bytes <= CACHE_BYTES || k === key) break;
      this.#cache.delete(k);
      this.#bytes -= v.bytes.byteLength;
    }
  }
}
