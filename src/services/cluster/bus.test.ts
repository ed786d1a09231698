// Each Bus implementation against the shared conformance suite (two instances on one backend stand for two nodes),
// plus what is specific to one: PostgreSQL channels are per schema, publishing never throws.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { openDatabase } from '../../db/database.ts';
import { capabilities } from '../../db/capabilities.ts';
import { testDialects, type TestDatabase } from '../../db/test-dialects.ts';
import { createLogger } from '../../log.ts';
import { LocalBus, type Bus } from './bus.ts';
import { busConformance, nextMessage, record, testRedis } from './bus.conformance.ts';
import { PgBus, PG_BUS_APPLICATION_PREFIX } from './pg-bus.ts';
import { RedisBus, REDIS_BUS_CONNECTION_PREFIX } from './redis-bus.ts';
import { closeRedis, connectRedis, type RedisClient } from './redis.ts';
import { AuthFailureLimiter, RateLimiter } from '../../api/auth.ts';
import { createCluster } from './index.ts';
import { RedisJtiStore } from './redis-jti-store.ts';
import { SharedAuthFailureLimiter, SharedRateLimiter } from './shared-limits.ts';

const log = createLogger('silent');
const postgres = testDialects().find((d) => d.name === 'postgres');

describe('LocalBus', () => {
  it('delivers to its own subscribers of the topic only', async () => {
    const bus = new LocalBus();
    const other = record(bus, 'repos');
    const got = nextMessage(bus, 'tokens');
    bus.publish('tokens', 't');
    assert.equal(await got, 't');
    assert.deepEqual(other.payloads, []);
    await bus.close();
  });
});

describe('PgBus', { skip: postgres ? postgres.skip : 'PostgreSQL not selected (WHARF_TEST_DIALECTS)' }, () => {
  busConformance('postgres', async () => {
    const tdb = await postgres!.open();
    // Node B has a database handle of its own, as another process would.
    const dbB = await openDatabase(tdb.target, tdb.options);
    const a = await PgBus.open(tdb.db, log);
    const b = await PgBus.open(dbB, log);
    return {
      a,
      b,
      kill: async (bus: Bus) => {
        const name = PG_BUS_APPLICATION_PREFIX + (bus as PgBus).nodeId;
        const { rows } = await sql<{ killed: boolean }>`select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = ${name}`.execute(tdb.db);
        assert.deepEqual(rows.map((r) => r.killed), [true], `exactly one listening connection named ${name}`);
      },
      close: async () => {
        await a.close();
        await b.close();
        await dbB.destroy();
        await tdb.close();
      },
    };
  });

  describe('schemas', () => {
    const opened: TestDatabase[] = [];
    const buses: Bus[] = [];
    after(async () => {
      for (const bus of buses) await bus.close();
      for (const t of opened) await t.close();
    });

    it('keeps the messages of one schema from the Wharf instances of another', async () => {
      const one = await postgres!.open();
      const two = await postgres!.open();
      opened.push(one, two);
      const a = await PgBus.open(one.db, log);
      const b = await PgBus.open(one.db, log);
      const c = await PgBus.open(two.db, log);
      buses.push(a, b, c);
      assert.equal(a.channel, b.channel);
      assert.notEqual(a.channel, c.channel);
      const onC = record(c, 'tokens');
      const onB = nextMessage(b, 'tokens');
      a.publish('tokens', 'only-schema-one');
      assert.equal(await onB, 'only-schema-one');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(onC.payloads, []);
    });

    it('never throws from publish: too long a message reaches this node only, and a closed bus ignores it', async () => {
      const t = await postgres!.open();
      opened.push(t);
      const a = await PgBus.open(t.db, log);
      const b = await PgBus.open(t.db, log);
      buses.push(b);
      const onB = record(b, 'repos');
      const onA = nextMessage(a, 'repos');
      a.publish('repos', 'y'.repeat(9000));
      assert.equal((await onA).length, 9000);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(onB.payloads, []);
      await a.close();
      a.publish('repos', 'after close');
      await a.close(); // twice is fine
    });

    it('refuses a SQLite database', async (t) => {
      const sqlite = testDialects({ WHARF_TEST_DIALECTS: 'sqlite' })[0]!;
      const d = await sqlite.open();
      opened.push(d);
      // Under test/postgres-everywhere every "SQLite" database is a PostgreSQL schema: nothing to refuse there.
      if (capabilities(d.db).dialect !== 'sqlite') return t.skip('the PostgreSQL-everywhere run opens PostgreSQL for SQLite paths');
      await assert.rejects(PgBus.open(d.db, log), /PostgreSQL/);
    });
  });
});

describe('RedisBus', { skip: testRedis.skip }, () => {
  busConformance('redis', async () => {
    const prefix = testRedis.prefix();
    // Two nodes: two clients, each bus with its own subscribed connection.
    const clientA = await connectRedis(testRedis.url, log);
    const clientB = await connectRedis(testRedis.url, log);
    const a = await RedisBus.open(clientA, log, { prefix });
    const b = await RedisBus.open(clientB, log, { prefix });
    return {
      a,
      b,
      kill: async (bus: Bus) => {
        const name = REDIS_BUS_CONNECTION_PREFIX + (bus as RedisBus).nodeId;
        await killByName(clientA, name);
      },
      close: async () => {
        await a.close();
        await b.close();
        await closeRedis(clientA);
        await closeRedis(clientB);
      },
    };
  });

  it('keeps clusters with different prefixes apart, and publish never throws when Redis is gone', async () => {
    const client = await connectRedis(testRedis.url, log);
    const a = await RedisBus.open(client, log, { prefix: testRedis.prefix() });
    const c = await RedisBus.open(client, log, { prefix: testRedis.prefix() });
    const onC = record(c, 'tokens');
    const onA = nextMessage(a, 'tokens');
    a.publish('tokens', 'x');
    assert.equal(await onA, 'x');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(onC.payloads, []);
    await c.close();
    await closeRedis(client);
    // the publishing client is closed: the message still reaches this node, nothing throws
    const local = nextMessage(a, 'repos');
    a.publish('repos', 'offline');
    assert.equal(await local, 'offline');
    await a.close();
  });
});

