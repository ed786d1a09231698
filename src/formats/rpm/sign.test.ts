import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, readdirSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { generateSigningKey, loadSigningKey, type SigningKey } from '../../signing/openpgp.ts';
import { bufferSource, type ByteSource } from '../byte-source.ts';
import { WharfError } from '../../errors.ts';
import { signRpm, type SignRpmResult, type RpmHeaderSigner } from './sign.ts';

const FIXTURES = '/work/shared/fixtures/rpm';
const hasRpm = spawnSync('rpmkeys', ['--version']).status === 0 && spawnSync('rpmbuild', ['--version']).status === 0;
const skip = hasRpm ? false : 'rpm tools (rpmkeys, rpmbuild) not installed';

let dir: string;
let key: SigningKey;
let dbpath: string;
let small: Uint8Array;
let large: Uint8Array;

function buildRpm(name: string, files: number, descriptionLines: number): Uint8Array {
  const top = join(dir, `top-${name}`);
  const spec = join(dir, `${name}.spec`);
  writeFileSync(
    spec,
    [
      `Name: ${name}`,
      'Version: 1.0',
      'Release: 1',
      'Summary: Wharf signing test package',
      'License: MIT',
      'BuildArch: noarch',
      '%description',
      ...Array.from({ length: descriptionLines }, (_, i) => `Description line ${i} of the Wharf signing test package.`),
      '%install',
      `mkdir -p %{buildroot}/usr/share/${name}`,
      `for i in $(seq 1 ${files}); do echo "file $i" > %{buildroot}/usr/share/${name}/file-with-a-rather-long-name-$i.txt; done`,
      '%files',
      `/usr/share/${name}`,
      '',
    ].join('\n'),
  );
  execFileSync('rpmbuild', ['-bb', '--define', `_topdir ${top}`, spec], { stdio: 'ignore' });
  const outDir = join(top, 'RPMS', 'noarch');
  return readFileSync(join(outDir, readdirSync(outDir)[0]!));
}

/** The signed file, assembled the way a caller streams it: lead + new signature header + original from headerStart. */
function assemble(orig: Uint8Array, r: SignRpmResult): Uint8Array {
  const out = Buffer.concat([orig.subarray(0, 96), r.signatureHeader, orig.subarray(r.headerStart)]);
  assert.equal(out.length, r.signedSize);
  return out;
}

function checksig(file: string, db = dbpath): { status: number | null; out: string } {
  // The summary line ("digests signatures OK") comes without -v, the per-signature lines with -v.
  const r = spawnSync('rpmkeys', ['--dbpath', db, '--checksig', file], { encoding: 'utf8' });
  const v = spawnSync('rpmkeys', ['--dbpath', db, '--checksig', '-v', file], { encoding: 'utf8' });
  assert.equal(v.status, r.status);
  return { status: r.status, out: r.stdout + r.stderr + v.stdout + v.stderr };
}

function write(name: string, data: Uint8Array): string {
  const f = join(dir, name);
  writeFileSync(f, data);
  return f;
}

interface Entry {
  tag: number;
  type: number;
  offset: number;
  count: number;
}

/** Independent reader of a signature header at offset 96 (used to check the layout signRpm produced). */
function sigEntries(file: Uint8Array): { il: number; dl: number; entries: Entry[]; store: Uint8Array; padded: number } {
  const b = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  assert.deepEqual([...b.subarray(96, 104)], [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0]);
  const il = b.readUInt32BE(104);
  const dl = b.readUInt32BE(108);
  const entries: Entry[] = [];
  for (let i = 0; i < il; i++) {
    const p = 112 + 16 * i;
    entries.push({ tag: b.readUInt32BE(p), type: b.readUInt32BE(p + 4), offset: b.readInt32BE(p + 8), count: b.readUInt32BE(p + 12) });
  }
  const store = b.subarray(112 + 16 * il, 112 + 16 * il + dl);
  return { il, dl, entries, store, padded: 16 + 16 * il + dl + ((8 - (dl % 8)) % 8) };
}

function entryData(file: Uint8Array, tag: number): Buffer | undefined {
  const { entries, store } = sigEntries(file);
  const i = entries.findIndex((e) => e.tag === tag);
  if (i < 0) return undefined;
  const e = entries[i]!;
  const next = entries.filter((x) => x.offset > e.offset && x.tag !== 62).map((x) => x.offset);
  const region = entries[0]!.tag === 62 ? entries[0]!.offset : store.length;
  const sizes: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1 };
  let len = sizes[e.type] ? sizes[e.type]! * e.count : Math.min(region, ...next) - e.offset;
  if (e.type === 6 || e.type === 8) {
    let p = e.offset;
    for (let k = 0; k < e.count; k++) p = store.indexOf(0, p) + 1;
    len = p - e.offset;
  }
  return Buffer.from(store.subarray(e.offset, e.offset + len));
}

