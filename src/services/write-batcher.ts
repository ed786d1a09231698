// Group commit for the database: small write transactions that arrive while one is being committed are run together
// in the next transaction. A commit is the expensive part of a small transaction (a WAL append on SQLite; a WAL flush
// to disk on PostgreSQL), so many concurrent pushes pay for a few commits, not one each. Each caller still gets its
// own result or its own error: when a unit fails, the shared transaction is rolled back and every unit runs again
// alone. A unit that arrives alone runs at once — nothing waits for company.
import type { Db } from '../db/database.ts';
import { deferred, type Deferred } from './async.ts';

interface Unit {
  fn: (tx: Db) => Promise<unknown>;
  d: Deferred<unknown>;
  /** fn is one statement, atomic by itself: alone it needs no transaction (no BEGIN and COMMIT round trips) */
  atomic: boolean;
}

export class WriteBatcher {
  /** Most units in one transaction (bounds how long one commit keeps the others waiting). */
  static readonly MAX_UNITS = 256;
  readonly #db: Db;
  #queue: Unit[] = [];
  #running = false;
  /** transactions committed (tests, metrics) */
  commits = 0;

  readonly #enabled: boolean;

  /** `enabled` false: every unit is a transaction of its own (where commits are cheap). */
  constructor(db: Db, opts: { enabled?: boolean } = {}) {
    this.#db = db;
    this.#enabled = opts.enabled ?? true;
  }

  /**
   * Runs `fn` in a transaction (possibly shared with other units) and resolves once it is committed. `atomic`: fn
   * runs a single statement, so when it runs alone it runs without a transaction of its own (autocommit).
   */
  run<T>(fn: (tx: Db) => Promise<T>, opts: { atomic?: boolean } = {}): Promise<T> {
    const atomic = opts.atomic === true;
    if (!this.#enabled) {
      return (atomic ? fn(this.#db) : this.#db.transaction().execute(fn)).finally(() => this.commits++);
    }
    const d = deferred<unknown>();
    this.#queue.push({ fn, d, atomic });
    if (!this.#running) void this.#drain();
    return d.promise as Promise<T>;
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, WriteBatcher.MAX_UNITS);
        if (batch.length === 1 && batch[0]!.atomic) {
          const u = batch[0]!;
          try {
            const value = await u.fn(this.#db);
            this.commits++;
            u.d.resolve(value);
          } catch (error) {
            u.d.reject(error);
          }
          continue;
        }
        // Optimistic: the units run one after the other in one transaction, without savepoints (two round trips
        // fewer per unit, while the transaction holds the locks its units took). Units rarely fail (a conflict is
        // found before the write); when one does, the whole transaction is rolled back and each unit runs again in
        // a transaction of its own, so the others still commit and each gets its own error.
        const values: unknown[] = [];
        try {
          await this.#db.transaction().execute(async (tx) => {
            for (const u of batch) values.push(await u.fn(tx));
          });
          this.commits++;
          batch.forEach((u, i) => u.d.resolve(values[i]));
          continue;
        } catch (e) {
          if (batch.length === 1) {
            // A lone unit's error, or the commit: nothing of it was written.
            batch[0]!.d.reject(e);
            continue;
          }
        }
        for (const u of batch) {
          try {
            const value = await (u.atomic ? u.fn(this.#db) : this.#db.transaction().execute(u.fn));
            this.commits++;
            u.d.resolve(value);
          } catch (error) {
            u.d.reject(error);
          }
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
