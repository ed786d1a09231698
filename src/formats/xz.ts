// Pure helpers for the .xz container format (xz file format specification 1.0.4 / 1.1.0). No I/O.
//
// Wharf publishes Packages.xz as ONE xz stream holding MANY blocks: every chunk of the index is compressed once by
// the `xz` binary (see compress.ts), split here into its blocks and index records, cached, and re-assembled into a
// fresh stream (header + all blocks + new index + footer) whenever the index changes. A multi-block stream is read by
// every xz decoder (liblzma, xz-embedded, Python's lzma, apt's FileFd), unlike concatenated streams.
//
// Layout reminders:
//   Stream Header  = magic FD 37 7A 58 5A 00 | flags (0x00, check ID) | CRC32(flags)            12 bytes
//   Block          = header ((byte0 + 1) * 4 bytes, last 4 = CRC32) | data | zero padding to 4 | check
//   Index          = 0x00 | vli count | (vli unpadded size, vli uncompressed size)* | zero padding to 4 | CRC32
//   Stream Footer  = CRC32(backward size + flags) | backward size ((index size / 4) - 1, u32 LE) | flags | 'YZ'

import { crc32 } from 'node:zlib';

/** Check IDs defined by the specification (size of the check field in bytes is given by CHECK_SIZES). */
export const XZ_CHECK_NONE = 0x00;
export const XZ_CHECK_CRC32 = 0x01;
export const XZ_CHECK_CRC64 = 0x04;
export const XZ_CHECK_SHA256 = 0x0a;

// Size in bytes of the check field for each of the 16 possible check IDs (spec section 3.4).
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64] as const;

const HEADER_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] as const;
const FOOTER_MAGIC = [0x59, 0x5a] as const; // 'YZ'
const HEADER_SIZE = 12;
const FOOTER_SIZE = 12;
// Largest backward size the 32-bit field can express: (2^32) * 4 bytes.
const MAX_INDEX_SIZE = 2 ** 34;

export interface XzRecord {
  /** Block header + compressed data + check, without the block padding. */
  unpaddedSize: number;
  uncompressedSize: number;
}

export interface XzPart {
  checkType: number;
  /** All block bytes of a stream (every block including its padding and check), between stream header and index. */
  blocks: Uint8Array;
  /** One record per block, in order. */
  records: XzRecord[];
}

function fail(message: string): never {
  throw new Error(`Malformed xz data: ${message}`);
}

function pad4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

function readU32LE(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

function writeU32LE(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

function crc(b: Uint8Array, start: number, end: number): number {
  return crc32(b.subarray(start, end)) >>> 0;
}

/** Decode a multibyte integer (at most 9 bytes, 7 bits each, little-endian groups). Returns [value, next offset]. */
function readVli(b: Uint8Array, off: number, end: number, what: string): [number, number] {
  let value = 0;
  let mult = 1;
  for (let i = 0; i < 9; i++) {
    if (off + i >= end) fail(`${what}: truncated multibyte integer`);
    const byte = b[off + i]!;
    value += (byte & 0x7f) * mult;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) fail(`${what}: non-minimal multibyte integer encoding`);
      if (!Number.isSafeInteger(value)) fail(`${what}: value too large`);
      return [value, off + i + 1];
    }
    mult *= 128;
  }
  fail(`${what}: multibyte integer longer than 9 bytes`);
}

function vliSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVli(b: Uint8Array, off: number, n: number): number {
  while (n >= 128) {
    b[off++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  b[off++] = n;
  return off;
}

function checkSizeOf(checkType: number): number {
  if (!Number.isInteger(checkType) || checkType < 0 || checkType > 0x0f) {
    throw new Error(`Invalid xz check type ${checkType}: expected an integer 0-15 (0 none, 1 CRC32, 4 CRC64, 10 SHA-256)`);
  }
  return CHECK_SIZES[checkType]!;
}

/**
 * Split a complete single-stream .xz file (as written by `xz -z -c`) into its check type, the raw bytes of all its
 * blocks and its index records. Validates magic bytes, stream flags, the CRC32s of stream header, footer, index and
 * each block header, the backward size and the consistency of the index with the block area. Zero-byte stream
 * padding after the footer is accepted; a second stream or any other trailing data is rejected.
 * Throws an Error whose message starts with "Malformed xz data:" on anything malformed.
 */
export function parseXzStream(bytes: Uint8Array): XzPart {
  if (bytes.length < HEADER_SIZE + FOOTER_SIZE + 8) fail(`${bytes.length} bytes is too short for an xz stream`);
  for (let i = 0; i < HEADER_MAGIC.length; i++) {
    if (bytes[i] !== HEADER_MAGIC[i]) fail('bad magic bytes (not an xz file)');
  }
  if (bytes[6] !== 0x00 || (bytes[7]! & 0xf0) !== 0) fail('unsupported stream header flags');
  if (crc(bytes, 6, 8) !== readU32LE(bytes, 8)) fail('stream header CRC32 mismatch');
  const checkType = bytes[7]!;
  const checkSize = CHECK_SIZES[checkType]!;

  // Skip stream padding (zero bytes, a multiple of 4) after the footer.
  let end = bytes.length;
  while (end > HEADER_SIZE && bytes[end - 1] === 0) end--;
  if ((bytes.length - end) % 4 !== 0) {
    // The footer ends in 'YZ' so a non-multiple-of-4 zero run means padding plus garbage, or truncation.
    fail('stream padding is not a multiple of 4 bytes');
  }
  if (end % 4 !== 0) fail('stream size is not a multiple of 4 bytes (truncated?)');
  if (end < HEADER_SIZE + FOOTER_SIZE + 8) fail('truncated stream');
  const footer = end - FOOTER_SIZE;
  if (bytes[end - 2] !== FOOTER_MAGIC[0] || bytes[end - 1] !== FOOTER_MAGIC[1]) {
    fail('missing stream footer magic "YZ" (truncated?)');
  }
  if (crc(bytes, footer + 4, footer + 10) !== readU32LE(bytes, footer)) fail('stream footer CRC32 mismatch');
  if (bytes[footer + 8] !== bytes[6] || bytes[footer + 9] !== bytes[7]) {
    fail('stream footer flags differ from stream header flags');
  }
  const indexSize = (readU32LE(bytes, footer + 4) + 1) * 4;
  const indexStart = footer - indexSize;
  if (indexStart < HEADER_SIZE) fail('backward size points before the stream header');

  // Index.
  if (bytes[indexStart] !== 0x00) {
    fail('no index at the backward size offset (several concatenated streams are not supported)');
  }
  if (crc(bytes, indexStart, footer - 4) !== readU32LE(bytes, footer - 4)) fail('index CRC32 mismatch');
  let [count, p] = readVli(bytes, indexStart + 1, footer - 4, 'index record count');
  // Each record takes at least two bytes.
  if (count * 2 > footer - 4 - p) fail('index record count exceeds index size');
  const records: XzRecord[] = new Array(count);
  let blocksSize = 0;
  for (let i = 0; i < count; i++) {
    let unpaddedSize: number;
    let uncompressedSize: number;
    [unpaddedSize, p] = readVli(bytes, p, footer - 4, `index record ${i} unpadded size`);
    [uncompressedSize, p] = readVli(bytes, p, footer - 4, `index record ${i} uncompressed size`);
    if (unpaddedSize < 5 + checkSize) fail(`index record ${i} has an impossible unpadded size ${unpaddedSize}`);
    records[i] = { unpaddedSize, uncompressedSize };
    blocksSize += pad4(unpaddedSize);
  }
  if (pad4(p - indexStart) !== indexSize - 4) fail('index size does not match backward size');
  for (let q = p; q < footer - 4; q++) if (bytes[q] !== 0) fail('non-zero index padding');

  if (HEADER_SIZE + blocksSize !== indexStart) {
    fail(`index describes ${blocksSize} bytes of blocks but the stream holds ${indexStart - HEADER_SIZE}`);
  }

  // Walk the blocks: verify each block header's size byte and CRC32, and the zero block padding.
  let off = HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const { unpaddedSize } = records[i]!;
    const headerSize = (bytes[off]! + 1) * 4;
    if (bytes[off] === 0) fail(`block ${i}: index indicator where a block header was expected`);
    if (headerSize + checkSize >= unpaddedSize) fail(`block ${i}: header size ${headerSize} exceeds the block size`);
    if (crc(bytes, off, off + headerSize - 4) !== readU32LE(bytes, off + headerSize - 4)) {
      fail(`block ${i}: block header CRC32 mismatch`);
    }
    const dataEnd = off + unpaddedSize - checkSize;
    const padEnd = off + pad4(unpaddedSize) - checkSize;
    for (let q = dataEnd; q < padEnd; q++) if (bytes[q] !== 0) fail(`block ${i}: non-zero block padding`);
    off += pad4(unpaddedSize);
  }

  return { checkType, blocks: bytes.subarray(HEADER_SIZE, indexStart), records };
}

/**
 * Assemble one xz stream from the blocks of several parts (typically the results of parseXzStream, one per chunk),
 * in order, with a fresh stream header, index and footer. All parts must share one check type. Zero parts (or parts
 * without blocks) give a valid empty stream, byte-identical to what `xz` writes for empty input with the same check
 * type; `options.checkType` (default CRC64, xz's default) sets the check type when there are no parts and, when
 * given, is also required of every part.
 */
export function assembleXz(parts: readonly XzPart[], options: { checkType?: number } = {}): Uint8Array {
  const checkType = options.checkType ?? parts[0]?.checkType ?? XZ_CHECK_CRC64;
  const checkSize = checkSizeOf(checkType);
  let blocksSize = 0;
  let recordCount = 0;
  let recordsSize = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.checkType !== checkType) {
      throw new Error(
        `Cannot assemble xz parts with different check types: part ${i} uses check ${part.checkType}, expected ${checkType}`,
      );
    }
    let expected = 0;
    for (const r of part.records) {
      if (!Number.isSafeInteger(r.unpaddedSize) || r.unpaddedSize < 5 + checkSize) {
        throw new Error(`Invalid xz record in part ${i}: unpadded size ${r.unpaddedSize}`);
      }
      if (!Number.isSafeInteger(r.uncompressedSize) || r.uncompressedSize < 0) {
        throw new Error(`Invalid xz record in part ${i}: uncompressed size ${r.uncompressedSize}`);
      }
      expected += pad4(r.unpaddedSize);
      recordsSize += vliSize(r.unpaddedSize) + vliSize(r.uncompressedSize);
    }
    if (expected !== part.blocks.length) {
      throw new Error(`Invalid xz part ${i}: its records describe ${expected} bytes of blocks but it holds ${part.blocks.length}`);
    }
    blocksSize += part.blocks.length;
    recordCount += part.records.length;
  }

  const indexUnpadded = 1 + vliSize(recordCount) + recordsSize;
  const indexSize = pad4(indexUnpadded) + 4;
  if (indexSize > MAX_INDEX_SIZE) throw new Error('Too many xz blocks: the index would exceed 16 GiB');
  const out = new Uint8Array(HEADER_SIZE + blocksSize + indexSize + FOOTER_SIZE);

  // Stream header.
  out.set(HEADER_MAGIC, 0);
  out[6] = 0x00;
  out[7] = checkType;
  writeU32LE(out, 8, crc(out, 6, 8));

  // Blocks.
  let off = HEADER_SIZE;
  for (const part of parts) {
    out.set(part.blocks, off);
    off += part.blocks.length;
  }

  // Index (padding bytes are already zero).
  const indexStart = off;
  out[off++] = 0x00;
  off = writeVli(out, off, recordCount);
  for (const part of parts) {
    for (const r of part.records) {
      off = writeVli(out, off, r.unpaddedSize);
      off = writeVli(out, off, r.uncompressedSize);
    }
  }
  const crcAt = indexStart + indexSize - 4;
  writeU32LE(out, crcAt, crc(out, indexStart, crcAt));

  // Stream footer.
  const footer = indexStart + indexSize;
  writeU32LE(out, footer + 4, indexSize / 4 - 1);
  out[footer + 8] = 0x00;
  out[footer + 9] = checkType;
  writeU32LE(out, footer, crc(out, footer + 4, footer + 10));
  out[footer + 10] = FOOTER_MAGIC[0];
  out[footer + 11] = FOOTER_MAGIC[1];
  return out;
}

