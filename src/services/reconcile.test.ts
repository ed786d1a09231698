// A package stored but never published (a crash between the two) is published at the next start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { createApp } from '../app.ts';
import { createLogger } from '../log.ts';

test('distributions with packages newer than their last publish are republished at start', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-reconcile-'));
  const config = loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {});
  const log = createLogger('silent');
  let app = await createApp(config, { log });
  try {
    const repo = await app.repos.create({ org: 'acme', repo: 'tools' }, { private: false });
    const d = await app.db
      .insertInto('distributions')
      .values({ repo_id: repo.id, kind: 'deb', os: 'debian', name: 'stable', created_at: Date.now(), generation: 0, published_state: null, published_at: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    await app.publisher.request(d.id);
    // Stored, then "crashed" before the publish.
    await app.db
      .insertInto('deb_packages')
      .values({
        distribution_id: d.id,
        component: 'main',
        name: 'late',
        version: '1.0',
        architecture: 'amd64',
        filename: 'late_1.0_amd64.deb',
        pool_key: 'pool/stable/main/l/late/late_1.0_amd64.deb',
        size: 1,
        md5: '0'.repeat(32),
        sha1: '0'.repeat(40),
        sha256: 'ab'.repeat(32),
        sha512: '0'.repeat(128),
        stanza: 'Package: late\nVersion: 1.0\nArchitecture: amd64\n',
        created_at: Date.now() + 1,
      })
      .execute();
    // The index as apt reads it (the uncompressed Packages is not stored).
    const packages = 'public/acme/tools/debian/dists/stable/main/binary-amd64/Packages.gz';
    const index = async () => gunzipSync((await app.store.get(packages))!).toString();
    assert.doesNotMatch(await index(), /Package: late/);
    await app.close();
    app = await createApp(config, { log });
    assert.match(await index(), /^Package: late$/m);
  } finally {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('stop() waits for a periodic check under way, and no publish starts after it; a closed publisher takes no request', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-reconcile-'));
  const { openDatabase } = await import('../db/database.ts');
  const { Reconciler } = await import('./reconcile.ts');
  const db = await openDatabase(join(dir, 'wharf.db'));
  try {
    const org = await db.insertInto('orgs').values({ name: 'acme', created_at: Date.now() }).returning('id').executeTakeFirstOrThrow();
    const repo = await db.insertInto('repos').values({ org_id: org.id, name: 'r', private: 0, created_at: Date.now() }).returning('id').executeTakeFirstOrThrow();
    for (const name of ['a', 'b']) {
      // Stale by the change counter: committed changes not all published.
      await db.insertInto('distributions').values({ repo_id: repo.id, kind: 'deb', os: 'debian', name, created_at: Date.now(), generation: 0, published_state: null, published_at: null, changes: 2, published_changes: 1 }).execute();
    }
    const calls: number[] = [];
    let running = 0;
    let started!: () => void;
    const first = new Promise<void>((r) => (started = r));
    const reconciler = new Reconciler({
      db,
      log: createLogger('silent'),
      intervalMs: 20,
      publish: async (_kind, id) => {
        calls.push(id);
        running++;
        started();
        await new Promise((r) => setTimeout(r, 300));
        running--;
      },
    });
    reconciler.start(); // publishes what is stale on two checks in a row
    await first;
    await reconciler.stop();
    assert.equal(running, 0, 'stop() resolved while a publish it started still ran');
    assert.equal(calls.length, 1, 'the check went on to the next distribution after stop()');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(calls.length, 1, 'a publish started after stop()');
  } finally {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
  const d2 = await mkdtemp(join(tmpdir(), 'wharf-reconcile-'));
  const app = await createApp(loadConfig({ data: d2, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {}), { log: createLogger('silent') });
  await app.close();
  await assert.rejects(app.publisher.request(1), /closed/);
  await assert.rejects(app.rpmPublisher.request(1), /closed/);
  await rm(d2, { recursive: true, force: true });
});
