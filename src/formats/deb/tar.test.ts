import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findControlFile, iterateTar, parseTarNumber } from './tar.ts';
import { isWharfError } from '../../errors.ts';
import { tempDir } from './test-helpers.ts';

const LONG_DIR = 'd'.repeat(90) + '/' + 'e'.repeat(60);

function makeTar(format: string, files: Record<string, string>, opts: { dotSlash?: boolean } = {}): Uint8Array {
  const { dir, cleanup } = tempDir();
  try {
    const root = join(dir, 'root');
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    const out = join(dir, 'out.tar');
    const names = opts.dotSlash ? ['.'] : Object.keys(files);
    execFileSync('tar', [`--format=${format}`, '--owner=0', '--group=0', '-cf', out, '-C', root, ...names]);
    return new Uint8Array(readFileSync(out));
  } finally {
    cleanup();
  }
}

function assertBad(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => isWharfError(e) && e.code === 'DEB_BAD_CONTROL_ARCHIVE' && re.test(e.message));
}

for (const format of ['v7', 'ustar', 'gnu', 'pax']) {
  test(`reads ${format} archives`, () => {
    const files: Record<string, string> = { control: 'Package: a\n', md5sums: 'x\n' };
    if (format !== 'v7') files[`${LONG_DIR}/file.txt`] = 'deep\n';
    const tar = makeTar(format, files, { dotSlash: true });
    const entries = [...iterateTar(tar)];
    const regular = entries.filter((e) => e.type === '0').map((e) => e.name).sort();
    const want = Object.keys(files).map((n) => `./${n}`).sort();
    assert.deepEqual(regular, want);
    assert.ok(entries.some((e) => e.name === './' && e.type === '5'));
    assert.equal(new TextDecoder().decode(findControlFile(tar)), 'Package: a\n');
    if (format !== 'v7') {
      const deep = entries.find((e) => e.name.endsWith('file.txt'))!;
      assert.equal(new TextDecoder().decode(deep.data), 'deep\n');
    }
  });
}

test('finds "control" without ./ prefix and ignores similar names', () => {
  const tar = makeTar('ustar', { 'control': 'A: b\n', 'sub/control': 'no\n', 'control2': 'no\n' });
  assert.equal(new TextDecoder().decode(findControlFile(tar)), 'A: b\n');
});

test('reports a missing control file', () => {
  assertBad(() => findControlFile(makeTar('ustar', { md5sums: 'x' })), /no "control"/);
});

test('rejects a bad header checksum', () => {
  const tar = makeTar('ustar', { control: 'Package: a\n' });
  const bad = tar.slice();
  bad[0] = bad[0]! ^ 0x01; // flip a bit in the name
  assertBad(() => [...iterateTar(bad)], /checksum/);
  const bad2 = tar.slice();
  bad2.set(new TextEncoder().encode('0000001\0'), 148);
  assertBad(() => [...iterateTar(bad2)], /checksum/);
});

test('rejects truncation and bad sizes', () => {
  const tar = makeTar('ustar', { control: 'Package: a\n'.repeat(100) });
  assertBad(() => [...iterateTar(tar.subarray(0, 700))], /extends past the end/);
  assertBad(() => [...iterateTar(tar.subarray(0, 300))], /truncated header/);
  assertBad(() => [...iterateTar(new Uint8Array(1024))], /no entries/);
  assertBad(() => [...iterateTar(new Uint8Array(0))], /empty/);
  // A non-octal size with a recomputed (valid) checksum.
  const bad = tar.slice(0, 1024 + 1024);
  bad.set(new TextEncoder().encode('0000000009x\0'), 124);
  fixChecksum(bad);
  assertBad(() => [...iterateTar(bad)], /invalid size/);
});

function fixChecksum(b: Uint8Array): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.set(new TextEncoder().encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
}

test('parses GNU base-256 sizes and octal fields', () => {
  const f = new Uint8Array(12);
  f[0] = 0x80;
  f[10] = 0x01;
  f[11] = 0x02;
  assert.equal(parseTarNumber(f, 0, 12, 'size'), 258);
  assert.equal(parseTarNumber(new TextEncoder().encode('00000000017\0'), 0, 12, 'size'), 15);
  assert.equal(parseTarNumber(new TextEncoder().encode('     17     '), 0, 12, 'size'), 15);
  assert.equal(parseTarNumber(new Uint8Array(12), 0, 12, 'size'), 0);
  const neg = new Uint8Array(12).fill(0xff);
  assertBad(() => parseTarNumber(neg, 0, 12, 'size'), /negative/);
  // A whole entry whose size uses base-256.
  const tar = makeTar('ustar', { control: 'Package: b\n' });
  const h = tar.slice();
  h.fill(0, 124, 136);
  h[124] = 0x80;
  h[135] = 11;
  fixChecksum(h);
  assert.equal(new TextDecoder().decode(findControlFile(h)), 'Package: b\n');
});

test('pax path and size override the header', () => {
  const tar = makeTar('pax', { [`${LONG_DIR}/control`]: 'x\n' });
  const e = [...iterateTar(tar)].find((x) => x.type === '0')!;
  assert.equal(e.name, `${LONG_DIR}/control`);
});

test('rejects duplicate or non-regular control entries', () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, 'r'));
    writeFileSync(join(dir, 'r/target'), 'x');
    execFileSync('ln', ['-s', 'target', join(dir, 'r/control')]);
    execFileSync('tar', ['--format=ustar', '-cf', join(dir, 'a.tar'), '-C', join(dir, 'r'), 'control']);
    assertBad(() => findControlFile(new Uint8Array(readFileSync(join(dir, 'a.tar')))), /not a regular file/);
    execFileSync('rm', [join(dir, 'r/control')]);
    writeFileSync(join(dir, 'r/control'), 'A: b\n');
    execFileSync('tar', ['--format=ustar', '-cf', join(dir, 'b.tar'), '-C', join(dir, 'r'), 'control']);
    execFileSync('tar', ['--format=ustar', '-cf', join(dir, 'c.tar'), '-C', join(dir, 'r'), './control']);
    const first = readFileSync(join(dir, 'b.tar')).subarray(0, 1024); // header + one data block, no end marker
    const both = new Uint8Array(Buffer.concat([first, readFileSync(join(dir, 'c.tar'))]));
    assertBad(() => findControlFile(both), /more than one/);
  } finally {
    cleanup();
  }
});