/**
 * One xz block holding `data` as LZMA2 *uncompressed* chunks, with a CRC32 check: no compression work at all, so it
 * can be produced in-process on a hot path (the still-growing last chunk of an index). Every xz decoder reads it.
 * Empty data gives a part without blocks.
 */
export function storedXzPart(data: Uint8Array): XzPart {
  if (data.byteLength === 0) return { checkType: XZ_CHECK_CRC32, blocks: new Uint8Array(0), records: [] };
  // Block header: size byte, flags (one filter, no optional sizes), LZMA2 filter id 0x21, 1 property byte
  // (dictionary size code 0 = 4 KiB: uncompressed chunks never reference it), zero padding, CRC32.
  const header = new Uint8Array(12);
  header.set([12 / 4 - 1, 0x00, 0x21, 0x01, 0x00], 0);
  writeU32LE(header, 8, crc(header, 0, 8));
  const CHUNK = 0x10000;
  const chunkCount = Math.ceil(data.byteLength / CHUNK);
  const compressedSize = data.byteLength + chunkCount * 3 + 1;
  const unpadded = header.byteLength + compressedSize + 4;
  const padding = (4 - ((header.byteLength + compressedSize) % 4)) % 4;
  const out = new Uint8Array(header.byteLength + compressedSize + padding + 4);
  out.set(header, 0);
  let o = header.byteLength;
  for (let i = 0; i < chunkCount; i++) {
    const piece = data.subarray(i * CHUNK, (i + 1) * CHUNK);
    out[o++] = i === 0 ? 0x01 : 0x02; // uncompressed chunk, the first one resets the dictionary
    out[o++] = (piece.byteLength - 1) >> 8;
    out[o++] = (piece.byteLength - 1) & 0xff;
    out.set(piece, o);
    o += piece.byteLength;
  }
  out[o++] = 0x00; // end of LZMA2 data
  o += padding;
  writeU32LE(out, o, crc32(data) >>> 0);
  return { checkType: XZ_CHECK_CRC32, blocks: out, records: [{ unpaddedSize: unpadded, uncompressedSize: data.byteLength }] };
}
