import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { assembleXz, parseXzStream, XZ_CHECK_CRC32, XZ_CHECK_CRC64, XZ_CHECK_NONE, XZ_CHECK_SHA256, type XzPart } from './xz.ts';

const XZ_ENV = { ...process.env, XZ_OPT: '', XZ_DEFAULTS: '' };

/** Compress with the real xz binary (extra args e.g. --check=..., --block-size=...). */
function xz(data: Uint8Array, ...args: string[]): Uint8Array {
  return new Uint8Array(execFileSync('xz', ['-z', '-c', '-T1', '-3', ...args], { input: data, env: XZ_ENV, maxBuffer: 1 << 28 }));
}

/** Decompress with the real xz binary; throws if xz rejects the data. */
function unxz(data: Uint8Array): Uint8Array {
  return new Uint8Array(execFileSync('xz', ['-d', '-c'], { input: data, env: XZ_ENV, maxBuffer: 1 << 28, stdio: ['pipe', 'pipe', 'pipe'] }));
}

function xzTest(data: Uint8Array): { status: number | null; stderr: string } {
  const r = spawnSync('xz', ['-t'], { input: data, env: XZ_ENV, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

/** `xz --robot -lvv` summary of a stream: number of streams and blocks. */
function xzList(data: Uint8Array): { streams: number; blocks: number } {
  // xz --list needs a seekable file, not stdin.
  const dir = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  try {
    execFileSync('sh', ['-c', `cat > "${dir}/f.xz"`], { input: data });
    const out = execFileSync('xz', ['--robot', '-lvv', `${dir}/f.xz`], { encoding: 'utf8', env: XZ_ENV });
    const line = out.split('\n').find((l) => l.startsWith('file\t'))!.split('\t');
    return { streams: Number(line[1]), blocks: Number(line[2]) };
  } finally {
    execFileSync('rm', ['-rf', dir]);
  }
}

function text(n: number, seed: number): Uint8Array {
  let s = '';
  let i = 0;
  while (s.length < n) s += `Package: pkg-${seed}-${i}\nVersion: 1.${i++ % 97}-${seed}\nArchitecture: amd64\n\n`;
  return new TextEncoder().encode(s.slice(0, n));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function mutate(bytes: Uint8Array, at: number, xor = 0x01): Uint8Array {
  const copy = bytes.slice();
  copy[at] = copy[at]! ^ xor;
  return copy;
}

test('assembleXz of zero parts is byte-identical to xz of empty input', () => {
  assert.deepEqual(assembleXz([]), xz(new Uint8Array(0), '--check=crc64'));
  assert.deepEqual(assembleXz([], { checkType: XZ_CHECK_CRC32 }), xz(new Uint8Array(0), '--check=crc32'));
  assert.deepEqual(assembleXz([], { checkType: XZ_CHECK_NONE }), xz(new Uint8Array(0), '--check=none'));
  assert.equal(unxz(assembleXz([])).length, 0);
  assert.equal(xzTest(assembleXz([])).status, 0);
});

test('parse then assemble of a single xz file reproduces it byte for byte', () => {
  for (const data of [new Uint8Array(0), new Uint8Array([7]), text(100_000, 1), randomBytes(50_000)]) {
    const file = xz(data);
    const part = parseXzStream(file);
    assert.equal(part.checkType, XZ_CHECK_CRC64);
    assert.equal(part.records.reduce((n, r) => n + r.uncompressedSize, 0), data.length);
    assert.equal(part.records.length, data.length === 0 ? 0 : 1);
    assert.deepEqual(assembleXz([part]), file);
  }
});

test('multi-block files written by xz itself round-trip exactly', () => {
  const data = text(300_000, 2);
  const file = xz(data, '--block-size=10000');
  const part = parseXzStream(file);
  assert.equal(part.records.length, 30);
  assert.ok(part.records.every((r) => r.uncompressedSize === 10_000));
  assert.deepEqual(assembleXz([part]), file);
});

test('every check type parses and assembles into a stream xz accepts', () => {
  const checks: [string, number][] = [['none', XZ_CHECK_NONE], ['crc32', XZ_CHECK_CRC32], ['crc64', XZ_CHECK_CRC64], ['sha256', XZ_CHECK_SHA256]];
  for (const [name, id] of checks) {
    const a = text(5000, 3);
    const b = text(7000, 4);
    const pa = parseXzStream(xz(a, `--check=${name}`));
    const pb = parseXzStream(xz(b, `--check=${name}`));
    assert.equal(pa.checkType, id);
    const out = assembleXz([pa, pb, pa]);
    assert.deepEqual(unxz(out), concat(a, b, a), name);
    assert.deepEqual(xzList(out), { streams: 1, blocks: 3 });
  }
});

test('assembling many parts gives one stream with one block per non-empty part', () => {
  const chunks = Array.from({ length: 200 }, (_, i) => (i % 17 === 0 ? new Uint8Array(0) : text(50 + i * 13, i)));
  const parts = chunks.map((c) => parseXzStream(xz(c)));
  const out = assembleXz(parts);
  assert.deepEqual(unxz(out), concat(...chunks));
  assert.equal(xzTest(out).status, 0);
  const nonEmpty = chunks.filter((c) => c.length > 0).length;
  assert.deepEqual(xzList(out), { streams: 1, blocks: nonEmpty });
  // The assembled stream parses back into the same records and blocks.
  const back = parseXzStream(out);
  assert.deepEqual(back.records, parts.flatMap((p) => p.records));
  assert.deepEqual(back.blocks, concat(...parts.map((p) => p.blocks)));
});

test('assembleXz rejects mixed check types and inconsistent parts', () => {
  const crc64 = parseXzStream(xz(text(1000, 5), '--check=crc64'));
  const crc32p = parseXzStream(xz(text(1000, 6), '--check=crc32'));
  assert.throws(() => assembleXz([crc64, crc32p]), /different check types/);
  assert.throws(() => assembleXz([crc32p, crc64]), /different check types/);
  assert.throws(() => assembleXz([crc64], { checkType: XZ_CHECK_CRC32 }), /different check types/);
  assert.throws(() => assembleXz([], { checkType: 16 }), /Invalid xz check type/);
  const truncated: XzPart = { ...crc64, blocks: crc64.blocks.subarray(4) };
  assert.throws(() => assembleXz([truncated]), /records describe/);
  const badRecord: XzPart = { ...crc64, records: [{ unpaddedSize: 3, uncompressedSize: 1000 }] };
  assert.throws(() => assembleXz([badRecord]), /unpadded size/);
});

test('parseXzStream rejects malformed input with a clear error', () => {
  const file = xz(text(3000, 7));
  const part = parseXzStream(file);
  const indexStart = 12 + part.blocks.length;
  const footer = file.length - 12;

  assert.throws(() => parseXzStream(new Uint8Array(0)), /Malformed xz data: .*too short/);
  assert.throws(() => parseXzStream(mutate(file, 0)), /bad magic/);
  assert.throws(() => parseXzStream(new TextEncoder().encode('Package: foo\n'.repeat(10))), /Malformed xz data/);
  assert.throws(() => parseXzStream(mutate(file, 7, 0x10)), /flags/);
  assert.throws(() => parseXzStream(mutate(file, 8)), /stream header CRC32/);
  assert.throws(() => parseXzStream(mutate(file, footer)), /stream footer CRC32/);
  assert.throws(() => parseXzStream(mutate(file, footer - 1)), /index CRC32/);
  assert.throws(() => parseXzStream(mutate(file, indexStart + 2)), /index CRC32/);
  assert.throws(() => parseXzStream(mutate(file, 12 + 2)), /block header CRC32/);
  assert.throws(() => parseXzStream(mutate(file, file.length - 1)), /YZ/);
  // Footer flags differing from header flags (with a recomputed footer CRC).
  const flags = file.slice();
  flags[footer + 9] = XZ_CHECK_CRC32;
  new DataView(flags.buffer).setUint32(footer, crc32(flags.subarray(footer + 4, footer + 10)), true);
  assert.throws(() => parseXzStream(flags), /footer flags differ/);
  // Backward size pointing elsewhere (with a recomputed footer CRC).
  const backward = file.slice();
  backward[footer + 4] = backward[footer + 4]! + 1;
  new DataView(backward.buffer).setUint32(footer, crc32(backward.subarray(footer + 4, footer + 10)), true);
  assert.throws(() => parseXzStream(backward), /Malformed xz data/);

  // Every truncation is rejected.
  for (let n = 0; n < file.length; n++) {
    assert.throws(() => parseXzStream(file.subarray(0, n)), /Malformed xz data/, `prefix of ${n} bytes`);
  }
  // Trailing garbage and concatenated streams are rejected; zero stream padding (multiple of 4) is accepted.
  assert.throws(() => parseXzStream(concat(file, new Uint8Array([1, 2, 3, 4]))), /Malformed xz data/);
  assert.throws(() => parseXzStream(concat(file, new Uint8Array(3))), /padding/);
  assert.throws(() => parseXzStream(concat(file, file)), /concatenated streams|Malformed/);
  assert.deepEqual(parseXzStream(concat(file, new Uint8Array(8))).records, part.records);
});

test('storedXzPart: uncompressed LZMA2 blocks join compressed ones and every decoder reads the result', async () => {
  const { storedXzPart, assembleXz, parseXzStream, XZ_CHECK_CRC32 } = await import('./xz.ts');
  const { xzCompress } = await import('./compress.ts');
  const { execFileSync } = await import('node:child_process');
  const { randomBytes } = await import('node:crypto');
  const a = Buffer.from('Package: a\nVersion: 1\n\n'.repeat(500));
  const b = randomBytes(200_000); // more than one 64 KiB LZMA2 chunk
  const c = Buffer.from('x');
  const parts = [parseXzStream(await xzCompress(a)), storedXzPart(b), storedXzPart(c), storedXzPart(new Uint8Array(0))];
  const xz = assembleXz(parts, { checkType: XZ_CHECK_CRC32 });
  execFileSync('xz', ['-t'], { input: xz });
  assert.deepEqual(execFileSync('xz', ['-dc'], { input: xz }), Buffer.concat([a, b, c]));
  const py = execFileSync('python3', ['-c', 'import lzma,sys; sys.stdout.buffer.write(lzma.decompress(sys.stdin.buffer.read()))'], { input: xz, maxBuffer: 1 << 24 });
  assert.deepEqual(py, Buffer.concat([a, b, c]));
  // A corrupted stored block is detected (the check is real).
  const bad = Buffer.from(xz);
  bad[40] ^= 0xff;
  assert.throws(() => execFileSync('xz', ['-t'], { input: bad, stdio: 'pipe' }));
});
