// The shared limiters with two instances standing for two nodes, on the real Redis (each run under a prefix of its
// own), and with Redis unreachable.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AuthFailureLimiter, RateLimiter } from '../../api/auth.ts';
import type { Logger } from '../../log.ts';
import { testRedis } from './bus.conformance.ts';
import { RedisBus } from './redis-bus.ts';
import { closeRedis, connectRedis, openRedis, type RedisClient } from './redis.ts';
import { SharedAuthFailureLimiter, SharedRateLimiter, type FailureLimiter, type RequestLimiter } from './shared-limits.ts';

const warnings: string[] = [];
const log: Logger = { debug() {}, info() {}, warn: (_o, msg) => void warnings.push(msg ?? ''), error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

// Compile-time: the per-node classes and the shared ones answer the same interfaces.
const _interfaces: [FailureLimiter, RequestLimiter, FailureLimiter, RequestLimiter] = [
  new AuthFailureLimiter(1),
  new RateLimiter(1),
  {} as SharedAuthFailureLimiter,
  {} as SharedRateLimiter,
];
void _interfaces;

describe('shared limits on Redis', { skip: testRedis.skip }, () => {
  const prefix = testRedis.prefix();
  let ra: RedisClient;
  let rb: RedisClient;
  before(async () => {
    ra = await connectRedis(testRedis.url, log);
    rb = await connectRedis(testRedis.url, log);
  });
  after(async () => {
    let cursor = '0';
    do {
      const [next, keys] = await ra.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) await ra.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await closeRedis(ra);
    await closeRedis(rb);
  });

  describe('SharedAuthFailureLimiter', () => {
    it('makes node B refuse at once an address that failed too often on node A (bus)', async () => {
      const p = prefix + 'bus:';
      const busA = await RedisBus.open(ra, log, { prefix: p });
      const busB = await RedisBus.open(rb, log, { prefix: p });
      const a = new SharedAuthFailureLimiter(5, ra, { log, prefix: p, bus: busA });
      const b = new SharedAuthFailureLimiter(5, rb, { log, prefix: p, bus: busB });
      try {
        const ip = '198.51.100.1';
        for (let i = 0; i < 4; i++) a.fail(ip);
        await a.flush();
        assert.equal(a.retryAfter(ip), 0);
        assert.equal(b.retryAfter(ip), 0);
        a.fail(ip);
        assert.ok(a.retryAfter(ip) > 0, 'A refuses at once (its own window)');
        assert.ok(await until(() => b.retryAfter(ip) > 0, 1_000), 'B refuses within a second');
        const wait = b.retryAfter(ip);
        assert.ok(wait >= 1 && wait <= 60, `retry after ${wait}`);
        assert.equal(b.retryAfter('198.51.100.2'), 0, 'other addresses are not affected');
      } finally {
        a.close();
        b.close();
        await busA.close();
        await busB.close();
      }
    });

    it('counts failures spread over the nodes together', async () => {
      const p = prefix + 'spread:';
      const busA = await RedisBus.open(ra, log, { prefix: p });
      const busB = await RedisBus.open(rb, log, { prefix: p });
      const a = new SharedAuthFailureLimiter(6, ra, { log, prefix: p, bus: busA });
      const b = new SharedAuthFailureLimiter(6, rb, { log, prefix: p, bus: busB });
      try {
        const ip = '2001:db8::1';
        for (let i = 0; i < 3; i++) (a.fail(ip), b.fail(ip));
        await Promise.all([a.flush(), b.flush()]);
        // neither node alone saw six failures, yet both refuse
        assert.ok(await until(() => a.retryAfter(ip) > 0 && b.retryAfter(ip) > 0, 1_000));
      } finally {
        a.close();
        b.close();
        await busA.close();
        await busB.close();
      }
    });

    it('without a bus, a node learns the count from its own next failure', async () => {
      const p = prefix + 'nobus:';
      const a = new SharedAuthFailureLimiter(5, ra, { log, prefix: p });
      const b = new SharedAuthFailureLimiter(5, rb, { log, prefix: p });
      const ip = '203.0.113.9';
      for (let i = 0; i < 5; i++) a.fail(ip);
      await a.flush();
      assert.ok(a.retryAfter(ip) > 0);
      assert.equal(b.retryAfter(ip), 0, 'B has not heard of it yet');
      b.fail(ip);
      await b.flush();
      assert.ok(b.retryAfter(ip) > 0, 'the 6th failure cluster-wide, B refuses');
    });

    it('lets an address in again once the cluster-wide estimate fades', async () => {
      const p = prefix + 'fade:';
      const a = new SharedAuthFailureLimiter(4, ra, { log, prefix: p });
      const W = SharedAuthFailureLimiter.WINDOW_MS;
      const start = (Math.floor(Date.now() / W) + 1) * W; // the start of a window (keys are per window index)
      const ip = '192.0.2.200';
      for (let i = 0; i < 4; i++) a.fail(ip, start + 50_000);
      await a.flush();
      assert.ok(a.retryAfter(ip, start + 50_000) > 0);
      // Two windows later nothing remains, locally or cluster-wide.
      assert.equal(a.retryAfter(ip, start + 2 * W + 1), 0);
    });
  });

  describe('SharedRateLimiter', () => {
    it('holds two nodes taking at full speed to about the configured rate together', async () => {
      const p = prefix + 'rate:';
      let now = Date.now();
      const clock = () => now;
      const a = new SharedRateLimiter(20, ra, { log, prefix: p, now: clock, syncMs: 3_600_000 });
      const b = new SharedRateLimiter(20, rb, { log, prefix: p, now: clock, syncMs: 3_600_000 });
      const local = [new RateLimiter(20), new RateLimiter(20)];
      const stepMs = 50;
      let sharedLate = 0;
      let localLate = 0;
      const start = now;
      for (let step = 0; step < 400; step++, now += stepMs) {
        for (let i = 0; i < 5; i++) {
          // each node is asked for 100 requests a second, five times its share
          for (const node of [a, b]) if (node.take('token:1', now) === 0 && now - start >= 5_000) sharedLate++;
          for (const node of local) if (node.take('token:1', now) === 0 && now - start >= 5_000) localLate++;
        }
        await Promise.all([a.flush(), b.flush()]); // a sync every 50 ms
      }
      a.close();
      b.close();
      // 15 s after the bursts: the configured rate is 300 requests over the cluster; per-node limiting lets 600 in.
      assert.equal(localLate, 600);
      assert.ok(sharedLate >= 250 && sharedLate <= 360, `cluster let ${sharedLate} through in 15 s at 20/s`);
    });

    it('makes node B refuse a key node A used up, within a sync interval', async () => {
      const p = prefix + 'burst:';
      const a = new SharedRateLimiter(5, ra, { log, prefix: p, syncMs: 50 });
      const b = new SharedRateLimiter(5, rb, { log, prefix: p, syncMs: 50 });
      try {
        let allowed = 0;
        while (a.take('10.0.0.1') === 0) allowed++;
        assert.equal(allowed, 50); // the burst: ten seconds' worth
        await sleep(150);
        // B has a full bucket of its own until it hears of A's: one request, one sync, then B refuses too.
        assert.equal(b.take('10.0.0.1'), 0);
        assert.ok(await until(() => b.take('10.0.0.1') > 0, 1_000), 'B refuses');
        assert.equal(b.take('10.0.0.2'), 0, 'other keys are not affected');
      } finally {
        a.close();
        b.close();
      }
    });
  });
});

describe('shared limits with Redis unreachable', () => {
  let down: RedisClient;
  before(() => {
    down = openRedis('redis://127.0.0.1:1', log);
  });
  after(async () => {
    await closeRedis(down);
  });

  it('limit on each node alone, never throw, and say so once', async () => {
    warnings.length = 0;
    const failures = new SharedAuthFailureLimiter(3, down, { log });
    const rate = new SharedRateLimiter(2, down, { log, syncMs: 20 });
    const ip = '192.0.2.1';
    for (let i = 0; i < 3; i++) failures.fail(ip);
    assert.ok(failures.retryAfter(ip) > 0);
    await failures.flush();
    let allowed = 0;
    while (rate.take(ip) === 0) allowed++;
    assert.equal(allowed, 20);
    await sleep(100); // a few syncs
    await rate.flush();
    assert.ok(rate.take(ip) > 0);
    assert.equal(warnings.filter((w) => w.includes('Redis unreachable')).length, 2, warnings.join(' | ')); // one per limiter
    failures.close();
    rate.close();
  });
});
