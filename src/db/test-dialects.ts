// The databases tests run against: `for (const dialect of testDialects()) describe(dialect.name, { skip: dialect.skip }, ...)`.
// SQLite always runs (a file in a temporary directory). PostgreSQL runs too and is required (CI and development
// machines have it); each open() works in a schema of its own, dropped by close().
//   WHARF_TEST_DATABASE_URL   the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/test)
//   WHARF_TEST_SKIP_POSTGRES=1 skip PostgreSQL (machines without it), reported as skipped rather than silently passed
//   WHARF_TEST_DIALECTS       narrow the run: "sqlite", "postgres" or "sqlite,postgres" (the default)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openDatabase, type Db, type OpenOptions } from './database.ts';
import type { DialectName } from './capabilities.ts';

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  db: Db;
  /** what openDatabase was given: opening it again reaches the same database */
  target: string;
  options: OpenOptions;
  /** destroys `db` (if still open) and removes the database (temporary directory, or the PostgreSQL schema) */
  close(): Promise<void>;
}

export interface TestDialect {
  name: DialectName;
  /** the reason this dialect is skipped, or undefined */
  skip: string | undefined;
  open(): Promise<TestDatabase>;
}

export function testDialects(env: NodeJS.ProcessEnv = process.env): TestDialect[] {
  const wanted = (env.WHARF_TEST_DIALECTS ?? 'sqlite,postgres').split(',').map((s) => s.trim());
  const url = env.WHARF_TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
  const all: TestDialect[] = [
    { name: 'sqlite', skip: undefined, open: openSqlite },
    {
      name: 'postgres',
      skip: env.WHARF_TEST_SKIP_POSTGRES === '1' ? 'WHARF_TEST_SKIP_POSTGRES=1 (no PostgreSQL on this machine)' : undefined,
      open: () => openPostgres(url),
    },
  ];
  return all.filter((d) => wanted.includes(d.name));
}

async function openSqlite(): Promise<TestDatabase> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-db-'));
  const target = join(dir, 'wharf.db');
  const db = await openDatabase(target);
  return { db, target, options: {}, close: async () => (await destroyQuietly(db), await rm(dir, { recursive: true, force: true })) };
}

async function openPostgres(url: string): Promise<TestDatabase> {
  const schema = `wharf_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const options = { schema };
  const drop = async () => {
    const { Client } = await import('pg');
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`drop schema if exists "${schema}" cascade`);
    } finally {
      await client.end();
    }
  };
  let db: Db;
  try {
    // Created (and committed) on a connection of its own before the pool of openDatabase connects: a CI run once saw
    // the migration miss a schema created on another pooled connection a moment before.
    const { Client } = await import('pg');
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`create schema if not exists "${schema}"`);
    } finally {
      await client.end();
    }
    db = await openDatabase(url, options);
  } catch (e) {
    await drop().catch(() => {}); // a failed migration may have left the schema behind
    throw e;
  }
  return { db, target: url, options, close: async () => (await destroyQuietly(db), await drop()) };
}

async function destroyQuietly(db: Db): Promise<void> {
  try {
    await db.destroy();
  } catch {
    // already destroyed
  }
}
