// A Kysely dialect over Node's built-in node:sqlite (no native addon to build). node:sqlite is synchronous, so one
// connection serves every query; a mutex hands it to one transaction at a time, as Kysely's own SQLite driver does.
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { WharfSqliteAdapter } from './capabilities.ts';
import { SAFETY_NET_PAGES, SqliteCheckpointer } from './sqlite-checkpointer.ts';
import {
  CompiledQuery,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from 'kysely';

class NodeSqliteConnection implements DatabaseConnection {
  readonly db: DatabaseSync;
  /** told of every write (a statement that returns no rows): it checkpoints the WAL on its own thread */
  checkpointer: SqliteCheckpointer | undefined;
  /** Prepared statements by SQL text: the same few queries run on every request, and preparing costs more than running. */
  readonly #statements = new Map<string, StatementSync>();
  constructor(db: DatabaseSync) {
    this.db = db;
  }

  #prepare(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (stmt) return stmt;
    stmt = this.db.prepare(sql);
    if (this.#statements.size >= 500) this.#statements.delete(this.#statements.keys().next().value!);
    this.#statements.set(sql, stmt);
    return stmt;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const stmt = this.#prepare(compiled.sql);
    const params = compiled.parameters as never[];
    if (stmt.columns().length > 0) {
      const rows = stmt.all(...params) as R[];
      // INSERT ... RETURNING writes too.
      if (this.checkpointer && !/^\s*select\b/i.test(compiled.sql)) this.checkpointer.wrote();
      return { rows };
    }
    const r = stmt.run(...params);
    this.checkpointer?.wrote();
    return { rows: [], numAffectedRows: BigInt(r.changes), insertId: BigInt(r.lastInsertRowid) };
  }

  async *streamQuery<R>(compiled: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    const stmt = this.#prepare(compiled.sql);
    for (const row of stmt.iterate(...(compiled.parameters as never[]))) yield { rows: [row as R] };
  }
}

class Mutex {
  #tail: Promise<void> = Promise.resolve();
  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.#tail;
    this.#tail = prev.then(() => next);
    return prev.then(() => release);
  }
}

class NodeSqliteDriver implements Driver {
  readonly #path: string;
  #conn?: NodeSqliteConnection;
  readonly #mutex = new Mutex();
  #release?: () => void;

  constructor(path: string) {
    this.#path = path;
  }

  async init(): Promise<void> {
    const db = new DatabaseSync(this.#path);
    // A new database gets 8 KiB pages (rows of RPM metadata are a few KiB: fewer overflow pages); an existing one
    // keeps its own. WAL lets readers (other processes, backups) proceed during writes; busy_timeout waits for other
    // writers.
    db.exec('PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
    this.#conn = new NodeSqliteConnection(db);
    if (this.#path !== ':memory:' && this.#path !== '') {
      // Checkpoints on a worker thread, not in the commits of this one (sqlite-checkpointer.ts).
      db.exec(`PRAGMA wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
      this.#conn.checkpointer = new SqliteCheckpointer(this.#path, () => db.exec('PRAGMA wal_autocheckpoint = 1000'));
    }
  }

  /** The WAL checkpointer (undefined for an in-memory database). */
  get checkpointer(): SqliteCheckpointer | undefined {
    return this.#conn?.checkpointer;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    this.#release = await this.#mutex.lock();
    return this.#conn!;
  }

  async beginTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw('begin immediate'));
  }
  async commitTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw('commit'));
  }
  async rollbackTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw('rollback'));
  }
  async releaseConnection(): Promise<void> {
    const r = this.#release;
    this.#release = undefined;
    r?.();
  }
  async destroy(): Promise<void> {
    await this.#conn?.checkpointer?.close();
    this.#conn?.db.close();
    this.#conn = undefined;
  }
}

export class NodeSqliteDialect implements Dialect {
  readonly #path: string;
  constructor(path: string) {
    this.#path = path;
  }
  createAdapter() {
    return new WharfSqliteAdapter();
  }
  createDriver(): Driver {
    return new NodeSqliteDriver(this.#path);
  }
  createQueryCompiler() {
    return new SqliteQueryCompiler();
  }
  createIntrospector(db: Kysely<any>) {
    return new SqliteIntrospector(db);
  }
}
