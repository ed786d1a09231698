// RPM package signing, like `rpmsign --addsign` of rpm 4.18 (sign/rpmgensig.c) on a v4 package: a header-only OpenPGP
// signature over the main header blob goes into the signature header, the rest of the file stays byte for byte.
//
// Only the lead, the signature header and the main header are read (a few KiB to a few MiB); the payload is never
// touched, so the caller writes the signed file as
//   lead (bytes 0..95 of the original) + result.signatureHeader + original bytes from result.headerStart to the end.
//
// What rpm 4.18 does and this module copies:
// - the signature is header-only: RSA => RSAHEADER (268), DSA/EdDSA => DSAHEADER (267), type BIN, the bare binary
//   signature packet. The signed bytes are the main header exactly as stored (magic, reserved, il, dl, index, data),
//   which is what rpm hashes when it verifies (lib/package.c updateHdrDigests).
// - every existing OpenPGP signature is removed first (deleteSigs: 267, 268, 1002 PGP, 1005 GPG, 1006 PGP5), so
//   re-signing replaces the packager's (or an earlier Wharf) signature: rpm 4.18 keeps exactly one signature.
//   rpm >= 4.20/6.0 OPENPGP (278) multi-signature entries are unknown to rpm 4.18's rpmsign and kept as they are.
// - everything else is kept unchanged: SHA256 (273), SHA1 (269), MD5 (1004), SIZE (1000), PAYLOADSIZE (1007),
//   LONGSIZE/LONGARCHIVESIZE (270/271), file signatures... None of them covers the signature header itself, so
//   their digests stay valid.
// - RESERVEDSPACE (1008), when present, is shrunk (or grown) by the change in size so that the signature header keeps
//   its size; when it cannot absorb the growth, it is kept unchanged and the header grows (rpm does the same).
// - the header is rebuilt as rpm's headerReload + headerExport do: region entry (tag 62, BIN, count 16) first, the
//   other entries sorted by tag, data in tag order aligned per type (INT16 2, INT32 4, INT64 8), the 16-byte region
//   trailer {62, BIN, -(il*16), 16} at the end of the data, then zero padding to a multiple of 8.
//
// - packages without PAYLOADDIGEST (5092/5097), i.e. built by rpm < 4.14, also get a header+payload signature
//   (PGP 1002 for RSA, GPG 1005 for DSA/EdDSA) over the bytes from the main header to the end of the file, as rpmsign
//   4.18 does: without it rpm 4.18 reports "RSA signature: NOTFOUND" and `--checksig` fails (the payload range has
//   no signature). That signature is made by `sign` too, given a ReadableStream that reads the file in 1 MiB chunks
//   (the only case where the payload is read). `result.payloadDigest` says whether the package has a payload digest.
//
// Differences from rpmsign, on purpose:
// - rpmsign skips a package that already has a signature with the same parameters and key ID; signRpm always
//   re-signs (the new signature replaces the old one).
// - rpmsign verifies every digest (including the payload's) before signing; signRpm checks the header digests
//   (SHA256 273 / SHA1 269) that the signature vouches for, and the structure of both headers.

import { createHash } from 'node:crypto';
import type { ByteSource } from '../byte-source.ts';
import { bufferSource } from '../byte-source.ts';
import { WharfError } from '../../errors.ts';

export type RpmSignatureAlgorithm = 'rsa' | 'eddsa';

/**
 * Signs the main header blob; returns one binary OpenPGP v4 signature packet (e.g. SigningKey.detachSignBinaryPacket).
 * For packages without a payload digest it is also called with a ReadableStream of header + payload (see above).
 */
export type RpmHeaderSigner = (data: Uint8Array | ReadableStream<Uint8Array>) => Promise<Uint8Array>;

export interface SignRpmResult {
  /** The new signature header: magic, il, dl, index, data and the zero padding to a multiple of 8. */
  signatureHeader: Uint8Array;
  /** Offset of the main header in the original file (= 96 + size of the original padded signature header). */
  headerStart: number;
  /** End of the main header in the original file (start of the payload). */
  headerEnd: number;
  /** Size of the original padded signature header; the signed file is `signatureHeader.length - oldSignatureHeaderSize` bytes larger. */
  oldSignatureHeaderSize: number;
  /** Size of the signed file: 96 + signatureHeader.length + (original size - headerStart). */
  signedSize: number;
  /** The signature tag written: 268 (RSAHEADER) or 267 (DSAHEADER). */
  signatureTag: number;
  /** The header+payload signature tag written (1002 PGP or 1005 GPG) for packages without payload digest, else undefined. */
  payloadSignatureTag?: number;
  /** Signature tags that were removed (existing signatures replaced). */
  removedTags: number[];
  /** False for packages without PAYLOADDIGEST (built by rpm < 4.14); see the module comment. */
  payloadDigest: boolean;
}

