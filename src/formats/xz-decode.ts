// An xz decoder (the .xz container with LZMA2, the one filter dpkg-deb and xz use by default), in process and on
// bytes: a .deb's control.tar.xz is a few kilobytes, and starting the xz program for each cost ~3.7 ms per package,
// sixty times the rest of checking a .deb. Written from the format's specification (the .xz file format 1.2.0 and
// the LZMA2 chunk layout of xz's lzma2_decoder), not from anyone's code.
//
// Bounded: the output is capped (`maxOutput`), and it is the only buffer the decoder grows, since a match may only
// reach back into what this call has produced (the whole output is the dictionary): a header that asks for a 4 GiB
// dictionary allocates nothing, while distances are still held to the size a header declares, as xz holds them.
// What it accepts, xz accepts (a differential fuzzer found no difference once matches were held to their chunk and
// distances to the dictionary). What it does not implement it says so (XzUnsupportedError: another filter such as
// x86 BCJ, an unknown check type) so the caller can hand the input to the xz program instead; anything malformed is
// an XzCorruptError, and every check the stream carries (CRC32, CRC64, SHA-256) is verified.
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

export class XzCorruptError extends Error {
  override readonly name = 'XzCorruptError';
}
export class XzUnsupportedError extends Error {
  override readonly name = 'XzUnsupportedError';
}
export class XzTooLargeError extends Error {
  override readonly name = 'XzTooLargeError';
  readonly limit: number;
  constructor(limit: number) {
    super(`the decompressed data exceeds ${limit} bytes`);
    this.limit = limit;
  }
}

const HEADER_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const FOOTER_MAGIC = [0x59, 0x5a];
const FILTER_LZMA2 = 0x21;
/** Bytes of the check for each check type (the specification's table; 0 = none). */
const CHECK_SIZE = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

const corrupt = (what: string): never => {
  throw new XzCorruptError(what);
};

// ---- CRC64 (ECMA-182, reflected, as xz uses it), on two 32-bit halves ----
const CRC64_LO = new Uint32Array(256);
const CRC64_HI = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let lo = i;
  let hi = 0;
  for (let k = 0; k < 8; k++) {
    const odd = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi >>>= 1;
    if (odd) {
      lo = (lo ^ 0xd7870f42) >>> 0;
      hi = (hi ^ 0xc96c5795) >>> 0;
    }
  }
  CRC64_LO[i] = lo;
  CRC64_HI[i] = hi;
}

/** CRC64 of `data` as the 8 little-endian bytes xz stores. */
export function crc64(data: Uint8Array): Uint8Array {
  let lo = 0xffffffff;
  let hi = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const idx = (lo ^ data[i]!) & 0xff;
    lo = ((lo >>> 8) | ((hi & 0xff) << 24)) ^ CRC64_LO[idx]!;
    hi = (hi >>> 8) ^ CRC64_HI[idx]!;
  }
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint32(0, ~lo >>> 0, true);
  v.setUint32(4, ~hi >>> 0, true);
  return out;
}

