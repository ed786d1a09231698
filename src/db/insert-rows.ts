// Multi-row inserts whose SQL is compiled once per shape. A batch stores thousands of packages 256 or 500 rows at a
// time: Kysely builds and compiles a query of thousands of values for each statement (a few milliseconds each, a
// third of the insert's cost at 10,000 rows), although the text only depends on the table, the columns and the
// number of rows. The text is compiled by Kysely for the first statement of a shape and reused, with the values
// passed as they are (strings, numbers, null: what the package tables hold).
import { CompiledQuery } from 'kysely';
import type { Db } from './database.ts';
import type { Database } from './schema.ts';
import { capabilities } from './capabilities.ts';

const compiled = new Map<string, string>();
/** shapes kept (row counts differ between chunks: a few per table) */
const MAX_SHAPES = 64;

/**
 * Inserts `rows` into `table` in one statement. Rows that do not all have the same columns in the same order, or
 * that leave a value undefined (Kysely omits those), go through Kysely's own insert.
 */
export async function insertRows<T extends keyof Database>(db: Db, table: T, rows: readonly Record<string, unknown>[]): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  const uniform = rows.every((r) => {
    const keys = Object.keys(r);
    return keys.length === columns.length && keys.every((k, i) => k === columns[i] && r[k] !== undefined);
  });
  if (!uniform) {
    await db.insertInto(table).values(rows as never).execute();
    return;
  }
  // Per dialect: a process may hold databases of both (the tests do), and their texts differ ($1 against ?).
  const shape = `${capabilities(db).dialect}\0${table}\0${columns.join('\0')}\0${rows.length}`;
  let text = compiled.get(shape);
  if (text === undefined) {
    const q = db.insertInto(table).values(rows as never).compile();
    // Only when Kysely passed every value through as one parameter in order (no defaults, no expressions).
    if (q.parameters.length !== rows.length * columns.length) {
      await db.executeQuery(q);
      return;
    }
    text = q.sql;
    if (compiled.size >= MAX_SHAPES) compiled.delete(compiled.keys().next().value!);
    compiled.set(shape, text);
  }
  const params = new Array<unknown>(rows.length * columns.length);
  let k = 0;
  for (const r of rows) for (const c of columns) params[k++] = r[c];
  await db.executeQuery(CompiledQuery.raw(text, params));
}
