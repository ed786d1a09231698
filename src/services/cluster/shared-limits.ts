// Cross-node versions of the limiters in src/api/auth.ts. Their methods are synchronous and on every request's path,
// so they decide from a local view at once and share counts through Redis in the background; no request waits for
// Redis, and while Redis is unreachable they limit exactly like the per-node classes (logged once per outage).
//
// Failed authentications (SharedAuthFailureLimiter): the exact per-node sliding window of AuthFailureLimiter, plus a
// cluster-wide count per address in one-minute windows. Each fail() adds 1 to the address's current window in Redis
// (one Lua call: INCRBY, PEXPIRE, and a read of the previous window) and keeps the answer. The cluster-wide estimate
// is the usual sliding approximation, current + previous × (share of the previous window still inside the last
// minute), so an address is held to about `perMinute` failures a minute over the whole cluster. The node whose
// increment takes an address over the limit publishes 'auth-block' on the bus, and every node then refuses it at once
// (a node without the bus learns it from its own next increment: one more failure per node at most).
//
// Requests (SharedRateLimiter): the token bucket of RateLimiter on each node, which decides alone; every SYNC_MS the
// node adds what it let through per key since the last sync to the key's fixed 10-second window counter in Redis (one
// pipeline), reads back the totals of the current and previous windows, and takes what the other nodes let through
// since it last looked out of its own bucket. Every bucket therefore drains at the cluster's rate, and the cluster
// serves about `perSecond` per key in steady state. Bound: over any period T the cluster lets through at most
// perSecond × T + burst + (nodes − 1) × (perSecond × SYNC_MS + burst), the last term being what nodes grant before
// they hear of each other (each node starts a key with a full bucket; in steady state the excess is a sync interval's
// worth). A bucket may go down to −perSecond (one second's worth): enough to carry the other nodes' share in steady
// state, and a node never refuses for more than about a second because of a burst the others took.
//
// Memory: each map is capped (cleared past CAP keys, as the per-node classes do); Redis keys expire by themselves.
import { createHash } from 'node:crypto';
import { AuthFailureLimiter } from '../../api/auth.ts';
import type { Logger } from '../../log.ts';
import type { Bus } from './bus.ts';
import type { RedisClient } from './redis.ts';

/** What the request path needs from a failed-authentication limiter (AuthFailureLimiter satisfies it). */
export interface FailureLimiter {
  /** Seconds to wait when `ip` is over the limit, else 0. */
  retryAfter(ip: string, now?: number): number;
  fail(ip: string, now?: number): void;
}

/** What the request path needs from a request-rate limiter (RateLimiter satisfies it). */
export interface RequestLimiter {
  /** 0 when the request may go ahead (and is counted), else the seconds to wait. */
  take(key: string, now?: number): number;
}

export interface SharedLimiterOptions {
  log: Logger;
  /** key prefix (default 'wharf:'): nodes with the same prefix share their counts */
  prefix?: string;
}

const CAP = 100_000;
/** increments to Redis under way at once (failed authentications); beyond, counts stay local */
const MAX_IN_FLIGHT = 1_000;
/** keys sent per rate-limit sync; the rest wait for the next */
const MAX_BATCH = 10_000;

// KEYS[1] the current window's counter, KEYS[2] the previous window's; ARGV[1] what to add, ARGV[2] the lifetime (ms).
// Returns {current total, previous total}.
const WINDOW_ADD = {
  name: 'wharfWindowAdd',
  numberOfKeys: 2,
  lua: `local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {n, tonumber(redis.call('GET', KEYS[2])) or 0}`,
};
type WindowAdd = (current: string, previous: string, add: number, ttlMs: number) => Promise<[number, number]>;

function windowAdd(target: object): WindowAdd {
  return (target as Record<string, WindowAdd>)[WINDOW_ADD.name]!.bind(target);
}

function keyHash(s: string): string {
  return createHash('sha256').update(s).digest('base64url').slice(0, 22);
}

/** Logs once when Redis becomes unusable and once when it is back, so a long outage is two lines. */
class OutageLog {
  readonly #log: Logger;
  readonly #what: string;
  #down = false;

  constructor(log: Logger, what: string) {
    this.#log = log;
    this.#what = what;
  }

  usable(redis: RedisClient): boolean {
    const ok = redis.status === 'ready';
    if (ok === !this.#down) return ok;
    this.#down = !ok;
    if (ok) this.#log.info({ limiter: this.#what }, 'Redis is back: limits are shared across nodes again');
    else this.#log.warn({ limiter: this.#what }, 'Redis unreachable: limits are counted on each node alone until it is back');
    return ok;
  }

  failed(e: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.#log.warn({ limiter: this.#what, err: e instanceof Error ? e.message : String(e) }, 'Redis failed: limits are counted on each node alone until it answers');
  }

  succeeded(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#log.info({ limiter: this.#what }, 'Redis is back: limits are shared across nodes again');
  }
}

interface GlobalFailures {
  /** window index (ms / WINDOW_MS) of `current` */
  w: number;
  current: number;
  previous: number;
}

export interface SharedAuthFailureLimiterOptions extends SharedLimiterOptions {
  /** where to announce an address that went over the limit, and hear of those other nodes blocked */
  bus?: Bus;
}

export class SharedAuthFailureLimiter implements FailureLimiter {
  static readonly WINDOW_MS = 60_000;
  readonly #limit: number;
  readonly #local: AuthFailureLimiter;
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #bus: Bus | undefined;
  readonly #outage: OutageLog;
  readonly #global = new Map<string, GlobalFailures>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #unsubscribe: () => void;
  readonly #add: WindowAdd;