function assertWellFormed(signed: Uint8Array, r: SignRpmResult): void {
  const { il, dl, entries, store, padded } = sigEntries(signed);
  assert.equal(padded, r.signatureHeader.length);
  assert.ok(il <= 32);
  // Region tag first, trailer last in the data, offset -(il*16).
  assert.deepEqual(entries[0], { tag: 62, type: 7, offset: dl - 16, count: 16 });
  const t = Buffer.from(store.subarray(dl - 16));
  assert.deepEqual([t.readUInt32BE(0), t.readUInt32BE(4), t.readInt32BE(8), t.readUInt32BE(12)], [62, 7, -(il * 16), 16]);
  // Sorted by tag, data aligned per type, in tag order.
  const rest = entries.slice(1);
  for (let i = 1; i < rest.length; i++) {
    assert.ok(rest[i - 1]!.tag < rest[i]!.tag);
    assert.ok(rest[i - 1]!.offset < rest[i]!.offset);
  }
  for (const e of rest) if (e.type === 3 || e.type === 4 || e.type === 5) assert.equal(e.offset % { 3: 2, 4: 4, 5: 8 }[e.type]!, 0);
  // Zero padding.
  for (let i = 112 + 16 * il + dl; i < 96 + padded; i++) assert.equal(signed[i], 0);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-rpmsign-'));
  const gen = await generateSigningKey({ userId: { name: 'Wharf RPM Test', email: 'rpm@example.org' }, passphrase: 'pw' });
  key = await loadSigningKey(gen.armoredPrivateKey, 'pw');
  if (!hasRpm) return;
  writeFileSync(join(dir, 'key.asc'), gen.armoredPublicKey);
  dbpath = join(dir, 'rpmdb');
  mkdirSync(dbpath);
  execFileSync('rpmkeys', ['--dbpath', dbpath, '--import', join(dir, 'key.asc')]);
  small = buildRpm('wharfsmall', 2, 3);
  large = buildRpm('wharflarge', 2000, 2000);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sign: RpmHeaderSigner = (h) => key.detachSignBinaryPacket(h);
const shortId = () => key.keyId.slice(-8).toLowerCase();

test('rpmbuild package: signed like rpmsign --addsign, rpmkeys --checksig OK, rpm -qp and rpm2cpio still read it', { skip }, async () => {
  const r = await signRpm(small, sign, 'rsa');
  const signed = assemble(small, r);
  const f = write('small-signed.rpm', signed);
  const c = checksig(f);
  assert.equal(c.status, 0, c.out);
  assert.match(c.out, /digests signatures OK/);
  assert.match(c.out, new RegExp(`Header V4 RSA/SHA512 Signature, key ID ${shortId()}: OK`));
  assert.match(c.out, /Header SHA256 digest: OK/);
  assert.match(c.out, /Payload SHA256 digest: OK/);
  assert.equal(r.signatureTag, 268);
  assert.deepEqual(r.removedTags, []);
  assert.equal(r.payloadDigest, true);
  assert.equal(r.payloadSignatureTag, undefined);
  assertWellFormed(signed, r);

  // RESERVEDSPACE absorbed the signature: the file only changed in the signature header, which kept its size.
  assert.equal(r.signatureHeader.length, r.oldSignatureHeaderSize);
  assert.equal(signed.length, small.length);
  assert.deepEqual(Buffer.from(signed.subarray(r.headerStart)), Buffer.from(small.subarray(r.headerStart)));
  const before = entryData(small, 1008)!.length;
  const afterLen = entryData(signed, 1008)!.length;
  // The growth is the new index entry and the signature, give or take the alignment padding the new layout needs (0-3).
  const growth = before - afterLen;
  const sigLen = entryData(signed, 268)!.length;
  assert.ok(Math.abs(growth - (16 + sigLen)) <= 3, `RESERVEDSPACE shrank by ${growth} for a ${sigLen}-byte signature`);
  assert.ok(entryData(signed, 1008)!.every((b) => b === 0));
  // The other entries are kept byte for byte.
  for (const tag of [269, 273, 1000, 1004, 1007]) assert.deepEqual(entryData(signed, tag), entryData(small, tag), `tag ${tag}`);

  const q = spawnSync('rpm', ['-qp', '--dbpath', dbpath, '--qf', '%{NAME}-%{VERSION}-%{RELEASE} %{RSAHEADER:pgpsig}\n', f], { encoding: 'utf8' });
  assert.equal(q.status, 0, q.stderr);
  assert.match(q.stdout, new RegExp(`^wharfsmall-1.0-1 RSA/SHA512, .*Key ID ${key.keyId.toLowerCase()}`));
  // rpm2cpio decompresses the payload: a newc cpio archive holding the file names (cpio itself may be missing).
  const archive = execFileSync('rpm2cpio', [f]);
  assert.equal(archive.subarray(0, 6).toString('latin1'), '070701');
  assert.ok(archive.includes('./usr/share/wharfsmall/file-with-a-rather-long-name-1.txt'));
  assert.ok(archive.includes('file 1\n'));

  // Without the key: NOKEY, digests still OK.
  const empty = join(dir, 'emptydb');
  mkdirSync(empty, { recursive: true });
  const nokey = checksig(f, empty);
  assert.notEqual(nokey.status, 0);
  assert.match(nokey.out, /NOKEY/);
  assert.match(nokey.out, /Header SHA256 digest: OK/);
});

test('re-signing replaces the signature and keeps the size', { skip }, async () => {
  const first = assemble(small, await signRpm(small, sign, 'rsa'));
  const r = await signRpm(first, sign, 'rsa');
  const second = assemble(first, r);
  assert.deepEqual(r.removedTags, [268]);
  assert.equal(second.length, small.length);
  assert.equal(sigEntries(second).entries.filter((e) => e.tag === 268).length, 1);
  // (RSA PKCS#1 v1.5 is deterministic: within the same second the new signature may equal the old one.)
  const c = checksig(write('small-resigned.rpm', second));
  assert.equal(c.status, 0, c.out);
  assert.match(c.out, /digests signatures OK/);
});

test('packages signed by others (RSA, EdDSA, rpm 6 OPENPGP tags, unsigned old rpm): re-signed with the Wharf key verify', { skip }, async () => {
  const cases: [string, number[], boolean][] = [
    ['empty-signed-rsa-0-0.x86_64.rpm', [268, 1002], false],
    ['empty-signed-eddsa-0-0.x86_64.rpm', [267, 1005], false],
    ['empty-signed-v6-multiple-0-0.x86_64.rpm', [268, 1002], false],
    ['empty-0-0.x86_64.rpm', [], false],
    ['Archer-3.4.5-6.x86_64.rpm', [], true],
  ];
  for (const [name, removed, hasPayloadDigest] of cases) {
    const orig = readFileSync(join(FIXTURES, name));
    const r = await signRpm(orig, sign, 'rsa');
    assert.deepEqual(r.removedTags, removed, name);
    // These were built by rpm < 4.14 (no payload digest): like rpmsign 4.18, a header+payload signature (PGP 1002)
    // is added too, without which rpm 4.18 reports "RSA signature: NOTFOUND".
    assert.equal(r.payloadDigest, hasPayloadDigest, name);
    assert.equal(r.payloadSignatureTag, hasPayloadDigest ? undefined : 1002, name);
    const signed = assemble(orig, r);
    assertWellFormed(signed, r);
    const f = write(`resigned-${name}`, signed);
    const c = checksig(f);
    assert.equal(c.status, 0, `${name}: ${c.out}`);
    assert.match(c.out, /digests signatures OK/);
    assert.match(c.out, new RegExp(`Header V4 RSA/SHA512 Signature, key ID ${shortId()}: OK`));
    if (!hasPayloadDigest) assert.match(c.out, new RegExp(`\\n    V4 RSA/SHA512 Signature, key ID ${shortId()}: OK`));
    assert.match(c.out, /MD5 digest: OK/);
    assert.doesNotMatch(c.out, /NOKEY|BAD|NOTFOUND/);
    // Digest entries of the original are kept byte for byte; the rpm 6 OPENPGP (278) entry is kept.
    for (const tag of [269, 1000, 1004, 1007, 278]) assert.deepEqual(entryData(signed, tag), entryData(orig, tag), `${name} tag ${tag}`);
    const q = spawnSync('rpm', ['-qp', '--dbpath', dbpath, f], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
  }
});

test('EdDSA (Ed25519 v4) signer: DSAHEADER (267), rpmkeys verifies it', { skip }, async () => {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy', // algorithm 22 (EdDSA); openpgp.js v6's 'curve25519' makes RFC 9580 Ed25519 (27), unknown to rpm 4.18
    userIDs: [{ name: 'Wharf EdDSA Test' }],
    subkeys: [],
    format: 'armored',
    config: { v6Keys: false },
  });
  const priv = await openpgp.readPrivateKey({ armoredKey: privateKey });
  const db = join(dir, 'eddsa-db');
  mkdirSync(db);
  writeFileSync(join(dir, 'ed.asc'), publicKey);
  execFileSync('rpmkeys', ['--dbpath', db, '--import', join(dir, 'ed.asc')]);
  const edSign: RpmHeaderSigner = async (h) => {
    assert.ok(h instanceof Uint8Array); // this package has a payload digest: header-only
    return openpgp.sign({
      message: await openpgp.createMessage({ binary: h }),
      signingKeys: priv,
      detached: true,
      format: 'binary',
      config: { preferredHashAlgorithm: openpgp.enums.hash.sha512 },
    });
  };
  const r = await signRpm(small, edSign, 'eddsa');
  assert.equal(r.signatureTag, 267);
  const c = checksig(write('small-eddsa.rpm', assemble(small, r)), db);
  assert.equal(c.status, 0, c.out);
  assert.match(c.out, /Header V4 EdDSA\/SHA512 Signature, key ID [0-9a-f]{8}: OK/);
  // The algorithm must match the key.
  await assert.rejects(signRpm(small, edSign, 'rsa'), WharfError);
  await assert.rejects(signRpm(small, sign, 'eddsa'), WharfError);
});

