// OpenPGP v4 signature packets made with Node's own RSA (OpenSSL) instead of openpgp.js, which converts the key
// again for every signature. A publish signs two or three times and every RPM upload once: this is a hot path.
// The packet is what openpgp.js and gpg write: version 4, SHA-512, a hashed creation time and issuer fingerprint,
// an unhashed issuer key ID. Only the signing itself is native; keys are still made and stored by openpgp.js.
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';

const HASH_SHA512 = 10;
const PUBKEY_RSA = 1;

export interface RsaKeyParams {
  readonly n: Uint8Array;
  readonly e: Uint8Array;
  readonly d: Uint8Array;
  /** OpenPGP's p < q and u = p^-1 mod q */
  readonly p: Uint8Array;
  readonly q: Uint8Array;
}

const big = (b: Uint8Array) => BigInt('0x' + (Buffer.from(b).toString('hex') || '0'));
const b64url = (n: bigint) => {
  let h = n.toString(16);
  if (h.length % 2) h = '0' + h;
  return Buffer.from(h, 'hex').toString('base64url');
};

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [((a % m) + m) % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

/** A native private key from OpenPGP RSA key material. */
export function rsaKeyObject(k: RsaKeyParams): KeyObject {
  const [n, e, d, p, q] = [big(k.n), big(k.e), big(k.d), big(k.p), big(k.q)];
  return createPrivateKey({
    format: 'jwk',
    key: { kty: 'RSA', n: b64url(n), e: b64url(e), d: b64url(d), p: b64url(p), q: b64url(q), dp: b64url(d % (p - 1n)), dq: b64url(d % (q - 1n)), qi: b64url(modInverse(q, p)) },
  });
}

function subpacket(type: number, body: Uint8Array): Uint8Array {
  return Uint8Array.from([body.length + 1, type, ...body]); // bodies here are short: one-octet lengths
}

function packetHeader(tag: number, length: number): Uint8Array {
  const first = 0xc0 | tag;
  if (length < 192) return Uint8Array.from([first, length]);
  if (length < 8384) return Uint8Array.from([first, ((length - 192) >> 8) + 192, (length - 192) & 0xff]);
  return Uint8Array.from([first, 0xff, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff]);
}

/**
 * A binary OpenPGP signature packet over `data` (already canonical: the exact bytes for a binary signature, CRLF
 * text without trailing whitespace for a text signature).
 */
export async function rsaSignaturePacket(opts: {
  key: KeyObject;
  fingerprint: Uint8Array;
  keyId: Uint8Array;
  sigType: 0x00 | 0x01;
  data: Uint8Array;
  created?: Date;
}): Promise<Uint8Array> {
  const seconds = Math.floor((opts.created ?? new Date()).getTime() / 1000);
  const hashedSubpackets = Buffer.concat([
    subpacket(2, Uint8Array.from([seconds >>> 24, (seconds >>> 16) & 0xff, (seconds >>> 8) & 0xff, seconds & 0xff])),
    subpacket(33, Uint8Array.from([4, ...opts.fingerprint])),
  ]);
  const hashed = Buffer.concat([
    Uint8Array.from([4, opts.sigType, PUBKEY_RSA, HASH_SHA512, hashedSubpackets.length >> 8, hashedSubpackets.length & 0xff]),
    hashedSubpackets,
  ]);
  const trailer = Uint8Array.from([4, 0xff, hashed.length >>> 24, (hashed.length >>> 16) & 0xff, (hashed.length >>> 8) & 0xff, hashed.length & 0xff]);
  const input = Buffer.concat([opts.data, hashed, trailer]);
  const left16 = createHash('sha512').update(input).digest().subarray(0, 2);
  // RSASSA-PKCS1-v1_5 over SHA-512 with the DigestInfo prefix: exactly OpenPGP's RSA signature. Runs off the main thread.
  const sig = await new Promise<Buffer>((resolve, reject) => sign('sha512', input, opts.key, (err, s) => (err ? reject(err) : resolve(s))));
  let i = 0;
  while (i < sig.length - 1 && sig[i] === 0) i++;
  const mpi = sig.subarray(i);
  const bits = (mpi.length - 1) * 8 + (32 - Math.clz32(mpi[0]!));
  const unhashed = subpacket(16, opts.keyId);
  const body = Buffer.concat([hashed, Uint8Array.from([0, unhashed.length]), unhashed, left16, Uint8Array.from([bits >> 8, bits & 0xff]), mpi]);
  return Buffer.concat([packetHeader(2, body.length), body]);
}

function crc24(data: Uint8Array): number {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

/** ASCII armor for a signature, as gpg writes it (no armor headers). */
export function armorSignature(packet: Uint8Array): string {
  const b64 = Buffer.from(packet).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  const crc = crc24(packet);
  const crcB64 = Buffer.from([crc >> 16, (crc >> 8) & 0xff, crc & 0xff]).toString('base64');
  return `-----BEGIN PGP SIGNATURE-----\n\n${lines.join('\n')}\n=${crcB64}\n-----END PGP SIGNATURE-----\n`;
}
