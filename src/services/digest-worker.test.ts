// The digest worker computes the same digests as node:crypto on the main thread, from shared and ordinary bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { DigestWorker, sharedCopy } from './digest-worker.ts';

test('digests of parts (shared and copied) equal the digest of their concatenation; concurrent requests; close', async () => {
  const w = new DigestWorker();
  try {
    const parts = [Buffer.from('<metadata packages="3">'), sharedCopy(randomBytes(1 << 20)), sharedCopy(randomBytes(12345)), Buffer.from('</metadata>\n')];
    const whole = Buffer.concat(parts);
    const [a, b, c] = await Promise.all([w.digest('sha256', parts), w.digest('sha512', parts), w.digest('sha256', [])]);
    assert.equal(a, createHash('sha256').update(whole).digest('hex'));
    assert.equal(b, createHash('sha512').update(whole).digest('hex'));
    assert.equal(c, createHash('sha256').digest('hex'));
    assert.ok(parts[1]!.buffer instanceof SharedArrayBuffer);
  } finally {
    await w.close();
  }
  // A closed worker starts again on the next request.
  assert.equal(await w.digest('sha256', [Buffer.from('x')]), createHash('sha256').update('x').digest('hex'));
  await w.close();
});

test('a prefix finished with the rest gives the digest of the whole; a prefix that is gone falls back to the whole', async () => {
  const w = new DigestWorker();
  try {
    const head = Buffer.from('<metadata packages="4">');
    const sealed = [sharedCopy(randomBytes(300_000)), sharedCopy(randomBytes(7))];
    const rest = [sharedCopy(randomBytes(999)), Buffer.from('tail'), Buffer.from('</metadata>\n')];
    const whole = [head, ...sealed, ...rest];
    const expected = createHash('sha256').update(Buffer.concat(whole)).digest('hex');
    const p = w.prefix('sha256', [head, ...sealed]);
    assert.equal(await w.finish(p, rest, whole), expected);
    assert.equal(w.finishedFromPrefix, 1);
    // Used once: a second finish hashes the whole (and still gives the right answer).
    assert.equal(await w.finish(p, rest, whole), expected);
    assert.equal(w.finishedFromPrefix, 1);
    // A wrong rest with a good prefix gives a different digest (the prefix really is used).
    const q = w.prefix('sha256', [head, ...sealed]);
    assert.notEqual(await w.finish(q, rest.slice(1), whole), expected);
    assert.equal(w.finishedFromPrefix, 2);
    // Dropped: the whole.
    const r = w.prefix('sha512', [head]);
    w.drop(r);
    assert.equal(await w.finish(r, [...sealed, ...rest], whole), createHash('sha512').update(Buffer.concat(whole)).digest('hex'));
    assert.equal(w.finishedFromPrefix, 2);
    // Its worker ended: the whole.
    const s = w.prefix('sha256', [head, ...sealed]);
    await w.close();
    assert.equal(await w.finish(s, rest, whole), expected);
    assert.equal(w.finishedFromPrefix, 2);
  } finally {
    await w.close();
  }
});

test('kept parts are named by number: on every worker, after a restart too, and gone once released', async () => {
  const w = new DigestWorker();
  try {
    const chunks = [sharedCopy(randomBytes(70_000)), sharedCopy(randomBytes(5))];
    const keys = w.keep(chunks);
    const head = Buffer.from('head');
    const expected = createHash('sha256').update(Buffer.concat([head, ...chunks, head])).digest('hex');
    // Several at once: both workers are used, and each has the parts.
    const all = await Promise.all(Array.from({ length: 4 }, () => w.digest('sha256', [head, ...keys, head])));
    assert.deepEqual(all, Array(4).fill(expected));
    const p = w.prefix('sha256', [head, keys[0]!]);
    assert.equal(await w.finish(p, [keys[1]!, head], [head, ...keys, head]), expected);
    assert.equal(w.finishedFromPrefix, 1);
    // Workers started after the parts were kept receive them when they start.
    await w.close();
    assert.equal(await w.digest('sha256', [head, ...keys, head]), expected);
    w.release(keys);
    await assert.rejects(w.digest('sha256', [keys[0]!]), /no part/);
  } finally {
    await w.close();
  }
});
