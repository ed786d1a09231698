import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readTarStream, tarHeader, tarPadding, tarSize, TAR_END, type TarStreamEntry } from './tar-stream.ts';
import { WharfError } from '../errors.ts';

const execFileP = promisify(execFile);
const LIMITS = { maxEntries: 100, maxEntryBytes: 1 << 20 };

function archive(files: [string, Uint8Array][]): Uint8Array {
  return Buffer.concat([...files.flatMap(([n, d]) => [tarHeader(n, d.byteLength), d, tarPadding(d.byteLength)]), TAR_END]);
}

/** The archive in chunks of the given sizes (cycled), as a network stream delivers it. */
async function* chunked(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  for (let off = 0, i = 0; off < bytes.byteLength; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.subarray(off, off + n);
    off += n;
  }
}

async function readAll(source: AsyncIterable<Uint8Array>, limits = LIMITS): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  for await (const e of readTarStream(source, limits)) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(Buffer.from(c));
    out.push([e.name, Buffer.concat(parts)]);
  }
  return out;
}

const batchError = (re: RegExp) => (e: unknown) => e instanceof WharfError && e.code === 'BATCH_INVALID' && re.test(e.message);

test('what the writer produces reads back, whatever the chunking, and its size is known in advance', async () => {
  const files: [string, Uint8Array][] = [
    ['a_1.0_amd64.deb', new Uint8Array(0)],
    ['b_2.0_all.deb', Buffer.alloc(512, 7)],
    ['c-1.0-1.x86_64.rpm', Buffer.from(Array.from({ length: 1234 }, (_, i) => i % 251))],
  ];
  const bytes = archive(files);
  assert.equal(bytes.byteLength, tarSize(files.map(([, d]) => d.byteLength)));
  for (const sizes of [[bytes.byteLength], [1], [7, 512, 3], [511, 513]]) {
    const got = await readAll(chunked(bytes, sizes));
    assert.deepEqual(
      got.map(([n, d]) => [n, d.toString('hex')]),
      files.map(([n, d]) => [n, Buffer.from(d).toString('hex')]),
      `chunks of ${sizes.join(',')}`,
    );
  }
});

test('GNU tar lists what the writer produces, and the reader reads what GNU tar writes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-tar-'));
  try {
    const ours = join(dir, 'ours.tar');
    await writeFile(ours, archive([['x_1_all.deb', Buffer.from('hello\n')], ['y_2_all.deb', Buffer.alloc(700, 1)]]));
    const { stdout } = await execFileP('tar', ['-tvf', ours]);
    assert.match(stdout, /x_1_all\.deb/);
    assert.match(stdout, /\s700 .*y_2_all\.deb/);
    await writeFile(join(dir, 'p_1_all.deb'), 'one');
    await writeFile(join(dir, 'q_1_all.deb'), Buffer.alloc(5000, 2));
    await execFileP('tar', ['--format=ustar', '-cf', join(dir, 'gnu.tar'), '-C', dir, 'p_1_all.deb', 'q_1_all.deb']);
    const got = await readAll(chunked(await readFile(join(dir, 'gnu.tar')), [100]));
    assert.deepEqual(got.map(([n, d]) => [n, d.byteLength]), [['p_1_all.deb', 3], ['q_1_all.deb', 5000]]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('anything but plain files with plain names is refused', async () => {
  const dirEntry = tarHeader('pool', 0);
  dirEntry[156] = 0x35; // '5': a directory
  // fix the checksum for the changed type flag
  dirEntry.fill(32, 148, 156);
  let sum = 0;
  for (const b of dirEntry) sum += b;
  dirEntry.set(new TextEncoder().encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
  await assert.rejects(readAll(chunked(Buffer.concat([dirEntry, TAR_END]), [512])), batchError(/not a regular file/));
  await assert.rejects(readAll(chunked(archive([['../evil.deb', Buffer.from('x')]]), [4096])), batchError(/not a plain file name/));
  await assert.rejects(readAll(chunked(archive([['dir/a.deb', Buffer.from('x')]]), [4096])), batchError(/not a plain file name/));
  await assert.rejects(readAll(chunked(archive([['.hidden', Buffer.from('x')]]), [4096])), batchError(/not a plain file name/));
});

test('damaged or truncated archives and oversized ones are refused with a clear error', async () => {
  const good = archive([['a_1_all.deb', Buffer.alloc(1000, 3)]]);
  const badSum = Buffer.from(good);
  badSum[0] = 0x62; // 'b': the checksum no longer matches
  await assert.rejects(readAll(chunked(badSum, [4096])), batchError(/wrong checksum/));
  await assert.rejects(readAll(chunked(good.subarray(0, 300), [4096])), batchError(/ends inside a header/));
  await assert.rejects(readAll(chunked(good.subarray(0, 900), [4096])), batchError(/ends inside "a_1_all.deb"/));
  await assert.rejects(readAll(chunked(good.subarray(0, 512 + 1000 + 5), [4096])), batchError(/padding/));
  await assert.rejects(readAll(chunked(good, [4096]), { maxEntries: 100, maxEntryBytes: 999 }), (e: unknown) => e instanceof WharfError && e.code === 'PAYLOAD_TOO_LARGE');
  const three = archive([['a.deb', Buffer.from('1')], ['b.deb', Buffer.from('2')], ['c.deb', Buffer.from('3')]]);
  await assert.rejects(readAll(chunked(three, [4096]), { maxEntries: 2, maxEntryBytes: 100 }), batchError(/more than 2 files/));
  await assert.rejects(readAll(chunked(Buffer.from('this is not a tar archive at all'.repeat(20)), [4096])), batchError(/checksum/));
});

test('a reader that skips an entry is stopped rather than misreading the next one', async () => {
  const bytes = archive([['a.deb', Buffer.alloc(600, 1)], ['b.deb', Buffer.alloc(10, 2)]]);
  await assert.rejects(
    (async () => {
      const seen: TarStreamEntry[] = [];
      for await (const e of readTarStream(chunked(bytes, [4096]), LIMITS)) seen.push(e); // bodies never read
    })(),
    /not read to the end/,
  );
});
