import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { inspectDeb, checkDebMembers, decompressCapped } from './inspect.ts';
import { listArMembers } from './ar.ts';
import { bufferSource } from '../byte-source.ts';
import { assertGolden, buildDeb, makeAr, readFixture, rejectsWith } from './test-helpers.ts';

const MINI = 'Package: mini\nVersion: 2.0-1\nArchitecture: all\nMaintainer: M <m@x>\nDescription: tiny\n longer text\n';

for (const compression of ['gzip', 'xz', 'zstd', 'none'] as const) {
  test(`inspects a dpkg-deb -Z${compression} package`, async () => {
    const deb = buildDeb(readFixture('hello.control'), { compression, extraControl: { postinst: '#!/bin/sh\nexit 0\n' } });
    const info = await inspectDeb(bufferSource(deb));
    assert.equal(info.package, 'hello-wharf');
    assert.equal(info.version, '1:2.10-3+b1');
    assert.equal(info.architecture, 'amd64');
    assert.equal(info.canonicalFilename, 'hello-wharf_2.10-3+b1_amd64.deb');
    assertGolden('hello.stanza.json', JSON.stringify(info.control, null, 2) + '\n');
  });
}

test('canonical filename without epoch or revision', async () => {
  const info = await inspectDeb(bufferSource(buildDeb('Package: p0\nVersion: 3.1\nArchitecture: arm64\nMaintainer: M <m@x>\nDescription: d\n')));
  assert.equal(info.canonicalFilename, 'p0_3.1_arm64.deb');
});

/** Rebuilds a .deb from a real one, replacing or adding members. */
async function rebuild(deb: Uint8Array, edit: (m: { name: string; data: Uint8Array }[]) => { name: string; data: Uint8Array | string }[]) {
  const members = await listArMembers(bufferSource(deb));
  return makeAr(edit(members.map((m) => ({ name: m.name, data: deb.subarray(m.offset, m.offset + m.size) }))));
}

