// insertRows reuses the SQL text Kysely compiled for a shape: per dialect, since one process may hold a SQLite and a
// PostgreSQL database (these tests do), whose texts differ ("?" against "$1").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from './test-dialects.ts';
import { insertRows } from './insert-rows.ts';

const [sqlite, postgres] = testDialects();

test('the same shape on SQLite and PostgreSQL, in either order; rows of other shapes through Kysely', { skip: sqlite!.skip ?? postgres!.skip }, async () => {
  const a = await sqlite!.open();
  const b = await postgres!.open();
  try {
    const row = (target: string) => ({ at: 1, actor: 'x', ip: null, action: 'a', org_id: null, repo_id: null, target, details: null });
    for (const [db, other] of [[a.db, b.db], [b.db, a.db]] as const) {
      await insertRows(db, 'audit_log', [row('1'), row('2')]);
      await insertRows(other, 'audit_log', [row('3'), row('4')]);
    }
    // Not uniform: a missing column, an undefined value.
    await insertRows(a.db, 'audit_log', [row('5'), { ...row('6'), details: undefined }]);
    await insertRows(b.db, 'audit_log', [row('5'), { at: 1, actor: 'y', action: 'a', target: '6' }]);
    for (const db of [a.db, b.db]) {
      const targets = (await db.selectFrom('audit_log').select('target').orderBy('target').execute()).map((r) => r.target);
      assert.deepEqual(targets, ['1', '2', '3', '4', '5', '6']);
    }
  } finally {
    await a.close();
    await b.close();
  }
});
