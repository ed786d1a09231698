// A streaming reader and writer for the plain tar archives a batch push carries: regular files with simple names,
// one after the other. Nothing is held beyond one 512-byte header and the chunk being passed on, so an archive of
// any size streams through. Accepted: ustar/v7/GNU regular files (type '0' or NUL) with a base name only; pax
// headers, directories, links, devices and names with '/' are refused — a batch push is a list of package files,
// not a file tree.
import { WharfError } from '../errors.ts';
import { parseTarNumber } from './deb/tar.ts';

const BLOCK = 512;

export interface TarStreamEntry {
  /** the file name (no directory part) */
  readonly name: string;
  readonly size: number;
  /** the entry's bytes; must be read to the end before the next entry is asked for */
  readonly body: AsyncIterable<Uint8Array>;
}

function bad(msg: string): WharfError {
  return new WharfError('BATCH_INVALID', [msg]);
}

function num(header: Uint8Array, start: number, len: number, what: string): number {
  try {
    return parseTarNumber(header, start, len, what);
  } catch (e) {
    throw bad(`a header has an invalid ${what}: ${(e as Error).message}`);
  }
}

/** Reads an archive entry by entry. `maxEntries` bounds how many files one archive may carry. */
export async function* readTarStream(source: AsyncIterable<Uint8Array>, opts: { maxEntries: number; maxEntryBytes: number }): AsyncGenerator<TarStreamEntry> {
  const it = source[Symbol.asyncIterator]();
  let buf: Uint8Array = new Uint8Array(0);
  let offset = 0; // bytes of the archive consumed before buf
  const fill = async (n: number): Promise<boolean> => {
    while (buf.byteLength < n) {
      const r = await it.next();
      if (r.done) return false;
      const chunk = r.value;
      buf = buf.byteLength === 0 ? chunk : concat(buf, chunk);
    }
    return true;
  };
  const take = (n: number): Uint8Array => {
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    offset += n;
    return out;
  };
  let entries = 0;
  for (;;) {
    if (!(await fill(BLOCK))) {
      if (buf.byteLength === 0 && entries > 0) return; // tolerated: no end-of-archive blocks
      throw bad(`the archive ends inside a header at byte ${offset + buf.byteLength}`);
    }
    const header = take(BLOCK);
    if (header.every((b) => b === 0)) return; // end of archive (the second zero block and padding are not read)
    const stored = num(header, 148, 8, 'header checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    if (sum !== stored) throw bad(`the header at byte ${offset - BLOCK} has a wrong checksum (not a tar archive?)`);
    const type = String.fromCharCode(header[156]!);
    const name = cstring(header, 0, 100);
    const prefix = header[257] === 0x75 /* 'u'star */ ? cstring(header, 345, 155) : '';
    const full = prefix ? `${prefix}/${name}` : name;
    if (type !== '0' && type !== '\0') throw bad(`"${safe(full)}" is not a regular file (type ${JSON.stringify(type)}): a batch holds package files only`);
    if (!/^[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$/.test(full)) throw bad(`"${safe(full)}" is not a plain file name (letters, digits and . _ + ~ - only, no directories)`);
    const size = num(header, 124, 12, 'size');
    if (size > opts.maxEntryBytes) throw new WharfError('PAYLOAD_TOO_LARGE', [opts.maxEntryBytes]);
    if (++entries > opts.maxEntries) throw bad(`more than ${opts.maxEntries} files in one batch: send several batches`);
    let left = size;
    let done = false;
    const body: AsyncIterable<Uint8Array> = {
      async *[Symbol.asyncIterator]() {
        while (left > 0) {
          if (buf.byteLength === 0 && !(await fill(1))) throw bad(`the archive ends inside "${safe(full)}"`);
          const n = Math.min(left, buf.byteLength);
          left -= n;
          yield take(n);
        }
        done = true;
      },
    };
    yield { name: full, size, body };
    if (!done || left > 0) throw new Error('readTarStream: an entry was not read to the end');
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad > 0) {
      if (!(await fill(pad))) throw bad(`the archive ends inside the padding of "${safe(full)}"`);
      take(pad);
    }
  }
}

/** The header block of a regular file `name` of `size` bytes (ustar), for writers of batch archives. */
export function tarHeader(name: string, size: number, mtime = 0): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const enc = new TextEncoder();
  const nameBytes = enc.encode(name);
  if (nameBytes.byteLength > 100) throw new Error(`tar: file name longer than 100 bytes: ${name}`);
  h.set(nameBytes, 0);
  const octal = (n: number, width: number, at: number) => h.set(enc.encode(n.toString(8).padStart(width - 1, '0') + '\0'), at);
  octal(0o644, 8, 100);
  octal(0, 8, 108);
  octal(0, 8, 116);
  if (size < 8 ** 11) octal(size, 12, 124);
  else {
    // GNU base-256 for sizes of 8 GiB and more
    h[124] = 0x80;
    let n = BigInt(size);
    for (let i = 135; i > 124; i--, n >>= 8n) h[i] = Number(n & 0xffn);
  }
  octal(mtime, 12, 136);
  h.fill(32, 148, 156);
  h[156] = 0x30; // '0'
  h.set(enc.encode('ustar\0'), 257);
  h.set(enc.encode('00'), 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
  return h;
}

/** Bytes an archive of files of these sizes takes (headers, padding, the two end blocks). */
export function tarSize(sizes: readonly number[]): number {
  return sizes.reduce((t, s) => t + BLOCK + Math.ceil(s / BLOCK) * BLOCK, 0) + 2 * BLOCK;
}

/** Zero bytes that pad a file of `size` bytes to its block. */
export function tarPadding(size: number): Uint8Array {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end of an archive: two zero blocks. */
export const TAR_END = new Uint8Array(2 * BLOCK);

function cstring(b: Uint8Array, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return new TextDecoder('latin1').decode(nul >= 0 ? s.subarray(0, nul) : s);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

function safe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
}
