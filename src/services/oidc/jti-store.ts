// Single use of CI tokens: each (issuer, jti) is claimed once and remembered until the token expires (plus leeway).
// The claim is one INSERT against the (issuer, jti) primary key, so two concurrent exchanges of one token cannot both
// succeed. Another store (Redis SET NX PX) can implement the same interface.
import type { Db } from '../../db/database.ts';

export interface JtiStore {
  /** True when this (issuer, jti) was not seen before (it is now recorded until `expiresAtMs`); false for a replay. */
  claim(issuer: string, jti: string, expiresAtMs: number): Promise<boolean>;
}

/** True for a unique or primary-key violation (SQLite through node:sqlite, or PostgreSQL). */
export function isUniqueViolation(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const x = e as { code?: unknown; errcode?: unknown; message?: unknown };
  if (x.code === '23505') return true; // PostgreSQL unique_violation
  if (x.errcode === 1555 || x.errcode === 2067) return true; // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
  return typeof x.message === 'string' && x.message.includes('UNIQUE constraint failed');
}

export class SqlJtiStore implements JtiStore {
  static readonly SWEEP_INTERVAL_MS = 60_000;
  readonly #db: Db;
  readonly #now: () => number;
  #lastSweep = 0;

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db;
    this.#now = now;
  }

  async claim(issuer: string, jti: string, expiresAtMs: number): Promise<boolean> {
    const now = this.#now();
    if (now - this.#lastSweep >= SqlJtiStore.SWEEP_INTERVAL_MS) {
      // Opportunistic clean-up of every expired entry, at most once a minute.
      this.#lastSweep = now;
      await this.#db.deleteFrom('oidc_used_jti').where('expires_at', '<=', now).execute();
    } else {
      // An expired entry for this very pair must not block it (its token can no longer verify anyway).
      await this.#db.deleteFrom('oidc_used_jti').where('issuer', '=', issuer).where('jti', '=', jti).where('expires_at', '<=', now).execute();
    }
    try {
      await this.#db.insertInto('oidc_used_jti').values({ issuer, jti, expires_at: expiresAtMs }).execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }
}
