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

    test('an atomic unit (one statement) alone runs without a transaction; with others it shares theirs', async () => {
      const t = await dialect.open();
      try {
        const w = new WriteBatcher(t.db);
        const seen: boolean[] = [];
        const atomic = (name: string) =>
          w.run(
            async (db) => {
              seen.push(db.isTransaction);
              await db.insertInto('orgs').values({ name, created_at: 1 }).execute();
            },
            { atomic: true },
          );
        await atomic('alone');
        assert.deepEqual(seen, [false], 'alone: straight on the database');
        assert.equal(w.commits, 1);
        seen.length = 0;
        await Promise.all(Array.from({ length: 10 }, (_, i) => atomic(`together${i}`)));
        assert.equal(seen[0], false, 'the first arrives alone');
        assert.ok(seen.slice(1).every((s) => s), 'the others share one transaction');
        // A failing atomic unit among others: the rest still commit, each once.
        const outcomes = await Promise.allSettled([atomic('x1'), atomic('alone'), atomic('x2'), atomic('x3')]);
        assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
        const names = (await t.db.selectFrom('orgs').select('name').execute()).map((r) => r.name);
        assert.equal(names.length, 14);
        assert.equal(new Set(names).size, 14);
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