function tarWith(control: string): Uint8Array {
  // Minimal single-entry ustar archive built by hand.
  const data = Buffer.from(control, 'utf8');
  const h = Buffer.alloc(512);
  h.write('./control', 0, 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return new Uint8Array(Buffer.concat([h, data, pad, Buffer.alloc(1024)]));
}

test('rejects bad member layouts', async () => {
  const deb = buildDeb(MINI);
  const bad = async (edit: Parameters<typeof rebuild>[1], re: RegExp) =>
    rejectsWith(async () => inspectDeb(bufferSource(await rebuild(deb, edit))), 'DEB_BAD_MEMBER', re);
  await bad((m) => [m[1]!, m[0]!, m[2]!], /first member/);
  await bad((m) => [m[0]!, m[2]!, m[1]!], /before the control archive/);
  await bad((m) => [m[0]!, { name: 'extra', data: 'x' }, m[1]!, m[2]!], /unexpected member "extra"/);
  await bad((m) => [m[0]!, m[1]!, m[1]!, m[2]!], /unexpected member "control.tar.gz"/);
  await bad((m) => [m[0]!, { name: 'control.tar.bz2', data: m[1]!.data }, m[2]!], /unsupported compression/);
  await bad((m) => [m[0]!, m[1]!], /no data.tar/);
  await bad((m) => [m[0]!, m[2]!], /before the control archive/);
  await bad((m) => [m[0]!, m[1]!, m[2]!, { name: 'trailer', data: '' }], /unexpected member "trailer"/);
  await bad((m) => [{ name: 'debian-binary', data: '3.0\n' }, m[1]!, m[2]!], /unsupported package format version "3.0"/);
  await bad((m) => [{ name: 'debian-binary', data: '2.0\n' + 'x'.repeat(100) }, m[1]!, m[2]!], /too long/);
  await rejectsWith(() => inspectDeb(bufferSource(makeAr([]))), 'DEB_BAD_MEMBER', /no members/);
  // `_` members are allowed before and after the control archive.
  const ok = await rebuild(deb, (m) => [m[0]!, { name: '_gpgorigin', data: 'sig' }, m[1]!, { name: '_x', data: '' }, m[2]!]);
  assert.equal((await inspectDeb(bufferSource(ok))).package, 'mini');
  assert.throws(() => checkDebMembers([{ name: 'debian-binary', offset: 0, size: 4 }]), /no control.tar/);
});

test('rejects truncated and non-ar files', async () => {
  const deb = buildDeb(MINI);
  await rejectsWith(() => inspectDeb(bufferSource(deb.subarray(0, deb.length - 10))), 'DEB_TRUNCATED');
  await rejectsWith(() => inspectDeb(bufferSource(deb.subarray(0, 100))), 'DEB_TRUNCATED');
  const flipped = deb.slice();
  flipped[2] = 0x41;
  await rejectsWith(() => inspectDeb(bufferSource(flipped)), 'DEB_NOT_AR');
});

test('rejects corrupt control archives', async () => {
  const deb = buildDeb(MINI, { compression: 'none' });
  const members = await listArMembers(bufferSource(deb));
  const c = members[1]!;
  const badSum = deb.slice();
  badSum[c.offset + 5] = badSum[c.offset + 5]! ^ 0x20; // inside the first tar header
  await rejectsWith(() => inspectDeb(bufferSource(badSum)), 'DEB_BAD_CONTROL_ARCHIVE', /checksum/);
  const garbage = (name: string, data: Uint8Array | string) => rebuild(deb, (m) => [m[0]!, { name, data }, m[2]!]);
  await rejectsWith(async () => inspectDeb(bufferSource(await garbage('control.tar.gz', 'not gzip'))), 'DEB_BAD_CONTROL_ARCHIVE', /gzip/);
  await rejectsWith(async () => inspectDeb(bufferSource(await garbage('control.tar.xz', 'not xz'))), 'DEB_BAD_CONTROL_ARCHIVE', /xz/);
  await rejectsWith(async () => inspectDeb(bufferSource(await garbage('control.tar.zst', 'not zstd'))), 'DEB_BAD_CONTROL_ARCHIVE', /zstd/);
  await rejectsWith(async () => inspectDeb(bufferSource(await garbage('control.tar', tarWith(MINI).subarray(0, 600)))), 'DEB_BAD_CONTROL_ARCHIVE', /past the end/);
});

test('rejects invalid control files inside the package', async () => {
  const deb = buildDeb(MINI);
  const withControl = (text: string) => rebuild(deb, (m) => [m[0]!, { name: 'control.tar.gz', data: gzipSync(tarWith(text)) }, m[2]!]);
  assert.equal((await inspectDeb(bufferSource(await withControl(MINI)))).package, 'mini');
  await rejectsWith(async () => inspectDeb(bufferSource(await withControl(MINI + 'Version: 3\n'))), 'DEB_BAD_CONTROL', /duplicate field Version/);
  await rejectsWith(async () => inspectDeb(bufferSource(await withControl(MINI.replace('mini', 'Mini_Pkg')))), 'DEB_BAD_FIELD', /Package "Mini_Pkg"/);
  await rejectsWith(async () => inspectDeb(bufferSource(await withControl(MINI.replace('tiny', 'tiny\r')))), 'DEB_BAD_CONTROL', /carriage return/);
  await rejectsWith(async () => inspectDeb(bufferSource(await withControl(MINI + '\nPackage: second\n'))), 'DEB_BAD_CONTROL', /more than one stanza/);
});

test('stops decompression bombs', async () => {
  const deb = buildDeb(MINI);
  const cap = 1024 * 1024;
  const huge = new Uint8Array(cap + 4096); // zeros: a valid tar prefix would not matter, the cap hits first
  const withMember = (name: string, data: Uint8Array) => rebuild(deb, (m) => [m[0]!, { name, data }, m[2]!]);
  const gz = gzipSync(huge, { level: 9 });
  assert.ok(gz.length < 10_000);
  await rejectsWith(async () => inspectDeb(bufferSource(await withMember('control.tar.gz', gz)), { maxControlBytes: cap }), 'DEB_CONTROL_TOO_LARGE', new RegExp(String(cap)));
  const zst = zstdCompressSync(huge);
  await rejectsWith(async () => inspectDeb(bufferSource(await withMember('control.tar.zst', zst)), { maxControlBytes: cap }), 'DEB_CONTROL_TOO_LARGE');
  const xz = new Uint8Array(execFileSync('xz', ['-c'], { input: huge }));
  await rejectsWith(async () => inspectDeb(bufferSource(await withMember('control.tar.xz', xz)), { maxControlBytes: cap }), 'DEB_CONTROL_TOO_LARGE');
  // A real 100 MiB gzip bomb against the default 64 MiB cap.
  const bomb = gzipSync(new Uint8Array(100 * 1024 * 1024), { level: 9 });
  await rejectsWith(async () => inspectDeb(bufferSource(await withMember('control.tar.gz', bomb))), 'DEB_CONTROL_TOO_LARGE', /67108864/);
  // Uncompressed archives over the cap, and compressed members over maxControlArchiveBytes.
  await rejectsWith(async () => inspectDeb(bufferSource(await withMember('control.tar', huge)), { maxControlBytes: cap }), 'DEB_CONTROL_TOO_LARGE');
  await rejectsWith(async () => inspectDeb(bufferSource(await withMember('control.tar.gz', gz)), { maxControlArchiveBytes: 100 }), 'DEB_CONTROL_TOO_LARGE', /100 bytes/);
  // Just under the cap is fine.
  const fits = tarWith(MINI);
  assert.equal((await decompressCapped(gzipSync(fits), 'gzip', fits.length)).length, fits.length);
  assert.equal((await decompressCapped(new Uint8Array(execFileSync('xz', ['-c'], { input: fits })), 'xz', fits.length)).length, fits.length);
  assert.equal((await decompressCapped(zstdCompressSync(fits), 'zstd', fits.length)).length, fits.length);
});

test('control.tar.xz: decoded in process, and through the xz program for filters the decoder does not implement', async () => {
  const deb = buildDeb(MINI);
  const tar = tarWith(MINI);
  const withControl = (data: Uint8Array) => rebuild(deb, (m) => [m[0]!, { name: 'control.tar.xz', data }, m[2]!]);
  for (const args of [['-6'], ['-9e', '--check=sha256'], ['--x86', '--lzma2=preset=1'], ['--delta=dist=2', '--lzma2=preset=1']]) {
    const packed = new Uint8Array(execFileSync('xz', ['-z', '-c', ...args], { input: tar }));
    const info = await inspectDeb(bufferSource(await withControl(packed)));
    assert.equal(info.package, 'mini', args.join(' '));
  }
  // More than the decoder produces on the event loop (1 MiB): the xz program, with the real cap.
  const big = Buffer.concat([tar.subarray(0, tar.length - 1024), new Uint8Array(5 * 1024 * 1024), tar.subarray(tar.length - 1024)]);
  const bigInfo = await inspectDeb(bufferSource(await withControl(new Uint8Array(execFileSync('xz', ['-z', '-c', '-6'], { input: big })))));
  assert.equal(bigInfo.package, 'mini');
  await rejectsWith(
    async () => inspectDeb(bufferSource(await withControl(new Uint8Array(execFileSync('xz', ['-z', '-c', '-6'], { input: big })))), { maxControlBytes: 5 * 1024 * 1024 }),
    'DEB_CONTROL_TOO_LARGE',
  );
  // damaged: a stable code, whichever decoder saw it
  const packed = Buffer.from(execFileSync('xz', ['-z', '-c', '-6'], { input: tar }));
  packed[packed.length >> 1] ^= 0x55;
  await rejectsWith(async () => inspectDeb(bufferSource(await withControl(packed))), 'DEB_BAD_CONTROL_ARCHIVE', /xz/);
  const bcj = Buffer.from(execFileSync('xz', ['-z', '-c', '--x86', '--lzma2=preset=1'], { input: tar }));
  bcj[bcj.length >> 1] ^= 0x55;
  await rejectsWith(async () => inspectDeb(bufferSource(await withControl(bcj))), 'DEB_BAD_CONTROL_ARCHIVE', /xz/);
});
