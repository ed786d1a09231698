// The behaviour every Bus implementation shares, as one suite: bus.test.ts runs it against each implementation with
// two instances on one backend, standing for two nodes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Bus, BusTopic } from './bus.ts';

/** How long a message may take to reach the other node. */
export const DELIVERY_MS = 1_000;

export interface TwoNodes {
  a: Bus;
  b: Bus;
  /** drops `bus`'s listening connection from the server side, as a network failure or a server restart would */
  kill(bus: Bus): Promise<void>;
  /** closes both buses and removes what the run created */
  close(): Promise<void>;
}

/** Resolves with the next payload `bus` delivers on `topic`; rejects after `ms`. */
export function nextMessage(bus: Bus, topic: BusTopic, ms = DELIVERY_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (off(), reject(new Error(`no '${topic}' message within ${ms} ms on ${bus.kind}`))), ms);
    const off = bus.subscribe(topic, (payload) => {
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/** Collects what `bus` delivers on `topic` until the returned function is called. */
export function record(bus: Bus, topic: BusTopic): { payloads: string[]; stop: () => void } {
  const payloads: string[] = [];
  return { payloads, stop: bus.subscribe(topic, (p) => payloads.push(p)) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function busConformance(kind: string, open: () => Promise<TwoNodes>): void {
  describe(`Bus conformance: ${kind}`, () => {
    let nodes: TwoNodes;
    before(async () => {
      nodes = await open();
    });
    after(async () => {
      await nodes?.close();
    });

    it('reports its kind', () => {
      assert.equal(nodes.a.kind, kind);
      assert.equal(nodes.b.kind, kind);
    });

    it('delivers a message to the subscribers of its topic on both nodes, the sender included', async () => {
      const { a, b } = nodes;
      const other = record(b, 'repos');
      const otherA = record(a, 'published');
      const onA = nextMessage(a, 'tokens');
      const onB = nextMessage(b, 'tokens');
      const onB2 = nextMessage(b, 'tokens');
      a.publish('tokens', 'tok-1');
      assert.deepEqual(await Promise.all([onA, onB, onB2]), ['tok-1', 'tok-1', 'tok-1']);
      await sleep(100);
      assert.deepEqual(other.payloads, []);
      assert.deepEqual(otherA.payloads, []);
      other.stop();
      otherA.stop();
    });

    it('delivers from either node, each message once per subscriber', async () => {
      const { a, b } = nodes;
      const onA = record(a, 'jwt-keys');
      const onB = record(b, 'jwt-keys');
      b.publish('jwt-keys');
      a.publish('jwt-keys', 'x');
      const deadline = Date.now() + DELIVERY_MS;
      while ((onA.payloads.length < 2 || onB.payloads.length < 2) && Date.now() < deadline) await sleep(10);
      await sleep(100); // a duplicate would arrive in this time
      assert.deepEqual(onA.payloads.toSorted(), ['', 'x']);
      assert.deepEqual(onB.payloads.toSorted(), ['', 'x']);
      onA.stop();
      onB.stop();
    });

    it('keeps the payload exactly', async () => {
      const { a, b } = nodes;
      for (const payload of ['', 'acme/tools', 'public/o/r/debian', '"quoted" \\ back\nslash ünïcødé 🚢', 'x'.repeat(2000)]) {
        const got = nextMessage(b, 'published');
        a.publish('published', payload);
        assert.equal(await got, payload);
      }
    });

    it('stops delivering to a handler once it unsubscribed', async () => {
      const { a, b } = nodes;
      const gone = record(b, 'repos');
      gone.stop();
      const sentinel = nextMessage(b, 'repos');
      a.publish('repos', 'o/r');
      assert.equal(await sentinel, 'o/r');
      await sleep(50);
      assert.deepEqual(gone.payloads, []);
    });

    it('keeps delivering when a subscriber throws', async () => {
      const { a, b } = nodes;
      const off = b.subscribe('tokens', () => {
        throw new Error('subscriber bug');
      });
      const got = nextMessage(b, 'tokens');
      a.publish('tokens', 'after-throw');
      assert.equal(await got, 'after-throw');
      off();
    });

    it('recovers after its listening connection is killed', async () => {
      const { a, b } = nodes;
      await nodes.kill(b);
      // Messages sent while B reconnects may be lost (the contract allows it); one must arrive once it is back.
      let received = false;
      const off = b.subscribe('auth-block', (p) => void (p === '192.0.2.7' && (received = true)));
      const deadline = Date.now() + 15_000;
      while (!received && Date.now() < deadline) {
        a.publish('auth-block', '192.0.2.7');
        await sleep(100);
      }
      off();
      assert.ok(received, 'B received nothing within 15 s of losing its connection');
      // and B's own publishing still reaches A
      const onA = nextMessage(a, 'repos');
      b.publish('repos', 'back');
      assert.equal(await onA, 'back');
    });
  });
}

// The Redis server the cluster tests use (they share it with other runs: each run works under a prefix of its own).
//   WHARF_TEST_REDIS_URL     default redis://127.0.0.1:6379
//   WHARF_TEST_SKIP_REDIS=1  skip the Redis cases (machines without it), reported as skipped
export const testRedis = {
  url: process.env.WHARF_TEST_REDIS_URL || 'redis://127.0.0.1:6379',
  skip: process.env.WHARF_TEST_SKIP_REDIS === '1' ? 'WHARF_TEST_SKIP_REDIS=1 (no Redis on this machine)' : undefined,
  /** a key prefix no other run uses */
  prefix: () => `wharf-test:${process.pid}:${Math.random().toString(36).slice(2, 10)}:`,
};
