import {
  Kysely,
  Migrator,
  PostgresDialect,
  PostgresIntrospector,
  sql,
  type DatabaseMetadataOptions,
  type Dialect,
  type MigrationProvider,
  type TableMetadata,
} from 'kysely';
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

  override createIntrospector(db: Kysely<any>) {
    return new SearchPathIntrospector(db);
  }
}

/**
 * Kysely's PostgreSQL introspector (the Migrator asks it whether its tables exist) reads every schema of the database
 * and calls has_schema_privilege() on each schema's *name*. A schema another client drops between the catalog read and
 * that call fails the whole query ("schema … does not exist"): CI saw a migration fail that way while other test
 * processes dropped their schemas. Wharf only ever works in the schemas of its search_path, so this one reads those
 * alone, and looks everything up by oid (auto-increment too: from the column's identity or its nextval() default,
 * where Kysely asks pg_get_serial_sequence() by table name).
 */
class SearchPathIntrospector extends PostgresIntrospector {
  readonly #db: Kysely<any>;

  constructor(db: Kysely<any>) {
    super(db);
    this.#db = db;
  }

  override async getTables(options: DatabaseMetadataOptions = { withInternalKyselyTables: false }): Promise<TableMetadata[]> {
    const internal = options.withInternalKyselyTables ? sql`true` : sql`c.relname not in ('kysely_migration', 'kysely_migration_lock')`;
    const { rows } = await sql<ColumnRow>`
      select ns.nspname as schema, c.relname as table, c.relkind as kind, a.attname as column, a.attnotnull as not_null,
             a.atthasdef as has_default, typ.typname as type, tns.nspname as type_schema,
             col_description(a.attrelid, a.attnum) as comment,
             (a.attidentity <> '' or coalesce(pg_get_expr(d.adbin, d.adrelid) like 'nextval(%', false)) as serial
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
        join pg_catalog.pg_attribute a on a.attrelid = c.oid
        join pg_catalog.pg_type typ on typ.oid = a.atttypid
        join pg_catalog.pg_namespace tns on tns.oid = typ.typnamespace
        left join pg_catalog.pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
       where ns.nspname = any (current_schemas(false)) and c.relkind in ('r', 'v', 'p')
         and has_schema_privilege(ns.oid, 'USAGE') and a.attnum >= 0 and not a.attisdropped and ${internal}
       order by ns.nspname, c.relname, a.attnum`.execute(this.#db);
    const tables = new Map<string, TableMetadata & { columns: TableMetadata['columns'][number][] }>();
    for (const r of rows) {
      const key = `${r.schema}.${r.table}`;
      let table = tables.get(key);
      if (!table) tables.set(key, (table = { name: r.table, schema: r.schema, isView: r.kind === 'v', columns: [] }));
      table.columns.push({
        name: r.column,
        dataType: r.type,
        dataTypeSchema: r.type_schema,
        isNullable: !r.not_null,
        isAutoIncrementing: r.serial,
        hasDefaultValue: r.has_default,
        comment: r.comment ?? undefined,
      });
    }
    return [...tables.values()];
  }
}

interface ColumnRow {
  schema: string;
  table: string;
  kind: string;
  column: string;
  not_null: boolean;
  has_default: boolean;
  type: string;
  type_schema: string;
  comment: string | null;
  /** an identity column, or a serial one (its default draws from a sequence) */
  serial: boolean;
}
