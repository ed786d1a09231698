import { Kysely, Migrator, type MigrationProvider } from 'kysely';
import { NodeSqliteDialect } from './sqlite-dialect.ts';
import { MIGRATIONS } from './migrations.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

/** Opens the database named by `url` (a SQLite file path for now) and brings its schema up to date. */
export async function openDatabase(path: string): Promise<Db> {
  const db = new Kysely<Database>({ dialect: new NodeSqliteDialect(path) });
  const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(`database migration ${failed ?? ''} failed: ${(error as Error).message ?? error}`);
  }
  return db;
}