  constructor(perMinute: number, redis: RedisClient, options: SharedAuthFailureLimiterOptions) {
    this.#limit = perMinute;
    this.#local = new AuthFailureLimiter(perMinute);
    this.#redis = redis;
    this.#prefix = (options.prefix ?? 'wharf:') + 'af:';
    this.#bus = options.bus;
    this.#outage = new OutageLog(options.log, 'authentication failures');
    redis.defineCommand(WINDOW_ADD.name, WINDOW_ADD);
    this.#add = windowAdd(redis);
    this.#unsubscribe = options.bus?.subscribe('auth-block', (ip) => this.#blocked(ip)) ?? (() => {});
  }

  retryAfter(ip: string, now = Date.now()): number {
    const local = this.#local.retryAfter(ip, now);
    const g = this.#global.get(ip);
    return g ? Math.max(local, this.#globalWait(ip, g, now)) : local;
  }

  fail(ip: string, now = Date.now()): void {
    this.#local.fail(ip, now);
    if (this.#inFlight.size >= MAX_IN_FLIGHT || !this.#outage.usable(this.#redis)) return;
    const w = Math.floor(now / SharedAuthFailureLimiter.WINDOW_MS);
    const h = keyHash(ip);
    const p = this.#add(`${this.#prefix}${w}:${h}`, `${this.#prefix}${w - 1}:${h}`, 1, 3 * SharedAuthFailureLimiter.WINDOW_MS).then(
      ([current, previous]) => {
        this.#outage.succeeded();
        this.#record(ip, { w, current, previous });
        // Each increment answers a different total, so exactly one node sees the address cross the limit.
        const crossed = this.#estimate({ w, current: current - 1, previous }, now) < this.#limit && this.#estimate({ w, current, previous }, now) >= this.#limit;
        if (crossed) this.#bus?.publish('auth-block', ip);
      },
      (e: unknown) => this.#outage.failed(e),
    );
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  /** Waits for the increments under way (tests; shutdown). */
  async flush(): Promise<void> {
    await Promise.all(this.#inFlight);
  }

  /** Stops listening to the bus. The Redis client stays the caller's. */
  close(): void {
    this.#unsubscribe();
  }

  // Another node (or this one) saw `ip` go over the limit: count it as at the limit in the current window.
  #blocked(ip: string): void {
    if (ip.length > 100) return;
    const w = Math.floor(Date.now() / SharedAuthFailureLimiter.WINDOW_MS);
    const g = this.#shift(this.#global.get(ip), w);
    this.#record(ip, { w, current: Math.max(g.current, this.#limit), previous: g.previous });
  }

  #record(ip: string, fresh: GlobalFailures): void {
    const g = this.#global.get(ip);
    // Answers may arrive out of order: keep the newest window, and in one window the highest count.
    if (g && (g.w > fresh.w || (g.w === fresh.w && g.current >= fresh.current))) return;
    if (this.#global.size >= CAP) this.#global.clear();
    this.#global.set(ip, fresh);
  }

  #shift(g: GlobalFailures | undefined, w: number): GlobalFailures {
    if (!g || g.w < w - 1) return { w, current: 0, previous: 0 };
    if (g.w === w - 1) return { w, current: 0, previous: g.current };
    return g;
  }

  #estimate(g: GlobalFailures, now: number): number {
    const W = SharedAuthFailureLimiter.WINDOW_MS;
    const w = Math.floor(now / W);
    const s = this.#shift(g, w);
    return s.current + s.previous * (1 - (now - w * W) / W);
  }

