// The audit log's group commit: concurrent entries share statements, and each keeps its own fields and time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KyselyPlugin } from 'kysely';
import { openDatabase } from '../db/database.ts';
import { AuditLog } from './audit.ts';

test('concurrent entries are written in fewer statements than entries, each with its own fields; a lone entry at once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-audit-'));
  const db = await openDatabase(join(dir, 'wharf.db'));
  t.after(async () => {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });
  let inserts = 0;
  let failNext = false;
  const counter: KyselyPlugin = {
    transformQuery: (args) => {
      if (failNext) {
        failNext = false;
        throw new Error('database unavailable');
      }
      if (args.node.kind === 'InsertQueryNode') inserts++;
      return args.node;
    },
    transformResult: async (args) => args.result,
  };
  const audit = new AuditLog(db.withPlugin(counter));
  const org = await db.insertInto('orgs').values({ name: 'acme', created_at: Date.now() }).returning('id').executeTakeFirstOrThrow();

  await audit.record({ actor: 'admin-token:1', ip: '127.0.0.1', action: 'repo.create', orgId: org.id, repoId: null, target: 'acme/first' });
  assert.equal(inserts, 1, 'a lone entry is one statement');

  const n = 40;
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      audit.record({ actor: `deploy-token:${i}`, ip: `10.0.0.${i}`, action: 'package.push', orgId: org.id, repoId: null, target: `acme/tools/debian/bookworm/p${i}.deb`, details: { i } }),
    ),
  );
  assert.ok(inserts - 1 < n, `${n} concurrent entries took ${inserts - 1} statements`);
  assert.ok(inserts - 1 >= 2, 'the first goes alone, the others wait for it and go together');
  const rows = await db.selectFrom('audit_log').selectAll().where('action', '=', 'package.push').orderBy('id').execute();
  assert.equal(rows.length, n);
  for (const r of rows) {
    const i = (JSON.parse(r.details!) as { i: number }).i;
    assert.equal(r.actor, `deploy-token:${i}`);
    assert.equal(r.ip, `10.0.0.${i}`);
    assert.equal(r.target, `acme/tools/debian/bookworm/p${i}.deb`);
  }
  assert.deepEqual(rows.map((r) => (JSON.parse(r.details!) as { i: number }).i), Array.from({ length: n }, (_, i) => i), 'kept in order');

  // A failing statement fails the entries it carried, and the next ones are written.
  failNext = true;
  await assert.rejects(audit.record({ actor: 'x', ip: undefined, action: 'a', orgId: org.id, repoId: null, target: 't' }), /database unavailable/);
  await audit.record({ actor: 'y', ip: undefined, action: 'after.failure', orgId: org.id, repoId: null, target: 't' });
  assert.equal((await db.selectFrom('audit_log').select('id').where('action', '=', 'after.failure').execute()).length, 1);
});