test('large header: reads only lead + headers from a ByteSource, signature verifies', { skip }, async () => {
  let maxEnd = 0;
  let readBytes = 0;
  const inner = bufferSource(large);
  const src: ByteSource = {
    size: inner.size,
    async read(offset, length) {
      maxEnd = Math.max(maxEnd, offset + length);
      readBytes += length;
      return inner.read(offset, length);
    },
  };
  const r = await signRpm(src, sign, 'rsa');
  assert.ok(r.headerEnd - r.headerStart > 256 * 1024, `header is ${r.headerEnd - r.headerStart} bytes`);
  assert.equal(maxEnd, r.headerEnd);
  assert.ok(readBytes <= r.headerEnd + 64);
  const c = checksig(write('large-signed.rpm', assemble(large, r)));
  assert.equal(c.status, 0, c.out);
  assert.match(c.out, /digests signatures OK/);
});

test('tampering with the main header after signing fails rpmkeys --checksig', { skip }, async () => {
  const r = await signRpm(small, sign, 'rsa');
  const signed = assemble(small, r);
  const hs = 96 + r.signatureHeader.length;
  const he = hs + (r.headerEnd - r.headerStart);
  // A byte of the description text inside the header data.
  const text = Buffer.from(signed.subarray(hs, he)).indexOf('Description line 1');
  assert.ok(text > 0);
  const t = Uint8Array.from(signed);
  t[hs + text]! ^= 0x20;
  const c = checksig(write('tampered.rpm', t));
  assert.notEqual(c.status, 0);
  assert.match(c.out, /Header V4 RSA\/SHA512 Signature, key ID [0-9a-f]{8}: BAD/);
  assert.doesNotMatch(c.out, /digests signatures OK/);
});

