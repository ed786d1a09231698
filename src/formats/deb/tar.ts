// Minimal tar reader (v7, ustar, GNU long names and base-256 numbers, pax extended headers) for the control archive.
import { WharfError } from '../../errors.ts';

export interface TarEntry {
  name: string;
  /** Type flag as a character: '0' regular file, '5' directory, '2' symlink, ... ('\0' is reported as '0'). */
  type: string;
  size: number;
  /** The entry data (a view into the archive buffer). */
  data: Uint8Array;
}

const BLOCK = 512;
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

function bad(msg: string): WharfError {
  return new WharfError('DEB_BAD_CONTROL_ARCHIVE', [msg]);
}

function cstring(b: Uint8Array, start: number, len: number): Uint8Array {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return nul >= 0 ? s.subarray(0, nul) : s;
}

function decodeName(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return latin1.decode(bytes);
  }
}

/** Parses a tar numeric field: octal (space/NUL padded) or GNU base-256 (high bit set). */
export function parseTarNumber(b: Uint8Array, start: number, len: number, what: string): number {
  const f = b.subarray(start, start + len);
  if (f[0]! & 0x80) {
    if (f[0] === 0xff) throw bad(`negative ${what}`);
    let n = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) {
      n = n * 256 + f[i]!;
      if (n > Number.MAX_SAFE_INTEGER) throw bad(`${what} is too large`);
    }
    return n;
  }
  const text = latin1.decode(f);
  const m = /^ *([0-7]*)[ \0]*$/.exec(text);
  if (!m) throw bad(`invalid ${what} field "${text.replace(/\0+$/, '')}"`);
  if (m[1]!.length === 0) return 0;
  return parseInt(m[1]!, 8);
}

function isZeroBlock(b: Uint8Array, off: number): boolean {
  for (let i = off; i < off + BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function verifyChecksum(b: Uint8Array, off: number): void {
  const stored = parseTarNumber(b, off + 148, 8, 'header checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[off + i]!;
    unsigned += c;
    signed += c >= 128 ? c - 256 : c;
  }
  if (stored !== unsigned && stored !== signed) throw bad(`header checksum mismatch at offset ${off}`);
}

function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    let sp = pos;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const lenText = latin1.decode(data.subarray(pos, sp));
    if (!/^[0-9]+$/.test(lenText)) throw bad('malformed pax extended header');
    const len = Number(lenText);
    if (len <= sp - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) throw bad('malformed pax extended header');
    const rec = data.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw bad('malformed pax extended header');
    out.set(latin1.decode(rec.subarray(0, eq)), decodeName(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

/** Iterates the entries of a tar archive held in memory. Metadata entries (L, K, x, g) are consumed, not yielded. */
export function* iterateTar(buf: Uint8Array): Generator<TarEntry> {
  let off = 0;
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  let sawEntry = false;
  for (;;) {
    if (off === buf.length) {
      // No end-of-archive marker: accept a clean end at a block boundary.
      if (!sawEntry) throw bad('the archive is empty');
      return;
    }
    if (off + BLOCK > buf.length) throw bad(`truncated header at offset ${off}`);
    if (isZeroBlock(buf, off)) {
      if (!sawEntry && longName === undefined && pax === undefined) throw bad('the archive has no entries');
      return;
    }
    verifyChecksum(buf, off);
    const typeByte = buf[off + 156]!;
    const type = typeByte === 0 ? '0' : String.fromCharCode(typeByte);
    let size = parseTarNumber(buf, off + 124, 12, 'size');
    const magic = latin1.decode(buf.subarray(off + 257, off + 263));
    let name = decodeName(cstring(buf, off, 100));
    if (magic === 'ustar\0') {
      const prefix = cstring(buf, off + 345, 155);
      if (prefix.length > 0) name = `${decodeName(prefix)}/${name}`;
    }
    if (pax?.has('size') && type !== 'x' && type !== 'g') {
      const s = pax.get('size')!;
      if (!/^[0-9]+$/.test(s)) throw bad('invalid pax size');
      size = Number(s);
    }
    const hasData = !'1236'.includes(type); // links and devices carry no data
    const dataStart = off + BLOCK;
    const dataLen = hasData ? size : 0;
    if (!Number.isSafeInteger(dataLen) || dataStart + dataLen > buf.length) {
      throw bad(`entry "${name}" at offset ${off} extends past the end of the archive`);
    }
    const data = buf.subarray(dataStart, dataStart + dataLen);
    off = dataStart + Math.ceil(dataLen / BLOCK) * BLOCK;
    if (off > buf.length) off = buf.length; // last entry's padding may be short; the next iteration ends cleanly
    switch (type) {
      case 'L':
        longName = decodeName(cstring(data, 0, data.length));
        continue;
      case 'K':
        continue;
      case 'x':
        pax = parsePax(data);
        continue;
      case 'g':
        continue;
    }
    if (longName !== undefined) name = longName;
    if (pax?.has('path')) name = pax.get('path')!;
    longName = undefined;
    pax = undefined;
    sawEntry = true;
    yield { name, type: type === '7' ? '0' : type, size: dataLen, data };
  }
}

function normalizeName(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  return n;
}

/** Returns the content of the regular file `control` (`./control` or `control`) in a control archive. */
export function findControlFile(buf: Uint8Array): Uint8Array {
  let found: Uint8Array | undefined;
  for (const e of iterateTar(buf)) {
    if (normalizeName(e.name) !== 'control') continue;
    if (e.type !== '0') throw bad('"control" is not a regular file');
    if (found) throw bad('the archive holds more than one "control" file');
    found = e.data;
  }
  if (!found) throw bad('no "control" file in the control archive');
  return found;
}
