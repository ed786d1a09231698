// Recording stored packages: bumpChanges + insert in a transaction, or bumpAndInsert in one statement where the
// database has data-modifying WITH clauses (PostgreSQL). Both dialects; the one-statement path runs on PostgreSQL.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../db/test-dialects.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { capabilities } from '../db/capabilities.ts';
import type { Db } from '../db/database.ts';
import { BUMP_AND_INSERT_MAX_TEXT, bumpAndInsert, canBumpAndInsert, findOrCreateDistribution } from './distributions.ts';

async function seed(db: Db): Promise<number> {
  const org = await db.insertInto('orgs').values({ name: 'acme', created_at: 1 }).returning('id').executeTakeFirstOrThrow();
  const repo = await db.insertInto('repos').values({ org_id: org.id, name: 'tools', private: 0, created_at: 1 }).returning('id').executeTakeFirstOrThrow();
  const dist = await db
    .insertInto('distributions')
    .values({ repo_id: repo.id, kind: 'deb', os: 'debian', name: 'stable', created_at: 1, generation: 0, published_state: null, published_at: null })
    .returning('id')
    .executeTakeFirstOrThrow();
  return dist.id;
}

function debRow(distributionId: number, i: number) {
  return {
    distribution_id: distributionId,
    component: 'main',
    name: `p${i}`,
    version: '1.0',
    architecture: 'amd64',
    filename: `p${i}_1.0_amd64.deb`,
    pool_key: `pool/main/p/p${i}/p${i}_1.0_amd64.deb`,
    size: 1000 + i,
    md5: 'a'.repeat(32),
    sha1: 'b'.repeat(40),
    sha256: i.toString(16).padStart(64, '0'),
    sha512: 'd'.repeat(128),
    stanza: `Package: p${i}\nDescription: quotes " and \\ and ünïcode\n and a continuation line`,
    created_at: 1_700_000_000_000 + i,
    provenance: i % 2 ? null : '{"ci":"x"}',
  };
}