test('signRpm checks its input: not an RPM, truncated, header digest mismatch, bad signer output', async () => {
  const isUnsupported = (e: unknown) => e instanceof WharfError && e.code.startsWith('RPM_') && e.status === 422;
  await assert.rejects(signRpm(new Uint8Array(200), sign, 'rsa'), isUnsupported);
  const base = hasRpm ? small : readFileSync(join(FIXTURES, 'empty-0-0.x86_64.rpm'));
  const r = await signRpm(base, sign, 'rsa');
  await assert.rejects(signRpm(base.subarray(0, r.headerEnd - 1), sign, 'rsa'), isUnsupported);
  const corrupt = Uint8Array.from(base);
  const at = Buffer.from(base.subarray(r.headerStart, r.headerEnd)).lastIndexOf(hasRpm ? 'Description line' : 'empty');
  assert.ok(at > 0);
  corrupt[r.headerStart + at]! ^= 1;
  await assert.rejects(signRpm(corrupt, sign, 'rsa'), /digest does not match/);
  // A signer that returns an armored signature or nothing usable.
  await assert.rejects(signRpm(base, async (h) => new TextEncoder().encode(await key.detachSign(h as Uint8Array)), 'rsa'), WharfError);
  await assert.rejects(signRpm(base, async () => new Uint8Array(0), 'rsa'), WharfError);
});

test('signing time per package (RSA 4096, openpgp.js)', { skip }, async () => {
  const n = 10;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await signRpm(small, sign, 'rsa');
  const t1 = performance.now();
  for (let i = 0; i < 3; i++) await signRpm(large, sign, 'rsa');
  const t2 = performance.now();
  console.log(`# signRpm RSA-4096: ${((t1 - t0) / n).toFixed(1)} ms per small package, ${((t2 - t1) / 3).toFixed(1)} ms per package with a ${((large.length) / 1024).toFixed(0)} KiB file`);
  assert.ok(existsSync(dir));
});
