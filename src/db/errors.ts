// Database errors recognised the same way on every dialect.

/**
 * True for a unique or primary-key violation: PostgreSQL SQLSTATE 23505 (node-postgres puts it in `code`), SQLite
 * SQLITE_CONSTRAINT_UNIQUE / SQLITE_CONSTRAINT_PRIMARYKEY (node:sqlite puts the extended result code in `errcode`;
 * the message is the fallback for drivers that only say "UNIQUE constraint failed").
 */
export function isUniqueViolation(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const x = e as { code?: unknown; errcode?: unknown; message?: unknown };
  if (x.code === '23505') return true; // PostgreSQL unique_violation
  if (x.code === 'SQLITE_CONSTRAINT_UNIQUE' || x.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return true; // other SQLite drivers
  if (x.errcode === 1555 || x.errcode === 2067) return true; // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
  return typeof x.message === 'string' && x.message.includes('UNIQUE constraint failed');
}
