// Single use of CI tokens across nodes, in Redis: a claim is one `SET key 1 NX PX ttl`, which only one of any number
// of concurrent callers (on any node) can win, and the key disappears by itself once the token can no longer verify.
//
// The key is PREFIX + 'jti:' + SHA-256 of [issuer, jti] as JSON (unambiguous whatever characters either holds, and a
// bounded key size whatever the token carried).
//
// The lifetime is relative (PX), not absolute (PXAT), so a node whose clock is behind Redis's cannot create a key that
// is already expired. It is never shorter than MIN_HOLD_MS: a SET with an expiry in the past succeeds without storing
// anything, so with `PXAT expiresAtMs` two callers racing with a token that expired between its verification and its
// claim would both win. Holding every claim at least a minute covers any such race (a token verified before it
// expired is claimed within moments); a token that expired long ago is refused by verification before it gets here.
import { createHash } from 'node:crypto';
import type { JtiStore } from '../oidc/jti-store.ts';
import type { RedisClient } from './redis.ts';

export const MIN_HOLD_MS = 60_000;

export interface RedisJtiStoreOptions {
  /** key prefix (default 'wharf:'): nodes with the same prefix share their claims */
  prefix?: string;
  now?: () => number;
}

export class RedisJtiStore implements JtiStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #now: () => number;

  constructor(redis: RedisClient, options: RedisJtiStoreOptions = {}) {
    this.#redis = redis;
    this.#prefix = (options.prefix ?? 'wharf:') + 'jti:';
    this.#now = options.now ?? Date.now;
  }

  /** Rejects when Redis cannot be reached: the exchange then fails, rather than letting a token be used twice. */
  async claim(issuer: string, jti: string, expiresAtMs: number): Promise<boolean> {
    if (!Number.isFinite(expiresAtMs)) throw new Error(`jti claim: expiry is not a time: ${expiresAtMs}`);
    const key = this.#prefix + createHash('sha256').update(JSON.stringify([issuer, jti])).digest('base64url');
    const ttl = Math.max(MIN_HOLD_MS, Math.ceil(expiresAtMs - this.#now()));
    return (await this.#redis.set(key, '1', 'PX', ttl, 'NX')) === 'OK';
  }
}
