// Reads the lead, signature header and main header of an .rpm file, validating every index entry the way rpm 4.18
// does (lib/header.c hdrblobInit, hdrblobVerifyRegion, hdrblobVerifyInfo; lib/rpmlead.c rpmLeadCheck) before any
// value is used. Only the headers are read; the payload is never touched.
import { WharfError } from '../../errors.ts';
import type { ByteSource } from '../byte-source.ts';

export const RPM_LEAD_SIZE = 96;
const LEAD_MAGIC = [0xed, 0xab, 0xee, 0xdb];
const HEADER_MAGIC = [0x8e, 0xad, 0xe8, 0x01, 0x00, 0x00, 0x00, 0x00];

// Data types (rpm include/rpm/rpmtag.h rpmTagType_e)
export const RPM_NULL_TYPE = 0;
export const RPM_CHAR_TYPE = 1;
export const RPM_INT8_TYPE = 2;
export const RPM_INT16_TYPE = 3;
export const RPM_INT32_TYPE = 4;
export const RPM_INT64_TYPE = 5;
export const RPM_STRING_TYPE = 6;
export const RPM_BIN_TYPE = 7;
export const RPM_STRING_ARRAY_TYPE = 8;
export const RPM_I18NSTRING_TYPE = 9;

/** Region tags: signature header, main header (immutable region), legacy image. */
export const RPMTAG_HEADERIMAGE = 61;
export const RPMTAG_HEADERSIGNATURES = 62;
export const RPMTAG_HEADERIMMUTABLE = 63;
const HEADER_I18NTABLE = 100;

const TYPE_SIZE = [0, 1, 1, 2, 4, 8, -1, 1, -1, -1];
const TYPE_ALIGN = [1, 1, 1, 2, 4, 8, 1, 1, 1, 1];
const REGION_TAG_COUNT = 16;
/** rpm's HEADER_ARRAY_MAX: no more than about a million elements in an array (BIN excepted). */
const HEADER_ARRAY_MAX = 0x000fffff;
/** rpm's headerMaxbytes: 8 + 16 * il + dl must stay below this. */
const HEADER_MAX_BYTES = 256 * 1024 * 1024;

export interface RpmReadLimits {
  /** Largest accepted number of signature header entries (rpm: 32). */
  maxSignatureEntries?: number;
  /** Largest accepted signature header data store (rpm: 64 MiB). */
  maxSignatureData?: number;
  /** Largest accepted number of main header entries (rpm: 0xFFFF). */
  maxHeaderEntries?: number;
  /** Largest accepted main header data store (rpm: 0x0FFFFFFF, and 8 + 16 * il + dl < 256 MiB). */
  maxHeaderData?: number;
  /** Where a maxHeaderData lower than rpm's comes from (a server setting), named in the error that refuses a header. */
  maxHeaderDataSource?: string;
}

export const DEFAULT_RPM_LIMITS: Required<Omit<RpmReadLimits, 'maxHeaderDataSource'>> = {
  maxSignatureEntries: 32,
  maxSignatureData: 64 * 1024 * 1024,
  maxHeaderEntries: 0xffff,
  maxHeaderData: 0x0fffffff,
};

export interface RpmHeaderEntry {
  readonly tag: number;
  readonly type: number;
  /** offset into the data store */
  readonly offset: number;
  readonly count: number;
  /** length in bytes of the entry's data in the store */
  readonly length: number;
}

export interface RpmByteRange {
  readonly start: number;
  /** exclusive; for the signature header this includes the padding to 8 bytes */
  readonly end: number;
}

export interface RpmFile {
  readonly lead: Uint8Array;
  readonly signature: RpmHeader;
  readonly header: RpmHeader;
  readonly signatureRange: RpmByteRange;
  readonly headerRange: RpmByteRange;
  readonly payloadOffset: number;
}