for (const dialect of testDialects()) {
  describe(`recording stored packages on ${dialect.name}`, { skip: dialect.skip }, () => {
    test('canBumpAndInsert: PostgreSQL only, only rows that name the same columns, and not too much text', async () => {
      const t = await dialect.open();
      try {
        const rows = [debRow(1, 1), debRow(1, 2)];
        assert.equal(canBumpAndInsert(t.db, rows), capabilities(t.db).dataModifyingCte);
        assert.equal(canBumpAndInsert(t.db, []), false);
        const { provenance: _, ...withoutProvenance } = debRow(1, 3);
        assert.equal(canBumpAndInsert(t.db, [...rows, withoutProvenance]), false, 'a row without a column others have');
        assert.equal(canBumpAndInsert(t.db, [...rows, { ...debRow(1, 4), provenance: undefined }]), false, 'undefined is left out');
        // Rows whose text would make one parameter too large for a string go one parameter per value instead.
        const half = 'x'.repeat(BUMP_AND_INSERT_MAX_TEXT / 2);
        assert.equal(canBumpAndInsert(t.db, [{ ...debRow(1, 5), stanza: half }, { ...debRow(1, 6), stanza: half }]), false, 'more than the limit in all');
        assert.equal(canBumpAndInsert(t.db, [{ ...debRow(1, 5), stanza: half.slice(1000) }]), capabilities(t.db).dataModifyingCte, 'under the limit');
      } finally {
        await t.close();
      }
    });

    test('an OS holds distributions of one kind: the kind of its first', async () => {
      const t = await dialect.open();
      try {
        const id = await seed(t.db);
        const { repo_id: repoId } = await t.db.selectFrom('distributions').select('repo_id').where('id', '=', id).executeTakeFirstOrThrow();
        const a = await findOrCreateDistribution(t.db, repoId, 'myos', 'a', 'deb');
        assert.equal(await findOrCreateDistribution(t.db, repoId, 'myos', 'a', 'deb'), a, 'found again');
        await findOrCreateDistribution(t.db, repoId, 'myos', 'c', 'deb');
        await assert.rejects(findOrCreateDistribution(t.db, repoId, 'myos', 'b', 'rpm'), (e: unknown) => (e as { code?: string }).code === 'UNSUPPORTED_PACKAGE' && /myos holds Debian distributions/.test((e as Error).message));
        await assert.rejects(findOrCreateDistribution(t.db, repoId, 'myos', 'a', 'rpm'), (e: unknown) => (e as { code?: string }).code === 'UNSUPPORTED_PACKAGE');
        assert.ok((await findOrCreateDistribution(t.db, repoId, 'otheros', 'b', 'rpm')) > 0, 'another OS name is free');
        const kinds = await t.db.selectFrom('distributions').select(['os', 'name', 'kind']).where('repo_id', '=', repoId).where('os', '=', 'myos').orderBy('name').execute();
        assert.deepEqual(kinds.map((k) => `${k.name}:${k.kind}`), ['a:deb', 'c:deb']);
        // Two first pushes of different kinds under one new OS at once: one wins, the other is refused.
        for (let k = 0; k < 8; k++) {
          const [deb, rpm] = await Promise.allSettled([
            findOrCreateDistribution(t.db, repoId, `race${k}`, 'a', 'deb'),
            findOrCreateDistribution(t.db, repoId, `race${k}`, 'b', 'rpm'),
          ]);
          assert.equal([deb, rpm].filter((r) => r.status === 'fulfilled').length, 1, `race${k}: ${String((deb as PromiseRejectedResult).reason ?? '')} ${String((rpm as PromiseRejectedResult).reason ?? '')}`);
          const rows = await t.db.selectFrom('distributions').select('kind').distinct().where('repo_id', '=', repoId).where('os', '=', `race${k}`).execute();
          assert.equal(rows.length, 1);
        }
      } finally {
        await t.close();
      }
    });

    test('bumpAndInsert stores every value as given, bumps changes by the row count, and is atomic', { skip: dialect.name === 'sqlite' ? 'one statement needs a data-modifying WITH clause (PostgreSQL)' : undefined }, async () => {
      const t = await dialect.open();
      try {
        const id = await seed(t.db);
        const first = [debRow(id, 1), debRow(id, 2), debRow(id, 3)];
        assert.equal(await bumpAndInsert(t.db, 'deb_packages', id, first), 3);
        assert.equal(await bumpAndInsert(t.db, 'deb_packages', id, [debRow(id, 4)]), 4);
        const stored = await t.db.selectFrom('deb_packages').selectAll().where('distribution_id', '=', id).orderBy('id').execute();
        assert.deepEqual(
          stored.map(({ id: _, ...r }) => ({ ...r, size: Number(r.size), created_at: Number(r.created_at) })),
          [1, 2, 3, 4].map((i) => debRow(id, i)),
        );
        assert.ok(stored.every((r, i) => i === 0 || r.id > stored[i - 1]!.id), 'ids in insertion order');
        // A duplicate file name fails the statement: neither its other row nor the bump is kept.
        await assert.rejects(bumpAndInsert(t.db, 'deb_packages', id, [debRow(id, 5), debRow(id, 1)]), (e) => isUniqueViolation(e));
        const dist = await t.db.selectFrom('distributions').select('changes').where('id', '=', id).executeTakeFirstOrThrow();
        assert.equal(Number(dist.changes), 4);
        const names = await t.db.selectFrom('deb_packages').select('name').where('distribution_id', '=', id).execute();
        assert.equal(names.length, 4);
        await assert.rejects(bumpAndInsert(t.db, 'deb_packages', id + 1000, [debRow(id + 1000, 9)]), /not found|foreign key/);
      } finally {
        await t.close();
      }
    });
  });
}