// Tags and types (rpm include/rpm/rpmtag.h, lib/signature.h).
const TAG_HEADERIMAGE = 61;
const TAG_HEADERSIGNATURES = 62;
const TAG_HEADERIMMUTABLE = 63;
const SIGTAG_DSA = 267;
const SIGTAG_RSA = 268;
const SIGTAG_SHA1 = 269;
const SIGTAG_SHA256 = 273;
const SIGTAG_PGP = 1002;
const SIGTAG_GPG = 1005;
const SIGTAG_PGP5 = 1006;
const SIGTAG_RESERVEDSPACE = 1008;
const TAG_PAYLOADDIGEST = 5092;
const TAG_PAYLOADDIGESTALT = 5097;
/** rpm 4.18 sign/rpmgensig.c deleteSigs(). */
const DELETED_SIGNATURE_TAGS: readonly number[] = [SIGTAG_GPG, SIGTAG_PGP, SIGTAG_DSA, SIGTAG_RSA, SIGTAG_PGP5];

const T_NULL = 0;
const T_CHAR = 1;
const T_INT8 = 2;
const T_INT16 = 3;
const T_INT32 = 4;
const T_INT64 = 5;
const T_STRING = 6;
const T_BIN = 7;
const T_STRING_ARRAY = 8;
const T_I18NSTRING = 9;

const LEAD_SIZE = 96;
const HEADER_MAGIC = [0x8e, 0xad, 0xe8, 0x01, 0x00, 0x00, 0x00, 0x00];
const LEAD_MAGIC = [0xed, 0xab, 0xee, 0xdb];
const SIG_IL_MAX = 32;
const SIG_DL_MAX = 64 * 1024 * 1024;
const MAIN_IL_MAX = 0xffff;
const MAIN_DL_MAX = 256 * 1024 * 1024;

/** PGP public-key algorithm ids (RFC 4880 9.1). */
const PUBKEY_RSA = 1;
const PUBKEY_DSA = 17;
const PUBKEY_EDDSA = 22;

interface RawEntry {
  tag: number;
  type: number;
  count: number;
  /** The entry's data bytes as stored (big-endian). */
  data: Uint8Array;
}

interface ParsedHeader {
  il: number;
  dl: number;
  /** Bytes of magic + il/dl + index + data (no padding). */
  size: number;
  /** Entries outside the region entry, in index order (dribbles after region entries). */
  entries: RawEntry[];
  /** The region tag (61, 62 or 63) of the first entry, or 0 when the header has no region. */
  regionTag: number;
}

/** A package that cannot be signed because it is malformed or corrupt. */
function bad(msg: string, code: 'RPM_BAD_HEADER' | 'RPM_TRUNCATED' | 'RPM_NOT_RPM' = 'RPM_BAD_HEADER'): WharfError {
  return new WharfError(code, [`cannot sign the RPM package: ${msg}`]);
}

function be32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

function bei32(b: Uint8Array, off: number): number {
  return be32(b, off) | 0;
}

function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 24) & 0xff;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

function typeSize(type: number): number {
  switch (type) {
    case T_NULL:
      return 0;
    case T_CHAR:
    case T_INT8:
    case T_BIN:
      return 1;
    case T_INT16:
      return 2;
    case T_INT32:
      return 4;
    case T_INT64:
      return 8;
    default:
      return -1; // strings
  }
}

/** Bytes to add before data of `type` at data offset `off` (rpm lib/header.c alignDiff). */
function alignPad(type: number, off: number): number {
  const size = typeSize(type);
  if (size > 1) {
    const r = off % size;
    if (r !== 0) return size - r;
  }
  return 0;
}