// Types each known main-header tag must have (rpm's hdrchkTagType, applied to the main header only). String-class
// tags accept any string type, like rpm. Unknown tags are allowed.
const S = 's';
const KNOWN_TAG_TYPES: ReadonlyMap<number, number | typeof S> = new Map<number, number | typeof S>([
  [1000, S], [1001, S], [1002, S], [1003, RPM_INT32_TYPE], [1004, S], [1005, S], [1006, RPM_INT32_TYPE], [1007, S],
  [1009, RPM_INT32_TYPE], [1011, S], [1014, S], [1015, S], [1016, S], [1020, S], [1022, S], [1027, S],
  [1030, RPM_INT16_TYPE], [1035, S], [1037, RPM_INT32_TYPE], [1044, S], [1046, RPM_INT32_TYPE],
  [1047, S], [1048, RPM_INT32_TYPE], [1049, S], [1050, S], [1053, RPM_INT32_TYPE], [1054, S], [1055, S],
  [1080, RPM_INT32_TYPE], [1081, S], [1082, S], [1090, S], [1106, RPM_INT32_TYPE], [1112, RPM_INT32_TYPE], [1113, S],
  [1114, RPM_INT32_TYPE], [1115, S], [1116, RPM_INT32_TYPE], [1117, S], [1118, S],
  [1156, S], [1157, S], [1158, RPM_INT32_TYPE], [1159, S], [1160, S], [1161, RPM_INT32_TYPE],
  [271, RPM_INT64_TYPE], [5009, RPM_INT64_TYPE], [5011, RPM_INT32_TYPE],
  [5046, S], [5047, S], [5048, RPM_INT32_TYPE], [5049, S], [5050, S], [5051, RPM_INT32_TYPE],
  [5052, S], [5053, S], [5054, RPM_INT32_TYPE], [5055, S], [5056, S], [5057, RPM_INT32_TYPE],
]);

function isStringType(type: number): boolean {
  return type === RPM_STRING_TYPE || type === RPM_STRING_ARRAY_TYPE || type === RPM_I18NSTRING_TYPE;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes header text as createrepo_c writes it to XML: valid UTF-8 is kept; anything else is taken as Latin-1
 * (cr_latin1_to_utf8, which also drops the C1 range 0x80-0xBF and control characters other than \t \n \r).
 */
export function decodeRpmText(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    let out = '';
    for (const b of bytes) {
      if (b < 0x80) {
        if (b < 0x20 && b !== 9 && b !== 10 && b !== 13) continue;
        out += String.fromCharCode(b);
      } else if (b >= 0xc0) {
        out += String.fromCharCode(b);
      }
    }
    return out;
  }
}

/** One parsed header (signature or main). All entries were validated when it was read. */
export class RpmHeader {
  /** The exact header bytes: 8-byte magic+reserved, il, dl, the index and the data store. */
  readonly raw: Uint8Array;
  /** 'signature' or 'main', used in error messages */
  readonly kind: string;
  /** 62 or 63 when the header has a region, 0 for legacy headers without one */
  readonly regionTag: number;
  readonly #entries: RpmHeaderEntry[];
  readonly #byTag = new Map<number, RpmHeaderEntry>();
  readonly #view: DataView;
  /** `raw` as a Buffer (to slice strings from) */
  readonly #buf: Buffer;
  readonly #dataStart: number;

