// When a publisher looks for retired files that are due.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetentionSchedule } from './retention.ts';

test('after a look that found nothing, the next waits a tenth of the retention (at most 5 s); one that found some does not', () => {
  let now = 1_000_000;
  const s = new RetentionSchedule(3600, () => now);
  assert.equal(s.due(1), true, 'never looked: due');
  s.checked(1, false);
  assert.equal(s.due(1), false);
  assert.equal(s.due(2), true, 'per distribution');
  now += 4999;
  assert.equal(s.due(1), false);
  now += 1;
  assert.equal(s.due(1), true, '5 s later');
  s.checked(1, true);
  assert.equal(s.due(1), true, 'found some: look again at the next publish');

  const short = new RetentionSchedule(2, () => now);
  short.checked(1, false);
  now += 199;
  assert.equal(short.due(1), false);
  now += 1;
  assert.equal(short.due(1), true, 'a tenth of a 2 s retention');

  const none = new RetentionSchedule(0, () => now);
  none.checked(1, false);
  assert.equal(none.due(1), true, 'retention 0: every publish looks');
});