/** Length of the entry's data at `off` in `store` (rpm lib/header.c dataLength), or -1 when it does not fit. */
function dataLength(type: number, count: number, store: Uint8Array, off: number): number {
  const size = typeSize(type);
  if (size >= 0) {
    const len = size * count;
    return off + len <= store.length ? len : -1;
  }
  if (type !== T_STRING && type !== T_STRING_ARRAY && type !== T_I18NSTRING) return -1;
  if (type === T_STRING && count !== 1) return -1;
  let p = off;
  for (let i = 0; i < count; i++) {
    const nul = store.indexOf(0, p);
    if (nul < 0) return -1;
    p = nul + 1;
  }
  return p - off;
}

/**
 * Parse a header blob (`blob` starts with the 8-byte magic and holds at least 16 + 16*il + dl bytes).
 * Checks what rpm's hdrblobVerifyInfo/hdrblobVerifyRegion check that matters for rewriting it.
 */
function parseHeader(blob: Uint8Array, what: string): ParsedHeader {
  for (let i = 0; i < 8; i++) if (blob[i] !== HEADER_MAGIC[i]) throw bad(`bad ${what} header magic`);
  const il = be32(blob, 8);
  const dl = be32(blob, 12);
  const size = 16 + 16 * il + dl;
  if (il < 1 || blob.length < size) throw bad(`truncated ${what} header`, 'RPM_TRUNCATED');
  const store = blob.subarray(16 + 16 * il, size);
  const index = (i: number) => ({
    tag: be32(blob, 16 + 16 * i),
    type: be32(blob, 20 + 16 * i),
    offset: bei32(blob, 24 + 16 * i),
    count: be32(blob, 28 + 16 * i),
  });
  const first = index(0);
  let regionTag = 0;
  let ril = 0;
  if (first.tag === TAG_HEADERSIGNATURES || first.tag === TAG_HEADERIMMUTABLE || first.tag === TAG_HEADERIMAGE) {
    if (first.type !== T_BIN || first.count !== 16 || first.offset < 0 || first.offset + 16 > dl) throw bad(`bad ${what} header region tag`);
    const trailerTag = be32(store, first.offset);
    const trailerOffset = -bei32(store, first.offset + 8);
    const okTag = trailerTag === first.tag || (first.tag === TAG_HEADERSIGNATURES && trailerTag === TAG_HEADERIMAGE);
    if (!okTag || be32(store, first.offset + 4) !== T_BIN || be32(store, first.offset + 12) !== 16 || trailerOffset % 16 !== 0) {
      throw bad(`bad ${what} header region trailer`);
    }
    ril = trailerOffset / 16;
    if (ril < 1 || ril > il) throw bad(`bad ${what} header region size`);
    regionTag = first.tag;
  }
  const entries: RawEntry[] = [];
  const start = regionTag ? 1 : 0;
  for (let i = start; i < il; i++) {
    const e = index(i);
    if (e.type > T_I18NSTRING || e.type === T_NULL) throw bad(`${what} header entry ${i} (tag ${e.tag}) has type ${e.type}`);
    if (e.offset < 0 || e.offset > dl || e.count === 0 || e.count > dl) throw bad(`${what} header entry ${i} (tag ${e.tag}) is out of range`);
    if (alignPad(e.type, e.offset) !== 0) throw bad(`${what} header entry ${i} (tag ${e.tag}) is misaligned`);
    const len = dataLength(e.type, e.count, store, e.offset);
    if (len <= 0 || e.offset + len > dl) throw bad(`${what} header entry ${i} (tag ${e.tag}) does not fit`);
    if (regionTag && e.offset < first.offset + 16 && e.offset + len > first.offset) throw bad(`${what} header entry ${i} overlaps the region trailer`);
    entries.push({ tag: e.tag, type: e.type, count: e.count, data: store.subarray(e.offset, e.offset + len) });
  }
  return { il, dl, size, entries, regionTag };
}

