// Connections to the Redis server the nodes share (rate-limit counters, single-use CI token ids, the cluster bus).
// Client: ioredis 5. One dependency-light, pure JavaScript package with its own types, automatic reconnection with a
// retry strategy we choose, automatic re-subscription after a reconnect (what the bus needs), Lua scripts via
// defineCommand, and pipelines; the official `redis` client is as capable but arrives as several packages.
//
// Failure policy: a connection error never throws out of an event handler (it would end the process); it is logged at
// warn, at most once per LOG_EVERY_MS per connection, and the client keeps reconnecting with capped backoff. Commands
// are not queued while disconnected (enableOfflineQueue: false): they fail at once, and every caller has a local
// fallback (the limiters count locally, the bus delivers locally, a token claim fails closed). Only the first
// connection is awaited: an unreachable Redis at start is a configuration error, reported loudly.
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../log.ts';

export type RedisClient = Redis;

const LOG_EVERY_MS = 30_000;
const MAX_BACKOFF_MS = 5_000;
const COMMAND_TIMEOUT_MS = 2_000;

export interface RedisConnectOptions {
  /** how long connectRedis() waits for the first connection (default 10 s) */
  connectTimeoutMs?: number;
  /** CLIENT SETNAME, shown by CLIENT LIST (default 'wharf') */
  name?: string;
}

/** Connects to `url` (redis:// or rediss://, with optional user, password and /DB) and waits until it is usable. */
export async function connectRedis(url: string, log: Logger, options: RedisConnectOptions = {}): Promise<RedisClient> {
  const client = openRedis(url, log, options.name);
  try {
    await whenReady(client, options.connectTimeoutMs ?? 10_000, redisLocation(url));
  } catch (e) {
    client.disconnect();
    throw e;
  }
  return client;
}

/**
 * A client for `url` that connects (and reconnects) in the background; not awaited, so its first commands may fail.
 * For callers that must not wait, and for tests of an unreachable server.
 */
export function openRedis(url: string, log: Logger, name = 'wharf'): RedisClient {
  const client = new Redis({ ...parseRedisUrl(url), ...COMMON_OPTIONS, connectionName: name });
  watch(client, log, redisLocation(url));
  return client;
}

/**
 * A second connection with the same settings as `client`, for SUBSCRIBE (a subscribed connection can run nothing
 * else). Waits until it is usable. Re-subscribes by itself after a reconnect.
 */
export async function subscriberConnection(client: RedisClient, log: Logger, name: string, connectTimeoutMs = 10_000): Promise<RedisClient> {
  const sub = client.duplicate({ connectionName: name });
  const where = `${client.options.host}:${client.options.port}/${client.options.db ?? 0}`;
  watch(sub, log, where);
  try {
    await whenReady(sub, connectTimeoutMs, where);
  } catch (e) {
    sub.disconnect();
    throw e;
  }
  return sub;
}

/** Ends `client` without waiting for a server that does not answer. */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through: drop the connection
    }
  }
  client.disconnect();
}

/** host:port/db of a Redis URL, without credentials: what log lines may show. */
export function redisLocation(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 6379}${u.pathname.length > 1 ? u.pathname : '/0'}`;
  } catch {
    return '(invalid Redis URL)';
  }
}

const COMMON_OPTIONS: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: COMMAND_TIMEOUT_MS,
  autoResubscribe: true,
  // Never gives up (returning a number always retries); capped exponential backoff with jitter so that many nodes
  // do not reconnect in lockstep after a Redis restart.
  retryStrategy: (times) => Math.min(MAX_BACKOFF_MS, 50 * 2 ** Math.min(times, 7)) + Math.floor(Math.random() * 100),
};

// Parsed here with the WHATWG URL parser (ioredis's own uses the deprecated url.parse): user and password are
// percent-decoded, rediss:// turns TLS on with the system's trusted CAs and the host name checked.
function parseRedisUrl(url: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`Redis URL must start with redis:// or rediss://, got ${u.protocol}//`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error(`Redis URL: the database must be a number, got ${u.pathname.slice(1)}`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return {
    host,
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: host } } : {}),
  };
}

function watch(client: RedisClient, log: Logger, where: string): void {
  let lastLog = 0;
  let suppressed = 0;
  let failing = false;
  client.on('error', (err: Error) => {
    failing = true;
    const now = Date.now();
    if (now - lastLog < LOG_EVERY_MS) {
      suppressed++;
      return;
    }
    log.warn({ redis: where, err: err.message, ...(suppressed ? { suppressed } : {}) }, 'Redis connection error (reconnecting)');
    lastLog = now;
    suppressed = 0;
  });
  client.on('ready', () => {
    if (!failing) return;
    failing = false;
    log.info({ redis: where }, 'Redis connection restored');
  });
}

function whenReady(client: RedisClient, timeoutMs: number, where: string): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (e: Error) => void (lastError = e);
    const done = (err?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(
      () => done(new Error(`Redis at ${where} not reachable within ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ''}`)),
      timeoutMs,
    );
    client.on('ready', onReady);
    client.on('error', onError);
  });
}