  constructor(raw: Uint8Array, kind: string, entries: RpmHeaderEntry[], regionTag: number) {
    this.raw = raw;
    this.kind = kind;
    this.regionTag = regionTag;
    this.#entries = entries;
    for (const e of entries) if (!this.#byTag.has(e.tag)) this.#byTag.set(e.tag, e);
    this.#view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    this.#buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    this.#dataStart = 16 + 16 * entries.length;
  }

  /** Index entries in file order (the region entry included). */
  entries(): readonly RpmHeaderEntry[] {
    return this.#entries;
  }

  entry(tag: number): RpmHeaderEntry | undefined {
    return this.#byTag.get(tag);
  }

  has(tag: number): boolean {
    return this.#byTag.has(tag);
  }

  /** The data store (what index offsets point into). */
  data(): Uint8Array {
    return this.raw.subarray(this.#dataStart);
  }

  #bad(tag: number, what: string): WharfError {
    return new WharfError('RPM_BAD_HEADER', [`${this.kind} header tag ${tag}: ${what}`]);
  }

  /** Raw bytes (without NUL) of each string of a STRING, STRING_ARRAY or I18NSTRING entry; undefined when absent. */
  stringsBytes(tag: number): Uint8Array[] | undefined {
    const e = this.#byTag.get(tag);
    if (!e) return undefined;
    if (!isStringType(e.type)) throw this.#bad(tag, `type ${e.type} is not a string type`);
    const out: Uint8Array[] = [];
    let pos = this.#dataStart + e.offset;
    for (let i = 0; i < e.count; i++) {
      const nul = this.raw.indexOf(0, pos);
      out.push(this.raw.subarray(pos, nul));
      pos = nul + 1;
    }
    return out;
  }

  /**
   * Each string of a string entry as a "binary string" (one character per byte, Latin-1), the way the metadata
   * logic compares them; an I18NSTRING gives only its first (C locale) string. Undefined when absent.
   */
  binaryStrings(tag: number): string[] | undefined {
    const e = this.#byTag.get(tag);
    if (!e) return undefined;
    if (!isStringType(e.type)) throw this.#bad(tag, `type ${e.type} is not a string type`);
    const count = e.type === RPM_I18NSTRING_TYPE ? 1 : e.count;
    const out = new Array<string>(count);
    const raw = this.raw;
    let pos = this.#dataStart + e.offset;
    for (let i = 0; i < count; i++) {
      const nul = raw.indexOf(0, pos);
      out[i] = this.#buf.toString('latin1', pos, nul);
      pos = nul + 1;
    }
    return out;
  }

  /** The first string of a string entry as a binary string (see binaryStrings). */
  binaryString(tag: number): string | undefined {
    const e = this.#byTag.get(tag);
    if (!e) return undefined;
    if (!isStringType(e.type)) throw this.#bad(tag, `type ${e.type} is not a string type`);
    const pos = this.#dataStart + e.offset;
    return this.#buf.toString('latin1', pos, this.raw.indexOf(0, pos));
  }

  /** Raw bytes of a string entry (the first string, i.e. the C locale, of an array or I18N string). */
  stringBytes(tag: number): Uint8Array | undefined {
    const e = this.#byTag.get(tag);
    if (!e) return undefined;
    if (!isStringType(e.type)) throw this.#bad(tag, `type ${e.type} is not a string type`);
    const pos = this.#dataStart + e.offset;
    return this.raw.subarray(pos, this.raw.indexOf(0, pos));
  }

  string(tag: number): string | undefined {
    const b = this.stringBytes(tag);
    return b === undefined ? undefined : decodeRpmText(b);
  }

  /** STRING_ARRAY (all elements), I18NSTRING (the first, C locale, translation only) or STRING (one element). */
  strings(tag: number): string[] | undefined {
    const e = this.#byTag.get(tag);
    if (e && e.type === RPM_I18NSTRING_TYPE) return [this.string(tag)!];
    return this.stringsBytes(tag)?.map(decodeRpmText);
  }

  /** Values of a CHAR, INT8, INT16, INT32 or INT64 entry (unsigned, as rpmtdGetNumber reads them). */
  numbers(tag: number): number[] | undefined {
    const e = this.#byTag.get(tag);
    if (!e) return undefined;
    const size = e.type >= RPM_CHAR_TYPE && e.type <= RPM_INT64_TYPE ? TYPE_SIZE[e.type]! : 0;
    if (!size) throw this.#bad(tag, `type ${e.type} is not an integer type`);
    const v = this.#view;
    const base = this.#dataStart + e.offset;
    const out = new Array<number>(e.count); // count * size was checked against the data store
    for (let i = 0; i < e.count; i++) {
      const p = base + i * size;
      if (size === 1) out[i] = v.getUint8(p);
      else if (size === 2) out[i] = v.getUint16(p);
      else if (size === 4) out[i] = v.getUint32(p);
      else {
        const big = v.getBigUint64(p);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw this.#bad(tag, `64-bit value ${big} is too large`);
        out[i] = Number(big);
      }
    }
    return out;
  }

  number(tag: number): number | undefined {
    const e = this.#byTag.get(tag);
    if (!e) return undefined;
    return this.numbers(tag)![0];
  }

  binary(tag: number): Uint8Array | undefined {
    const e = this.#byTag.get(tag);
    if (!e) return undefined;
    if (e.type !== RPM_BIN_TYPE && e.type !== RPM_CHAR_TYPE && e.type !== RPM_INT8_TYPE) {
      throw this.#bad(tag, `type ${e.type} is not binary`);
    }
    const p = this.#dataStart + e.offset;
    return this.raw.subarray(p, p + e.count);
  }
}

async function readAt(src: ByteSource, offset: number, length: number, what: string): Promise<Uint8Array> {
  if (offset + length > src.size) {
    throw new WharfError('RPM_TRUNCATED', [`${what} needs bytes ${offset}-${offset + length} but the file has ${src.size} bytes`]);
  }
  return src.read(offset, length);
}

function be32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

function toInt32(n: number): number {
  return n | 0;
}

/** An index entry as error messages name it. */
function entryLabel(i: number, e: { tag: number; type: number; offset: number; count: number }): string {
  return `index entry ${i} (tag ${e.tag} type ${e.type} offset ${e.offset} count ${e.count})`;
}

/**
 * Validates the index and data store of one header blob (`raw` = magic, il, dl, index, store) as rpm's hdrblobInit
 * does, and returns the entries.
 */
export function parseHeaderBlob(raw: Uint8Array, kind: 'signature' | 'main', exactSize: boolean): RpmHeader {
  const bad = (msg: string) => new WharfError('RPM_BAD_HEADER', [`${kind} header: ${msg}`]);
  const il = be32(raw, 8);
  const dl = be32(raw, 12);
  if (raw.byteLength !== 16 + 16 * il + dl) throw bad(`blob size ${raw.byteLength} does not match il ${il} and dl ${dl}`);
  const dataStart = 16 + 16 * il;
  const entryAt = (i: number) => {
    const p = 16 + 16 * i;
    return { tag: be32(raw, p), type: be32(raw, p + 4), offset: toInt32(be32(raw, p + 8)), count: be32(raw, p + 12) };
  };
  const wantRegion = kind === 'signature' ? RPMTAG_HEADERSIGNATURES : RPMTAG_HEADERIMMUTABLE;

  // hdrblobVerifyRegion
  if (il < 1) throw bad('region: no tags');
  let regionTag = 0;
  let rdl = 0;
  const first = entryAt(0);
  if (first.tag === wantRegion) {
    if (first.type !== RPM_BIN_TYPE || first.count !== REGION_TAG_COUNT) {
      throw bad(`region tag ${first.tag} has type ${first.type} count ${first.count}, expected type ${RPM_BIN_TYPE} count 16`);
    }
    if (first.offset < 0 || first.offset + REGION_TAG_COUNT > dl) {
      throw bad(`region tag ${first.tag} trailer offset ${first.offset} beyond data size ${dl}`);
    }
    const tp = dataStart + first.offset;
    let ttag = be32(raw, tp);
    const ttype = be32(raw, tp + 4);
    const toff = -toInt32(be32(raw, tp + 8));
    const tcount = be32(raw, tp + 12);
    if (wantRegion === RPMTAG_HEADERSIGNATURES && ttag === RPMTAG_HEADERIMAGE) ttag = RPMTAG_HEADERSIGNATURES;
    if (ttag !== wantRegion || ttype !== RPM_BIN_TYPE || tcount !== REGION_TAG_COUNT) {
      throw bad(`region trailer has tag ${ttag} type ${ttype} count ${tcount}, expected tag ${wantRegion} type 7 count 16`);
    }
    rdl = first.offset + REGION_TAG_COUNT;
    const ril = Math.trunc(toff / 16);
    if (toff % 16 !== 0 || ril < 0 || ril > il || rdl > dl) {
      throw bad(`region size: trailer offset ${-toff} gives ril ${ril} (il ${il}), rdl ${rdl} (dl ${dl})`);
    }
    if (exactSize && !(il === ril && dl === rdl)) {
      throw bad(`region covers ${ril} of ${il} entries and ${rdl} of ${dl} data bytes; in a package file it must cover the whole header`);
    }
    regionTag = wantRegion;
  }

  // hdrblobVerifyInfo
  const typechk = regionTag === RPMTAG_HEADERIMMUTABLE;
  const entries: RpmHeaderEntry[] = [];
  if (regionTag) entries.push({ ...first, length: REGION_TAG_COUNT });
  let end = 0;
  for (let i = regionTag ? 1 : 0; i < il; i++) {
    const e = entryAt(i);
    if (end > e.offset) throw bad(`${entryLabel(i, e)}: data overlaps the previous entry's data (ends at ${end})`);
    if (e.tag < HEADER_I18NTABLE) throw bad(`${entryLabel(i, e)}: invalid tag number ${e.tag}`);
    if (e.type > RPM_I18NSTRING_TYPE) throw bad(`${entryLabel(i, e)}: invalid type ${e.type}`);
    if (e.count < 1 || e.count > dl) throw bad(`${entryLabel(i, e)}: count ${e.count} out of range 1-${dl}`);
    if (e.offset & (TYPE_ALIGN[e.type]! - 1)) throw bad(`${entryLabel(i, e)}: offset ${e.offset} not aligned to ${TYPE_ALIGN[e.type]} bytes`);
    if (e.offset > dl) throw bad(`${entryLabel(i, e)}: offset ${e.offset} beyond data size ${dl}`);
    if (e.type !== RPM_BIN_TYPE && e.count > HEADER_ARRAY_MAX) throw bad(`${entryLabel(i, e)}: count ${e.count} exceeds ${HEADER_ARRAY_MAX}`);
    if (typechk) {
      const want = KNOWN_TAG_TYPES.get(e.tag);
      if (want !== undefined && (want === S ? !isStringType(e.type) : want !== e.type)) {
        throw bad(`${entryLabel(i, e)}: tag ${e.tag} must have ${want === S ? 'a string type' : `type ${want}`}`);
      }
    }
    let len: number;
    const p = dataStart + e.offset;
    const storeEnd = dataStart + dl;
    if (isStringType(e.type)) {
      if (e.type === RPM_STRING_TYPE && e.count !== 1) throw bad(`${entryLabel(i, e)}: a STRING entry must have count 1`);
      let pos = p;
      for (let n = 0; n < e.count; n++) {
        const nul = pos < storeEnd ? raw.indexOf(0, pos) : -1;
        if (nul < 0 || nul >= storeEnd) throw bad(`${entryLabel(i, e)}: string ${n} is not NUL-terminated within the data (size ${dl})`);
        pos = nul + 1;
      }
      len = pos - p;
    } else {
      len = TYPE_SIZE[e.type]! * e.count;
      if (len > dl - e.offset) throw bad(`${entryLabel(i, e)}: ${len} data bytes do not fit in data size ${dl}`);
    }
    if (len <= 0) throw bad(`${entryLabel(i, e)}: no data`);
    end = e.offset + len;
    if (regionTag && end > rdl - REGION_TAG_COUNT && e.offset < rdl) throw bad(`${entryLabel(i, e)}: data overlaps the region trailer`);
    entries.push({ tag: e.tag, type: e.type, offset: e.offset, count: e.count, length: len });
  }
  return new RpmHeader(raw, kind, entries, regionTag);
}

async function readHeaderAt(
  src: ByteSource, start: number, kind: 'signature' | 'main', maxIl: number, maxDl: number, exactSize: boolean, maxDlSource?: string,
): Promise<RpmHeader> {
  const intro = await readAt(src, start, 16, `the ${kind} header intro`);
  for (let i = 0; i < 8; i++) {
    if (intro[i] !== HEADER_MAGIC[i]) {
      throw new WharfError('RPM_BAD_HEADER', [`${kind} header at offset ${start}: bad magic (expected 8E AD E8 01 00 00 00 00)`]);
    }
  }
  const il = be32(intro, 8);
  const dl = be32(intro, 12);
  if (il > maxIl) throw new WharfError('RPM_HEADER_TOO_LARGE', [`${kind} header has ${il} index entries (limit ${maxIl})`]);
  if (dl > maxDl) throw new WharfError('RPM_HEADER_TOO_LARGE', [`${kind} header has ${dl} data bytes (limit ${maxDl}${maxDlSource ? `, ${maxDlSource}` : ''})`]);
  if (8 + 16 * il + dl >= HEADER_MAX_BYTES) {
    throw new WharfError('RPM_HEADER_TOO_LARGE', [`${kind} header is ${8 + 16 * il + dl} bytes (limit ${HEADER_MAX_BYTES})`]);
  }
  const total = 16 + 16 * il + dl;
  const raw = await readAt(src, start, total, `the ${kind} header (${il} entries, ${dl} data bytes)`);
  // Own copy: the source may reuse its buffer, and `raw` must stay the exact header bytes.
  return parseHeaderBlob(new Uint8Array(raw), kind, exactSize);
}

/** Reads and validates the lead and both headers of an RPM file. */
export async function readRpm(src: ByteSource, limits: RpmReadLimits = {}): Promise<RpmFile> {
  const lim = { ...DEFAULT_RPM_LIMITS, ...limits };
  if (src.size < 4) throw new WharfError('RPM_NOT_RPM', [`the file is only ${src.size} bytes long`]);
  const magic = await src.read(0, 4);
  if (!LEAD_MAGIC.every((b, i) => magic[i] === b)) throw new WharfError('RPM_NOT_RPM', ['no RPM lead magic (ED AB EE DB) at the start']);
  const lead = new Uint8Array(await readAt(src, 0, RPM_LEAD_SIZE, 'the lead'));
  const major = lead[4]!;
  if (major < 3 || major > 4) throw new WharfError('RPM_BAD_HEADER', [`lead: unsupported RPM package version ${major}`]);
  const sigType = (lead[78]! << 8) | lead[79]!;
  if (sigType !== 5) throw new WharfError('RPM_BAD_HEADER', [`lead: illegal signature type ${sigType} (expected 5)`]);

  const signature = await readHeaderAt(src, RPM_LEAD_SIZE, 'signature', lim.maxSignatureEntries, lim.maxSignatureData, false);
  const sigDl = be32(signature.raw, 12);
  const sigEnd = RPM_LEAD_SIZE + signature.raw.byteLength + ((8 - (sigDl % 8)) % 8);
  if (sigEnd > src.size) throw new WharfError('RPM_TRUNCATED', [`the signature header padding ends at ${sigEnd} but the file has ${src.size} bytes`]);
  const header = await readHeaderAt(src, sigEnd, 'main', lim.maxHeaderEntries, lim.maxHeaderData, true, limits.maxHeaderDataSource);
  const headerEnd = sigEnd + header.raw.byteLength;
  return {
    lead,
    signature,
    header,
    signatureRange: { start: RPM_LEAD_SIZE, end: sigEnd },
    headerRange: { start: sigEnd, end: headerEnd },
    payloadOffset: headerEnd,
  };
}
