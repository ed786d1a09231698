// The incremental APT index: chunks sealed by a small add go out stored and are compressed by finishPending; a bulk
// add compresses at once. Every build's files decompress to the same Packages text, and its digests are those of
// the bytes it returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { IncrementalIndex, endsChunk, type ChunkPieces } from './apt-index.ts';
import { gzipMember, xzCompressParts } from '../formats/compress.ts';
import type { BuiltIndex } from './apt-index.ts';

/** A row whose sha256 seals a chunk (or not). */
function row(i: number, seals: boolean): { sha256: string; stanza: string } {
  const sha256 = (seals ? '00' : 'ff') + createHash('sha256').update(String(i)).digest('hex').slice(2);
  assert.equal(endsChunk(sha256), seals);
  return { sha256, stanza: `Package: p${i}\nVersion: 1.0-${i}\nDescription: package number ${i}\n ${'x'.repeat(400)}\n` };
}

function counting() {
  const calls: number[] = [];
  const source = async (chunks: readonly { id: string; plain: Uint8Array }[]): Promise<ChunkPieces[]> => {
    calls.push(chunks.length);
    const xz = await xzCompressParts(chunks.map((c) => c.plain));
    return chunks.map((c, i) => ({ gz: gzipMember(c.plain, 9), xz: xz[i]! }));
  };
  return { calls, source };
}

const cat = (pieces: readonly Uint8Array[]) => Buffer.concat(pieces.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));

/** Checks the files against the expected text and the digests against the files; returns the .gz and .xz bytes. */
function check(built: BuiltIndex, text: string): { gz: Buffer; xz: Buffer } {
  const plain = cat(built.plain);
  const gz = cat(built.gz);
  const xz = cat(built.xz);
  assert.equal(plain.toString(), text);
  assert.equal(gunzipSync(gz).toString(), text);
  const unxz = spawnSync('xz', ['-d', '-c'], { input: xz, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(unxz.status, 0, unxz.stderr.toString());
  assert.equal(unxz.stdout.toString(), text);
  for (const [bytes, d] of [[plain, built.digests.plain], [gz, built.digests.gz], [xz, built.digests.xz]] as const) {
    assert.equal(d.size, bytes.length);
    assert.equal(d.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(d.sha512, createHash('sha512').update(bytes).digest('hex'));
    assert.equal(d.md5, createHash('md5').update(bytes).digest('hex'));
  }
  return { gz, xz };
}

test('a small add seals provisionally; finishPending compresses for the next builds; a bulk add compresses at once', async () => {
  const { calls, source } = counting();
  const index = new IncrementalIndex(source);
  let text = '';
  const add = async (rows: { sha256: string; stanza: string }[]) => {
    await index.add(rows);
    for (const r of rows) text += r.stanza + '\n';
  };

  // A chunk of 40 packages sealed by a push: stored, nothing compressed on the way.
  await add(Array.from({ length: 40 }, (_, i) => row(i, i === 39)));
  assert.equal(index.provisionalChunks, 1);
  assert.deepEqual(calls, []);
  const first = check(await index.build(), text);

  // After the publish: compressed. The index is not dirty (the files out there stay valid), the next build is
  // smaller and says the same.
  await index.finishPending();
  assert.deepEqual(calls, [1]);
  assert.equal(index.provisionalChunks, 0);
  assert.equal(index.dirty, false);
  const second = check(await index.build(), text);
  assert.ok(second.xz.length < first.xz.length / 2, `xz ${second.xz.length} < ${first.xz.length} / 2`);
  await index.finishPending(); // nothing left: no call
  assert.deepEqual(calls, [1]);

  // Another provisional chunk, then a bulk add sealing far more than PROVISIONAL_BYTES: the bulk is compressed at
  // once, behind the pending one, which a build still carries stored until finishPending.
  await add([row(100, false), row(101, true)]);
  assert.equal(index.provisionalChunks, 1);
  const bulk = Array.from({ length: 3000 }, (_, i) => row(1000 + i, i % 100 === 99));
  await add(bulk);
  assert.deepEqual(calls, [1, 30], 'the bulk add compressed its 30 chunks in one call');
  assert.equal(index.provisionalChunks, 1);
  check(await index.build(), text);
  await index.finishPending();
  assert.equal(index.provisionalChunks, 0);
  check(await index.build(), text);

  // A failed compression leaves the chunk stored; the next finishPending tries again.
  const failing = new IncrementalIndex(async () => {
    throw new Error('xz is gone');
  });
  await failing.add([row(1, true)]);
  await assert.rejects(failing.finishPending(), /xz is gone/);
  assert.equal(failing.provisionalChunks, 1);
  check(await failing.build(), row(1, true).stanza + '\n');
});