  #globalWait(ip: string, g: GlobalFailures, now: number): number {
    const W = SharedAuthFailureLimiter.WINDOW_MS;
    const w = Math.floor(now / W);
    const s = this.#shift(g, w);
    if (s.current === 0 && s.previous === 0) {
      if (g.w < w - 1) this.#global.delete(ip); // outdated: forget it
      return 0;
    }
    if (s.current + s.previous * (1 - (now - w * W) / W) < this.#limit) return 0;
    // When the estimate falls below the limit if no more failures come: within this window as the previous one's
    // share fades, or else during the next one as this window's count fades.
    const until = s.current < this.#limit ? w * W + W * (1 - (this.#limit - s.current) / s.previous) : (w + 1) * W + W * (1 - this.#limit / s.current);
    return Math.max(1, Math.ceil((until + 1 - now) / 1000));
  }
}

interface SharedBucket {
  tokens: number;
  at: number;
  /** let through on this node since the last sync */
  pending: number;
  /** Redis key stem (hash of the key), made on the first sync */
  id: string | undefined;
  /** window index of `mine`/`others` below */
  w: number;
  mine: number;
  others: number;
  minePrevious: number;
  othersPrevious: number;
}

export interface SharedRateLimiterOptions extends SharedLimiterOptions {
  /** how often counts are exchanged with Redis (default 200 ms) */
  syncMs?: number;
  /** the clock the syncs use (tests); take() has its own `now` argument */
  now?: () => number;
}

/** Token buckets shared by all nodes: `perSecond` requests per second per key over the cluster, bursts of ten seconds' worth. 0 disables. */
export class SharedRateLimiter implements RequestLimiter {
  static readonly WINDOW_MS = 10_000;
  readonly #rate: number;
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #outage: OutageLog;
  readonly #buckets = new Map<string, SharedBucket>();
  readonly #dirty = new Map<string, SharedBucket>();
  readonly #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;

  constructor(perSecond: number, redis: RedisClient, options: SharedRateLimiterOptions) {
    this.#rate = perSecond;
    this.#redis = redis;
    this.#prefix = (options.prefix ?? 'wharf:') + 'rl:';
    this.#now = options.now ?? Date.now;
    this.#outage = new OutageLog(options.log, 'request rate');
    redis.defineCommand(WINDOW_ADD.name, WINDOW_ADD);
    if (perSecond > 0) this.#timer = setInterval(() => void this.flush(), options.syncMs ?? 200).unref();
  }

  take(key: string, now = Date.now()): number {
    if (this.#rate <= 0) return 0;
    const burst = this.#rate * 10;
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= CAP) {
        this.#buckets.clear();
        this.#dirty.clear();
      }
      b = { tokens: burst, at: now, pending: 0, id: undefined, w: Math.floor(now / SharedRateLimiter.WINDOW_MS), mine: 0, others: 0, minePrevious: 0, othersPrevious: 0 };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      if (b.pending++ === 0) this.#dirty.set(key, b);
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#rate));
  }

  /** Exchanges counts with Redis now (the timer does it every `syncMs`); resolves when done. Never rejects. */
  flush(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => (this.#syncing = undefined));
    return this.#syncing;
  }

  /** Stops syncing. The Redis client stays the caller's. */
  close(): void {
    clearInterval(this.#timer);
  }

  async #sync(): Promise<void> {
    if (this.#dirty.size === 0) return;
    if (!this.#outage.usable(this.#redis)) {
      // Nobody will hear of these: the buckets go on alone.
      for (const b of this.#dirty.values()) b.pending = 0;
      this.#dirty.clear();
      return;
    }
    const now = this.#now();
    const w = Math.floor(now / SharedRateLimiter.WINDOW_MS);
    const batch: SharedBucket[] = [];
    const pipeline = this.#redis.pipeline();
    const add = windowAdd(pipeline);
    for (const [key, b] of this.#dirty) {
      if (batch.length >= MAX_BATCH) break;
      this.#dirty.delete(key);
      b.id ??= keyHash(key);
      this.#rotate(b, w);
      b.mine += b.pending;
      void add(`${this.#prefix}${w}:${b.id}`, `${this.#prefix}${w - 1}:${b.id}`, b.pending, 3 * SharedRateLimiter.WINDOW_MS);
      b.pending = 0;
      batch.push(b);
    }
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch (e) {
      this.#outage.failed(e);
      return;
    }
    if (!results) return;
    this.#outage.succeeded();
    const floor = -this.#rate;
    const burst = this.#rate * 10;
    const at = this.#now();
    results.forEach(([err, reply], i) => {
      const b = batch[i]!;
      if (err || b.w !== w) return;
      const [current, previous] = reply as [number, number];
      const others = current - b.mine;
      const othersPrevious = previous - b.minePrevious;
      const fresh = Math.max(0, others - b.others) + Math.max(0, othersPrevious - b.othersPrevious);
      b.others = Math.max(b.others, others);
      b.othersPrevious = Math.max(b.othersPrevious, othersPrevious);
      if (fresh === 0) return;
      // Refill up to now first (a full bucket cannot hold more), then take out what the other nodes let through.
      if (at > b.at) {
        b.tokens = Math.min(burst, b.tokens + ((at - b.at) / 1000) * this.#rate);
        b.at = at;
      }
      b.tokens = Math.max(floor, b.tokens - fresh);
    });
  }

  #rotate(b: SharedBucket, w: number): void {
    if (b.w === w) return;
    if (b.w === w - 1) {
      b.minePrevious = b.mine;
      b.othersPrevious = b.others;
    } else {
      b.minePrevious = 0;
      b.othersPrevious = 0;
    }
    b.w = w;
    b.mine = 0;
    b.others = 0;
  }
}