// ---- output: grows by doubling up to the cap ----
class Output {
  buf: Uint8Array;
  pos = 0;
  readonly cap: number;
  constructor(cap: number, hint: number) {
    this.cap = cap;
    // a guess (4x the input, at most 1 MiB): what a hostile header claims allocates nothing, growth doubles
    this.buf = new Uint8Array(Math.max(64, Math.min(cap, hint, 1 << 20)));
  }
  /** makes room for `n` more bytes or throws past the cap */
  reserve(n: number): void {
    const need = this.pos + n;
    if (need > this.cap) throw new XzTooLargeError(this.cap);
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(Math.min(size, this.cap));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
}

// ---- LZMA ----
const STATES = 12;
const POS_STATES_MAX = 16;
const PROB_INIT = 1024;
const MATCH_LEN_MIN = 2;
const DIST_STATES = 4;
const DIST_MODEL_START = 4;
const DIST_MODEL_END = 14;
const FULL_DISTANCES = 1 << (DIST_MODEL_END >>> 1); // 128
const ALIGN_BITS = 4;

/** Probability layout in one Uint16Array (offsets), so a state reset is one fill. */
const P_IS_MATCH = 0;
const P_IS_REP = P_IS_MATCH + STATES * POS_STATES_MAX;
const P_IS_REP0 = P_IS_REP + STATES;
const P_IS_REP1 = P_IS_REP0 + STATES;
const P_IS_REP2 = P_IS_REP1 + STATES;
const P_IS_REP0_LONG = P_IS_REP2 + STATES;
const P_DIST_SLOT = P_IS_REP0_LONG + STATES * POS_STATES_MAX; // DIST_STATES trees of 64
const P_DIST_SPECIAL = P_DIST_SLOT + DIST_STATES * 64; // FULL_DISTANCES - DIST_MODEL_END entries, indexed as in the spec
const P_ALIGN = P_DIST_SPECIAL + FULL_DISTANCES - DIST_MODEL_END;
/** a length coder: choice, choice2, low[16][8], mid[16][8], high[256] */
const LEN_CHOICE = 0;
const LEN_CHOICE2 = 1;
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + POS_STATES_MAX * 8;
const LEN_HIGH = LEN_MID + POS_STATES_MAX * 8;
const LEN_SIZE = LEN_HIGH + 256;
const P_MATCH_LEN = P_ALIGN + (1 << ALIGN_BITS);
const P_REP_LEN = P_MATCH_LEN + LEN_SIZE;
const P_LITERAL = P_REP_LEN + LEN_SIZE;

class Lzma {
  lc = 0;
  lp = 0;
  pb = 0;
  probs = new Uint16Array(P_LITERAL + 0x300);
  state = 0;
  rep0 = 0;
  rep1 = 0;
  rep2 = 0;
  rep3 = 0;

  setProps(props: number): void {
    if (props >= 9 * 5 * 5) corrupt('invalid LZMA properties');
    const lc = props % 9;
    const rest = (props / 9) | 0;
    const lp = rest % 5;
    const pb = (rest / 5) | 0;
    if (lc + lp > 4) corrupt('LZMA2 properties with lc + lp above 4');
    this.lc = lc;
    this.lp = lp;
    this.pb = pb;
    const size = P_LITERAL + (0x300 << (lc + lp));
    if (this.probs.length !== size) this.probs = new Uint16Array(size);
  }

  reset(): void {
    this.probs.fill(PROB_INIT);
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
  }

