import { Kysely, Migrator, PostgresDialect, sql, type Dialect, type MigrationProvider } from 'kysely';
import type { Pool, PoolConfig } from 'pg';
import { NodeSqliteDialect } from './sqlite-dialect.ts';
import { MIGRATIONS } from './migrations.ts';
import { WharfPostgresAdapter, capabilities, type DbCapabilities } from './capabilities.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;
export { capabilities, type DbCapabilities };

export interface OpenOptions {
  /**
   * PostgreSQL only: the schema every connection works in (its `search_path`), created if missing. Default: the
   * server's search_path (normally `public`). Tests use a fresh schema per run.
   */
  schema?: string;
}

/** True when `target` names a PostgreSQL database (postgres:// or postgresql:// URL) rather than a SQLite file. */
export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/**
 * Opens the database named by `target` and brings its schema up to date: a `postgres://` (or `postgresql://`) URL
 * selects PostgreSQL, anything else is a SQLite file path. `capabilities(db)` tells the two apart.
 */
export async function openDatabase(target: string, options: OpenOptions = {}): Promise<Db> {
  const dialect = isPostgresUrl(target) ? await postgresDialect(target, options) : new NodeSqliteDialect(target);
  const db = new Kysely<Database>({ dialect });
  try {
    let migrationTableSchema: string | undefined;
    if (capabilities(db).dialect === 'postgres') {
      if (options.schema) await db.schema.createSchema(options.schema).ifNotExists().execute();
      // Kysely looks for its migration tables in every schema of the database unless told which one: name ours, or
      // a kysely_migration table of another schema (another application, another Wharf) would count as Wharf's.
      migrationTableSchema = options.schema ?? (await sql<{ s: string | null }>`select current_schema() as s`.execute(db)).rows[0]?.s ?? undefined;
      if (!migrationTableSchema) throw new Error('PostgreSQL: no schema to work in (the search_path names no existing schema)');
    }
    const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };
    const { error, results } = await new Migrator({ db, provider, migrationTableSchema }).migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName;
      throw new Error(`database migration ${failed ?? ''} failed: ${(error as Error).message ?? error}`, { cause: error });
    }
  } catch (e) {
    await db.destroy();
    throw e;
  }
  if (dialect instanceof WharfPostgresDialect) postgresConfigs.set(db, dialect.poolConfig);
  return db;
}

const postgresConfigs = new WeakMap<Db, PoolConfig>();

/**
 * PostgreSQL: the connection settings of an open `db` (URL, search_path, type parsers), to open a dedicated
 * `pg.Client` beside its pool (LISTEN needs a session of its own). Undefined for SQLite. A copy: change it freely.
 */
export function postgresConnectionConfig(db: Db): PoolConfig | undefined {
  const config = postgresConfigs.get(db);
  return config && { ...config };
}

const INT8_OID = 20;
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

async function postgresDialect(url: string, options: OpenOptions): Promise<Dialect> {
  const { Pool, types } = await import('pg');
  const config: PoolConfig = {
    connectionString: url,
    application_name: 'wharf',
    // bigint (int8) columns and count(*) arrive as strings by default; the schema keeps times (Unix ms) and sizes in
    // bigint and the services expect numbers, as SQLite gives them. A value beyond 2^53 becomes a BigInt (exact, and
    // mixing it with numbers throws rather than silently rounding).
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary' ? parseInt8 : types.getTypeParser(oid, format as 'text')) as typeof types.getTypeParser,
    },
  };
  if (options.schema !== undefined) {
    if (!SCHEMA_NAME.test(options.schema)) throw new Error(`invalid PostgreSQL schema name: ${options.schema}`);
    config.options = `-c search_path=${options.schema}`;
  }
  const pool = new Pool(config);
  // An idle connection the server closed (restart, failover) must not crash the process: the pool drops it, and the
  // next query opens a new one or reports its own error.
  pool.on('error', () => {});
  return new WharfPostgresDialect(config, pool);
}

function parseInt8(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

class WharfPostgresDialect extends PostgresDialect {
  readonly poolConfig: PoolConfig;

  constructor(poolConfig: PoolConfig, pool: Pool) {
    super({ pool });
    this.poolConfig = poolConfig;
  }

  override createAdapter() {
    return new WharfPostgresAdapter();
  }
}
