// Group commit for the database: small write transactions that arrive while one is being committed are run together
// in the next transaction, each inside a savepoint of its own. A commit is the expensive part of a small transaction
// (a WAL append on SQLite; a WAL flush to disk on PostgreSQL), so many concurrent pushes pay for a few commits, not one
// each. Each caller still gets its own result or its own error: a unit that fails is rolled back to its savepoint
// and the others commit. A unit that arrives alone runs at once — nothing waits for company.
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { deferred, type Deferred } from './async.ts';

interface Unit {
  fn: (tx: Db) => Promise<unknown>;
  d: Deferred<unknown>;
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

  /** `enabled` false: every unit is a transaction of its own (where commits are cheap, savepoints cost more). */
  constructor(db: Db, opts: { enabled?: boolean } = {}) {
    this.#db = db;
    this.#enabled = opts.enabled ?? true;
  }

  /** Runs `fn` in a transaction (possibly shared with other units) and resolves once it is committed. */
  run<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    if (!this.#enabled) {
      return this.#db
        .transaction()
        .execute(fn)
        .finally(() => this.commits++);
    }
    const d = deferred<unknown>();
    this.#queue.push({ fn, d });
    if (!this.#running) void this.#drain();
    return d.promise as Promise<T>;
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, WriteBatcher.MAX_UNITS);
        const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
        try {
          await this.#db.transaction().execute(async (tx) => {
            if (batch.length === 1) {
              outcomes.push({ ok: true, value: await batch[0]!.fn(tx) });
              return;
            }
            for (const u of batch) {
              await sql`savepoint wharf_unit`.execute(tx);
              try {
                outcomes.push({ ok: true, value: await u.fn(tx) });
                await sql`release savepoint wharf_unit`.execute(tx);
              } catch (error) {
                await sql`rollback to savepoint wharf_unit`.execute(tx);
                await sql`release savepoint wharf_unit`.execute(tx);
                outcomes.push({ ok: false, error });
              }
            }
          });
          this.commits++;
          batch.forEach((u, i) => {
            const o = outcomes[i]!;
            if (o.ok) u.d.resolve(o.value);
            else u.d.reject(o.error);
          });
        } catch (e) {
          // The transaction itself failed (a lone unit's error, or the commit): nothing of it was written.
          for (const u of batch) u.d.reject(e);
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
