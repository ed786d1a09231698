// Filesystem blob store. The tree under `root` is exactly the published repository: key 'dists/bookworm/InRelease'
// is the file <root>/dists/bookworm/InRelease, with no sidecar metadata, so nginx (or any static server) can serve
// the root directly. The only other entries are <root>/.tmp/, where writes are staged (keys under '.tmp/' are
// refused), and, while a small write is in flight, a hidden `.wharf-tmp-<random>` file next to its destination (no
// key may have such a segment; list() skips them). Deny '/.tmp/' and dot files in the web server, or leave them: they
// only hold in-flight writes.
//
// Atomicity: put/copy write to a temporary file on the same filesystem, fsync it (unless disabled or deferred), then
// rename(2) it onto the final path, and fsync the parent directory. Readers see the old file or the new one.
// Deferred writes are made durable by flush(): an fsync per file and directory, or one syncfs(2) of the filesystem
// when there are many.
//
// ETag: strong, `"<inode hex>-<size hex>-<mtime ns hex>"`. A put always creates a new inode with a fresh
// nanosecond mtime, so a replaced blob gets a new ETag even when its size is unchanged; a blob that is not rewritten
// keeps its ETag across restarts. Hard-linked copies share the ETag of their source (same bytes, same inode).

import { closeSync, constants as fsConstants, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync, type Stats, type BigIntStats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { WharfError } from '../errors.ts';
import { linkOnWorker } from './fs-link-worker.ts';
import {
  bodyChunks,
  validateKey,
  validatePrefix,
  validateRange,
  RESERVED_TOP_SEGMENT,
  RESERVED_SEGMENT_PREFIX,
  type BlobBody,
  type BlobListEntry,
  type BlobStat,
  type FileIdentity,
  type BlobStore,
  type WriteOptions,
} from './blob-store.ts';

export interface FsBlobStoreOptions {
  /** fsync each file (and its directory) before it becomes visible. Default true; turn off only for benchmarks/tests. */
  fsync?: boolean;
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** Absent-blob errors: the file or a parent is missing, or a parent is a file. */
function isAbsent(e: unknown): boolean {
  const c = errCode(e);
  return c === 'ENOENT' || c === 'ENOTDIR';
}

export function etagOf(st: BigIntStats): string {
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`;
}

function statOf(st: BigIntStats): BlobStat {
  return { size: Number(st.size), mtime: new Date(Number(st.mtimeNs / 1_000_000n)), etag: etagOf(st) };
}

/** Writes every byte of `pieces` at the file's position (writev may write less than asked: the rest follows). */
async function writevAll(fh: fsp.FileHandle, pieces: readonly Uint8Array[]): Promise<void> {
  const total = pieces.reduce((n, p) => n + p.byteLength, 0);
  let { bytesWritten } = await fh.writev(pieces as Uint8Array[]);
  if (bytesWritten === total) return;
  for (const p of pieces) {
    if (bytesWritten >= p.byteLength) {
      bytesWritten -= p.byteLength;
      continue;
    }
    let off = bytesWritten;
    bytesWritten = 0;
    while (off < p.byteLength) off += (await fh.write(p, off, p.byteLength - off)).bytesWritten;
  }
}

/**
 * The calls a small write makes (#putSmall), in two kinds. Direct: synchronous calls — open, write, fstat, close and
 * rename of a few KB cost a few tens of microseconds in the kernel, where five trips through the thread pool cost
 * three times as much CPU. Through the thread pool: for a writer with many writes in flight (WriteOptions.concurrent,
 * a batch import), so that creating thousands of files runs beside the caller's own work instead of on its thread.
 */
interface SmallWriteOps<F> {
  mkdir(dir: string): unknown;
  open(path: string): F | Promise<F>;
  /** writes from `off` on; returns how many bytes it wrote */
  write(file: F, bytes: Uint8Array, off: number): number | Promise<number>;
  stat(file: F): BigIntStats | Promise<BigIntStats>;
  close(file: F): unknown;
  rename(from: string, to: string): unknown;
  rm(path: string): unknown;
}

const DIRECT_OPS: SmallWriteOps<number> = {
  mkdir: (dir) => mkdirSync(dir, { recursive: true }),
  open: (path) => openSync(path, 'wx', 0o644),
  write: (fd, bytes, off) => writeSync(fd, bytes, off, bytes.byteLength - off),
  stat: (fd) => fstatSync(fd, { bigint: true }),
  close: (fd) => closeSync(fd),
  rename: (from, to) => renameSync(from, to),
  rm: (path) => rmSync(path, { force: true }),
};

const THREAD_POOL_OPS: SmallWriteOps<fsp.FileHandle> = {
  mkdir: (dir) => fsp.mkdir(dir, { recursive: true }),
  open: (path) => fsp.open(path, 'wx', 0o644),
  write: async (fh, bytes, off) => (await fh.write(bytes, off, bytes.byteLength - off)).bytesWritten,
  stat: (fh) => fh.stat({ bigint: true }),
  close: (fh) => fh.close(),
  rename: (from, to) => fsp.rename(from, to),
  rm: (path) => fsp.rm(path, { force: true }),
};

/**
 * A name no other write uses: random per process (processes may share a data directory), then a counter. The files
 * are opened with 'wx' as well. (A random name per file cost ~9 µs of randomFillSync: 90 ms per 10,000 files.)
 */
const PROCESS_TAG = randomBytes(6).toString('base64url');
let tmpCounter = 0;
function uniqueSuffix(): string {
  return `${PROCESS_TAG}${(++tmpCounter).toString(36)}`;
}

export class FsBlobStore implements BlobStore {
  readonly root: string;
  /** copy() hard-links */
  readonly cheapCopy = true;
  readonly #fsync: boolean;
  readonly #tmpDir: string;
  #tmpReady: Promise<void> | undefined;

  constructor(rootDir: string, options: FsBlobStoreOptions = {}) {
    this.root = resolve(rootDir);
    this.#fsync = options.fsync ?? true;
    this.#tmpDir = join(this.root, RESERVED_TOP_SEGMENT);
  }

  #path(key: string): string {
    return join(this.root, validateKey(key));
  }

  #ensureTmpDir(): Promise<void> {
    this.#tmpReady ??= fsp.mkdir(this.#tmpDir, { recursive: true }).then(
      () => undefined,
      (e: unknown) => {
        this.#tmpReady = undefined;
        throw e;
      },
    );
    return this.#tmpReady;
  }

  async #tmpPath(): Promise<string> {
    await this.#ensureTmpDir();
    return join(this.#tmpDir, `.tmp-${uniqueSuffix()}`);
  }

  /** rename a staged temp file onto `dest`, creating parent directories (retrying if a concurrent delete prunes them). */
  async #publish(tmp: string, dest: string, key: string, deferSync = false): Promise<void> {
    const dir = dirname(dest);
    for (let attempt = 0; ; attempt++) {
      try {
        // Most keys land in an existing directory: try the rename first, create the parents only when it says so.
        if (attempt > 0) await fsp.mkdir(dir, { recursive: true });
        await fsp.rename(tmp, dest);
        this.#generation++;
        break;
      } catch (e) {
        const c = errCode(e);
        if (c === 'ENOENT' && attempt < 10) continue; // no parent yet, or pruned by a concurrent delete
        if (c === 'EISDIR' || c === 'ENOTEMPTY' || c === 'EEXIST' || c === 'ENOTDIR') {
          throw new WharfError('STORAGE_BAD_KEY', [key, c === 'ENOTDIR' || c === 'EEXIST' ? 'a parent path is a blob' : 'the key is a directory of other blobs']);
        }
        throw e;
      }
    }
    if (!this.#fsync) return;
    if (deferSync) this.#pendingDirs.add(dir);
    else await this.#syncDir(dir);
  }

  /** Files and directories written with `sync: 'deferred'` and not yet made durable by flush(). */
  readonly #pendingFiles = new Set<string>();
  readonly #pendingDirs = new Set<string>();

  #flushing: Promise<unknown> = Promise.resolve();
  #generation = 0;

  get generation(): number {
    return this.#generation;
  }

  async flush(): Promise<void> {
    const files = [...this.#pendingFiles];
    const dirs = [...this.#pendingDirs];
    this.#pendingFiles.clear();
    this.#pendingDirs.clear();
    // A concurrent flush may have taken some of the caller's files: wait for it as well.
    const earlier = this.#flushing;
    const mine = this.#syncAll(files, dirs);
    this.#flushing = Promise.allSettled([earlier, mine]);
    await Promise.all([earlier, mine]);
  }

  /**
   * Past this many files and directories, one syncfs(2) of the store's filesystem (coreutils `sync -f`) replaces
   * an fsync each: a bulk import leaves thousands of new files and directories, and opening and syncing each costs
   * far more than one filesystem-wide flush (and would need as many file descriptors).
   */
  static readonly SYNCFS_THRESHOLD = 512;
  /** fsyncs issued at once otherwise (they share journal commits; the limit keeps file descriptors bounded) */
  static readonly SYNC_CONCURRENCY = 64;
  #syncfsWorks: boolean | undefined;

  async #syncAll(files: string[], dirs: string[]): Promise<void> {
    if (files.length + dirs.length >= FsBlobStore.SYNCFS_THRESHOLD && this.#syncfsWorks !== false && (await this.#syncfs())) return;
    const jobs = [
      ...files.map((f) => async () => {
        let fh: fsp.FileHandle | undefined;
        try {
          fh = await fsp.open(f, 'r');
          await fh.sync();
        } catch (e) {
          if (!isAbsent(e)) throw e; // replaced or deleted since: whatever replaced it was synced on its own
        } finally {
          await fh?.close();
        }
      }),
      ...dirs.map((d) => () => this.#syncDir(d).catch((e) => (isAbsent(e) ? undefined : Promise.reject(e)))),
    ];
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) await jobs[next++]!();
    };
    await Promise.all(Array.from({ length: Math.min(FsBlobStore.SYNC_CONCURRENCY, jobs.length) }, worker));
  }

  /**
   * syncfs(2) on the store's filesystem; false when it did not succeed, and this flush then fsyncs each file. A
   * missing `sync` command is not looked for again; a failed run (an I/O error) is retried at the next flush.
   */
  #syncfs(): Promise<boolean> {
    return new Promise((resolve) => {
      // (Its own process group: a Ctrl-C stops the server gracefully, and the publish it finishes needs this.)
      const child = spawn('sync', ['-f', this.root], { stdio: 'ignore', detached: true });
      child.on('error', () => {
        this.#syncfsWorks = false;
        resolve(false);
      });
      child.on('close', (code) => resolve(code === 0));
    });
  }

  async #syncDir(dir: string): Promise<void> {
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
      await fh.sync();
    } catch (e) {
      // Some filesystems refuse fsync on directories (EINVAL); the data itself is synced already.
      if (errCode(e) !== 'EINVAL' && errCode(e) !== 'EISDIR' && errCode(e) !== 'EBADF') throw e;
    } finally {
      await fh?.close();
    }
  }

  /**
   * Small in-memory bodies whose durability is deferred (or off) take a short path (#putSmall): with direct calls,
   * or through the thread pool for a writer with many writes in flight (SmallWriteOps). The temporary file is
   * created in the destination directory (a hidden `.wharf-tmp-*` name no key can have, skipped by list()): on ext4,
   * creating it in the shared staging directory while thousands of new pool directories appear made each create
   * ten times slower.
   */
  static readonly SYNC_WRITE_BYTES = 512 * 1024;

  async #putSmall<F>(ops: SmallWriteOps<F>, key: string, dest: string, bytes: Uint8Array, deferSync: boolean): Promise<BlobStat> {
    const dir = dirname(dest);
    const tmp = join(dir, `${RESERVED_SEGMENT_PREFIX}${uniqueSuffix()}`);
    let file: F;
    for (let attempt = 0; ; attempt++) {
      try {
        // Most keys land in an existing directory: create the parents only when the open says so.
        if (attempt > 0) await ops.mkdir(dir);
        file = await ops.open(tmp);
        break;
      } catch (e) {
        // No parent yet, or one pruned by a concurrent delete between the mkdir and the open: again.
        if (errCode(e) === 'ENOENT' && attempt < 10) continue;
        throw this.#keyError(key, e);
      }
    }
    let st: BigIntStats | undefined;
    try {
      // The first failure is the one reported: a close or a clean-up failing after a failed write must not hide
      // why the write failed (ENOSPC, EIO).
      let failure: { e: unknown } | undefined;
      try {
        for (let off = 0; off < bytes.byteLength; ) off += await ops.write(file, bytes, off);
        st = await ops.stat(file);
      } catch (e) {
        failure = { e };
      }
      try {
        await ops.close(file);
      } catch (e) {
        failure ??= { e };
      }
      if (failure) throw failure.e;
      try {
        await ops.rename(tmp, dest);
      } catch (e) {
        throw this.#keyError(key, e);
      }
      this.#generation++;
    } catch (e) {
      try {
        await ops.rm(tmp);
      } catch {
        // best effort: a hidden temporary name, skipped by list(); the write's own error is what the caller needs
      }
      throw e;
    }
    if (this.#fsync && deferSync) {
      this.#pendingFiles.add(dest);
      this.#pendingDirs.add(dir);
    }
    return statOf(st!); // set: every path that leaves it unset throws above
  }

  /** A key that collides with the tree's shape (a blob where a directory must be, or the reverse). */
  #keyError(key: string, e: unknown): unknown {
    const c = errCode(e);
    if (c === 'EISDIR' || c === 'ENOTEMPTY' || c === 'EEXIST' || c === 'ENOTDIR') {
      return new WharfError('STORAGE_BAD_KEY', [key, c === 'ENOTDIR' || c === 'EEXIST' ? 'a parent path is a blob' : 'the key is a directory of other blobs']);
    }
    return e;
  }

  async put(key: string, body: BlobBody, options: WriteOptions = {}): Promise<BlobStat> {
    const deferSync = options.sync === 'deferred';
    const dest = this.#path(key);
    if (body instanceof Uint8Array && body.byteLength <= FsBlobStore.SYNC_WRITE_BYTES && (deferSync || !this.#fsync)) {
      return options.concurrent ? this.#putSmall(THREAD_POOL_OPS, key, dest, body, deferSync) : this.#putSmall(DIRECT_OPS, key, dest, body, deferSync);
    }
    const tmp = await this.#tmpPath();
    const fh = await fsp.open(tmp, 'wx', 0o644);
    let closed = false;
    try {
      if (Array.isArray(body)) {
        // A body already in memory as pieces (an index assembled from cached chunks): one writev per 1,024 pieces
        // instead of a thread-pool round trip per piece.
        const pieces = body as readonly Uint8Array[];
        for (let i = 0; i < pieces.length; i += 1024) await writevAll(fh, pieces.slice(i, i + 1024));
      } else {
        for await (const chunk of bodyChunks(body)) {
          let off = 0;
          while (off < chunk.byteLength) {
            const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off);
            off += bytesWritten;
          }
        }
      }
      if (this.#fsync && !deferSync) await fh.sync();
      // rename keeps inode, size and mtime: the stat of the temp file is the stat of the published blob.
      const st = await fh.stat({ bigint: true });
      closed = true;
      await fh.close();
      await this.#publish(tmp, dest, key, deferSync);
      if (this.#fsync && deferSync) this.#pendingFiles.add(dest);
      return statOf(st);
    } catch (e) {
      if (!closed) await fh.close().catch(() => {});
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const path = this.#path(key);
    try {
      const buf = await fsp.readFile(path);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      if (isAbsent(e) || errCode(e) === 'EISDIR') return undefined;
      throw e;
    }
  }

  async open(key: string, range?: { start: number; end: number }): Promise<NodeJS.ReadableStream | undefined> {
    const path = this.#path(key);
    if (range) validateRange(range);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(path, 'r');
    } catch (e) {
      if (isAbsent(e) || errCode(e) === 'EISDIR') return undefined;
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return undefined;
      }
      if (!range) return fh.createReadStream({ autoClose: true });
      if (range.start > st.size) throw new WharfError('RANGE_NOT_SATISFIABLE');
      const end = Math.min(range.end, st.size);
      if (end === range.start) {
        await fh.close();
        return Readable.from([], { objectMode: false });
      }
      return fh.createReadStream({ start: range.start, end: end - 1, autoClose: true });
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  async stat(key: string): Promise<BlobStat | undefined> {
    const path = this.#path(key);
    try {
      const st = await fsp.stat(path, { bigint: true });
      return st.isFile() ? statOf(st) : undefined;
    } catch (e) {
      if (isAbsent(e)) return undefined;
      throw e;
    }
  }

  async putFile(key: string, localPath: string, options: WriteOptions = {}): Promise<BlobStat> {
    const dest = this.#path(key);
    const deferSync = options.sync === 'deferred';
    const tmp = await this.#tmpPath();
    try {
      // First into our own temp dir: a rename within the store's filesystem, or a copy when the file lives elsewhere.
      try {
        await fsp.rename(localPath, tmp);
      } catch (e) {
        if (errCode(e) !== 'EXDEV') throw e;
        await fsp.copyFile(localPath, tmp);
        await fsp.rm(localPath, { force: true });
      }
      if (this.#fsync && !deferSync) {
        const fh = await fsp.open(tmp, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      const st = await fsp.stat(tmp, { bigint: true });
      await this.#publish(tmp, dest, key, deferSync);
      if (this.#fsync && deferSync) this.#pendingFiles.add(dest);
      return statOf(st);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
  }

  /**
   * A free key: a link(2) straight onto it, then checked against `expect` (a file that is not the one expected is
   * removed again, so it can be seen under the key only for that moment, while no index names the key). A key that
   * holds a blob: a link under a hidden name beside it, checked, then renamed onto it (the blob is replaced only by
   * the file expected). The system calls run on a worker thread (`fs-link-worker.ts`), the links asked for in one
   * turn of the event loop together: a bulk import links thousands of files.
   */
  async linkFile(key: string, localPath: string, options: WriteOptions & { expect?: FileIdentity } = {}): Promise<'linked' | 'changed' | 'unsupported'> {
    const dest = this.#path(key);
    const dir = dirname(dest);
    const tmp = join(dir, `${RESERVED_SEGMENT_PREFIX}${uniqueSuffix()}`);
    const out = await linkOnWorker({ src: localPath, dir, tmp, dest, ...(options.expect ? { expect: options.expect } : {}) });
    if (typeof out === 'object') throw this.#keyError(key, Object.assign(new Error(out.message), { code: out.code }));
    if (out !== 'linked') return out;
    this.#generation++;
    // The file's bytes may not be on disk yet (a build just wrote it): it is synced like a written one.
    if (this.#fsync) {
      if (options.sync === 'deferred') {
        this.#pendingFiles.add(dest);
        this.#pendingDirs.add(dir);
      } else await this.#syncAll([dest], [dir]);
    }
    return 'linked';
  }

  async copy(from: string, to: string, options: WriteOptions = {}): Promise<void> {
    const src = this.#path(from);
    const dest = this.#path(to);
    let st: Stats;
    try {
      st = await fsp.stat(src);
    } catch (e) {
      if (isAbsent(e)) throw new WharfError('NOT_FOUND', [`Blob "${from}"`]);
      throw e;
    }
    if (!st.isFile()) throw new WharfError('NOT_FOUND', [`Blob "${from}"`]);
    if (src === dest) return;
    const tmp = await this.#tmpPath();
    try {
      try {
        // Blobs are never modified in place (put renames a new file over the key), so sharing the inode is safe.
        await fsp.link(src, tmp);
      } catch (e) {
        const c = errCode(e);
        if (c === 'ENOENT') throw new WharfError('NOT_FOUND', [`Blob "${from}"`]);
        if (c !== 'EXDEV' && c !== 'EPERM' && c !== 'EMLINK' && c !== 'ENOTSUP' && c !== 'EOPNOTSUPP') throw e;
        await this.#copyFile(src, tmp, from);
      }
      await this.#publish(tmp, dest, to, options.sync === 'deferred');
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
  }

  async #copyFile(src: string, tmp: string, from: string): Promise<void> {
    try {
      await fsp.copyFile(src, tmp, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
    } catch (e) {
      if (errCode(e) === 'ENOENT') throw new WharfError('NOT_FOUND', [`Blob "${from}"`]);
      throw e;
    }
    if (this.#fsync) {
      const fh = await fsp.open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#delete(key);
    } finally {
      this.#generation++;
    }
  }

  async #delete(key: string): Promise<void> {
    const path = this.#path(key);
    try {
      await fsp.unlink(path);
    } catch (e) {
      if (isAbsent(e) || errCode(e) === 'EISDIR' || errCode(e) === 'EPERM') return; // absent, or a directory (not a blob)
      throw e;
    }
    // Prune parent directories left empty, so the published tree has no empty directories.
    let dir = dirname(path);
    while (dir !== this.root && dir.startsWith(this.root)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        break; // not empty (ENOTEMPTY/EEXIST), already gone, or anything else: stop pruning
      }
      dir = dirname(dir);
    }
    if (this.#fsync) await this.#syncDir(dirname(path)).catch(() => {});
  }

  /**
   * Removes temporary files a crashed process left behind: in the staging directory and, next to their destinations,
   * `.wharf-tmp-*` files, when older than `olderThanMs` (a write in progress is never that old). Walks the whole tree;
   * meant to run in the background after start. Returns how many files it removed.
   */
  async sweepTemporaryFiles(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const removeIfOld = async (path: string) => {
      try {
        const st = await fsp.lstat(path);
        if (st.isFile() && st.mtimeMs < cutoff) {
          await fsp.unlink(path);
          removed++;
        }
      } catch (e) {
        if (!isAbsent(e)) throw e;
      }
    };
    const walk = async (dir: string, top: boolean): Promise<void> => {
      let entries;
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isAbsent(e)) return;
        throw e;
      }
      for (const d of entries) {
        const path = join(dir, d.name);
        if (top && d.name === RESERVED_TOP_SEGMENT) {
          for (const t of await fsp.readdir(path).catch(() => [] as string[])) await removeIfOld(join(path, t));
        } else if (d.isDirectory()) await walk(path, false);
        else if (d.name.startsWith(RESERVED_SEGMENT_PREFIX)) await removeIfOld(path);
      }
    };
    await walk(this.root, true);
    return removed;
  }

  async *list(prefix: string): AsyncIterable<BlobListEntry> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash + 1) : ''; // directory part, '' or ending in '/'
    yield* this.#walk(base, prefix);
  }

  async *#walk(dirKey: string, prefix: string): AsyncGenerator<BlobListEntry> {
    let entries;
    try {
      entries = await fsp.readdir(join(this.root, dirKey), { withFileTypes: true });
    } catch (e) {
      if (isAbsent(e)) return;
      throw e;
    }
    // Sort directories as "name/" so a depth-first walk yields keys in lexicographic order.
    const items = entries
      .filter((d) => d.isFile() || d.isDirectory())
      .filter((d) => !(dirKey === '' && d.name === RESERVED_TOP_SEGMENT) && !d.name.startsWith(RESERVED_SEGMENT_PREFIX))
      .map((d) => ({ name: d.name, dir: d.isDirectory(), sortKey: d.isDirectory() ? d.name + '/' : d.name }))
      .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const item of items) {
      const key = dirKey + item.name;
      if (item.dir) {
        const sub = key + '/';
        // descend only where keys can still match the prefix
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) yield* this.#walk(sub, prefix);
        continue;
      }
      if (!key.startsWith(prefix)) continue;
      let st: BigIntStats;
      try {
        st = await fsp.lstat(join(this.root, key), { bigint: true });
      } catch (e) {
        if (isAbsent(e)) continue; // deleted while listing
        throw e;
      }
      if (!st.isFile()) continue;
      // The same conversion as stat() (whole ms from the ns mtime): st.mtime is built from a float that can round up.
      yield { key, size: Number(st.size), mtime: new Date(Number(st.mtimeNs / 1_000_000n)) };
    }
  }

  localPath(key: string): string {
    return this.#path(key);
  }
}
