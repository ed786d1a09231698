// A worker thread of a directory import (services/import.ts): reads package files where they lie, computes their
// digests, checks them and renders their index entries (package-check.ts), so the main thread only stores what it
// is handed. Several run at once, one per core. Nothing here touches the database or the store.
import { parentPort } from 'node:worker_threads';
import { closeSync, constants as fsConstants, fstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { sep } from 'node:path';
import { createHash } from 'node:crypto';
import { bufferSource, type ByteSource } from '../formats/byte-source.ts';
import { WharfError, isWharfError } from '../errors.ts';
import { sniffPackageKind, SMALL_UPLOAD_BYTES, type PackageKind } from './upload.ts';
import { checkDeb, checkRpm, rpmRowFields } from './package-check.ts';
import type { ImportCheckRequest, ImportChecked } from './import.ts';

/** Reads up to `length` bytes at `offset` of an open file into the start of `buf`: how many there were. */
function readInto(fd: number, buf: Buffer, length: number, offset = 0): number {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Reads `length` bytes at `offset` of an open file (`own`: into a buffer of its own, to be transferred). */
function readAt(fd: number, offset: number, length: number, own = false): Buffer {
  const buf = own ? Buffer.allocUnsafeSlow(length) : Buffer.allocUnsafe(length);
  const got = readInto(fd, buf, length, offset);
  return got === length ? buf : buf.subarray(0, got);
}

function fdSource(fd: number, size: number): ByteSource {
  return {
    size,
    async read(offset: number, length: number) {
      return readAt(fd, offset, Math.max(0, Math.min(length, size - offset)));
    },
  };
}

const STREAM_CHUNK = 1024 * 1024;

/** The file's bytes from `start` on, read through its descriptor. */
async function* fdFrom(fd: number, size: number, start: number): AsyncGenerator<Uint8Array> {
  for (let off = start; off < size; off += STREAM_CHUNK) {
    const chunk = readAt(fd, off, Math.min(STREAM_CHUNK, size - off));
    if (chunk.byteLength === 0) throw new WharfError('IMPORT_FILE_CHANGED', ['it became shorter while it was read']);
    yield chunk;
  }
}

/**
 * Where the open file really lies: the path the kernel resolved for the descriptor, so a directory on the way that
 * was swapped for a symbolic link after the listing cannot lead out of the import roots.
 */
function openedInside(fd: number, roots: readonly string[]): boolean {
  let real: string;
  try {
    real = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return false;
  }
  return roots.some((r) => real.startsWith(r.endsWith(sep) ? r : r + sep));
}

/** This server's user (a system call each time it is asked). */
const UID = process.getuid?.();

/** A buffer reused from file to file for bytes no one keeps (replaced by a larger one when a file needs it). */
export interface Scratch {
  buf: Buffer;
}

/**
 * Checks one file of an import: what a worker answers for it (exported for the tests, which call it in process).
 * `scratch`: small files whose bytes are not handed back are read into it (one file at a time only).
 */
export async function checkImportFile(path: string, req: ImportCheckRequest, scratch?: Scratch): Promise<ImportChecked> {
  let fd: number;
  try {
    // Not through a symbolic link: what is imported is what the directory holds.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'a symbolic link (import the file it points to, or the directory holding it)' : code === 'ENOENT' ? 'removed while the import ran' : `cannot be read (${code})`;
    throw new WharfError('IMPORT_FILE_SKIPPED', [why]);
  }
  try {
    if (!openedInside(fd, req.roots)) throw new WharfError('IMPORT_FILE_SKIPPED', ['it lies outside the import roots (a directory on its path was replaced by a symbolic link?)']);
    const st = fstatSync(fd);
    if (!st.isFile()) throw new WharfError('IMPORT_FILE_SKIPPED', ['not a regular file']);
    if (st.size === 0) throw new WharfError('EMPTY_UPLOAD');
    if (st.size > req.maxBytes) throw new WharfError('PAYLOAD_TOO_LARGE', [req.maxBytes]);
    const size = st.size;
    const identity = { dev: st.dev, ino: st.ino, size, mtimeMs: st.mtimeMs };
    // Linked only when no one else can change it in place: this server's user owns it, and neither its group nor
    // others may write it. (Anyone who can write it could otherwise rewrite a published package.)
    const linkable = st.uid === UID && (st.mode & 0o022) === 0;
    let bytes: Buffer | undefined;
    if (size <= SMALL_UPLOAD_BYTES) {
      // Read whole (one system call). Bytes handed back (a copy, or an RPM to re-sign: whether it is one is known
      // only from them) get a buffer of their own; others the scratch buffer, as thousands of small allocations in a
      // row keep the garbage collector busy.
      if (scratch && !req.keepBytes && !req.resign) {
        if (scratch.buf.byteLength < size) scratch.buf = Buffer.allocUnsafeSlow(Math.max(size, 2 * scratch.buf.byteLength));
        const n = readInto(fd, scratch.buf, size);
        bytes = scratch.buf.subarray(0, n);
      } else bytes = readAt(fd, 0, size, true);
      if (bytes.byteLength !== size) throw new WharfError('IMPORT_FILE_CHANGED', ['it became shorter']);
    }
    const head = bytes ? bytes.subarray(0, 16) : readAt(fd, 0, Math.min(16, size));
    const kind: PackageKind | undefined = sniffPackageKind(head);
    if (!kind) throw new WharfError('UNSUPPORTED_PACKAGE', ['neither a Debian package (.deb, starting with the ar magic "!<arch>") nor an RPM package (lead magic ED AB EE DB)']);
    // Every digest the format's index needs: SHA-256 for RPM; MD5, SHA-1, SHA-256 and SHA-512 for APT.
    const algos = kind === 'deb' ? (['md5', 'sha1', 'sha256', 'sha512'] as const) : (['sha256'] as const);
    const hashes = algos.map((a) => createHash(a));
    /** the digests of the whole file, once every byte has gone through `hashes` */
    let hex: Record<string, string> | undefined;
    const finish = () => (hex = Object.fromEntries(algos.map((a, i) => [a, hashes[i]!.digest('hex')])) as Record<string, string>);
    if (bytes) {
      for (const h of hashes) h.update(bytes);
      finish();
    }
    const src = bytes ? bufferSource(bytes) : fdSource(fd, size);
    // A large file is read once: the pass that checks an RPM's payload digest (from `start` on) reads the file from
    // its beginning and hashes all of it on the way. A file not read that way (no payload digest, a .deb) is hashed
    // in a pass of its own.
    let streamed = false;
    const stream = async function* (start: number): AsyncGenerator<Uint8Array> {
      if (hex || streamed) {
        yield* fdFrom(fd, size, start);
        return;
      }
      streamed = true;
      let off = 0;
      for await (const chunk of fdFrom(fd, size, 0)) {
        for (const h of hashes) h.update(chunk);
        const end = off + chunk.byteLength;
        if (end > start) yield off >= start ? chunk : chunk.subarray(start - off);
        off = end;
      }
      finish();
    };
    const pkg = { size, ...(bytes ? { bytes } : {}), stream };
    const hashed = async (): Promise<Record<string, string>> => {
      if (hex) return hex;
      // (Fresh hashes: a pass that stopped part way has fed the others.)
      const own = algos.map((a) => createHash(a));
      for await (const chunk of fdFrom(fd, size, 0)) for (const h of own) h.update(chunk);
      return (hex = Object.fromEntries(algos.map((a, i) => [a, own[i]!.digest('hex')])) as Record<string, string>);
    };
    // Bytes the main thread will store (a copy) or re-sign (an RPM of a repository that signs packages).
    const keep = bytes && (req.keepBytes || (kind === 'rpm' && req.resign)) ? { bytes } : {};
    if (keep.bytes && scratch && keep.bytes.buffer === scratch.buf.buffer) throw new Error('scratch bytes would be handed back');
    if (kind === 'rpm') {
      if (req.resign) return { kind, sha256: (await hashed()).sha256!, size, identity, linkable, ...keep };
      const checked = await checkRpm(src, pkg, req.rpmLimits);
      const sha256 = (await hashed()).sha256!;
      const fields = rpmRowFields(checked, req.dist, { sha256, size, uploadSha256: sha256, fileTime: Math.floor(Date.now() / 1000) });
      return { kind, sha256, size, identity, linkable, filename: checked.filename, identityText: checked.identity, relKey: fields.blob_key, fields, ...keep };
    }
    const all = await hashed();
    const sha256 = all.sha256!;
    const digests = { size, md5: all.md5!, sha1: all.sha1!, sha256, sha512: all.sha512! };
    const checked = await checkDeb(src, digests, req.dist);
    return { kind, sha256, size, identity, linkable, digests, filename: checked.filename, identityText: checked.identity, relKey: checked.poolKey, fields: checked.fields, ...keep };
  } finally {
    closeSync(fd);
  }
}

// One task at a time, in the order sent (a task that waits for I/O must not let the next one answer first), each
// answer naming its task.
let queue: Promise<void> = Promise.resolve();
const scratch: Scratch = { buf: Buffer.allocUnsafeSlow(64 * 1024) };
parentPort?.on('message', (m: { id: number; paths: string; req: ImportCheckRequest }) => {
  queue = queue.then(async () => {
    const paths = m.paths.split('\0');
    const results: (ImportChecked | { error: { code: string; message: string; status: number } })[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const path of paths) {
      try {
        const r = await checkImportFile(path, m.req, scratch);
        // Handed over without a copy (read into a buffer of its own).
        if (r.bytes && r.bytes.byteOffset === 0 && r.bytes.byteLength === r.bytes.buffer.byteLength) transfer.push(r.bytes.buffer as ArrayBuffer);
        results.push(r);
      } catch (e) {
        if (isWharfError(e)) results.push({ error: { code: e.code, message: e.message, status: e.status } });
        else results.push({ error: { code: 'INTERNAL', message: String((e as Error)?.message ?? e), status: 500 } });
      }
    }
    parentPort!.postMessage({ id: m.id, results }, transfer);
  });
});
