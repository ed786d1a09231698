// The write batcher on both dialects: concurrent units share commits, each keeps its own result or error, and a
// failing unit leaves nothing behind while the others commit.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../db/test-dialects.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { WriteBatcher } from './write-batcher.ts';

for (const dialect of testDialects()) {
  describe(`write batcher on ${dialect.name}`, { skip: dialect.skip }, () => {
    test('concurrent units share commits; a failing unit is rolled back alone, the others commit', async () => {
      const t = await dialect.open();
      try {
        const w = new WriteBatcher(t.db);
        const insert = (name: string) => w.run(async (tx) => (await tx.insertInto('orgs').values({ name, created_at: 1 }).returning('id').executeTakeFirstOrThrow()).id);
        const first = await insert('first'); // alone: a transaction of its own, at once
        assert.equal(w.commits, 1);
        const names = Array.from({ length: 40 }, (_, i) => `org${i}`);
        const outcomes = await Promise.allSettled([
          ...names.map(insert),
          insert('first'), // a duplicate: fails with a unique violation
          w.run(async (tx) => {
            await tx.insertInto('orgs').values({ name: 'half-done', created_at: 1 }).execute();
            throw new Error('this unit fails after writing');
          }),
        ]);
        const ids = outcomes.slice(0, 40).map((o) => (o.status === 'fulfilled' ? o.value : assert.fail(String((o as PromiseRejectedResult).reason))));
        assert.equal(new Set(ids).size, 40, 'every unit got its own result');
        assert.ok(ids.every((id) => id > first));
        assert.equal(outcomes[40]!.status, 'rejected');
        assert.ok(isUniqueViolation((outcomes[40] as PromiseRejectedResult).reason));
        assert.match(String((outcomes[41] as PromiseRejectedResult).reason), /fails after writing/);
        const rows = await t.db.selectFrom('orgs').select('name').execute();
        assert.deepEqual(rows.map((r) => r.name).sort(), ['first', ...names].sort(), 'the failed units left nothing');
        assert.ok(w.commits < 1 + 42, `${w.commits} commits for 43 units`);
        assert.ok(w.commits >= 2);
        // Forty more that all succeed: they share a handful of commits (the first alone, the rest together).
        const before = w.commits;
        const more = await Promise.all(Array.from({ length: 40 }, (_, i) => insert(`more${i}`)));
        assert.equal(new Set(more).size, 40);
        assert.ok(w.commits - before <= 3, `${w.commits - before} commits for 40 concurrent units`);
      } finally {
        await t.close();
      }
    });

    test('disabled, every unit is a transaction of its own', async () => {
      const t = await dialect.open();
      try {
        const w = new WriteBatcher(t.db, { enabled: false });
        await Promise.all(Array.from({ length: 5 }, (_, i) => w.run((tx) => tx.insertInto('orgs').values({ name: `o${i}`, created_at: 1 }).execute())));
        assert.equal(w.commits, 5);
      } finally {
        await t.close();
      }
    });
  });
}
