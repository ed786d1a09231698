// Single use of CI tokens: each (issuer, jti) is claimed once and remembered until the token expires (plus leeway).
// The claim is one INSERT against the (issuer, jti) primary key, so two concurrent exchanges of one token cannot both
// succeed. Another store (Redis SET NX PX) can implement the same interface.
import type { Db } from '../../db/database.ts';
import { isUniqueViolation } from '../../db/errors.ts';

export { isUniqueViolation }; // trusted-publishing.ts imports it from here

export interface JtiStore {
  /** True when this (issuer, jti) was not seen before (it is now recorded until `expiresAtMs`); false for a replay. */
  claim(issuer: string, jti: string, expiresAtMs: number): Promise<boolean>;
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
