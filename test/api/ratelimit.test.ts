// Failed authentications are limited per client address: 429 with Retry-After, so tokens cannot be brute-forced.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWharf, type WharfInstance } from '../helpers/wharf.ts';

let w: WharfInstance;
before(async () => {
  w = await startWharf({ env: { WHARF_AUTH_FAILURES_PER_MINUTE: '3' } });
});
after(async () => {
  await w?.stop();
});

test('after the allowed failures the address gets 429 with Retry-After, even with a good token', async () => {
  const wrong = { Authorization: 'Bearer wharf_deploy_not-a-real-token-at-all-000000000000000000' };
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${w.url}/api/v1/repos`, { headers: wrong });
    assert.equal(r.status, 401, `attempt ${i + 1}`);
  }
  const limited = await fetch(`${w.url}/api/v1/repos`, { headers: wrong });
  assert.equal(limited.status, 429);
  const retry = Number(limited.headers.get('retry-after'));
  assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  assert.equal(((await limited.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED');
  // The limit is on the address: guessing and then using a good token does not get through while limited.
  const good = await fetch(`${w.url}/api/v1/repos`, { headers: { Authorization: `Bearer ${w.token}` } });
  assert.equal(good.status, 429);
  // Anonymous public reads are not authentication attempts and are not limited.
  assert.equal((await fetch(`${w.url}/healthz`)).status, 200);
});

test('per-address request limits, when configured, answer 429 with Retry-After for every kind of request', async () => {
  const limited = await startWharf({ env: { WHARF_RATE_LIMIT_PER_IP: '1' } }); // 1/s, bursts of 10
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await fetch(`${limited.url}/`)).status);
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(200));
    assert.ok(statuses.slice(10).every((s) => s === 429), statuses.join(','));
    const r = await fetch(`${limited.url}/`);
    assert.equal(r.status, 429);
    assert.equal((await fetch(`${limited.url}/healthz`)).status, 200, 'health probes are never limited');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED_REQUESTS');
  } finally {
    await limited.stop();
  }
});
