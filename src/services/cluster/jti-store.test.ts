// One set of cases for every JtiStore: SqlJtiStore on SQLite and PostgreSQL, RedisJtiStore. "Two nodes" are two store
// instances with handles of their own on the same backend.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '../../db/database.ts';
import { testDialects, type TestDatabase } from '../../db/test-dialects.ts';
import { createLogger } from '../../log.ts';
import { SqlJtiStore, type JtiStore } from '../oidc/jti-store.ts';
import { testRedis } from './bus.conformance.ts';
import { closeRedis, connectRedis, openRedis, type RedisClient } from './redis.ts';
import { MIN_HOLD_MS, RedisJtiStore } from './redis-jti-store.ts';

const log = createLogger('silent');
const ISSUER = 'https://token.actions.githubusercontent.com';
const inAMinute = () => Date.now() + 60_000;
let seq = 0;
const freshJti = () => `jti-${process.pid}-${Date.now()}-${seq++}`;

interface TwoStores {
  a: JtiStore;
  b: JtiStore;
  close(): Promise<void>;
}

function jtiStoreCases(name: string, skip: string | undefined, open: () => Promise<TwoStores>): void {
  describe(`JtiStore: ${name}`, { skip }, () => {
    let s: TwoStores;
    before(async () => {
      s = await open();
    });
    after(async () => {
      await s?.close();
    });

    it('accepts the first claim and refuses a replay', async () => {
      const jti = freshJti();
      assert.equal(await s.a.claim(ISSUER, jti, inAMinute()), true);
      assert.equal(await s.a.claim(ISSUER, jti, inAMinute()), false);
    });

    it('tells issuers apart, and ids', async () => {
      const jti = freshJti();
      assert.equal(await s.a.claim(ISSUER, jti, inAMinute()), true);
      assert.equal(await s.a.claim('https://gitlab.example.com', jti, inAMinute()), true);
      assert.equal(await s.a.claim(ISSUER, freshJti(), inAMinute()), true);
      // no ambiguity where the two parts join
      const j2 = freshJti();
      assert.equal(await s.a.claim('a\nb', j2, inAMinute()), true);
      assert.equal(await s.a.claim('a', `b\n${j2}`, inAMinute()), true);
    });

    it('lets exactly one of 20 concurrent claims win', async () => {
      const jti = freshJti();
      const wins = await Promise.all(Array.from({ length: 20 }, () => s.a.claim(ISSUER, jti, inAMinute())));
      assert.equal(wins.filter(Boolean).length, 1);
    });

    it('lets exactly one node win when two claim the same token at once', async () => {
      for (let round = 0; round < 5; round++) {
        const jti = freshJti();
        const wins = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? s.a : s.b).claim(ISSUER, jti, inAMinute())));
        assert.equal(wins.filter(Boolean).length, 1, `round ${round}`);
        assert.equal(await s.b.claim(ISSUER, jti, inAMinute()), false);
        assert.equal(await s.a.claim(ISSUER, jti, inAMinute()), false);
      }
    });

    it('keeps ids and issuers of the longest lengths trusted publishing accepts', async () => {
      const jti = freshJti();
      const long = jti + 'j'.repeat(256 - jti.length); // the verifier refuses longer; issuers are configured URLs
      const issuer = ISSUER + '/' + 'x'.repeat(512 - ISSUER.length - 1);
      assert.equal(await s.a.claim(issuer, long, inAMinute()), true);
      assert.equal(await s.b.claim(issuer, long, inAMinute()), false);
    });
  });
}

for (const dialect of testDialects()) {
  jtiStoreCases(`SqlJtiStore on ${dialect.name}`, dialect.skip, async () => {
    const t: TestDatabase = await dialect.open();
    const other = await openDatabase(t.target, t.options);
    return {
      a: new SqlJtiStore(t.db),
      b: new SqlJtiStore(other),
      close: async () => {
        await other.destroy();
        await t.close();
      },
    };
  });
}

const prefix = testRedis.prefix();
jtiStoreCases('RedisJtiStore', testRedis.skip, async () => {
  const ca = await connectRedis(testRedis.url, log);
  const cb = await connectRedis(testRedis.url, log);
  return {
    a: new RedisJtiStore(ca, { prefix }),
    b: new RedisJtiStore(cb, { prefix }),
    close: async () => {
      await deleteKeys(ca, prefix);
      await closeRedis(ca);
      await closeRedis(cb);
    },
  };
});

describe('RedisJtiStore specifics', { skip: testRedis.skip }, () => {
  let prefix = testRedis.prefix();
  let redis: RedisClient;
  before(async () => {
    redis = await connectRedis(testRedis.url, log);
  });
  after(async () => {
    await deleteKeys(redis, prefix);
    await closeRedis(redis);
  });

  it('holds a claim whose expiry is already past, so racers with a just-expired token cannot both win', async () => {
    const store = new RedisJtiStore(redis, { prefix });
    const jti = freshJti();
    const past = Date.now() - 5_000;
    const wins = await Promise.all(Array.from({ length: 10 }, () => store.claim(ISSUER, jti, past)));
    assert.equal(wins.filter(Boolean).length, 1);
    assert.equal(await store.claim(ISSUER, jti, past), false);
  });

  it('stores one bounded key per claim, expiring with the token (never under a minute)', async () => {
    await deleteKeys(redis, prefix);
    prefix = testRedis.prefix();
    const store = new RedisJtiStore(redis, { prefix });
    await store.claim(ISSUER, 'k'.repeat(5000), Date.now() + 3_600_000);
    await store.claim(ISSUER, 'short', Date.now() + 1_000);
    const keys = await redis.keys(`${prefix}jti:*`);
    assert.ok(keys.every((k) => k.length <= prefix.length + 4 + 43), keys.join(' '));
    const ttls = (await Promise.all(keys.map((k) => redis.pttl(k)))).toSorted((x, y) => x - y);
    assert.equal(ttls.length, 2);
    assert.ok(ttls[0]! > MIN_HOLD_MS - 5_000 && ttls[0]! <= MIN_HOLD_MS, `short: ${ttls[0]}`);
    assert.ok(ttls[1]! > 3_500_000 && ttls[1]! <= 3_600_000, `long: ${ttls[1]}`);
  });

  it('fails closed (rejects) when Redis cannot be reached', async () => {
    const down = openRedis('redis://127.0.0.1:1', log);
    try {
      await assert.rejects(new RedisJtiStore(down, { prefix }).claim(ISSUER, freshJti(), inAMinute()));
    } finally {
      await closeRedis(down);
    }
  });
});

async function deleteKeys(redis: RedisClient, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}
