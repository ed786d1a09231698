import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  assembleXz,
  CompressionError,
  compressChunk,
  concatGzip,
  gzipMember,
  parseXzStream,
  xzCompress,
  xzDecompress,
  type CompressedChunk,
} from './compress.ts';
import { xorshift32 } from '../../test/helpers/xorshift.ts';

const APT_HELPER = '/usr/lib/apt/apt-helper';
const ENV = { ...process.env, XZ_OPT: '', XZ_DEFAULTS: '' };
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-compress-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let fileCounter = 0;
function writeTemp(data: Uint8Array, ext: string): string {
  const file = join(dir, `f${fileCounter++}${ext}`);
  writeFileSync(file, data);
  return file;
}

/** Run a command; return stdout, failing the test with stderr if it exits non-zero. */
function run(cmd: string, args: string[], input?: Uint8Array): Uint8Array {
  const r = spawnSync(cmd, args, { input, env: ENV, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stderr?.toString()}`);
  return new Uint8Array(r.stdout);
}

const PY_LZMA = 'import lzma,sys; sys.stdout.buffer.write(lzma.decompress(open(sys.argv[1],"rb").read()))';
const PY_GZIP = 'import gzip,sys; sys.stdout.buffer.write(gzip.decompress(open(sys.argv[1],"rb").read()))';

/** Decode an .xz with every reader we have and check each returns `expected`. */
function checkXzReaders(xz: Uint8Array, expected: Uint8Array): void {
  const file = writeTemp(xz, '.xz');
  assert.deepEqual(run('xz', ['-d', '-c', file]), expected, 'xz -dc');
  run('xz', ['-t', file]);
  // One stream, not several concatenated ones.
  const list = new TextDecoder().decode(run('xz', ['--robot', '-l', file]));
  assert.equal(list.split('\n').find((l) => l.startsWith('totals\t'))!.split('\t')[1], '1', 'exactly one stream');
  assert.deepEqual(run('python3', ['-c', PY_LZMA, file]), expected, 'python lzma');
  if (existsSync(APT_HELPER)) assert.deepEqual(run(APT_HELPER, ['cat-file', file]), expected, 'apt-helper cat-file');
}

function checkGzReaders(gz: Uint8Array, expected: Uint8Array): void {
  const file = writeTemp(gz, '.gz');
  assert.deepEqual(run('gzip', ['-d', '-c', file]), expected, 'gzip -dc');
  assert.deepEqual(run('zcat', [file]), expected, 'zcat');
  run('gzip', ['-t', file]);
  assert.deepEqual(run('python3', ['-c', PY_GZIP, file]), expected, 'python gzip');
  assert.deepEqual(new Uint8Array(gunzipSync(gz)), expected, 'node gunzip');
  if (existsSync(APT_HELPER)) assert.deepEqual(run(APT_HELPER, ['cat-file', file]), expected, 'apt-helper cat-file');
}

function randomChunk(n: number, seed: number): Uint8Array {
  const r = xorshift32(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() & 0xff;
  return out;
}

/** A run of whole Packages stanzas of about n bytes. */
function packagesChunk(n: number, seed: number): Uint8Array {
  const r = xorshift32(seed);
  const words = ['lib', 'python3', 'data', 'utils', 'common', 'dev', 'doc', 'tools', 'server', 'client'];
  let s = '';
  for (let i = 0; s.length < n; i++) {
    const name = `${words[r() % words.length]}-${words[r() % words.length]}${seed}-${i}`;
    const hash = Array.from({ length: 8 }, () => r().toString(16).padStart(8, '0')).join('');
    s +=
      `Package: ${name}\nVersion: ${r() % 10}.${r() % 30}-${r() % 5}\nArchitecture: amd64\n` +
      `Maintainer: Team <team@example.org>\nInstalled-Size: ${r() % 99999}\n` +
      `Filename: pool/main/${name[0]}/${name}/${name}_amd64.deb\nSize: ${r() % 9999999}\nSHA256: ${hash}\n` +
      `Description: ${words[r() % words.length]} package \u00e9t\u00e9\n\n`;
  }
  return new TextEncoder().encode(s);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return concatGzip(parts); // plain concatenation, which is exactly what concatGzip is documented to do
}

const EMPTY = new Uint8Array(0);
const ONE_BYTE = new Uint8Array([0x41]);

test('gzipMember is deterministic: mtime 0, no name, Unix OS byte, same bytes every time', () => {
  const data = packagesChunk(20_000, 1);
  const a = gzipMember(data);
  const b = gzipMember(data);
  assert.deepEqual(a, b);
  assert.deepEqual([...a.subarray(0, 4)], [0x1f, 0x8b, 8, 0], 'magic, deflate, no flags (no name/comment)');
  assert.deepEqual([...a.subarray(4, 8)], [0, 0, 0, 0], 'mtime 0');
  assert.equal(a[9], 3, 'OS = Unix');
  assert.deepEqual(new Uint8Array(gunzipSync(a)), data);
  assert.ok(gzipMember(data, 1).length > a.length, 'level is honoured');
  assert.throws(() => gzipMember(data, 10), RangeError);
});

test('concatenated gzip members (with empty and 1-byte chunks) decode with gzip, zcat, python, node and apt', () => {
  const chunks = [packagesChunk(30_000, 2), EMPTY, ONE_BYTE, randomChunk(20_000, 3), packagesChunk(5_000, 4), EMPTY];
  const members = chunks.map((c) => gzipMember(c));
  checkGzReaders(concatGzip(members), concat(chunks));
  checkGzReaders(concatGzip([gzipMember(EMPTY)]), EMPTY);
  checkGzReaders(concatGzip([gzipMember(ONE_BYTE)]), ONE_BYTE);
  assert.equal(concatGzip([]).length, 0);
});

test('xzCompress writes one single-stream xz file that xz and python decode', async () => {
  for (const data of [EMPTY, ONE_BYTE, packagesChunk(100_000, 5), randomChunk(70_000, 6)]) {
    const out = await xzCompress(data);
    checkXzReaders(out, data);
    const part = parseXzStream(out);
    assert.equal(part.checkType, 1, 'CRC32 (so in-process stored blocks can join)');
    assert.equal(part.records.length, data.length === 0 ? 0 : 1);
  }
  // Presets are honoured and validated.
  const text = packagesChunk(100_000, 7);
  assert.ok((await xzCompress(text, { preset: 0 })).length > (await xzCompress(text, { preset: 6 })).length);
  await assert.rejects(xzCompress(text, { preset: 10 }), RangeError);
});

test('XZ_OPT in the environment does not change the output', async () => {
  const data = packagesChunk(50_000, 8);
  const plain = await xzCompress(data);
  const saved = process.env.XZ_OPT;
  process.env.XZ_OPT = '-T2 --block-size=4096 --check=sha256';
  try {
    assert.deepEqual(await xzCompress(data), plain);
  } finally {
    if (saved === undefined) delete process.env.XZ_OPT;
    else process.env.XZ_OPT = saved;
  }
});

for (const count of [1, 2, 50]) {
  test(`chunks compressed separately and assembled from ${count} part(s) decode with every reader`, async () => {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      // Mix text, random, empty and 1-byte chunks; sizes vary so the index holds multi-byte integers.
      const kind = i % 5;
      if (count === 1) chunks.push(packagesChunk(64_000, 100));
      else if (kind === 0) chunks.push(packagesChunk(1_000 + i * 997, i));
      else if (kind === 1) chunks.push(i === 1 ? EMPTY : randomChunk(100 + i * 311, i));
      else if (kind === 2) chunks.push(ONE_BYTE);
      else if (kind === 3) chunks.push(EMPTY);
      else chunks.push(packagesChunk(200 + i * 50, i));
    }
    const compressed: CompressedChunk[] = await Promise.all(chunks.map((c) => compressChunk(c)));
    const expected = concat(chunks);

    const xz = assembleXz(compressed.map((c) => c.xz));
    checkXzReaders(xz, expected);
    assert.deepEqual(await xzDecompress(xz, expected.length), expected);
    assert.equal(parseXzStream(xz).records.length, chunks.filter((c) => c.length > 0).length, 'one block per non-empty chunk');

    checkGzReaders(concatGzip(compressed.map((c) => c.gz)), expected);
  });
}

test('empty and 1-byte chunks alone assemble into valid files', async () => {
  for (const chunks of [[EMPTY], [ONE_BYTE], [EMPTY, EMPTY], [ONE_BYTE, EMPTY, ONE_BYTE]]) {
    const compressed = await Promise.all(chunks.map((c) => compressChunk(c)));
    const expected = concat(chunks);
    checkXzReaders(assembleXz(compressed.map((c) => c.xz)), expected);
    checkGzReaders(concatGzip(compressed.map((c) => c.gz)), expected);
  }
  checkXzReaders(assembleXz([]), EMPTY);
});

test('replacing one chunk only needs that chunk recompressed', async () => {
  const chunks = [packagesChunk(10_000, 20), packagesChunk(10_000, 21), packagesChunk(10_000, 22)];
  const compressed = await Promise.all(chunks.map((c) => compressChunk(c)));
  chunks[1] = packagesChunk(12_000, 23);
  compressed[1] = await compressChunk(chunks[1]);
  checkXzReaders(assembleXz(compressed.map((c) => c.xz)), concat(chunks));
  checkGzReaders(concatGzip(compressed.map((c) => c.gz)), concat(chunks));
});

test('xzDecompress enforces the output cap with code OUTPUT_TOO_LARGE', async () => {
  const data = packagesChunk(200_000, 9);
  const xz = await xzCompress(data);
  assert.deepEqual(await xzDecompress(xz, data.length), data, 'exactly at the cap is fine');
  await assert.rejects(xzDecompress(xz, data.length - 1), (err: unknown) => {
    assert.ok(err instanceof CompressionError);
    assert.equal(err.code, 'OUTPUT_TOO_LARGE');
    assert.match(err.message, /exceeds the limit of 199999|exceeds the limit of \d+ bytes/);
    return true;
  });
  await assert.rejects(xzDecompress(xz, 0), { code: 'OUTPUT_TOO_LARGE' });
  // A highly compressible bomb is stopped early.
  const bomb = await xzCompress(new Uint8Array(20 << 20), { preset: 0 });
  await assert.rejects(xzDecompress(bomb, 1 << 20), { code: 'OUTPUT_TOO_LARGE' });
  assert.equal((await xzDecompress(assembleXz([]), 0)).length, 0);
});

test('xzDecompress rejects corrupt or non-xz input with code XZ_FAILED', async () => {
  const xz = await xzCompress(packagesChunk(10_000, 10));
  const corrupt = xz.slice();
  corrupt[100] = corrupt[100]! ^ 0xff;
  await assert.rejects(xzDecompress(corrupt, 1 << 20), { code: 'XZ_FAILED' });
  await assert.rejects(xzDecompress(xz.subarray(0, xz.length - 10), 1 << 20), { code: 'XZ_FAILED' });
  await assert.rejects(xzDecompress(new TextEncoder().encode('not xz at all'), 1 << 20), { code: 'XZ_FAILED' });
});

test('a missing xz binary gives a clear XZ_NOT_FOUND error', async () => {
  const saved = process.env.PATH;
  process.env.PATH = join(dir, 'no-such-dir');
  try {
    await assert.rejects(xzCompress(ONE_BYTE), (err: unknown) => {
      assert.ok(err instanceof CompressionError);
      assert.equal(err.code, 'XZ_NOT_FOUND');
      assert.match(err.message, /xz-utils/);
      return true;
    });
    await assert.rejects(xzDecompress(ONE_BYTE, 10), { code: 'XZ_NOT_FOUND' });
  } finally {
    process.env.PATH = saved;
  }
});

test('apt-helper cat-file rejects a corrupt assembled .xz (the apt check above is not vacuous)', { skip: !existsSync(APT_HELPER) && 'apt-helper not installed' }, async () => {
  const c = await compressChunk(packagesChunk(5_000, 11));
  const xz = assembleXz([c.xz, c.xz]);
  const bad = xz.slice();
  bad[bad.length - 20] = bad[bad.length - 20]! ^ 0xff; // inside the index
  const r = spawnSync(APT_HELPER, ['cat-file', writeTemp(bad, '.xz')]);
  assert.notEqual(r.status, 0);
});

test('xz runs in a process group of its own: a Ctrl-C to the server\'s group (which stops it gracefully) does not kill the compressions it finishes', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const statOf = (pid: string) => {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ppid: Number(f[1]), pgrp: Number(f[2]) };
  };
  const ours = statOf(String(process.pid)).pgrp;
  // Incompressible input large enough for xz to run a while.
  const rnd = xorshift32(7);
  const data = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4) new DataView(data.buffer).setUint32(i, rnd());
  const running = xzCompress(data);
  let seen: { pgrp: number } | undefined;
  for (let i = 0; i < 500 && !seen; i++) {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const st = statOf(pid);
        if (st.ppid === process.pid && st.comm === 'xz') seen = st;
      } catch {
        // gone meanwhile
      }
    }
    if (!seen) await new Promise((r) => setTimeout(r, 5));
  }
  await running;
  assert.ok(seen, 'xz was seen running');
  assert.notEqual(seen.pgrp, ours, 'xz is not in the server\'s process group');
});
