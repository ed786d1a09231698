// Named locks that hold across every Wharf node sharing the database.
//
// Within a process a keyed mutex queues callers; across processes, on PostgreSQL, the holder also takes a session
// advisory lock (pg_advisory_lock) on a connection it keeps for the duration. PostgreSQL releases a session lock when
// its connection ends, so a node that dies (SIGKILL, power loss, network partition once the server notices) releases
// every lock it held without anyone cleaning up: no lock files, no lease timeouts to tune. On SQLite (one node by
// construction) the in-process mutex is the whole lock.
//
// Advisory locks are per database, not per schema: the 64-bit key is a hash of the schema, the lock's space and its
// name, so two Wharf installations in two schemas of one database never wait for each other.
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Pool, PoolClient } from 'pg';
import { postgresConnectionConfig, type Db } from '../db/database.ts';
import { capabilities } from '../db/capabilities.ts';
import { KeyedMutex } from './async.ts';

/** What a lock protects. */
export type LockSpace =
  /** storing or removing packages of one distribution (check, write the blob, insert the row) */
  | 'ingest'
  /** building and writing one distribution's signed metadata */
  | 'publish'
  /** one-time set-up at start (keys, secrets, the admin token): the first node does it, the others then find it */
  | 'bootstrap'
  /** changes to Wharf's JWT signing keys (at most one signs at any time) */
  | 'jwt-keys';

export class Locks {
  /**
   * Connections that hold locks come from a pool of their own: a holder's work queries through the main pool, so
   * holders can never take every connection their own work waits for. When all are taken, further lockers wait here.
   */
  static readonly LOCK_CONNECTIONS = 16;
  readonly #db: Db;
  readonly #local = new KeyedMutex<string>();
  readonly #shared: boolean;
  #namespace?: Promise<string>;
  #pool?: Promise<Pool>;

  #closed = false;

  constructor(db: Db) {
    this.#db = db;
    this.#shared = capabilities(db).advisoryLocks;
  }

  #lockPool(): Promise<Pool> {
    if (this.#closed) return Promise.reject(new Error('the locks are closed (the server is stopping)'));
    this.#pool ??= (async () => {
      const config = postgresConnectionConfig(this.#db);
      if (!config) throw new Error('advisory locks need the PostgreSQL connection settings of the database');
      const { Pool } = await import('pg');
      const pool = new Pool({ ...config, max: Locks.LOCK_CONNECTIONS, idleTimeoutMillis: 30_000 });
      // A lock connection the server drops (restart, failover) must not crash the process; its holder's unlock fails
      // quietly and the server has already released the lock with the session.
      pool.on('error', () => {});
      return pool;
    })();
    return this.#pool;
  }

  /** Ends the lock connections (every lock they hold is released). */
  async close(): Promise<void> {
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool) await (await pool).end();
  }

  /** True when the locks hold across processes (PostgreSQL advisory locks), not only within this one. */
  get shared(): boolean {
    return this.#shared;
  }

  /**
   * Runs `fn` while holding the lock `space`/`name`: callers in this process run one at a time in arrival order, and
   * on PostgreSQL no other node runs under the same lock meanwhile. A wait has no time limit; the holder's work
   * bounds it.
   */
  run<T>(space: LockSpace, name: string | number, fn: () => Promise<T>): Promise<T> {
    const local = `${space}\0${name}`;
    if (!this.#shared) return this.#local.run(local, fn);
    return this.#local.run(local, () => this.#holding(space, [name], fn));
  }

  /**
   * Runs `fn` holding every lock `space`/`name` of `names` (a batch of packages): on PostgreSQL they are taken on one
   * connection in one statement, in key order, so two holders of overlapping sets never wait for each other in a cycle
   * (and a holder of one lock of the set simply queues).
   */
  runAll<T>(space: LockSpace, names: readonly (string | number)[], fn: () => Promise<T>): Promise<T> {
    if (names.length === 1) return this.run(space, names[0]!, fn);
    const locals = names.map((n) => `${space}\0${n}`);
    if (!this.#shared) return this.#local.runAll(locals, fn);
    return this.#local.runAll(locals, () => this.#holding(space, names, fn));
  }

  /** Runs `fn` holding the PostgreSQL advisory locks of `names`, taken in key order on a lock connection of its own. */
  async #holding<T>(space: LockSpace, names: readonly (string | number)[], fn: () => Promise<T>): Promise<T> {
    const keys = [...new Set(await Promise.all(names.map((n) => this.#key(space, String(n)))))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
    const pool = await this.#lockPool();
    const conn: PoolClient = await pool.connect();
    let broken: Error | undefined;
    try {
      // The sub-select's order is the order the locks are taken in.
      // Named: each lock connection parses and plans these two statements once, not on every push.
      await conn.query({ name: 'wharf_advisory_lock', text: 'select count(pg_advisory_lock(k)) from (select unnest($1::bigint[]) as k order by 1) s', values: [keys] }).catch((e: Error) => {
        broken = e;
        throw e;
      });
      try {
        return await fn();
      } finally {
        // If the connection broke meanwhile, the server has already released the locks with it.
        await conn.query({ name: 'wharf_advisory_unlock', text: 'select count(pg_advisory_unlock(k)) from unnest($1::bigint[]) as k', values: [keys] }).catch((e: Error) => (broken = e));
      }
    } finally {
      // A connection whose lock or unlock failed is discarded, never reused with a lock it might still hold.
      conn.release(broken);
    }
  }

  /** The advisory lock key: the first 8 bytes of SHA-256(schema, space, name) as a signed 64-bit integer (text). */
  async #key(space: LockSpace, name: string): Promise<string> {
    this.#namespace ??= sql<{ s: string }>`select current_schema() as s`
      .execute(this.#db)
      .then((r) => r.rows[0]?.s ?? '')
      .catch((e) => {
        this.#namespace = undefined;
        throw e;
      });
    const ns = await this.#namespace;
    return createHash('sha256').update(`wharf\0${ns}\0${space}\0${name}`).digest().readBigInt64BE(0).toString();
  }
}
