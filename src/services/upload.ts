// Uploaded package files are streamed to a private scratch file while their digests are computed, never held whole
// in memory; parsing then reads only the parts it needs.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { WharfError } from '../errors.ts';
import { bufferSource, type ByteSource } from '../formats/byte-source.ts';
import type { FileDigests } from '../formats/digests.ts';

export interface StagedUpload extends FileDigests {
  /** the first bytes, for recognising the format */
  readonly head: Uint8Array;
  /** the whole file, when it is small (SMALL_UPLOAD_BYTES): it then lives in memory only, until localPath() */
  readonly bytes?: Uint8Array;
  /** a scratch file holding the upload (written now if the upload was small enough to stay in memory) */
  localPath(): Promise<string>;
  dispose(): Promise<void>;
}

/**
 * Uploads up to this size stay in memory while they are checked (most packages are far smaller): no scratch file is
 * written unless something needs one. Larger ones stream to a scratch file and are never held whole.
 */
export const SMALL_UPLOAD_BYTES = 256 * 1024;

const madeDirs = new Set<string>();

export async function stageUpload(body: AsyncIterable<Uint8Array>, opts: { dir: string; maxBytes: number }): Promise<StagedUpload> {
  const ensureDir = async () => {
    if (!madeDirs.has(opts.dir)) {
      await mkdir(opts.dir, { recursive: true, mode: 0o700 });
      madeDirs.add(opts.dir);
    }
  };
  const newPath = () => join(opts.dir, `upload-${randomBytes(12).toString('hex')}`);
  const hs = { md5: createHash('md5'), sha1: createHash('sha1'), sha256: createHash('sha256'), sha512: createHash('sha512') };
  let size = 0;
  const head: Buffer[] = [];
  let headLen = 0;
  let kept: Buffer[] = [];
  let path: string | undefined;
  let fh: FileHandle | undefined;
  const writeAll = async (chunk: Uint8Array) => {
    let off = 0;
    while (off < chunk.byteLength) {
      const { bytesWritten } = await fh!.write(chunk, off);
      off += bytesWritten;
    }
  };
  try {
    for await (const chunk of body) {
      size += chunk.byteLength;
      if (size > opts.maxBytes) throw new WharfError('PAYLOAD_TOO_LARGE', [opts.maxBytes]);
      if (headLen < 16) {
        head.push(Buffer.from(chunk.subarray(0, 16 - headLen)));
        headLen += Math.min(chunk.byteLength, 16 - headLen);
      }
      for (const h of Object.values(hs)) h.update(chunk);
      if (!fh && size <= SMALL_UPLOAD_BYTES) {
        kept.push(Buffer.from(chunk)); // a copy: the body may reuse its buffer
        continue;
      }
      if (!fh) {
        // Too large to keep: from here on it streams to a scratch file, starting with what was kept.
        await ensureDir();
        path = newPath();
        fh = await open(path, 'wx', 0o600);
        for (const k of kept) await writeAll(k);
        kept = [];
      }
      await writeAll(chunk);
    }
    await fh?.close();
  } catch (e) {
    await fh?.close().catch(() => {});
    if (path) await rm(path, { force: true });
    throw e;
  }
  if (size === 0) throw new WharfError('EMPTY_UPLOAD');
  const bytes = fh ? undefined : Buffer.concat(kept);
  let written: Promise<string> | undefined = path ? Promise.resolve(path) : undefined;
  return {
    size,
    md5: hs.md5.digest('hex'),
    sha1: hs.sha1.digest('hex'),
    sha256: hs.sha256.digest('hex'),
    sha512: hs.sha512.digest('hex'),
    head: Buffer.concat(head),
    ...(bytes ? { bytes } : {}),
    localPath() {
      written ??= (async () => {
        await ensureDir();
        const p = newPath();
        await writeFile(p, bytes!, { flag: 'wx', mode: 0o600 });
        path = p;
        return p;
      })();
      return written;
    },
    async dispose() {
      if (written) await written.catch(() => {});
      if (path) await rm(path, { force: true });
    },
  };
}

/** Random access to a staged upload: from memory when it is small, else from its scratch file. */
export async function stagedByteSource(staged: StagedUpload): Promise<ByteSource & { close(): Promise<void> }> {
  if (staged.bytes) return { ...bufferSource(staged.bytes), close: async () => {} };
  return fileByteSource(await staged.localPath());
}

/** Random access to a local file, for the format parsers. Call close() when done. */
export async function fileByteSource(path: string): Promise<ByteSource & { close(): Promise<void> }> {
  const fh = await open(path, 'r');
  const { size } = await fh.stat();
  return {
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const len = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    },
    close: () => fh.close(),
  };
}

export type PackageKind = 'deb' | 'rpm';

/** Recognises a package file by its magic bytes. */
export function sniffPackageKind(head: Uint8Array): PackageKind | undefined {
  const b = Buffer.from(head);
  if (b.subarray(0, 8).toString('latin1') === '!<arch>\n') return 'deb';
  if (b.length >= 4 && b[0] === 0xed && b[1] === 0xab && b[2] === 0xee && b[3] === 0xdb) return 'rpm';
  return undefined;
}
