// The small concurrency primitives services share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { mapLimit } from './async.ts';

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
