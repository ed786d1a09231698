import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { crc64, decodeXz, XzCorruptError, XzTooLargeError, XzUnsupportedError } from './xz-decode.ts';
import { xzCompressParts, assembleXz } from './compress.ts';
import { xorshift32 } from '../../test/helpers/xorshift.ts';

const XZ_ENV = { ...process.env, XZ_OPT: '', XZ_DEFAULTS: '' };
/** Compressed by the real xz program. */
const xz = (data: Uint8Array, ...args: string[]) => new Uint8Array(execFileSync('xz', ['-z', '-c', ...args], { input: data, env: XZ_ENV, maxBuffer: 1 << 28 }));

/** Text that compresses like a Packages file or a control archive: repeated words and fields, some noise. */
function textLike(len: number, seed: number): Uint8Array {
  const next = xorshift32(seed);
  const words = ['Package:', 'Version:', 'Depends:', 'libc6', '(>=', '2.34)', 'usr/share/doc', 'the', 'of', '\n', 'Description:', ' '];
  const parts: string[] = [];
  let n = 0;
  while (n < len) {
    const r = next();
    const w = r % 13 === 0 ? r.toString(36) : words[r % words.length]!;
    parts.push(w, ' ');
    n += w.length + 1;
  }
  return Buffer.from(parts.join('').slice(0, len), 'latin1');
}

const INPUTS: [string, Uint8Array][] = [
  ['empty', new Uint8Array(0)],
  ['one byte', Uint8Array.of(42)],
  ['text 20 KB', textLike(20_000, 1)],
  ['random 70 KB (stored LZMA2 chunks)', randomBytes(70_000)],
  ['zeros 300 KB (long matches)', new Uint8Array(300_000)],
  // past 2 MiB: several LZMA2 chunks, matches reaching into earlier chunks, a mix of compressed and stored chunks
  ['mixed 2.5 MB', Buffer.concat([textLike(1_500_000, 2), randomBytes(200_000), textLike(800_000, 3)])],
];

const OPTIONS: string[][] = [
  ['-0'],
  ['-6'],
  ['-9e'],
  ['-1', '--check=none'],
  ['-1', '--check=crc32'],
  ['-1', '--check=crc64'],
  ['-1', '--check=sha256'],
  ['--lzma2=preset=2,lc=0,lp=4,pb=0'],
  ['--lzma2=preset=2,lc=4,lp=0,pb=4'],
  ['--lzma2=preset=2,lc=1,lp=2,pb=1'],
  ['-3', '-T1', '--block-size=65536'],
];

test('decodes what the xz program writes: every preset, check type, lc/lp/pb and block layout', () => {
  for (const [name, data] of INPUTS) {
    for (const opts of OPTIONS) {
      // the large input only with a few layouts: compressing it nine more times costs seconds and covers no other decoder path
      if (data.length > 1_000_000 && !['-0', '-6', '-3'].includes(opts[0]!)) continue;
      const out = decodeXz(xz(data, ...opts), data.length);
      assert.ok(Buffer.from(out).equals(data), `${name} with xz ${opts.join(' ')}`);
    }
  }
});

test('decodes what Wharf writes: Packages.xz assembled from separately compressed parts', async () => {
  const parts = [textLike(100_000, 4), textLike(3_000, 5), randomBytes(5_000), textLike(250_000, 6)];
  const assembled = assembleXz(await xzCompressParts(parts));
  assert.ok(Buffer.from(decodeXz(assembled, 1 << 24)).equals(Buffer.concat(parts)));
});

test('concatenated streams with stream padding between them, as xz -d reads them', () => {
  const a = textLike(5_000, 7);
  const b = randomBytes(3_000);
  const file = Buffer.concat([xz(a, '-6'), new Uint8Array(8), xz(b, '--check=sha256'), new Uint8Array(4)]);
  assert.ok(Buffer.from(decodeXz(file, 1 << 20)).equals(Buffer.concat([a, b])));
  assert.ok(Buffer.from(execFileSync('xz', ['-dc'], { input: file })).equals(Buffer.concat([a, b])), 'the reference reads it too');
  // padding that is not a multiple of four is not
  assert.throws(() => decodeXz(Buffer.concat([xz(a), new Uint8Array(3)]), 1 << 20), XzCorruptError);
});

test('the output cap: exactly the cap fits, one byte more is XzTooLargeError, and a bomb stops at the cap', () => {
  const data = textLike(100_000, 8);
  const packed = xz(data, '-6');
  assert.equal(decodeXz(packed, data.length).length, data.length);
  assert.throws(() => decodeXz(packed, data.length - 1), (e: unknown) => e instanceof XzTooLargeError && e.limit === data.length - 1);
  // 64 MiB of zeros packs into ~10 KB; a 1 MiB cap ends it early
  const bomb = xz(new Uint8Array(64 << 20), '-6');
  assert.ok(bomb.length < 20_000);
  const t0 = performance.now();
  assert.throws(() => decodeXz(bomb, 1 << 20), XzTooLargeError);
  assert.ok(performance.now() - t0 < 5_000);
});

test('a header that asks for a 4 GiB dictionary allocates nothing for it (the output is the dictionary)', () => {
  const data = textLike(10_000, 9);
  const packed = Buffer.from(xz(data, '-6'));
  // block header right after the 12-byte stream header: size byte, flags, LZMA2 filter id 0x21, props size 1, props
  const h = 12;
  const headerSize = (packed[h]! + 1) * 4;
  const propsAt = packed.indexOf(Buffer.from([0x21, 0x01]), h) + 2;
  assert.ok(propsAt > h && propsAt < h + headerSize);
  packed[propsAt] = 40; // 4 GiB - 1
  packed.writeUInt32LE(crc32(packed.subarray(h, h + headerSize - 4)), h + headerSize - 4);
  assert.ok(Buffer.from(decodeXz(packed, data.length)).equals(data));
});

