import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { listArMembers } from './ar.ts';
import { bufferSource } from '../byte-source.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDeb, makeAr, rejectsWith, readFixture, tempDir } from './test-helpers.ts';

test('lists the members of a real .deb', async () => {
  const deb = buildDeb(readFixture('hello.control'));
  const members = await listArMembers(bufferSource(deb));
  assert.deepEqual(members.map((m) => m.name), ['debian-binary', 'control.tar.gz', 'data.tar.gz']);
  assert.equal(members[0]!.offset, 68);
  assert.equal(members[0]!.size, 4);
  assert.equal(new TextDecoder().decode(deb.subarray(68, 72)), '2.0\n');
  const last = members[2]!;
  assert.ok(last.offset + last.size === deb.length || last.offset + last.size + 1 === deb.length);
});

test('handles odd sizes, padding, trailing slashes and BSD long names', async () => {
  const ar = makeAr([
    { name: 'a', data: 'xyz' },
    { name: 'b', rawName: 'b/', data: '' },
    { name: 'long', rawName: '#1/20', data: 'a-rather-long-name.x' + 'DATA!' },
    { name: 'c', data: 'odd' },
  ]);
  const members = await listArMembers(bufferSource(ar));
  assert.deepEqual(members.map(({ name, size }) => ({ name, size })), [
    { name: 'a', size: 3 },
    { name: 'b', size: 0 },
    { name: 'a-rather-long-name.x', size: 5 },
    { name: 'c', size: 3 },
  ]);
  assert.equal(new TextDecoder().decode(ar.subarray(members[2]!.offset, members[2]!.offset + 5)), 'DATA!');
  // Missing padding after the final odd member is tolerated.
  const noPad = ar.subarray(0, ar.length - 1);
  assert.equal((await listArMembers(bufferSource(noPad))).length, 4);
});

test('agrees with ar(1) on member contents', async () => {
  const deb = buildDeb(readFixture('hello.control'), { compression: 'xz' });
  const members = await listArMembers(bufferSource(deb));
  const { dir, cleanup } = tempDir();
  let listing: string;
  try {
    writeFileSync(join(dir, 'x.deb'), deb);
    listing = execFileSync('ar', ['tv', join(dir, 'x.deb')], { encoding: 'utf8' });
  } finally {
    cleanup();
  }
  for (const m of members) assert.match(listing, new RegExp(`\\s${m.size} .* ${m.name.replace(/\./g, '\\.')}\\n`));
});

test('rejects a bad signature', async () => {
  await rejectsWith(() => listArMembers(bufferSource(new TextEncoder().encode('!<arcH>\nxxxx'))), 'DEB_NOT_AR');
  await rejectsWith(() => listArMembers(bufferSource(new Uint8Array(0))), 'DEB_NOT_AR');
  await rejectsWith(() => listArMembers(bufferSource(new TextEncoder().encode('PK\x03\x04'))), 'DEB_NOT_AR');
  const deb = buildDeb(readFixture('hello.control'));
  deb[0] = 0x3f;
  await rejectsWith(() => listArMembers(bufferSource(deb)), 'DEB_NOT_AR');
});

test('rejects truncated archives', async () => {
  const deb = buildDeb(readFixture('hello.control'));
  for (const cut of [3, 8 + 30, 8 + 60 + 2, deb.length - 100, deb.length - 2]) {
    await rejectsWith(() => listArMembers(bufferSource(deb.subarray(0, cut))), 'DEB_TRUNCATED', undefined);
  }
  const bsd = makeAr([{ name: 'x', rawName: '#1/50', data: 'short' }]);
  await rejectsWith(() => listArMembers(bufferSource(bsd)), 'DEB_BAD_MEMBER', /BSD name/);
});

test('rejects malformed headers', async () => {
  const good = makeAr([{ name: 'debian-binary', data: '2.0\n' }]);
  const badTerm = good.slice();
  badTerm[8 + 58] = 0x27;
  await rejectsWith(() => listArMembers(bufferSource(badTerm)), 'DEB_BAD_MEMBER', /terminator/);
  const badSize = good.slice();
  badSize.set(new TextEncoder().encode('0x4       '), 8 + 48);
  await rejectsWith(() => listArMembers(bufferSource(badSize)), 'DEB_BAD_MEMBER', /size/);
  const negSize = good.slice();
  negSize.set(new TextEncoder().encode('-4        '), 8 + 48);
  await rejectsWith(() => listArMembers(bufferSource(negSize)), 'DEB_BAD_MEMBER', /size/);
  const spaceName = makeAr([{ name: 'a b', data: '' }]);
  await rejectsWith(() => listArMembers(bufferSource(spaceName)), 'DEB_BAD_MEMBER', /name/);
  const ctl = makeAr([{ name: 'a\x01', data: '' }]);
  await rejectsWith(() => listArMembers(bufferSource(ctl)), 'DEB_BAD_MEMBER', /name/);
});
