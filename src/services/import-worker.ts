// A worker thread of a directory import (services/import.ts): reads package files where they lie, computes their
// digests, checks them and renders their index entries (package-check.ts), so the main thread only stores what it
// is handed. Several run at once, one per core. Nothing here touches the database or the store.
import { parentPort } from 'node:worker_threads';
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { bufferSource, type ByteSource } from '../formats/byte-source.ts';
import { WharfError, isWharfError } from '../errors.ts';
import { sniffPackageKind, SMALL_UPLOAD_BYTES, type PackageKind } from './upload.ts';
import { checkDeb, checkRpm, rpmRowFields } from './package-check.ts';
import type { ImportCheckRequest, ImportChecked } from './import.ts';

/** Reads `length` bytes at `offset` of an open file (`own`: into a buffer of its own, to be transferred). */
function readAt(fd: number, offset: number, length: number, own = false): Buffer {
  const buf = own ? Buffer.allocUnsafeSlow(length) : Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
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

export async function checkOneForBench(path: string, req: ImportCheckRequest): Promise<ImportChecked> { return checkOne(path, req); }
async function checkOne(path: string, req: ImportCheckRequest): Promise<ImportChecked> {
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
    const st = fstatSync(fd);
    if (!st.isFile()) throw new WharfError('IMPORT_FILE_SKIPPED', ['not a regular file']);
    if (st.size === 0) throw new WharfError('EMPTY_UPLOAD');
    if (st.size > req.maxBytes) throw new WharfError('PAYLOAD_TOO_LARGE', [req.maxBytes]);
    const size = st.size;
    const identity = { dev: st.dev, ino: st.ino, size, mtimeMs: st.mtimeMs };
    const head = readAt(fd, 0, Math.min(16, size));
    const kind: PackageKind | undefined = sniffPackageKind(head);
    if (!kind) throw new WharfError('UNSUPPORTED_PACKAGE', ['neither a Debian package (.deb, starting with the ar magic "!<arch>") nor an RPM package (lead magic ED AB EE DB)']);
    // Every digest the format's index needs: SHA-256 for RPM; MD5, SHA-1, SHA-256 and SHA-512 for APT.
    const algos = kind === 'deb' ? (['md5', 'sha1', 'sha256', 'sha512'] as const) : (['sha256'] as const);
    const hashes = algos.map((a) => createHash(a));
    let bytes: Buffer | undefined;
    if (size <= SMALL_UPLOAD_BYTES) {
      bytes = readAt(fd, 0, size, true);
      if (bytes.byteLength !== size) throw new WharfError('IMPORT_FILE_CHANGED', ['it became shorter']);
      for (const h of hashes) h.update(bytes);
    } else {
      for (let off = 0; off < size; off += STREAM_CHUNK) {
        const chunk = readAt(fd, off, Math.min(STREAM_CHUNK, size - off));
        if (chunk.byteLength === 0) throw new WharfError('IMPORT_FILE_CHANGED', ['it became shorter']);
        for (const h of hashes) h.update(chunk);
      }
    }
    const hex = Object.fromEntries(algos.map((a, i) => [a, hashes[i]!.digest('hex')])) as Record<string, string>;
    const sha256 = hex.sha256!;
    const src = bytes ? bufferSource(bytes) : fdSource(fd, size);
    const pkg = { size, ...(bytes ? { bytes } : {}), localPath: async () => path };
    // Bytes the main thread will store (a copy) or re-sign (an RPM of a repository that signs packages).
    const keep = bytes && (req.keepBytes || (kind === 'rpm' && req.resign)) ? { bytes } : {};
    if (kind === 'rpm') {
      if (req.resign) return { kind, sha256, size, identity, ...keep };
      const checked = await checkRpm(src, pkg, req.rpmLimits);
      const fields = rpmRowFields(checked, req.dist, { sha256, size, uploadSha256: sha256, fileTime: Math.floor(Date.now() / 1000) });
      return { kind, sha256, size, identity, filename: checked.filename, identityText: checked.identity, relKey: fields.blob_key, fields, ...keep };
    }
    const digests = { size, md5: hex.md5!, sha1: hex.sha1!, sha256, sha512: hex.sha512! };
    const checked = await checkDeb(src, digests, req.dist);
    return { kind, sha256, size, identity, digests, filename: checked.filename, identityText: checked.identity, relKey: checked.poolKey, fields: checked.fields, ...keep };
  } finally {
    closeSync(fd);
  }
}

parentPort?.on('message', async (m: { id: number; paths: string[]; req: ImportCheckRequest }) => {
  const results: (ImportChecked | { error: { code: string; message: string; status: number } })[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const path of m.paths) {
    try {
      const r = await checkOne(path, m.req);
      // Handed over without a copy (read into a buffer of its own).
      if (r.bytes && r.bytes.byteOffset === 0 && r.bytes.byteLength === r.bytes.buffer.byteLength) transfer.push(r.bytes.buffer as ArrayBuffer);
      results.push(r);
    } catch (e) {
      if (isWharfError(e)) results.push({ error: { code: e.code, message: e.message, status: e.status } });
      else results.push({ error: { code: 'INTERNAL', message: String((e as Error)?.message ?? e), status: 500 } });
    }
  }
  parentPort?.postMessage({ id: m.id, results }, transfer);
});
