// The small concurrency primitives services share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { mapLimit, Semaphore } from './async.ts';

test('mapLimit keeps order and never runs more than the limit at once', async () => {
  let running = 0;
  let most = 0;
  const out = await mapLimit([5, 1, 4, 2, 3, 0], 3, async (ms, i) => {
    running++;
    most = Math.max(most, running);
    await sleep(ms);
    running--;
    return i * 10;
  });
  assert.deepEqual(out, [0, 10, 20, 30, 40, 50]);
  assert.equal(most, 3);
});

test('mapLimit after a failure starts nothing more and rejects only once the running items have ended', async () => {
  const started: number[] = [];
  let stillRunning = 0;
  const p = mapLimit([0, 1, 2, 3, 4, 5, 6, 7], 3, async (i) => {
    started.push(i);
    stillRunning++;
    try {
      if (i === 1) throw new Error(`item ${i} failed`);
      await sleep(30);
    } finally {
      stillRunning--;
    }
  });
  await assert.rejects(p, /item 1 failed/);
  assert.equal(stillRunning, 0, 'no item is still running when the call rejects');
  assert.deepEqual(started.sort(), [0, 1, 2], 'nothing was started after the failure');
});

test('Semaphore: at most `limit` at once, the others in arrival order, a failure frees its place', async () => {
  const s = new Semaphore(2);
  let now = 0;
  let max = 0;
  const order: number[] = [];
  const job = (i: number) =>
    s.run(async () => {
      max = Math.max(max, ++now);
      await new Promise((r) => setTimeout(r, 5));
      now--;
      order.push(i);
      if (i === 1) throw new Error('one fails');
      return i;
    });
  const out = await Promise.allSettled([0, 1, 2, 3, 4, 5].map(job));
  assert.equal(max, 2);
  assert.equal(out[1]!.status, 'rejected');
  assert.deepEqual(out.filter((o) => o.status === 'fulfilled').map((o) => (o as PromiseFulfilledResult<number>).value), [0, 2, 3, 4, 5]);
  assert.deepEqual(order.slice(0, 2).sort(), [0, 1]);
});
