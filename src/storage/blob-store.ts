// The blob store: where published repository files (pool packages, indexes, InRelease, repomd.xml, by-hash files) live.
// Implementations: FsBlobStore (a plain static tree on disk, see fs-blob-store.ts) and S3BlobStore (an S3-compatible
// bucket, see s3-blob-store.ts). Both must pass the shared conformance suite in blob-store.conformance.ts.

import { WharfError } from '../errors.ts';

export interface BlobStat {
  size: number;
  mtime: Date;
  /** A strong HTTP ETag, quoted (e.g. `"1a2b-400-17f3..."`); changes whenever the blob is replaced. */
  etag: string;
}

/** Which file, and which version of it: what lstat/fstat say (modification time in milliseconds, with fractions). */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

export interface BlobListEntry {
  key: string;
  size: number;
  mtime: Date;
}

export type BlobBody = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array> | Uint8Array | string;

export interface WriteOptions {
  /**
   * 'now' (default): durable when the call returns. 'deferred': visible at once, durable after the next flush() —
   * for writers that make many files durable together before publishing a file that names them.
   */
  readonly sync?: 'now' | 'deferred';
  /**
   * true (default): the stat put() returns is exactly what stat() will say. false: size and etag are exact, mtime may
   * come from the local clock — stores that would need another request to learn it (S3: a HEAD) skip it.
   */
  readonly exactStat?: boolean;
  /**
   * true: one of many writes the caller has in flight at once (a batch import). The filesystem store then writes
   * even small bodies through the thread pool, so the writes overlap the caller's own work (parsing the next
   * packages) instead of running one after the other on its thread. Default false: a lone small write is made
   * with direct calls, the cheapest in CPU and latency.
   */
  readonly concurrent?: boolean;
}

export interface BlobStore {
  /**
   * Stream `body` into `key`; the blob appears atomically (readers see the old blob or the new one, never a partial
   * one). If `body` throws, the put rejects with that error and leaves neither a blob nor temporary data behind (an
   * existing blob under `key` is kept). Concurrent puts to one key: the last to finish wins. Strings are UTF-8.
   */
  put(key: string, body: BlobBody, options?: WriteOptions): Promise<BlobStat>;
  /** Read a whole blob; undefined when absent. */
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Stream a blob, optionally a byte range (inclusive start, exclusive end; end is clamped to the size).
   * undefined when absent; WharfError('RANGE_NOT_SATISFIABLE') when start > size or the range is malformed.
   */
  open(key: string, range?: { start: number; end: number }): Promise<NodeJS.ReadableStream | undefined>;
  stat(key: string): Promise<BlobStat | undefined>;
  /**
   * Copy within the store, atomically like put (the filesystem store hard-links when it can; S3 will server-side
   * copy). Later puts to either key never affect the other. WharfError('NOT_FOUND') when `from` is absent.
   */
  copy(from: string, to: string, options?: WriteOptions): Promise<void>;
  /**
   * True when copy() costs no more than bookkeeping (the filesystem store's hard link): a writer of the same bytes
   * under several keys then writes once and copies. Otherwise (S3: a copy is a request, and must wait for the
   * source's write) it is as cheap, and a round trip shorter, to write each key at once.
   */
  readonly cheapCopy?: boolean;
  /**
   * Moves a local file (for example a staged upload) into the store under `key`, atomically like put. The local file
   * is consumed: the filesystem store renames it when it can, other stores upload it and delete it.
   */
  putFile(key: string, localPath: string, options?: WriteOptions): Promise<BlobStat>;
  /**
   * Hard-links a local file into the store under `key`, atomically like put (an existing blob is replaced), when the
   * store keeps blobs as local files on the file's filesystem. The blob then shares the file's bytes: the caller
   * vouches that the file is never modified in place (replacing it by rename is fine). `expect`: what the caller
   * checked (device, inode, size, modification time); a file that no longer matches is not linked ('changed'): an
   * existing blob stays as it was, and a free key is free again when the answer comes (the file may be seen under it
   * until then, so the caller holds the key's ingest lock and no index names the key yet).
   * 'unsupported': no link can be made here (another filesystem, not permitted, or a store without local files);
   * copy the bytes instead. Absent on stores that never can.
   */
  linkFile?(key: string, localPath: string, options?: WriteOptions & { expect?: FileIdentity }): Promise<'linked' | 'changed' | 'unsupported'>;
  /** Makes every write done with `sync: 'deferred'` durable. */
  flush(): Promise<void>;
  /** Changes whenever this store object writes or deletes a blob: in-process caches compare it to stay current. */
  readonly generation: number;
  /** Delete a blob; absent is fine. */
  delete(key: string): Promise<void>;
  /**
   * Every blob whose key starts with `prefix` (a plain string prefix: 'dists/' or 'pool/main/h'), sorted by key.
   * '' lists the whole store. Blobs being written are never listed.
   */
  list(prefix: string): AsyncIterable<BlobListEntry>;
  /** A local path for random access when the store has one (filesystem), else undefined. The file may not exist. */
  localPath?(key: string): string | undefined;
  /**
   * A URL that lets any HTTP client GET the blob directly from the backing service for `seconds`, for answering a
   * download with a redirect (S3: a SigV4 presigned URL, valid for GET only). Absent, or undefined, when the store has
   * no such URL.
   */
  presignedGetUrl?(key: string, seconds: number): string | undefined;
}

