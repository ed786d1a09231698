// OpenPGP signing for repository metadata (InRelease, Release.gpg, repomd.xml.asc) with openpgp.js v6.
//
// Key choice: RSA 4096, v4 key format. Every apt/gpgv, rpm and zypper in use verifies RSA; Ed25519 fails on EL7-era rpm
// and gnupg1-based tooling, and v6 keys (RFC 9580) are rejected by rpm 4.18 and gpg 2.2. The primary key carries the
// certify+sign flags and there is no encryption subkey (a repository key never decrypts anything).
//
// The private key is stored armored and encrypted with the passphrase using the classic (gpg 2.2-compatible)
// iterated+salted S2K with the maximum iteration count (65011712 bytes of SHA-256), AES-256 and SHA-1 checksum
// protection (S2K usage 254), so an operator can still `gpg --import` it if they ever need to.
//
// Signatures use SHA-512 (never SHA-1/MD5/RIPEMD160, which apt treats as untrusted).

import * as openpgp from 'openpgp';
import type { KeyObject } from 'node:crypto';
import { armorSignature, rsaKeyObject, rsaSignaturePacket } from './native-rsa.ts';
import { WharfError } from '../errors.ts';

export interface SigningKey {
  /** 40 upper-case hex digits (v4 fingerprint). */
  readonly fingerprint: string;
  /** 16 upper-case hex digits (the long key ID, the last 16 digits of the fingerprint). */
  readonly keyId: string;
  /** ASCII-armored public key (`-----BEGIN PGP PUBLIC KEY BLOCK-----`), for `.asc` keyrings, rpm --import, zypper. */
  readonly armoredPublicKey: string;
  /** Binary OpenPGP public key (what `gpg --dearmor` produces), for apt `.gpg` keyrings. */
  readonly binaryPublicKey: Uint8Array;
  /**
   * Clearsign `text` as an apt InRelease file. The output is byte-for-byte shaped like `gpg --clearsign`:
   * `-----BEGIN PGP SIGNED MESSAGE-----`, a single `Hash: SHA512` armor header, the dash-escaped text, the signature
   * block, and nothing before or after. Line endings of the text must be LF (CRLF is converted to LF).
   *
   * One final newline of `text` becomes the line break before `-----BEGIN PGP SIGNATURE-----` (as gpg does), so a
   * Release file `"A\nB\n"` is signed as the lines `A`, `B`; a verifier recovers `"A\nB"` (RFC 4880 §7.1: the line
   * ending before the signature delimiter is not part of the signed text) and apt parses it exactly like the Release
   * file. Trailing spaces/tabs stay in the body but are excluded from the signature (RFC 4880 §7.1), as gpg does.
   */
  clearsign(text: string): Promise<string>;
  /** Detached binary-mode signature over the exact bytes (strings are UTF-8 encoded), ASCII-armored (Release.gpg, repomd.xml.asc). */
  detachSign(data: Uint8Array | string): Promise<string>;
  /**
   * Detached binary-mode (type 0x00) signature over the exact bytes, unarmored: the bare v4 signature packet
   * (SHA-512, hashed creation-time and issuer-fingerprint subpackets, issuer key ID subpacket), as rpm stores it in
   * the RSAHEADER tag of a package's signature header.
   */
  detachSignBinaryPacket(data: Uint8Array | ReadableStream<Uint8Array>): Promise<Uint8Array>;
}

export interface GeneratedSigningKey {
  /** Armored private key, encrypted with the passphrase. */
  armoredPrivateKey: string;
  armoredPublicKey: string;
  /** 40 upper-case hex digits. */
  fingerprint: string;
}

/** The digest used for every signature Wharf makes. apt, gpgv, rpm and zypper all verify SHA-512. */
const SIGNING_HASH = openpgp.enums.hash.sha512;

/** Settings for every openpgp.js call: v4 keys, SHA-512, no Version/Comment armor headers, gpg-compatible S2K. */
const PGP_CONFIG: openpgp.PartialConfig = {
  v6Keys: false,
  preferredHashAlgorithm: SIGNING_HASH,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  aeadProtect: false,
  s2kType: openpgp.enums.s2k.iterated,
  s2kIterationCountByte: 255,
  showVersion: false,
  showComment: false,
};

const FULL_CONFIG: openpgp.Config = { ...openpgp.config, ...PGP_CONFIG };

function hex(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase();
}

/**
 * Generate a new RSA-4096 v4 signing key. Takes about 0.5-3 s (RSA prime search time varies a lot between runs).
 */
