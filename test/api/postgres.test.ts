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