export const MAX_KEY_LENGTH = 1024;
/** Longest key segment, in UTF-8 bytes (the usual NAME_MAX), so keys move freely between the filesystem and S3. */
export const MAX_SEGMENT_BYTES = 255;
/** First segment reserved for the stores' own temporary data. */
export const RESERVED_TOP_SEGMENT = '.tmp';
/** Segments starting with this are reserved for a store's in-place temporary files (never a key's). */
export const RESERVED_SEGMENT_PREFIX = '.wharf-tmp-';

function badKey(key: string, reason: string): WharfError {
  const shown = key.length > 120 ? key.slice(0, 120) + '…' : key;
  return new WharfError('STORAGE_BAD_KEY', [shown.replace(/[\0-\x1f]/g, '?'), reason]);
}

/**
 * Check a blob key: '/'-separated relative path, 1-1024 characters, no empty, '.' or '..' segments, no backslash,
 * no NUL, no leading '/', segments of at most 255 UTF-8 bytes, not under the reserved '.tmp/'.
 * Throws WharfError('STORAGE_BAD_KEY'). A key accepted here can never escape the store's root.
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw badKey(String(key), 'the key is empty');
  if (key.length > MAX_KEY_LENGTH) throw badKey(key, `longer than ${MAX_KEY_LENGTH} characters`);
  if (key.includes('\0')) throw badKey(key, 'contains a NUL character');
  if (key.includes('\\')) throw badKey(key, 'contains a backslash');
  if (key.startsWith('/')) throw badKey(key, 'starts with "/"');
  const segments = key.split('/');
  for (const s of segments) {
    if (s === '') throw badKey(key, 'has an empty path segment');
    if (s === '.' || s === '..') throw badKey(key, `has a "${s}" path segment`);
    if (Buffer.byteLength(s, 'utf8') > MAX_SEGMENT_BYTES) throw badKey(key, `has a path segment longer than ${MAX_SEGMENT_BYTES} bytes`);
    if (s.startsWith(RESERVED_SEGMENT_PREFIX)) throw badKey(key, `has a path segment starting with "${RESERVED_SEGMENT_PREFIX}" (reserved)`);
  }
  if (segments[0] === RESERVED_TOP_SEGMENT) throw badKey(key, `"${RESERVED_TOP_SEGMENT}/" is reserved`);
  return key;
}

/** Check a list prefix: '' or a string that could begin a valid key (its complete segments are validated). */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw badKey(String(prefix), 'the prefix is not a string');
  if (prefix === '') return prefix;
  if (prefix.length > MAX_KEY_LENGTH) throw badKey(prefix, `longer than ${MAX_KEY_LENGTH} characters`);
  if (prefix.includes('\0')) throw badKey(prefix, 'contains a NUL character');
  if (prefix.includes('\\')) throw badKey(prefix, 'contains a backslash');
  if (prefix.startsWith('/')) throw badKey(prefix, 'starts with "/"');
  const segments = prefix.split('/');
  segments.pop(); // the last segment may be partial ('' after a trailing '/', or 'po' of 'pool')
  for (const s of segments) {
    if (s === '') throw badKey(prefix, 'has an empty path segment');
    if (s === '.' || s === '..') throw badKey(prefix, `has a "${s}" path segment`);
  }
  return prefix;
}

export function validateRange(range: { start: number; end: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new WharfError('RANGE_NOT_SATISFIABLE');
  }
}

const encoder = new TextEncoder();

/** Normalise a put body into an async iterable of byte chunks. */
export async function* bodyChunks(body: BlobBody): AsyncGenerator<Uint8Array> {
  if (typeof body === 'string') {
    yield encoder.encode(body);
    return;
  }
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  for await (const chunk of body) {
    if (typeof chunk === 'string') yield encoder.encode(chunk);
    else if (chunk instanceof Uint8Array) yield chunk;
    else throw new WharfError('BAD_REQUEST', ['blob body chunks must be Uint8Array or string']);
  }
}
