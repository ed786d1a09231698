// Stands in for src/db/database.ts under ./register.mjs: SQLite paths open PostgreSQL schemas instead.
import { createHash } from 'node:crypto';
import * as real from '../../src/db/database.ts';
export * from '../../src/db/database.ts';

const url = process.env.WHARF_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

export async function openDatabase(target: string, options: real.OpenOptions = {}): Promise<real.Db> {
  if (real.isPostgresUrl(target)) return real.openDatabase(target, options);
  return real.openDatabase(url, { schema: `wshim_${createHash('sha256').update(target).digest('hex').slice(0, 24)}` });
}