test('filters it does not implement (x86 BCJ, delta) are XzUnsupportedError, so a caller can use the xz program', () => {
  const data = textLike(10_000, 10);
  assert.throws(() => decodeXz(xz(data, '--x86', '--lzma2=preset=1'), 1 << 20), XzUnsupportedError);
  assert.throws(() => decodeXz(xz(data, '--delta=dist=4', '--lzma2=preset=1'), 1 << 20), XzUnsupportedError);
  // the legacy .lzma format is not .xz at all
  assert.throws(() => decodeXz(xz(data, '--format=lzma'), 1 << 20), XzCorruptError);
  assert.throws(() => decodeXz(Buffer.from('not xz at all'), 1 << 20), XzCorruptError);
});

test('damage: every truncation, and every flipped byte of a checked stream, is an error, never other bytes', () => {
  const data = textLike(3_000, 11);
  for (const check of ['crc32', 'crc64', 'sha256']) {
    const packed = xz(data, '-6', `--check=${check}`);
    for (let len = 0; len < packed.length; len++) {
      assert.throws(() => decodeXz(packed.subarray(0, len), 1 << 20), XzCorruptError, `truncated to ${len} of ${packed.length} (${check})`);
    }
    for (let i = 0; i < packed.length; i++) {
      const bad = Buffer.from(packed);
      bad[i] ^= 1 << (i % 8);
      try {
        const out = decodeXz(bad, 1 << 20);
        assert.fail(`byte ${i} flipped (${check}) decoded to ${Buffer.from(out).equals(data) ? 'the same' : 'other'} bytes`);
      } catch (e) {
        assert.ok(e instanceof XzCorruptError || e instanceof XzUnsupportedError || e instanceof XzTooLargeError, `byte ${i} flipped (${check}): ${String(e)}`);
      }
    }
  }
});

test('random garbage after a valid stream header never throws anything but the decoder errors', () => {
  const header = xz(new Uint8Array(0)).subarray(0, 12);
  const next = xorshift32(12);
  for (let k = 0; k < 2000; k++) {
    const body = new Uint8Array(1 + (next() % 200));
    for (let i = 0; i < body.length; i++) body[i] = next() & 0xff;
    if (k % 2 === 0) body[0] = 0x02; // a plausible block header size
    try {
      decodeXz(Buffer.concat([header, body]), 1 << 16);
    } catch (e) {
      assert.ok(e instanceof XzCorruptError || e instanceof XzUnsupportedError || e instanceof XzTooLargeError, String(e));
    }
  }
});

test('CRC64 as xz computes it (ECMA-182, reflected)', () => {
  assert.equal(Buffer.from(crc64(Buffer.from('123456789'))).readBigUInt64LE(), 0x995dc9bbdf1939fan);
  assert.equal(Buffer.from(crc64(new Uint8Array(0))).readBigUInt64LE(), 0n);
});

test('what xz refuses, refused too (found by a differential fuzzer against xz 5.4.1)', () => {
  // A match running past the end of its LZMA2 chunk, finished by the next chunk: xz stops at "aaaaa", corrupt.
  const overrun = Buffer.from(
    'fd377a585a0000016922de360200210100000000372797d6e0000400065d0030cdfc0000008000040004000000000000f0cd114c0001280a9ff20e9d9042990d010000000001595a',
    'hex',
  );
  assert.throws(() => decodeXz(overrun, 1 << 20), (e: unknown) => e instanceof XzCorruptError && /past the end of its chunk/.test((e as Error).message));
  // A distance of 4097 in a block that declares a 4 KiB dictionary (props 0).
  const far = Buffer.from(
    'fd377a585a0000016922de360200210100000000372797d6e01003001e5d0030dff41bffefffa901167491cfd07bf6912835f00ba8441eae1e2f0000000000005fc8bb090001368420000000018922f53e300d8b020000000001595a',
    'hex',
  );
  assert.throws(() => decodeXz(far, 1 << 20), (e: unknown) => e instanceof XzCorruptError && /dictionary size/.test((e as Error).message));
  // The same bytes declaring 6 KiB (props 1, block header CRC fixed): the distance fits, and xz reads it too.
  const fits = Buffer.from(far);
  const h = 12;
  const headerSize = (fits[h]! + 1) * 4;
  const propsAt = fits.indexOf(Buffer.from([0x21, 0x01]), h) + 2;
  fits[propsAt] = 1;
  fits.writeUInt32LE(crc32(fits.subarray(h, h + headerSize - 4)), h + headerSize - 4);
  const out = decodeXz(fits, 1 << 20);
  assert.equal(out.length, 4100);
  assert.ok(Buffer.from(execFileSync('xz', ['-dc'], { input: fits })).equals(out), 'as xz decodes it');
});

test('the cap holds for outputs of a few bytes too', () => {
  const data = Buffer.from('x'.repeat(50));
  const packed = xz(data, '-6');
  for (const cap of [0, 10, 49]) assert.throws(() => decodeXz(packed, cap), XzTooLargeError, `cap ${cap}`);
  assert.equal(decodeXz(packed, 50).length, 50);
});
