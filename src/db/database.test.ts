// The database layer on every dialect (see test-dialects.ts for the environment variables that narrow the run).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { capabilities, openDatabase, type Db } from './database.ts';
import { POSTGRES_CAPABILITIES, SQLITE_CAPABILITIES } from './capabilities.ts';
import { isUniqueViolation } from './errors.ts';
import { MIGRATIONS } from './migrations.ts';
import type { Database } from './schema.ts';
import { testDialects, type TestDatabase } from './test-dialects.ts';

// Beyond 2^32 (a 32-bit integer column or parser would break them), below 2^53.
const T0 = 1_700_000_000_123;
const T1 = 1_800_000_000_456;
const BIG_SIZE = 5_000_000_000;

type Table = keyof Database;
type Row = Record<string, unknown>;

/** One row per table the services use, in foreign-key order; `ids` holds the ids inserted so far. */
function fixtures(ids: Record<string, number>): [Table, Row][] {
  return [
    ['orgs', { name: 'acme', created_at: T0 }],
    ['repos', { org_id: ids.orgs, name: 'tools', private: 1, created_at: T0 }],
    ['distributions', { repo_id: ids.repos, kind: 'deb', os: 'debian', name: 'bookworm', created_at: T0, generation: 3, published_state: '{"a":1}', published_at: T0, changes: 5, published_changes: 4 }],
    ['deb_packages', {
      distribution_id: ids.distributions, component: 'main', name: 'hello', version: '1.0-1', architecture: 'amd64',
      filename: 'pool/main/h/hello/hello_1.0-1_amd64.deb', pool_key: 'pool/x', size: BIG_SIZE, md5: 'a'.repeat(32), sha1: 'b'.repeat(40),
      sha256: 'c'.repeat(64), sha512: 'd'.repeat(128), stanza: 'Package: hello\n', created_at: T0, provenance: '{"ci":"x"}',
    }],
    ['rpm_packages', {
      distribution_id: ids.distributions, name: 'hello', epoch: '0', version: '1.0', release: '1', arch: 'x86_64', filename: 'hello-1.0-1.x86_64.rpm',
      blob_key: 'bookworm/x86_64/Packages/h/hello.rpm', size: BIG_SIZE, sha256: 'e'.repeat(64), upload_sha256: 'f'.repeat(64),
      primary_xml: '<package/>', filelists_xml: '<f/>', other_xml: '<o/>', created_at: T0, provenance: null,
    }],
    ['tokens', {
      kind: 'deploy', name: 'ci', secret_sha256: '1'.repeat(64), scopes: 'read,write', created_at: T0, expires_at: T1, revoked_at: null, last_used_at: T0,
      org_id: ids.orgs, repo_id: ids.repos, username: 'ci-bot', previous_secret_sha256: '2'.repeat(64), previous_valid_until: T1,
    }],
    ['signing_keys', { purpose: 'metadata', fingerprint: 'ABCD', public_armored: 'pub', private_armored: 'priv', created_at: T0, active: 1, repo_id: ids.repos }],
    ['retired_files', { distribution_id: ids.distributions, key: 'dists/bookworm/InRelease.old', retired_at: T0 }],
    ['server_secrets', { purpose: 'url-signing', value_encrypted: 'sealed', created_at: T0, active: 1 }],
    ['audit_log', { at: T0, actor: 'admin', ip: '127.0.0.1', action: 'repo.create', org_id: ids.orgs, repo_id: ids.repos, target: 'acme/tools', details: null }],
    ['oidc_issuers', { url: 'https://gitlab.example', type: 'gitlab', allow_private_network: 0, created_at: T0 }],
    ['trusted_publishers', {
      repo_id: ids.repos, provider: 'github', issuer: 'https://token.actions.githubusercontent.com', project: 'acme/tools', workflow: 'release.yml',
      environment: null, namespace_id: null, project_id: null, owner_id: '42', created_at: T0, last_used_at: null,
    }],
    ['oidc_used_jti', { issuer: 'https://gitlab.example', jti: 'abc', expires_at: T1 }],
    ['jwt_keys', { kid: 'k1', alg: 'ES256', public_jwk: '{}', private_encrypted: 'sealed', state: 'active', created_at: T0, activated_at: T0, retired_at: null }],
  ];
}

/** Columns an insert may leave out, and what they must then hold. */
const DEFAULTS: Partial<Record<Table, Row>> = { repos: { sign_packages: 1 } };

