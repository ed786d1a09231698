import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey, loadSigningKey, splitClearsigned, type GeneratedSigningKey, type SigningKey } from './openpgp.ts';
import { WharfError } from '../errors.ts';

const PASSPHRASE = 'correct horse battery staple';
let dir: string;
let generated: GeneratedSigningKey;
let key: SigningKey;
let keyring: string;

const RELEASE = [
  'Origin: Wharf',
  'Label: Wharf',
  'Suite: stable',
  'Codename: bookworm',
  'Date: Sat, 01 Jun 2024 10:00:00 UTC',
  'Architectures: amd64 arm64',
  'Components: main',
  'SHA256:',
  ' e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages',
  '',
].join('\n');

function gpgv(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('gpgv', ['--keyring', keyring, ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

function packets(file: string): string {
  const home = mkdtempSync(join(dir, 'gnupg-'));
  return execFileSync('gpg', ['--homedir', home, '--list-packets', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-pgp-'));
  const t0 = performance.now();
  generated = await generateSigningKey({ userId: { name: 'Wharf Test', email: 'test@example.org' }, passphrase: PASSPHRASE });
  const t1 = performance.now();
  key = await loadSigningKey(generated.armoredPrivateKey, PASSPHRASE);
  const t2 = performance.now();
  console.log(`# RSA-4096 generation ${(t1 - t0).toFixed(0)} ms, load+decrypt ${(t2 - t1).toFixed(0)} ms`);
  writeFileSync(join(dir, 'key.asc'), generated.armoredPublicKey);
  keyring = join(dir, 'keyring.gpg');
  execFileSync('gpg', ['--batch', '--yes', '--dearmor', '-o', keyring, join(dir, 'key.asc')]);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('generated key: v4 RSA 4096, fingerprint, encrypted private key', () => {
  assert.match(generated.fingerprint, /^[0-9A-F]{40}$/);
  assert.equal(key.fingerprint, generated.fingerprint);
  assert.equal(key.keyId, generated.fingerprint.slice(-16));
  assert.equal(key.armoredPublicKey.split('\n')[0], '-----BEGIN PGP PUBLIC KEY BLOCK-----');
  // gpg --dearmor output equals our binary public key
  assert.equal(Buffer.compare(readFileSync(keyring), key.binaryPublicKey), 0);
  const pub = packets(keyring);
  assert.match(pub, /:public key packet:\n\s+version 4, algo 1,/);
  assert.match(pub, /pkey\[0\]: \[4096 bits\]/);
  assert.doesNotMatch(pub, /:public sub key packet:/);
  writeFileSync(join(dir, 'priv.asc'), generated.armoredPrivateKey);
  const priv = packets(join(dir, 'priv.asc'));
  assert.match(priv, /iter\+salt S2K, algo: 9, SHA1 protection, hash: 8/); // AES-256, SHA-256 S2K
  assert.match(priv, /protect count: 65011712/);
  assert.doesNotMatch(generated.armoredPrivateKey, /^(Version|Comment):/m);
});

test('gpg (bookworm, 2.2) imports the public key', () => {
  const home = mkdtempSync(join(dir, 'gnupg-'));
  const r = spawnSync('gpg', ['--homedir', home, '--batch', '--import', join(dir, 'key.asc')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const list = execFileSync('gpg', ['--homedir', home, '--with-colons', '--list-keys'], { encoding: 'utf8' });
  assert.match(list, new RegExp(`^fpr:::::::::${generated.fingerprint}:`, 'm'));
  assert.match(list, /^pub:[^:]*:4096:1:/m);
});

test('clearsign: InRelease shape, gpgv verifies, apt-style split recovers the Release text', async () => {
  const inRelease = await key.clearsign(RELEASE);
  const lines = inRelease.split('\n');
  assert.equal(lines[0], '-----BEGIN PGP SIGNED MESSAGE-----');
  assert.equal(lines[1], 'Hash: SHA512');
  assert.equal(lines[2], '');
  assert.equal(lines[3], 'Origin: Wharf');
  // like gpg --clearsign: the Release file's final newline is the line break before the signature delimiter
  assert.ok(inRelease.includes('Packages\n-----BEGIN PGP SIGNATURE-----\n'));
  assert.ok(inRelease.endsWith('-----END PGP SIGNATURE-----\n'));
  assert.ok(!inRelease.includes('\r'));
  assert.doesNotMatch(inRelease, /^(Version|Comment):/m);

  const file = join(dir, 'InRelease');
  writeFileSync(file, inRelease);
  const r = gpgv(file);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /Good signature/);

  // recovered plaintext: gpgv --output writes exactly the Release file
  const out = join(dir, 'InRelease.out');
  const r2 = gpgv('--output', out, file);
  assert.equal(r2.status, 0, r2.out);
  assert.equal(readFileSync(out, 'utf8'), RELEASE);

  // what apt does: split into message + detached signature and run gpgv on them
  const split = splitClearsigned(inRelease);
  assert.ok(split);
  assert.deepEqual(split.hashHeaders, ['Hash: SHA512']);
  assert.equal(split.text + '\n', RELEASE);
  writeFileSync(join(dir, 'apt.data'), split.text);
  writeFileSync(join(dir, 'apt.sig'), split.signature);
  const r3 = gpgv(join(dir, 'apt.sig'), join(dir, 'apt.data'));
  assert.equal(r3.status, 0, r3.out);

  const pk = packets(join(dir, 'apt.sig'));
  assert.match(pk, /sigclass 0x01/);
  assert.match(pk, /digest algo 10,/); // SHA512
  assert.match(pk, /version 4, created/);
});

test('clearsign: tampered InRelease fails', async () => {
  const inRelease = await key.clearsign(RELEASE);
  const file = join(dir, 'InRelease.tampered');
  writeFileSync(file, inRelease.replace('Codename: bookworm', 'Codename: trixie'));
  const r = gpgv(file);
  assert.notEqual(r.status, 0, r.out);
  assert.match(r.out, /BAD signature/);
  // an unsigned line appended after the signature is rejected by apt's splitter
  assert.equal(splitClearsigned(inRelease + 'Origin: evil\n'), undefined);
});

test('clearsign: dash lines, "From " lines and trailing whitespace round-trip', async () => {
  const text = '-leading dash\n--\n- already escaped-looking\nFrom someone\nFromage\ntrailing spaces   \ntrailing tab\t\n\nlast\n';
  const signed = await key.clearsign(text);
  const lines = signed.split('\n');
  assert.equal(lines[3], '- -leading dash');
  assert.equal(lines[4], '- --');
  assert.equal(lines[5], '- - already escaped-looking');
  assert.equal(lines[6], '- From someone');
  assert.equal(lines[7], 'Fromage');
  assert.equal(lines[8], 'trailing spaces   '); // kept in the body, as gpg does
  const file = join(dir, 'dash.asc');
  writeFileSync(file, signed);
  const out = join(dir, 'dash.out');
  const r = gpgv('--output', out, file);
  assert.equal(r.status, 0, r.out);
  // RFC 4880 §7.1: trailing whitespace is not part of the signed text, so verifiers drop it
  const expected = text.replace(/[ \t]+$/gm, '');
  assert.equal(readFileSync(out, 'utf8'), expected);
  // apt's splitter also drops the final newline (it joins lines with "\n")
  assert.equal(splitClearsigned(signed)?.text, expected.slice(0, -1));
  // the body itself (dash-unescaped, without the verifier's whitespace stripping) is exactly the input
  const body = signed.slice(signed.indexOf('\n\n') + 2, signed.indexOf('\n-----BEGIN PGP SIGNATURE-----'));
  assert.equal(body.split('\n').map((l) => (l.startsWith('- ') ? l.slice(2) : l)).join('\n') + '\n', text);
});

test('clearsign: text without final newline, CRLF input, empty text', async () => {
  for (const [input, expected] of [
    ['a: 1\nb: 2', 'a: 1\nb: 2\n'], // the format cannot carry a missing final newline
    ['a: 1\r\nb: 2\r\n', 'a: 1\nb: 2\n'],
    ['', '\n'],
    ['x\n\n', 'x\n\n'],
    ['Description: ünïcode ✓ 日本\n', 'Description: ünïcode ✓ 日本\n'],
  ] as const) {
    const signed = await key.clearsign(input);
    const file = join(dir, 'edge.asc');
    writeFileSync(file, signed);
    const out = join(dir, 'edge.out');
    rmSync(out, { force: true });
    const r = gpgv('--output', out, file);
    assert.equal(r.status, 0, `${JSON.stringify(input)}: ${r.out}`);
    assert.equal(readFileSync(out, 'utf8'), expected, JSON.stringify(input));
  }
  // openpgp.js itself verifies our armor too
  const openpgp = await import('openpgp');
  const msg = await openpgp.readCleartextMessage({ cleartextMessage: await key.clearsign(RELEASE) });
  const verified = await openpgp.verify({ message: msg, verificationKeys: await openpgp.readKey({ armoredKey: key.armoredPublicKey }), expectSigned: true });
  assert.equal(verified.data + '\n', RELEASE);
  await assert.rejects(key.clearsign('a\rb'), (e: unknown) => e instanceof WharfError && e.code === 'BAD_REQUEST');
});

test('detachSign: Release.gpg verifies with gpgv, tampering fails', async () => {
  const release = join(dir, 'Release');
  writeFileSync(release, RELEASE);
  const sig = await key.detachSign(RELEASE);
  assert.equal(sig.split('\n')[0], '-----BEGIN PGP SIGNATURE-----');
  assert.doesNotMatch(sig, /^(Version|Comment):/m);
  const sigFile = join(dir, 'Release.gpg');
  writeFileSync(sigFile, sig);
  const r = gpgv(sigFile, release);
  assert.equal(r.status, 0, r.out);
  const pk = packets(sigFile);
  assert.match(pk, /sigclass 0x00/);
  assert.match(pk, /digest algo 10,/);

  // Uint8Array input signs the same bytes
  const sig2 = await key.detachSign(new TextEncoder().encode(RELEASE));
  writeFileSync(sigFile, sig2);
  assert.equal(gpgv(sigFile, release).status, 0);

  // empty data
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'empty.gpg'), await key.detachSign(new Uint8Array(0)));
  assert.equal(gpgv(join(dir, 'empty.gpg'), join(dir, 'empty')).status, 0);

  writeFileSync(release, RELEASE + ' ');
  const bad = gpgv(sigFile, release);
  assert.notEqual(bad.status, 0);
  assert.match(bad.out, /BAD signature/);
});

test('detachSignBinaryPacket: one bare binary v4 signature packet (SHA-512, type 0x00, issuer) that gpgv verifies', async () => {
  const data = new Uint8Array(300).map((_, i) => (i * 7) & 0xff);
  const pkt = await key.detachSignBinaryPacket(data);
  assert.ok(pkt instanceof Uint8Array);
  // New-format packet header, tag 2 (signature); the packet is the whole output (no armor, no other packets).
  assert.equal(pkt[0], 0xc2);
  const len = pkt[1]! < 192 ? pkt[1]! : pkt[1]! < 224 ? ((pkt[1]! - 192) << 8) + pkt[2]! + 192 : -1;
  const hdr = pkt[1]! < 192 ? 2 : 3;
  assert.equal(hdr + len, pkt.length);
  assert.deepEqual([...pkt.subarray(hdr, hdr + 4)], [4, 0x00, 1, 10]); // v4, binary document, RSA, SHA-512
  const file = join(dir, 'blob');
  const sigFile = join(dir, 'blob.sig');
  writeFileSync(file, data);
  writeFileSync(sigFile, pkt);
  assert.equal(gpgv(sigFile, file).status, 0);
  const pk = packets(sigFile);
  assert.match(pk, /sigclass 0x00/);
  assert.match(pk, /digest algo 10,/);
  assert.match(pk, new RegExp(`issuer key ID ${key.keyId}`, 'i'));
  data[0]! ^= 1;
  writeFileSync(file, data);
  assert.notEqual(gpgv(sigFile, file).status, 0);
});

test('loadSigningKey: wrong passphrase -> SIGNING_KEY_LOCKED; garbage -> SIGNING_KEY_INVALID', async () => {
  await assert.rejects(loadSigningKey(generated.armoredPrivateKey, 'wrong'), (e: unknown) => e instanceof WharfError && e.code === 'SIGNING_KEY_LOCKED');
  await assert.rejects(loadSigningKey('not a key', PASSPHRASE), (e: unknown) => e instanceof WharfError && e.code === 'SIGNING_KEY_INVALID');
  await assert.rejects(loadSigningKey(generated.armoredPublicKey, PASSPHRASE), (e: unknown) => e instanceof WharfError && e.code === 'SIGNING_KEY_INVALID');
});

test('several keys can be loaded side by side', async () => {
  const again = await loadSigningKey(generated.armoredPrivateKey, PASSPHRASE);
  assert.equal(again.fingerprint, key.fingerprint);
  const [a, b] = await Promise.all([key.detachSign('x'), again.detachSign('y')]);
  assert.ok(a && b);
});
