// The server on PostgreSQL (WHARF_DATABASE_URL) instead of SQLite: a fresh database, a push through the CLI, the
// signed metadata served, the state in PostgreSQL and none in the data directory. Needs PostgreSQL on
// 127.0.0.1:5432 with trust authentication (WHARF_TEST_DATABASE_URL names another server).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { buildDeb, startWharf, type WharfInstance } from '../helpers/wharf.ts';

const server = process.env.WHARF_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const name = `wharf_t_${randomBytes(6).toString('hex')}`;
let admin: pg.Client;
let wharf: WharfInstance;
let tmp: string;

before(async () => {
  admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  tmp = await mkdtemp(join(tmpdir(), 'wharf-pg-'));
  wharf = await startWharf({ env: { WHARF_DATABASE_URL: url.href, WHARF_MASTER_KEY: randomBytes(32).toString('base64') } });
});

after(async () => {
  await wharf?.stop();
  await admin?.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin?.end();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('push and serve with the state in PostgreSQL', async () => {
  assert.equal((await wharf.cli(['repo', 'create', 'acme/pg'])).code, 0);
  const deb = await buildDeb(tmp, 'Package: pgtest\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: T <t@example.org>\nDescription: pg\n', { 'usr/bin/pgtest': 'hi\n' });
  const p = await wharf.cli(['push', 'acme/pg/debian/bookworm', deb]);
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const packages = await (await fetch(`${wharf.url}/acme/pg/debian/dists/bookworm/main/binary-amd64/Packages`)).text();
  assert.match(packages, /^Package: pgtest\nVersion: 1\.0-1\n/);
  assert.equal((await fetch(`${wharf.url}/acme/pg/debian/dists/bookworm/InRelease`)).status, 200);
  const direct = new pg.Client({ connectionString: Object.assign(new URL(server), { pathname: `/${name}` }).href });
  await direct.connect();
  try {
    const r = await direct.query('SELECT d.name AS dist, p.name, p.version FROM deb_packages p JOIN distributions d ON d.id = p.distribution_id');
    assert.deepEqual(r.rows, [{ dist: 'bookworm', name: 'pgtest', version: '1.0-1' }]);
  } finally {
    await direct.end();
  }
  assert.equal(existsSync(join(wharf.dataDir, 'wharf.db')), false, 'no SQLite database when WHARF_DATABASE_URL is set');
});

test('batch pushes on PostgreSQL: concurrent batches into one distribution, then the same files again, then RPMs in batches', async () => {
  const { buildDebBytes, debMeta } = await import('../../bench/debgen.ts');
  const { buildRpmBytes, rpmMeta } = await import('../../bench/rpmgen.ts');
  const { writeFile } = await import('node:fs/promises');
  const debs: string[] = [];
  for (let i = 1; i <= 120; i++) {
    const m = { ...debMeta(i), standalone: true };
    debs.push(join(tmp, m.filename));
    await writeFile(debs.at(-1)!, buildDebBytes(m));
  }
  // Two CLI runs at once, overlapping in half their files: every file is stored once, whichever run gets it first
  // (the ingest locks and the unique keys hold across concurrent chunk transactions).
  const [a, b] = await Promise.all([
    wharf.cli(['push', 'acme/pg/debian/batchy', ...debs.slice(0, 80), '--batch-size', '30', '--json']),
    wharf.cli(['push', 'acme/pg/debian/batchy', ...debs.slice(40), '--batch-size', '30', '--json']),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const statuses = [...(JSON.parse(a.stdout).pushed as { status: string }[]), ...(JSON.parse(b.stdout).pushed as { status: string }[])].map((p) => p.status);
  assert.equal(statuses.filter((s) => s === 'created').length, 120);
  assert.equal(statuses.filter((s) => s === 'unchanged').length, 40);
  const packages = await (await fetch(`${wharf.url}/acme/pg/debian/dists/batchy/main/binary-amd64/Packages`)).text();
  assert.equal([...packages.matchAll(/^Package: /gm)].length, 120);
  const again = await wharf.cli(['push', 'acme/pg/debian/batchy', ...debs, '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.ok((JSON.parse(again.stdout).pushed as { status: string }[]).every((p) => p.status === 'unchanged'));

  const rpms: string[] = [];
  for (let i = 1; i <= 30; i++) {
    const m = rpmMeta(i);
    rpms.push(join(tmp, m.filename));
    await writeFile(rpms.at(-1)!, buildRpmBytes({ ...m, standalone: true }));
  }
  const r = await wharf.cli(['push', 'acme/pg/el/9', ...rpms, '--batch-size', '12', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout).pushed as { status: string }[]).filter((p) => p.status === 'created').length, 30);
  const repomd = await (await fetch(`${wharf.url}/acme/pg/el/9/x86_64/repodata/repomd.xml`)).text();
  const primary = /<location href="(repodata\/[0-9a-f]{64}-primary\.xml\.gz)"/.exec(repomd)?.[1];
  assert.ok(primary, repomd);
  const { gunzipSync } = await import('node:zlib');
  const xml = gunzipSync(Buffer.from(await (await fetch(`${wharf.url}/acme/pg/el/9/x86_64/${primary}`)).arrayBuffer())).toString();
  assert.match(xml, /packages="30"/, 'every RPM of the batches (noarch ones too) is in x86_64');
});

test('many distributions publishing at once, each with retired package files due: their clean-ups finish and pushes go on (no lock connection is waited for while one is held)', { timeout: 120_000 }, async () => {
  const { loadConfig } = await import('../../src/config.ts');
  const { createApp } = await import('../../src/app.ts');
  const { createLogger } = await import('../../src/log.ts');
  const { buildRpmBytes, rpmMeta } = await import('../../bench/rpmgen.ts');
  // A database of its own (the server above keeps its keys under another master key).
  await admin.query(`CREATE DATABASE ${name}_gc`);
  const url = Object.assign(new URL(server), { pathname: `/${name}_gc` }).href;
  const app = await createApp(loadConfig({ data: join(tmp, 'in-process'), 'database-url': url, 'signing-passphrase': 'test-passphrase', fsync: 'false', 'retention-seconds': '1' }, {}), {
    log: createLogger('silent'),
  });
  const within = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer within ${ms / 1000} s (deadlocked?)`)), ms))]);
  try {
    const r = { org: 'acme', repo: 'many' };
    await app.repos.create(r, { private: false, signPackages: false });
    const push = (dist: string, i: number) => {
      const bytes = buildRpmBytes({ ...rpmMeta(i), standalone: true });
      return app.packages.push(r, 'el', dist, (async function* () {
        yield bytes;
      })());
    };
    // More distributions than lock connections (16), each with a yanked package whose file falls due.
    const dists = Array.from({ length: 20 }, (_, k) => `d${k}`);
    for (const d of dists) {
      await push(d, 1);
      await push(d, 2);
      await app.packages.yank(r, 'el', d, rpmMeta(2).filename);
    }
    await new Promise((res) => setTimeout(res, 1200));
    const flush = app.store.flush.bind(app.store);
    app.store.flush = async () => {
      await new Promise((res) => setTimeout(res, 300)); // slow storage: the publishes overlap
      return flush();
    };
    await within(Promise.all(dists.map((d) => push(d, 3))), 60_000, 'pushes into 20 distributions at once');
    await within(push('fresh', 4), 20_000, 'a later push into another distribution');
    await within(push('d0', 5), 20_000, 'a push after the clean-ups'); // waits for d0's clean-up
    const left = await app.db.selectFrom('retired_files').select('key').where('key', 'like', '%/Packages/%').execute();
    assert.deepEqual(left.map((x) => x.key), [], 'retired package files left');
  } finally {
    await app.close();
    await admin.query(`DROP DATABASE IF EXISTS ${name}_gc WITH (FORCE)`);
  }
});