  /**
   * Decodes one LZMA chunk of `outSize` bytes from `input[start, end)` into `out` (positions before `dictStart`
   * belong to an earlier dictionary and may not be referenced, nor distances of `dictSize` or more: the block
   * header's dictionary, which the encoder kept to and a decoder with a window of that size needs).
   */
  decodeChunk(input: Uint8Array, start: number, end: number, out: Output, outSize: number, dictStart: number, dictSize: number): void {
    out.reserve(outSize);
    const buf = out.buf;
    let pos = out.pos;
    const limit = pos + outSize;
    const probs = this.probs;
    const lc = this.lc;
    const lpMask = (1 << this.lp) - 1;
    const pbMask = (1 << this.pb) - 1;
    let state = this.state;
    let rep0 = this.rep0;
    let rep1 = this.rep1;
    let rep2 = this.rep2;
    let rep3 = this.rep3;

    // range decoder
    if (end - start < 5 || input[start] !== 0) corrupt('bad LZMA range coder start');
    let inPos = start + 1;
    let code = ((input[inPos]! << 24) | (input[inPos + 1]! << 16) | (input[inPos + 2]! << 8) | input[inPos + 3]!) >>> 0;
    inPos += 4;
    let range = 0xffffffff;
    if (code === range) corrupt('bad LZMA range coder start');

    const bit = (i: number): number => {
      if (range < 0x1000000) {
        if (inPos >= end) corrupt('LZMA chunk ends early');
        range = (range << 8) >>> 0;
        code = ((code << 8) | input[inPos++]!) >>> 0;
      }
      const p = probs[i]!;
      const bound = (range >>> 11) * p;
      if (code < bound) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        return 0;
      }
      range -= bound;
      code -= bound;
      probs[i] = p - (p >>> 5);
      return 1;
    };
    const tree = (base: number, bits: number): number => {
      let m = 1;
      for (let k = 0; k < bits; k++) m = (m << 1) | bit(base + m);
      return m - (1 << bits);
    };
    const reverseTree = (base: number, bits: number): number => {
      let m = 1;
      let r = 0;
      for (let k = 0; k < bits; k++) {
        const b = bit(base + m);
        m = (m << 1) | b;
        r |= b << k;
      }
      return r;
    };
    const direct = (bits: number): number => {
      let r = 0;
      for (let k = 0; k < bits; k++) {
        if (range < 0x1000000) {
          if (inPos >= end) corrupt('LZMA chunk ends early');
          range = (range << 8) >>> 0;
          code = ((code << 8) | input[inPos++]!) >>> 0;
        }
        range >>>= 1;
        let b = 0;
        if (code >= range) {
          code -= range;
          b = 1;
        }
        r = ((r << 1) | b) >>> 0;
      }
      return r;
    };
    const length = (base: number, posState: number): number => {
      if (bit(base + LEN_CHOICE) === 0) return MATCH_LEN_MIN + tree(base + LEN_LOW + posState * 8, 3);
      if (bit(base + LEN_CHOICE2) === 0) return MATCH_LEN_MIN + 8 + tree(base + LEN_MID + posState * 8, 3);
      return MATCH_LEN_MIN + 16 + tree(base + LEN_HIGH, 8);
    };
    const copy = (len: number): void => {
      const from = pos - rep0 - 1;
      if (from < dictStart) corrupt('an LZMA match reaches before the start of the data');
      // a match ends within its chunk (xz and xz-embedded refuse one that runs on into the next)
      if (len > limit - pos) corrupt('an LZMA match runs past the end of its chunk');
      // byte by byte: source and destination overlap when the distance is shorter than the length
      for (let k = 0; k < len; k++) buf[pos + k] = buf[from + k]!;
      pos += len;
    };
    while (pos < limit) {
      // positions count from the dictionary reset, as the encoder's do
      const posState = (pos - dictStart) & pbMask;
      if (bit(P_IS_MATCH + state * POS_STATES_MAX + posState) === 0) {
        const prev = pos > dictStart ? buf[pos - 1]! : 0;
        const base = P_LITERAL + 0x300 * ((((pos - dictStart) & lpMask) << lc) + (prev >>> (8 - lc)));
        let symbol = 1;
        if (state < 7) {
          do symbol = (symbol << 1) | bit(base + symbol);
          while (symbol < 0x100);
        } else {
          if (pos - rep0 - 1 < dictStart) corrupt('an LZMA match reaches before the start of the data');
          let matchByte = buf[pos - rep0 - 1]!;
          let offset = 0x100;
          do {
            matchByte <<= 1;
            const matchBit = matchByte & offset;
            const b = bit(base + offset + matchBit + symbol);
            symbol = (symbol << 1) | b;
            offset &= (0 - b) ^ ~matchBit;
          } while (symbol < 0x100);
        }
        buf[pos++] = symbol & 0xff;
        state = state <= 3 ? 0 : state <= 9 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (bit(P_IS_REP + state) === 0) {
        // a match with a new distance
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        len = length(P_MATCH_LEN, posState);
        state = state < 7 ? 7 : 10;
        const slot = tree(P_DIST_SLOT + 64 * Math.min(len - MATCH_LEN_MIN, DIST_STATES - 1), 6);
        if (slot < DIST_MODEL_START) rep0 = slot;
        else {
          const bits = (slot >>> 1) - 1;
          let dist = ((2 | (slot & 1)) << bits) >>> 0;
          if (slot < DIST_MODEL_END) dist += reverseTree(P_DIST_SPECIAL + dist - slot - 1, bits);
          else {
            dist = (dist + ((direct(bits - ALIGN_BITS) << ALIGN_BITS) >>> 0)) >>> 0;
            dist += reverseTree(P_ALIGN, ALIGN_BITS);
          }
          // 0xFFFFFFFF would be LZMA's end marker, which LZMA2 chunks never carry (their size is known)
          if (dist >= 0xffffffff) corrupt('an end marker inside an LZMA2 chunk');
          // every distance is checked here once: the rep distances only ever hold these
          if (dist >= dictSize) corrupt('an LZMA match distance beyond the dictionary size of the block');
          rep0 = dist;
        }
      } else if (bit(P_IS_REP0 + state) === 0) {
        if (bit(P_IS_REP0_LONG + state * POS_STATES_MAX + posState) === 0) {
          // a short rep: one byte at the last distance
          if (pos - rep0 - 1 < dictStart) corrupt('an LZMA match reaches before the start of the data');
          state = state < 7 ? 9 : 11;
          buf[pos] = buf[pos - rep0 - 1]!;
          pos++;
          continue;
        }
        len = length(P_REP_LEN, posState);
        state = state < 7 ? 8 : 11;
      } else {
        let dist: number;
        if (bit(P_IS_REP1 + state) === 0) dist = rep1;
        else {
          if (bit(P_IS_REP2 + state) === 0) dist = rep2;
          else {
            dist = rep3;
            rep3 = rep2;
          }
          rep2 = rep1;
        }
        rep1 = rep0;
        rep0 = dist;
        len = length(P_REP_LEN, posState);
        state = state < 7 ? 8 : 11;
      }
      copy(len);
    }
    // The chunk's compressed size is exact and the range coder ends flushed.
    if (range < 0x1000000) {
      if (inPos >= end) corrupt('LZMA chunk ends early');
      range = (range << 8) >>> 0;
      code = ((code << 8) | input[inPos++]!) >>> 0;
    }
    if (inPos !== end || code !== 0) corrupt('an LZMA chunk does not end where its header says');
    out.pos = pos;
    this.state = state;
    this.rep0 = rep0;
    this.rep1 = rep1;
    this.rep2 = rep2;
    this.rep3 = rep3;
  }
}

/** The dictionary size LZMA2's property byte (0-40) gives, as liblzma's decoder rounds it (at least 4 KiB, 16-byte steps). */
function lzma2DictSize(prop: number): number {
  const size = prop === 40 ? 0xffffffff : (2 + (prop & 1)) * 2 ** ((prop >>> 1) + 11);
  return Math.max(4096, Math.ceil(size / 16) * 16);
}

/** LZMA2 data from `input[start]` on, with the dictionary size of its block; returns where it ended (after its end byte). */
function decodeLzma2(input: Uint8Array, start: number, end: number, out: Output, dictSize: number): number {
  const lzma = new Lzma();
  let p = start;
  let needDictReset = true;
  let needProps = true;
  let dictStart = out.pos;
  for (;;) {
    if (p >= end) corrupt('LZMA2 data ends early');
    const control = input[p++]!;
    if (control === 0x00) return p;
    if (control >= 0xe0 || control === 0x01) {
      needProps = true;
      needDictReset = false;
      dictStart = out.pos;
    } else if (needDictReset) corrupt('LZMA2 data does not start with a dictionary reset');
    if (control >= 0x80) {
      if (p + 4 > end) corrupt('LZMA2 chunk header ends early');
      const outSize = ((control & 0x1f) << 16) + (input[p]! << 8) + input[p + 1]! + 1;
      const inSize = (input[p + 2]! << 8) + input[p + 3]! + 1;
      p += 4;
      if (control >= 0xc0) {
        if (p >= end) corrupt('LZMA2 chunk header ends early');
        lzma.setProps(input[p++]!);
        needProps = false;
        lzma.reset();
      } else if (needProps) corrupt('an LZMA2 chunk without the properties it needs');
      else if (control >= 0xa0) lzma.reset();
      if (p + inSize > end) corrupt('LZMA2 chunk ends early');
      lzma.decodeChunk(input, p, p + inSize, out, outSize, dictStart, dictSize);
      p += inSize;
    } else if (control === 0x01 || control === 0x02) {
      if (p + 2 > end) corrupt('LZMA2 chunk header ends early');
      const size = (input[p]! << 8) + input[p + 1]! + 1;
      p += 2;
      if (p + size > end) corrupt('LZMA2 chunk ends early');
      out.reserve(size);
      out.buf.set(input.subarray(p, p + size), out.pos);
      out.pos += size;
      p += size;
    } else corrupt(`invalid LZMA2 chunk control byte 0x${control.toString(16)}`);
  }
}

/** A multibyte integer of the .xz format (7 bits per byte, at most 9 bytes); returns [value, next offset]. */
function varint(input: Uint8Array, p: number, end: number): [number, number] {
  let v = 0;
  for (let k = 0; k < 9; k++) {
    if (p >= end) corrupt('an integer field ends early');
    const b = input[p++]!;
    v += (b & 0x7f) * 2 ** (7 * k);
    if ((b & 0x80) === 0) {
      if (b === 0 && k > 0) corrupt('an integer field with a redundant zero byte');
      if (v > Number.MAX_SAFE_INTEGER) corrupt('an integer field too large');
      return [v, p];
    }
  }
  return corrupt('an integer field longer than 9 bytes');
}

const readU32 = (b: Uint8Array, p: number) => (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;

function verifyCheck(type: number, data: Uint8Array, stored: Uint8Array): void {
  let actual: Uint8Array;
  if (type === 0x00) return;
  if (type === 0x01) {
    actual = new Uint8Array(4);
    new DataView(actual.buffer).setUint32(0, crc32(data), true);
  } else if (type === 0x04) actual = crc64(data);
  else if (type === 0x0a) actual = createHash('sha256').update(data).digest();
  else throw new XzUnsupportedError(`check type ${type}`);
  for (let i = 0; i < actual.length; i++) if (actual[i] !== stored[i]) corrupt('the integrity check of a block does not match its data');
}

/**
 * Decompresses a whole .xz file (one or more streams, with stream padding between them) held in memory.
 * `maxOutput`: the most bytes it may produce (XzTooLargeError past it).
 */
export function decodeXz(input: Uint8Array, maxOutput: number): Uint8Array {
  const out = new Output(maxOutput, input.length * 4);
  const end = input.length;
  let p = 0;
  let streams = 0;
  while (p < end) {
    if (streams > 0) {
      // stream padding: null bytes, a multiple of four, before another stream or the end
      const padStart = p;
      while (p < end && input[p] === 0) p++;
      if ((p - padStart) % 4 !== 0) corrupt('stream padding that is not a multiple of four bytes');
      if (p === end) break;
    }
    p = decodeStream(input, p, out);
    streams++;
  }
  if (streams === 0) corrupt('no xz stream');
  return out.buf.subarray(0, out.pos);
}

/** One stream from `start`: header, blocks, index, footer; returns the offset after the footer. */
function decodeStream(input: Uint8Array, start: number, out: Output): number {
  const end = input.length;
  if (start + 12 > end) corrupt('the stream header ends early');
  for (let i = 0; i < 6; i++) if (input[start + i] !== HEADER_MAGIC[i]) corrupt('not an xz stream (bad magic)');
  const flags = input.subarray(start + 6, start + 8);
  if (crc32(flags) !== readU32(input, start + 8)) corrupt('the stream header CRC32 does not match');
  if (flags[0] !== 0 || (flags[1]! & 0xf0) !== 0) throw new XzUnsupportedError('stream flags of a newer format version');
  const checkType = flags[1]! & 0x0f;
  const checkSize = CHECK_SIZE[checkType]!;
  let p = start + 12;
  const records: [number, number][] = [];
  for (;;) {
    if (p >= end) corrupt('the stream ends early');
    if (input[p] === 0x00) break; // the index indicator
    // block header
    const headerSize = (input[p]! + 1) * 4;
    if (p + headerSize > end) corrupt('a block header ends early');
    const blockStart = p;
    if (crc32(input.subarray(p, p + headerSize - 4)) !== readU32(input, p + headerSize - 4)) corrupt('a block header CRC32 does not match');
    const bflags = input[p + 1]!;
    if (bflags & 0x3c) throw new XzUnsupportedError('block flags of a newer format version');
    const filters = (bflags & 0x03) + 1;
    let q = p + 2;
    const hEnd = p + headerSize - 4;
    let compressedSize: number | undefined;
    let dictSize = 0;
    let uncompressedSize: number | undefined;
    if (bflags & 0x40) [compressedSize, q] = varint(input, q, hEnd);
    if (bflags & 0x80) [uncompressedSize, q] = varint(input, q, hEnd);
    for (let f = 0; f < filters; f++) {
      let id: number;
      let propsSize: number;
      [id, q] = varint(input, q, hEnd);
      [propsSize, q] = varint(input, q, hEnd);
      if (q + propsSize > hEnd) corrupt('block filter flags end early');
      if (filters !== 1 || id !== FILTER_LZMA2) throw new XzUnsupportedError(`filter 0x${id.toString(16)}${filters > 1 ? ` in a chain of ${filters}` : ''}`);
      if (propsSize !== 1 || input[q]! > 40) corrupt('invalid LZMA2 filter properties');
      dictSize = lzma2DictSize(input[q]!);
      q += propsSize;
    }
    while (q < hEnd) if (input[q++] !== 0) corrupt('block header padding is not zero');
    p += headerSize;
    const dataStart = p;
    const outStart = out.pos;
    p = decodeLzma2(input, p, end, out, dictSize);
    const packed = p - dataStart;
    const unpacked = out.pos - outStart;
    if (compressedSize !== undefined && compressedSize !== packed) corrupt('a block is not the compressed size its header says');
    if (uncompressedSize !== undefined && uncompressedSize !== unpacked) corrupt('a block is not the uncompressed size its header says');
    while ((p - blockStart) % 4 !== 0) {
      if (p >= end || input[p] !== 0) corrupt('block padding is not zero');
      p++;
    }
    if (p + checkSize > end) corrupt('a block check ends early');
    verifyCheck(checkType, out.buf.subarray(outStart, out.pos), input.subarray(p, p + checkSize));
    p += checkSize;
    records.push([headerSize + packed + checkSize, unpacked]);
  }
  // index: indicator, count, records, padding, CRC32; it must list the blocks just decoded
  const indexStart = p;
  let count: number;
  [count, p] = varint(input, p + 1, end);
  if (count !== records.length) corrupt('the index does not list the blocks of the stream');
  for (const [unpadded, unpacked] of records) {
    let a: number;
    let b: number;
    [a, p] = varint(input, p, end);
    [b, p] = varint(input, p, end);
    if (a !== unpadded || b !== unpacked) corrupt('the index does not match the blocks of the stream');
  }
  while ((p - indexStart) % 4 !== 0) {
    if (p >= end || input[p] !== 0) corrupt('index padding is not zero');
    p++;
  }
  if (p + 4 > end) corrupt('the index ends early');
  if (crc32(input.subarray(indexStart, p)) !== readU32(input, p)) corrupt('the index CRC32 does not match');
  p += 4;
  const indexSize = p - indexStart;
  // footer
  if (p + 12 > end) corrupt('the stream footer ends early');
  if (crc32(input.subarray(p + 4, p + 10)) !== readU32(input, p)) corrupt('the stream footer CRC32 does not match');
  if ((readU32(input, p + 4) + 1) * 4 !== indexSize) corrupt('the stream footer does not match the index');
  if (input[p + 8] !== flags[0] || input[p + 9] !== flags[1]) corrupt('the stream footer flags differ from the header');
  if (input[p + 10] !== FOOTER_MAGIC[0] || input[p + 11] !== FOOTER_MAGIC[1]) corrupt('bad stream footer magic');
  return p + 12;
}
