// What a node shares with the others, chosen once at start from what is configured:
//   Redis URL given        → Redis pub/sub bus, single-use token ids in Redis, limits counted across nodes
//   PostgreSQL, no Redis   → LISTEN/NOTIFY bus; token ids stay in PostgreSQL (already shared); limits per node
//   SQLite, no Redis       → one node: everything in this process
// An unreachable Redis at start is an error (a configured cluster must not quietly run as separate nodes); once
// running, its outages degrade to per-node behaviour (see redis.ts and shared-limits.ts).
import { AuthFailureLimiter, RateLimiter } from '../../api/auth.ts';
import { capabilities, type Db } from '../../db/database.ts';
import type { Logger } from '../../log.ts';
import type { JtiStore } from '../oidc/jti-store.ts';
import { LocalBus, type Bus } from './bus.ts';
import { PgBus } from './pg-bus.ts';
import { RedisBus } from './redis-bus.ts';
import { RedisJtiStore } from './redis-jti-store.ts';
import { closeRedis, connectRedis } from './redis.ts';
import { SharedAuthFailureLimiter, SharedRateLimiter, type FailureLimiter, type RequestLimiter } from './shared-limits.ts';

export type { Bus, BusTopic } from './bus.ts';
export type { FailureLimiter, RequestLimiter } from './shared-limits.ts';

export interface ClusterOptions {
  db: Db;
  /** redis:// or rediss:// shared by every node; absent: no Redis */
  redisUrl?: string;
  log: Logger;
  authFailuresPerMinute: number;
  /** requests per second, 0 = off */
  rateLimitPerIp: number;
  /** requests per second, 0 = off */
  rateLimitPerToken: number;
  /** prefix of every Redis key and channel (default 'wharf:'): clusters sharing one Redis need different ones */
  redisPrefix?: string;
  /** how long to wait for Redis at start (default 10 s) */
  redisConnectTimeoutMs?: number;
}

export interface Cluster {
  bus: Bus;
  /** single use of CI token ids across nodes; undefined: the database's own (SqlJtiStore) is right */
  jti?: JtiStore;
  authFailures: FailureLimiter;
  rateLimits: { perIp: RequestLimiter; perToken: RequestLimiter };
  /** 'redis' | 'postgres' | 'local' (the bus's kind) */
  kind: string;
  /** Ends the bus and every connection opened here (not `db`). Call once the server stopped taking requests. */
  close(): Promise<void>;
}

export async function createCluster(opts: ClusterOptions): Promise<Cluster> {
  if (opts.redisUrl) return redisCluster(opts, opts.redisUrl);
  const bus = capabilities(opts.db).multiNode ? await PgBus.open(opts.db, opts.log) : new LocalBus();
  return {
    bus,
    jti: undefined,
    authFailures: new AuthFailureLimiter(opts.authFailuresPerMinute),
    rateLimits: { perIp: new RateLimiter(opts.rateLimitPerIp), perToken: new RateLimiter(opts.rateLimitPerToken) },
    kind: bus.kind,
    close: once(() => bus.close()),
  };
}

async function redisCluster(opts: ClusterOptions, url: string): Promise<Cluster> {
  const prefix = opts.redisPrefix ?? 'wharf:';
  const { log } = opts;
  const redis = await connectRedis(url, log, { connectTimeoutMs: opts.redisConnectTimeoutMs });
  let bus: RedisBus;
  try {
    bus = await RedisBus.open(redis, log, { prefix });
  } catch (e) {
    await closeRedis(redis);
    throw e;
  }
  const authFailures = new SharedAuthFailureLimiter(opts.authFailuresPerMinute, redis, { log, prefix, bus });
  const perIp = new SharedRateLimiter(opts.rateLimitPerIp, redis, { log, prefix: prefix + 'ip:' });
  const perToken = new SharedRateLimiter(opts.rateLimitPerToken, redis, { log, prefix: prefix + 'token:' });
  return {
    bus,
    jti: new RedisJtiStore(redis, { prefix }),
    authFailures,
    rateLimits: { perIp, perToken },
    kind: bus.kind,
    close: once(async () => {
      authFailures.close();
      perIp.close();
      perToken.close();
      await Promise.all([authFailures.flush(), perIp.flush(), perToken.flush()]);
      await bus.close();
      await closeRedis(redis);
    }),
  };
}

function once(f: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= f());
}