/** Layout of a rebuilt signature header: returns its total size including padding, and writes it when `out` is given. */
function layout(entries: readonly RawEntry[], out?: Uint8Array): { il: number; dl: number; total: number } {
  const il = entries.length + 1;
  let dl = 0;
  for (const e of entries) {
    dl += alignPad(e.type, dl);
    dl += e.data.length;
  }
  const trailerOffset = dl;
  dl += 16;
  const total = 16 + 16 * il + dl + ((8 - (dl % 8)) % 8);
  if (out) {
    out.set(HEADER_MAGIC, 0);
    put32(out, 8, il);
    put32(out, 12, dl);
    const indexStart = 16;
    const dataStart = 16 + 16 * il;
    // Region entry: tag 62, BIN, offset of the trailer, count 16.
    put32(out, indexStart, TAG_HEADERSIGNATURES);
    put32(out, indexStart + 4, T_BIN);
    put32(out, indexStart + 8, trailerOffset);
    put32(out, indexStart + 12, 16);
    let off = 0;
    entries.forEach((e, i) => {
      off += alignPad(e.type, off); // the buffer is zero-filled
      const p = indexStart + 16 * (i + 1);
      put32(out, p, e.tag);
      put32(out, p + 4, e.type);
      put32(out, p + 8, off);
      put32(out, p + 12, e.count);
      out.set(e.data, dataStart + off);
      off += e.data.length;
    });
    // Trailer: {62, BIN, -(il * 16), 16}.
    const t = dataStart + trailerOffset;
    put32(out, t, TAG_HEADERSIGNATURES);
    put32(out, t + 4, T_BIN);
    put32(out, t + 8, -(il * 16));
    put32(out, t + 12, 16);
  }
  return { il, dl, total };
}

interface SignaturePacketInfo {
  pubkeyAlgo: number;
  hashAlgo: number;
  sigType: number;
  hasIssuer: boolean;
}

/** Minimal parse of one binary OpenPGP signature packet (RFC 4880 5.2.3), as rpm's pgpPrtParams would accept it. */
function inspectSignaturePacket(pkt: Uint8Array): SignaturePacketInfo {
  const fail = (m: string) => new WharfError('INTERNAL', [], { reason: `the RPM header signature is not usable: ${m}` });
  if (pkt.length < 2 || (pkt[0]! & 0x80) === 0) throw fail('not an OpenPGP packet');
  let tag: number;
  let bodyStart: number;
  let bodyLen: number;
  if (pkt[0]! & 0x40) {
    tag = pkt[0]! & 0x3f;
    const l0 = pkt[1]!;
    if (l0 < 192) {
      bodyLen = l0;
      bodyStart = 2;
    } else if (l0 < 224) {
      bodyLen = ((l0 - 192) << 8) + pkt[2]! + 192;
      bodyStart = 3;
    } else if (l0 === 255) {
      bodyLen = be32(pkt, 2);
      bodyStart = 6;
    } else throw fail('partial body length');
  } else {
    tag = (pkt[0]! >> 2) & 0x0f;
    const lt = pkt[0]! & 3;
    if (lt === 0) {
      bodyLen = pkt[1]!;
      bodyStart = 2;
    } else if (lt === 1) {
      bodyLen = (pkt[1]! << 8) | pkt[2]!;
      bodyStart = 3;
    } else if (lt === 2) {
      bodyLen = be32(pkt, 1);
      bodyStart = 5;
    } else throw fail('indeterminate length');
  }
  if (tag !== 2) throw fail(`packet tag ${tag} is not a signature`);
  if (bodyStart + bodyLen !== pkt.length) throw fail('expected exactly one signature packet');
  const b = pkt.subarray(bodyStart);
  if (b[0] !== 4) throw fail(`signature version ${b[0]} (rpm 4.18 needs v4)`);
  const sigType = b[1]!;
  const pubkeyAlgo = b[2]!;
  const hashAlgo = b[3]!;
  let hasIssuer = false;
  let p = 4;
  for (let area = 0; area < 2; area++) {
    const n = (b[p]! << 8) | b[p + 1]!;
    p += 2;
    const end = p + n;
    if (end > b.length) throw fail('truncated subpackets');
    while (p < end) {
      let len = b[p]!;
      if (len < 192) p += 1;
      else if (len < 255) {
        len = ((len - 192) << 8) + b[p + 1]! + 192;
        p += 2;
      } else {
        len = be32(b, p + 1);
        p += 5;
      }
      const st = b[p]! & 0x7f;
      if (st === 16 || st === 33) hasIssuer = true;
      p += len;
    }
    if (p !== end) throw fail('bad subpacket lengths');
  }
  return { pubkeyAlgo, hashAlgo, sigType, hasIssuer };
}

const CHUNK = 1024 * 1024;

/** The bytes [start, end) of `src` as a pull stream of chunks of at most 1 MiB. */
function rangeStream(src: ByteSource, start: number, end: number): ReadableStream<Uint8Array> {
  let pos = start;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pos >= end) {
        controller.close();
        return;
      }
      const n = Math.min(CHUNK, end - pos);
      const chunk = await src.read(pos, n);
      pos += n;
      // Copy: a ByteSource may hand out views of a buffer it reuses.
      controller.enqueue(Uint8Array.from(chunk));
    },
  });
}

