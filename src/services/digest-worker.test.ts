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