describe('createCluster', () => {
  const limits = { authFailuresPerMinute: 10, rateLimitPerIp: 5, rateLimitPerToken: 0 };
  const opened: TestDatabase[] = [];
  after(async () => {
    for (const t of opened) await t.close();
  });
  const open = async (name: 'sqlite' | 'postgres') => {
    const t = await testDialects({ WHARF_TEST_DIALECTS: name, WHARF_TEST_DATABASE_URL: process.env.WHARF_TEST_DATABASE_URL }).at(0)!.open();
    opened.push(t);
    return t.db;
  };

  it('SQLite without Redis: one node, everything in this process', async (t) => {
    const db = await open('sqlite');
    // Under test/postgres-everywhere every "SQLite" database is a PostgreSQL schema.
    if (capabilities(db).dialect !== 'sqlite') return t.skip('the PostgreSQL-everywhere run opens PostgreSQL for SQLite paths');
    const c = await createCluster({ db, log, ...limits });
    try {
      assert.equal(c.kind, 'local');
      assert.ok(c.bus instanceof LocalBus);
      assert.equal(c.jti, undefined);
      assert.ok(c.authFailures instanceof AuthFailureLimiter);
      assert.ok(c.rateLimits.perIp instanceof RateLimiter && c.rateLimits.perToken instanceof RateLimiter);
    } finally {
      await c.close();
    }
    await c.close();
  });

  it('PostgreSQL without Redis: the LISTEN/NOTIFY bus, token ids in the database, limits per node', { skip: postgres ? postgres.skip : 'PostgreSQL not selected' }, async () => {
    const c = await createCluster({ db: await open('postgres'), log, ...limits });
    try {
      assert.equal(c.kind, 'postgres');
      assert.ok(c.bus instanceof PgBus);
      assert.equal(c.jti, undefined);
      assert.ok(c.authFailures instanceof AuthFailureLimiter);
      assert.ok(c.rateLimits.perIp instanceof RateLimiter);
      const got = nextMessage(c.bus, 'tokens');
      c.bus.publish('tokens', '7');
      assert.equal(await got, '7');
    } finally {
      await c.close();
    }
  });

  it('with Redis: the Redis bus, token ids in Redis, limits shared', { skip: testRedis.skip }, async () => {
    const redisPrefix = testRedis.prefix();
    const c = await createCluster({ db: await open('sqlite'), log, redisUrl: testRedis.url, redisPrefix, ...limits });
    const d = await createCluster({ db: await open('sqlite'), log, redisUrl: testRedis.url, redisPrefix, ...limits });
    try {
      assert.equal(c.kind, 'redis');
      assert.ok(c.bus instanceof RedisBus);
      assert.ok(c.jti instanceof RedisJtiStore);
      assert.ok(c.authFailures instanceof SharedAuthFailureLimiter);
      assert.ok(c.rateLimits.perIp instanceof SharedRateLimiter && c.rateLimits.perToken instanceof SharedRateLimiter);
      assert.equal(c.rateLimits.perToken.take('token:1'), 0, 'a rate of 0 is off');
      const got = nextMessage(d.bus, 'repos');
      c.bus.publish('repos', 'o/r');
      assert.equal(await got, 'o/r');
      assert.equal(await c.jti!.claim('https://issuer', 'j1', Date.now() + 60_000), true);
      assert.equal(await d.jti!.claim('https://issuer', 'j1', Date.now() + 60_000), false);
      for (let i = 0; i < 10; i++) c.authFailures.fail('192.0.2.99');
      assert.ok(await waitFor(() => d.authFailures.retryAfter('192.0.2.99') > 0), 'the other node blocks the address');
    } finally {
      await c.close();
      await d.close();
      const cleanup = await connectRedis(testRedis.url, log);
      const keys = await cleanup.keys(`${redisPrefix}*`);
      if (keys.length) await cleanup.del(...keys);
      await closeRedis(cleanup);
    }
  });

  it('refuses to start when the configured Redis cannot be reached', async () => {
    await assert.rejects(
      createCluster({ db: await open('sqlite'), log, redisUrl: 'redis://127.0.0.1:1', redisConnectTimeoutMs: 300, ...limits }),
      /Redis at 127\.0\.0\.1:1\/0 not reachable within 300 ms/,
    );
  });
});

async function waitFor(cond: () => boolean, ms = 1_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

async function killByName(client: RedisClient, name: string): Promise<void> {
  const list = (await client.client('LIST')) as string;
  const ids = list
    .split('\n')
    .filter((line) => line.split(' ').includes(`name=${name}`))
    .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1]);
  assert.equal(ids.length, 1, `exactly one connection named ${name}`);
  await client.client('KILL', 'ID', ids[0]!);
}