function stringValue(e: RawEntry | undefined): string | undefined {
  if (!e || e.type !== T_STRING) return undefined;
  return new TextDecoder('latin1').decode(e.data.subarray(0, e.data.length - 1));
}

/**
 * Sign an RPM package like `rpmsign --addsign` (rpm 4.18) and return the new signature header.
 * `sign` receives the main header blob as stored and must return one binary v4 OpenPGP signature packet made with an
 * RSA (`algorithm: 'rsa'`) or EdDSA (`'eddsa'`) key; the issuer key ID or fingerprint subpacket is required by rpm.
 */
export async function signRpm(rpm: Uint8Array | ByteSource, sign: RpmHeaderSigner, algorithm: RpmSignatureAlgorithm): Promise<SignRpmResult> {
  const src: ByteSource = rpm instanceof Uint8Array ? bufferSource(rpm) : rpm;
  const size = src.size;
  const read = async (offset: number, length: number, what: string): Promise<Uint8Array> => {
    if (offset + length > size) throw bad(`the file is truncated (${what})`, 'RPM_TRUNCATED');
    return src.read(offset, length);
  };

  // Lead: only the magic is checked (as rpm 4.18 does).
  if (size < LEAD_SIZE + 16) throw bad('the file is too short to be an RPM package', 'RPM_TRUNCATED');
  const lead = await read(0, 4, 'lead');
  for (let i = 0; i < 4; i++) if (lead[i] !== LEAD_MAGIC[i]) throw bad('not an RPM package (bad lead magic)', 'RPM_NOT_RPM');

  // Signature header.
  const sigIntro = await read(LEAD_SIZE, 16, 'signature header');
  const sigIl = be32(sigIntro, 8);
  const sigDl = be32(sigIntro, 12);
  if (sigIl < 1 || sigIl > SIG_IL_MAX || sigDl > SIG_DL_MAX) throw bad(`signature header sizes out of range (il ${sigIl}, dl ${sigDl})`);
  const sigSize = 16 + 16 * sigIl + sigDl;
  const oldSignatureHeaderSize = sigSize + ((8 - (sigDl % 8)) % 8);
  const sigBlob = await read(LEAD_SIZE, sigSize, 'signature header');
  const sig = parseHeader(sigBlob, 'signature');
  if (sig.regionTag !== 0 && sig.regionTag !== TAG_HEADERSIGNATURES) throw bad(`signature header region tag ${sig.regionTag}`);

  // Main header.
  const headerStart = LEAD_SIZE + oldSignatureHeaderSize;
  const hIntro = await read(headerStart, 16, 'header');
  const hIl = be32(hIntro, 8);
  const hDl = be32(hIntro, 12);
  if (hIl < 1 || hIl > MAIN_IL_MAX || hDl > MAIN_DL_MAX) throw bad(`header sizes out of range (il ${hIl}, dl ${hDl})`);
  const headerSize = 16 + 16 * hIl + hDl;
  const headerBytes = await read(headerStart, headerSize, 'header');
  const main = parseHeader(headerBytes, 'main');
  if (main.regionTag !== TAG_HEADERIMMUTABLE) {
    throw new WharfError('UNSUPPORTED_PACKAGE', ['cannot sign RPM v3 packages (the header has no immutable region): rebuild the package with rpm 4.x, or create the repository with --no-package-signing']);
  }
  const payloadDigest = main.entries.some((e) => e.tag === TAG_PAYLOADDIGEST || e.tag === TAG_PAYLOADDIGESTALT);

  // Signature header entries: a dribble entry (after the region) replaces an earlier entry with the same tag.
  const byTag = new Map<number, RawEntry>();
  for (const e of sig.entries) byTag.set(e.tag, e);

  // The signature vouches for the header: make sure its digests match it (rpmsign refuses corrupt packages).
  const sha256 = stringValue(byTag.get(SIGTAG_SHA256));
  if (sha256 !== undefined && sha256 !== createHash('sha256').update(headerBytes).digest('hex')) throw bad('the header SHA256 digest does not match (corrupt package)');
  const sha1 = stringValue(byTag.get(SIGTAG_SHA1));
  if (sha1 !== undefined && sha1 !== createHash('sha1').update(headerBytes).digest('hex')) throw bad('the header SHA1 digest does not match (corrupt package)');

  // Sign.
  const check = (packet: Uint8Array): SignaturePacketInfo => {
    const info = inspectSignaturePacket(packet);
    const expectAlgo = algorithm === 'rsa' ? [PUBKEY_RSA] : [PUBKEY_EDDSA, PUBKEY_DSA];
    if (!expectAlgo.includes(info.pubkeyAlgo)) {
      throw new WharfError('INTERNAL', [], { reason: `the signature uses public-key algorithm ${info.pubkeyAlgo}, not ${algorithm}` });
    }
    if (info.sigType !== 0x00) throw new WharfError('INTERNAL', [], { reason: `signature type 0x${info.sigType.toString(16)} is not a binary-document signature` });
    if (![8, 9, 10, 11].includes(info.hashAlgo)) throw new WharfError('INTERNAL', [], { reason: `signature digest algorithm ${info.hashAlgo} is not SHA-2` });
    if (!info.hasIssuer) throw new WharfError('INTERNAL', [], { reason: 'the signature has no issuer subpacket (rpm cannot find its key)' });
    return info;
  };
  const packet = await sign(headerBytes);
  const info = check(packet);
  const rsa = info.pubkeyAlgo === PUBKEY_RSA;
  const signatureTag = rsa ? SIGTAG_RSA : SIGTAG_DSA;
  let payloadPacket: Uint8Array | undefined;
  let payloadSignatureTag: number | undefined;
  if (!payloadDigest) {
    payloadPacket = await sign(rangeStream(src, headerStart, size));
    if (check(payloadPacket).pubkeyAlgo !== info.pubkeyAlgo) throw new WharfError('INTERNAL', [], { reason: 'the two signatures use different keys' });
    payloadSignatureTag = rsa ? SIGTAG_PGP : SIGTAG_GPG;
  }

  const removedTags: number[] = [];
  for (const t of DELETED_SIGNATURE_TAGS) if (byTag.delete(t)) removedTags.push(t);
  removedTags.sort((a, b) => a - b);
  byTag.set(signatureTag, { tag: signatureTag, type: T_BIN, count: packet.length, data: packet });
  if (payloadPacket && payloadSignatureTag) {
    byTag.set(payloadSignatureTag, { tag: payloadSignatureTag, type: T_BIN, count: payloadPacket.length, data: payloadPacket });
  }

  const sorted = () => [...byTag.values()].sort((a, b) => a.tag - b.tag);
  let entries = sorted();
  if (entries.length + 1 > SIG_IL_MAX) throw bad(`the signature header would have more than ${SIG_IL_MAX} entries`);

  // Keep the signature header's size by resizing RESERVEDSPACE (zero-filled, as rpm writes it). Aim for the same
  // 16*il + dl as before so the padding is unchanged too; keep the entry as is when it cannot absorb the growth.
  const reserved = byTag.get(SIGTAG_RESERVEDSPACE);
  if (reserved && reserved.type === T_BIN) {
    const target = 16 * sig.il + sig.dl;
    let count = reserved.count;
    for (let attempt = 0; attempt < 4; attempt++) {
      const { il, dl } = layout(entries);
      const diff = 16 * il + dl - target;
      if (diff === 0) break;
      count -= diff;
      if (count <= 0) break;
      byTag.set(SIGTAG_RESERVEDSPACE, { tag: SIGTAG_RESERVEDSPACE, type: T_BIN, count, data: new Uint8Array(count) });
      entries = sorted();
    }
    const { il, dl } = layout(entries);
    if (count <= 0 || 16 * il + dl !== target) {
      byTag.set(SIGTAG_RESERVEDSPACE, reserved);
      entries = sorted();
    }
  }

  const { total } = layout(entries);
  const signatureHeader = new Uint8Array(total);
  const { il: newIl, dl: newDl } = layout(entries, signatureHeader);
  if (newDl > SIG_DL_MAX) throw bad('the signature header would be too large');
  void newIl;

  return {
    signatureHeader,
    headerStart,
    headerEnd: headerStart + headerSize,
    oldSignatureHeaderSize,
    signedSize: LEAD_SIZE + total + (size - headerStart),
    signatureTag,
    ...(payloadSignatureTag ? { payloadSignatureTag } : {}),
    removedTags,
    payloadDigest,
  };
}