/** A bigint column per table to update (and read back) in the round trip. */
const UPDATED: Record<Table, string> = {
  orgs: 'created_at', repos: 'created_at', distributions: 'published_at', deb_packages: 'size', rpm_packages: 'size', tokens: 'last_used_at',
  signing_keys: 'created_at', retired_files: 'retired_at', server_secrets: 'created_at', audit_log: 'at', oidc_issuers: 'created_at',
  trusted_publishers: 'last_used_at', oidc_used_jti: 'expires_at', jwt_keys: 'retired_at',
};

function plain(row: object | undefined): Row | undefined {
  return row === undefined ? undefined : { ...row }; // node:sqlite rows have a null prototype
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail('expected the statement to fail');
}

for (const dialect of testDialects()) {
  describe(`database on ${dialect.name}`, { skip: dialect.skip }, () => {
    let t: TestDatabase;
    let db: Db;
    const ids: Record<string, number> = {};

    before(async () => {
      t = await dialect.open();
      db = t.db;
    });
    after(async () => {
      await t?.close();
    });

    test('capabilities come from the dialect, also inside a transaction', async () => {
      const expected = dialect.name === 'postgres' ? POSTGRES_CAPABILITIES : SQLITE_CAPABILITIES;
      assert.equal(capabilities(db), expected);
      await db.transaction().execute(async (tx) => assert.equal(capabilities(tx), expected));
    });

    test('every migration is applied and every table exists', async () => {
      const applied = await db.selectFrom('kysely_migration' as never).select(sql<string>`name`.as('name')).execute();
      assert.deepEqual(applied.map((r) => r.name).sort(), Object.keys(MIGRATIONS).sort());
      const tables = (await db.introspection.getTables())
        .filter((x) => t.options.schema === undefined || x.schema === t.options.schema)
        .map((x) => x.name);
      for (const [table] of fixtures({})) assert.ok(tables.includes(table), `table ${table}`);
    });

    test('insert, select and update round trip through every table, bigints as numbers', async () => {
      for (let i = 0; i < fixtures(ids).length; i++) {
        const [table, values] = fixtures(ids)[i]!; // rebuilt each time: a row refers to the ids inserted before it
        const key = table === 'oidc_used_jti' ? ['issuer', 'jti'] : ['id'];
        const inserted = plain(await db.insertInto(table).values(values as never).returning(key as never).executeTakeFirstOrThrow())!;
        if (key[0] === 'id') {
          assert.equal(typeof inserted.id, 'number', `${table}.id`);
          ids[table] = inserted.id as number;
        }
        const where = (q: any) => key.reduce((acc, k) => acc.where(k, '=', inserted[k] ?? values[k]), q);
        const row = plain(await where(db.selectFrom(table).selectAll()).executeTakeFirstOrThrow())!;
        assert.deepEqual(row, { ...(DEFAULTS[table] ?? {}), ...values, ...inserted }, table);

        const column = UPDATED[table];
        const r = await where(db.updateTable(table).set({ [column]: T1 + 1 })).executeTakeFirst();
        assert.equal(Number(r.numUpdatedRows), 1, `${table}: one row updated`);
        const again = plain(await where(db.selectFrom(table).select(column as never)).executeTakeFirstOrThrow())!;
        assert.strictEqual(again[column], T1 + 1, `${table}.${column}`);
      }
      // Defaults of columns the services leave out.
      const d = await db.insertInto('distributions').values({ repo_id: ids.repos!, kind: 'rpm', os: 'fedora', name: '40', created_at: T0, published_state: null, published_at: null } as never).returning('id').executeTakeFirstOrThrow();
      const dist = await db.selectFrom('distributions').select(['generation']).where('id', '=', d.id).executeTakeFirstOrThrow();
      assert.strictEqual(dist.generation, 0);
      const pkg = await db.selectFrom('deb_packages').select(['size', 'created_at']).where('id', '=', ids.deb_packages!).executeTakeFirstOrThrow();
      assert.strictEqual(pkg.size, T1 + 1);
      assert.strictEqual(pkg.created_at, T0);
    });

    test('aggregates the services use come back as numbers', async () => {
      const a = await db
        .selectFrom('deb_packages')
        .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('id').as('m'), eb.fn.max('created_at').as('newest')])
        .executeTakeFirstOrThrow();
      assert.deepEqual(plain(a), { n: 1, m: ids.deb_packages, newest: T0 });
      const empty = await db.selectFrom('deb_packages').select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('id').as('m')]).where('id', '<', 0).executeTakeFirstOrThrow();
      assert.deepEqual(plain(empty), { n: 0, m: null });
      const lower = await db.selectFrom('trusted_publishers').select('id').where(sql<string>`lower(project)`, '=', 'acme/tools').execute();
      assert.equal(lower.length, 1);
    });

    test('a bigint beyond 2^53 is not rounded', async (c) => {
      // No column holds such values (Unix ms, byte sizes); node:sqlite refuses to read them rather than rounding.
      if (dialect.name === 'sqlite') return c.skip('node:sqlite throws on integers beyond 2^53 instead of rounding');
      const r = await sql<{ v: unknown }>`select cast(9007199254740993 as bigint) as v`.execute(db);
      assert.strictEqual(r.rows[0]!.v, 9007199254740993n);
    });

    test('unique and primary-key violations are recognised, other constraint errors are not', async () => {
      const dupName = await rejection(db.insertInto('orgs').values({ name: 'acme', created_at: T0 }).execute());
      assert.ok(isUniqueViolation(dupName), String(dupName));
      const dupComposite = await rejection(db.insertInto('repos').values({ org_id: ids.orgs!, name: 'tools', private: 0, created_at: T0 }).execute());
      assert.ok(isUniqueViolation(dupComposite), String(dupComposite));
      const dupPk = await rejection(db.insertInto('oidc_used_jti').values({ issuer: 'https://gitlab.example', jti: 'abc', expires_at: T0 }).execute());
      assert.ok(isUniqueViolation(dupPk), String(dupPk));
      const fk = await rejection(db.insertInto('repos').values({ org_id: 999_999, name: 'orphan', private: 0, created_at: T0 }).execute());
      assert.ok(!isUniqueViolation(fk), String(fk));
      const notNull = await rejection(db.insertInto('orgs').values({ name: null as never, created_at: T0 }).execute());
      assert.ok(!isUniqueViolation(notNull), String(notNull));
      assert.ok(!isUniqueViolation(new Error('boom')));
      assert.ok(!isUniqueViolation(undefined));
    });

    test('varchar lengths are enforced exactly when the capabilities say so', async () => {
      const long = db.insertInto('orgs').values({ name: 'x'.repeat(65), created_at: T0 }).execute();
      if (capabilities(db).enforcesLength) await rejection(long);
      else {
        await long;
        await db.deleteFrom('orgs').where('name', '=', 'x'.repeat(65)).execute();
      }
    });

    test('a failed transaction rolls back, a successful one commits', async () => {
      await assert.rejects(
        db.transaction().execute(async (tx) => {
          await tx.insertInto('orgs').values({ name: 'rolled-back', created_at: T0 }).execute();
          await tx.updateTable('repos').set({ private: 0 }).where('id', '=', ids.repos!).execute();
          throw new Error('abort');
        }),
        /abort/,
      );
      assert.equal(await db.selectFrom('orgs').select('id').where('name', '=', 'rolled-back').executeTakeFirst(), undefined);
      assert.equal((await db.selectFrom('repos').select('private').where('id', '=', ids.repos!).executeTakeFirstOrThrow()).private, 1);

      // A unique violation inside a transaction fails it as a whole (PostgreSQL aborts the transaction).
      const e = await rejection(
        db.transaction().execute(async (tx) => {
          await tx.insertInto('orgs').values({ name: 'half', created_at: T0 }).execute();
          await tx.insertInto('orgs').values({ name: 'acme', created_at: T0 }).execute();
        }),
      );
      assert.ok(isUniqueViolation(e));
      assert.equal(await db.selectFrom('orgs').select('id').where('name', '=', 'half').executeTakeFirst(), undefined);

      const id = await db.transaction().execute(async (tx) => {
        const o = await tx.insertInto('orgs').values({ name: 'committed', created_at: T0 }).returning('id').executeTakeFirstOrThrow();
        return o.id;
      });
      assert.equal((await db.selectFrom('orgs').select('name').where('id', '=', id).executeTakeFirstOrThrow()).name, 'committed');
    });

    test('returning works on insert, update and delete; affected-row counts are reported', async () => {
      const ins = await db.insertInto('orgs').values([{ name: 'r1', created_at: T0 }, { name: 'r2', created_at: T0 }]).returning(['id', 'name', 'created_at']).execute();
      assert.deepEqual(ins.map((r) => [typeof r.id, r.name, r.created_at]), [['number', 'r1', T0], ['number', 'r2', T0]]);
      assert.ok(ins[1]!.id > ins[0]!.id);
      const upd = await db.updateTable('orgs').set({ created_at: T1 }).where('name', 'in', ['r1', 'r2']).returningAll().execute();
      assert.deepEqual(upd.map((r) => r.created_at), [T1, T1]);
      const del = await db.deleteFrom('orgs').where('name', 'in', ['r1', 'r2']).executeTakeFirst();
      assert.equal(Number(del.numDeletedRows), 2);
      const none = await db.deleteFrom('orgs').where('name', '=', 'r1').returning('id').execute();
      assert.deepEqual(none, []);
    });

    test('an id is never handed out twice, even after the newest row is deleted', async () => {
      const a = await db.insertInto('server_secrets').values({ purpose: 'p', value_encrypted: 'v', created_at: T0, active: 1 }).returning('id').executeTakeFirstOrThrow();
      await db.deleteFrom('server_secrets').where('id', '=', a.id).execute();
      const b = await db.insertInto('server_secrets').values({ purpose: 'p', value_encrypted: 'v', created_at: T0, active: 1 }).returning('id').executeTakeFirstOrThrow();
      assert.ok(b.id > a.id);
    });

    test('advisory locks work where the capabilities offer them', async (c) => {
      if (!capabilities(db).advisoryLocks) return c.skip(`${dialect.name} has no advisory locks`);
      await db.transaction().execute(async (tx) => {
        await sql`select pg_advisory_xact_lock(${4242})`.execute(tx);
      });
      const r = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${4242}) as ok`.execute(db);
      assert.equal(r.rows[0]!.ok, true);
      await sql`select pg_advisory_unlock(${4242})`.execute(db);
    });

    test('PostgreSQL: the schema comes from the URL too, and Wharf tables in another schema do not count', async (c) => {
      if (dialect.name !== 'postgres') return c.skip('PostgreSQL only');
      // t's schema already holds kysely_migration: a second, empty schema must still be migrated from scratch.
      const schema = `${t.options.schema}_url`;
      await sql`create schema ${sql.id(schema)}`.execute(db);
      try {
        const other = await openDatabase(`${t.target}${t.target.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`);
        try {
          const r = await sql<{ s: string; n: number }>`select current_schema() as s, (select count(*) from kysely_migration) as n`.execute(other);
          assert.deepEqual(plain(r.rows[0]), { s: schema, n: Object.keys(MIGRATIONS).length });
          assert.equal((await other.selectFrom('orgs').selectAll().execute()).length, 0);
        } finally {
          await other.destroy();
        }
      } finally {
        await sql`drop schema ${sql.id(schema)} cascade`.execute(db);
      }
    });

    test('PostgreSQL: opening a database is not disturbed by other clients dropping their schemas meanwhile', async (c) => {
      if (dialect.name !== 'postgres') return c.skip('PostgreSQL only');
      // Test processes run in parallel, each creating and dropping schemas of its own. Kysely's own introspector read
      // every schema and then looked each up by name, so a drop in between failed the migration ("schema … does not
      // exist"); the churn below made that happen within a few opens.
      const churn = `${t.options.schema}_churn`;
      let stop = false;
      const dropper = (async () => {
        for (let i = 0; !stop; i++) {
          await sql`create schema ${sql.id(`${churn}${i}`)}`.execute(db);
          await sql`create table ${sql.id(`${churn}${i}`)}.t (id integer)`.execute(db);
          await sql`drop schema ${sql.id(`${churn}${i}`)} cascade`.execute(db);
        }
      })();
      try {
        for (let i = 0; i < 30; i++) {
          const again = await openDatabase(t.target, t.options);
          await again.destroy();
        }
        const tables = await db.introspection.getTables();
        assert.ok(tables.length > 0 && tables.every((x) => x.schema === t.options.schema), 'only the search_path schema is read');
        const orgs = tables.find((x) => x.name === 'orgs')!.columns;
        assert.deepEqual(
          orgs.filter((c) => c.isAutoIncrementing).map((c) => c.name),
          ['id'],
          'auto-increment columns are told apart without looking tables up by name',
        );
      } finally {
        stop = true;
        await dropper;
      }
    });

    test('opening the same database again migrates nothing and keeps the data', async () => {
      const before = await db.selectFrom('kysely_migration' as never).select([sql<string>`name`.as('name'), sql<string>`timestamp`.as('timestamp')]).orderBy(sql`name`).execute();
      const second = await openDatabase(t.target, t.options);
      try {
        const after = await second.selectFrom('kysely_migration' as never).select([sql<string>`name`.as('name'), sql<string>`timestamp`.as('timestamp')]).orderBy(sql`name`).execute();
        assert.deepEqual(after.map(plain), before.map(plain));
        const org = await second.selectFrom('orgs').select(['name', 'created_at']).where('id', '=', ids.orgs!).executeTakeFirstOrThrow();
        assert.deepEqual(plain(org), { name: 'acme', created_at: T1 + 1 });
      } finally {
        await second.destroy();
      }
    });
  });
}