export async function generateSigningKey(opts: {
  userId: { name: string; email?: string };
  passphrase: string;
}): Promise<GeneratedSigningKey> {
  if (!opts.passphrase) throw new WharfError('BAD_REQUEST', ['the signing key passphrase must not be empty']);
  const userId: openpgp.UserID = { name: opts.userId.name };
  if (opts.userId.email) userId.email = opts.userId.email;
  const generated = await openpgp.generateKey({
    type: 'rsa',
    rsaBits: 4096,
    userIDs: [userId],
    passphrase: opts.passphrase,
    subkeys: [],
    format: 'object',
    config: PGP_CONFIG,
  });
  const { privateKey, publicKey } = generated;
  return {
    armoredPrivateKey: privateKey.armor(FULL_CONFIG),
    armoredPublicKey: publicKey.armor(FULL_CONFIG),
    fingerprint: hex(privateKey),
  };
}

/**
 * Read an armored private key and decrypt it with `passphrase`.
 * A wrong passphrase throws WharfError('SIGNING_KEY_LOCKED'); a malformed or unusable key throws SIGNING_KEY_INVALID.
 */
export async function loadSigningKey(armoredPrivateKey: string, passphrase: string): Promise<SigningKey> {
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armoredPrivateKey, config: PGP_CONFIG });
  } catch (e) {
    throw new WharfError('SIGNING_KEY_INVALID', [(e as Error).message]);
  }
  if (!key.isDecrypted()) {
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase, config: PGP_CONFIG });
    } catch (e) {
      const msg = (e as Error).message;
      if (/passphrase/i.test(msg)) throw new WharfError('SIGNING_KEY_LOCKED', [msg.replace(/^Error decrypting private key: /, '')]);
      throw new WharfError('SIGNING_KEY_INVALID', [msg]);
    }
  }
  // Make sure the key can actually sign now (not expired/revoked, has a signing-capable key packet).
  try {
    await key.getSigningKey(undefined, new Date(), undefined, FULL_CONFIG);
  } catch (e) {
    throw new WharfError('SIGNING_KEY_INVALID', [(e as Error).message]);
  }
  return new OpenPgpSigningKey(key);
}

class OpenPgpSigningKey implements SigningKey {
  readonly fingerprint: string;
  readonly keyId: string;
  readonly armoredPublicKey: string;
  readonly binaryPublicKey: Uint8Array;
  readonly #key: openpgp.PrivateKey;
  /** For RSA keys: the same key as a native (OpenSSL) key object, so signing does not go through openpgp.js. */
  readonly #native?: { key: KeyObject; fingerprint: Uint8Array; keyId: Uint8Array };

  constructor(key: openpgp.PrivateKey) {
    this.#key = key;
    this.fingerprint = hex(key);
    this.keyId = key.getKeyID().toHex().toUpperCase();
    const pub = key.toPublic();
    this.armoredPublicKey = pub.armor(FULL_CONFIG);
    this.binaryPublicKey = pub.write();
    const packet = key.keyPacket as unknown as {
      algorithm: number;
      version: number;
      publicParams: { n?: Uint8Array; e?: Uint8Array };
      privateParams?: { d?: Uint8Array; p?: Uint8Array; q?: Uint8Array };
    };
    const { n, e } = packet.publicParams;
    const { d, p, q } = packet.privateParams ?? {};
    if (packet.version === 4 && packet.algorithm === openpgp.enums.publicKey.rsaEncryptSign && n && e && d && p && q) {
      this.#native = {
        key: rsaKeyObject({ n, e, d, p, q }),
        fingerprint: Buffer.from(this.fingerprint, 'hex'),
        keyId: Buffer.from(this.keyId, 'hex'),
      };
    }
  }

  #nativePacket(sigType: 0x00 | 0x01, data: Uint8Array): Promise<Uint8Array> {
    return rsaSignaturePacket({ ...this.#native!, sigType, data });
  }

  async clearsign(text: string): Promise<string> {
    const body = clearsignBody(text);
    // A cleartext signature is a text-mode (0x01) signature over the text with trailing spaces/tabs removed from
    // every line and CRLF line endings (RFC 4880 §7.1); openpgp.js converts LF to CRLF for text messages.
    const signedText = body.replace(/[ \t]+$/gm, '');
    if (this.#native) {
      const packet = await this.#nativePacket(0x01, Buffer.from(signedText.replace(/\n/g, '\r\n'), 'utf8'));
      return '-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n' + dashEscape(body) + '\n' + armorSignature(packet);
    }
    const message = await openpgp.createMessage({ text: signedText });
    const signature = await openpgp.sign({ message, signingKeys: this.#key, detached: true, format: 'armored', config: PGP_CONFIG });
    const parsed = await openpgp.readSignature({ armoredSignature: signature });
    const hashNames = new Set<string>();
    for (const p of parsed.packets) {
      if (p.signatureType !== openpgp.enums.signature.text) throw new WharfError('INTERNAL', [], { reason: 'clearsign produced a non-text signature' });
      hashNames.add(hashName(p.hashAlgorithm));
    }
    // The armor is built here rather than by openpgp.js, which would emit the body with CRLF line endings and
    // without trailing whitespace. Lines starting with '-' or 'From ' are dash-escaped, as gpg does.
    return '-----BEGIN PGP SIGNED MESSAGE-----\n' + `Hash: ${[...hashNames].join(',')}\n` + '\n' + dashEscape(body) + '\n' + signature;
  }

  async detachSign(data: Uint8Array | string): Promise<string> {
    const binary = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    if (this.#native) return armorSignature(await this.#nativePacket(0x00, binary));
    const message = await openpgp.createMessage({ binary });
    const sig = await openpgp.sign({ message, signingKeys: this.#key, detached: true, format: 'armored', config: PGP_CONFIG });
    return sig;
  }

  async detachSignBinaryPacket(data: Uint8Array | ReadableStream<Uint8Array>): Promise<Uint8Array> {
    if (this.#native && data instanceof Uint8Array) return this.#nativePacket(0x00, data);
    // A stream (e.g. an RPM header + payload) is hashed as it is read; the result is then a stream of the packet.
    const message = await openpgp.createMessage({ binary: data });
    const sig: Uint8Array | ReadableStream<Uint8Array> = await openpgp.sign({ message, signingKeys: this.#key, detached: true, format: 'binary', config: PGP_CONFIG });
    if (sig instanceof Uint8Array) return sig;
    return new Uint8Array(await new Response(sig).arrayBuffer());
  }
}

/** Lines starting with '-' or 'From ' are dash-escaped in a cleartext signature, as gpg does. */
function dashEscape(body: string): string {
  return body
    .split('\n')
    .map((line) => (line.startsWith('-') || line.startsWith('From ') ? '- ' + line : line))
    .join('\n');
}

function hashName(algo: openpgp.enums.hash | null): string {
  if (algo === openpgp.enums.hash.sha512) return 'SHA512';
  if (algo === openpgp.enums.hash.sha256) return 'SHA256';
  throw new WharfError('INTERNAL', [], { reason: `unexpected signature digest algorithm ${String(algo)}` });
}

/** The text that goes between the armor header and the signature: LF line endings, one final newline removed. */
function clearsignBody(text: string): string {
  let t = text.replace(/\r\n/g, '\n');
  if (t.includes('\r')) throw new WharfError('BAD_REQUEST', ['text to clearsign contains a bare carriage return']);
  if (t.endsWith('\n')) t = t.slice(0, -1);
  return t;
}

/**
 * Split a clearsigned document the way apt does (apt-pkg/contrib/gpgv.cc SplitClearSignedFile): returns the signed
 * text (lines without trailing whitespace, dash-escapes removed, joined with "\n", no final newline) and the
 * armored signature block. Returns undefined for anything apt would reject (unknown dash lines, unsigned trailing text).
 */
export function splitClearsigned(doc: string): { text: string; hashHeaders: string[]; signature: string } | undefined {
  const lines = doc.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const clean = lines.map((l) => l.replace(/[\r\n]+$/, '').replace(/[ \t]+$/, ''));
  let i = 0;
  if (clean[i++] !== '-----BEGIN PGP SIGNED MESSAGE-----') return undefined;
  const hashHeaders: string[] = [];
  for (;; i++) {
    if (i >= clean.length) return undefined;
    const l = clean[i]!;
    if (l === '') break;
    if (l.startsWith('-')) return undefined;
    if (l.startsWith('Hash: ')) hashHeaders.push(l);
  }
  i++;
  const out: string[] = [];
  for (;; i++) {
    if (i >= clean.length) return undefined;
    const l = clean[i]!;
    if (l.startsWith('-')) {
      if (l === '-----BEGIN PGP SIGNATURE-----') break;
      if (l.startsWith('- ')) out.push(l.slice(2));
      else return undefined;
    } else out.push(l);
  }
  const sig: string[] = [clean[i]!];
  let open = true;
  for (i++; i < clean.length; i++) {
    const l = clean[i]!;
    if (open) {
      if (l === '-----END PGP SIGNATURE-----') open = false;
      else if (l.startsWith('-')) return undefined;
    } else if (l === '-----BEGIN PGP SIGNATURE-----') open = true;
    else return undefined; // unsigned lines after the signature
    sig.push(l);
  }
  if (open) return undefined;
  return { text: out.join('\n'), hashHeaders, signature: sig.join('\n') + '\n' };
}
