// Asynchronous pushes (`Prefer: respond-async`, `wharf push --no-wait`): answered once stored, published after.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { createApp } from '../app.ts';
import { createLogger } from '../log.ts';
import { buildDebBytes, debMeta } from '../../bench/debgen.ts';

const body = (i: number) =>
  (async function* () {
    yield buildDebBytes(debMeta(i));
  })();

/** A fresh app (SQLite, files in a temporary directory) with the public repository acme/tools. */
async function newApp(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-async-push-'));
  const app = await createApp(loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {}), { log: createLogger('silent') });
  t.after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });
  const ref = { org: 'acme', repo: 'tools' };
  await app.repos.create(ref, { private: false });
  return { app, ref };
}

test('an asynchronous push answers while the publish cannot run, and its package is published once it can; a waiting push does not answer until then', async (t) => {
  const { app, ref } = await newApp(t);
  await app.packages.push(ref, 'debian', 'bookworm', body(1));
  const dist = await app.db.selectFrom('distributions').select('id').executeTakeFirstOrThrow();
  const listed = async () => {
    const gz = await app.store.get('public/acme/tools/debian/dists/bookworm/main/binary-amd64/Packages.gz');
    return [...gunzipSync(gz!).toString().matchAll(/^Package: (.+)$/gm)].map((m) => m[1]!);
  };
  assert.deepEqual(await listed(), [debMeta(1).name]);

  // Hold the distribution's publish lock: no publish can go live meanwhile.
  let release!: () => void;
  let acquired!: () => void;
  const isHeld = new Promise<void>((r) => (acquired = r));
  const held = app.locks.run('publish', dist.id, () => {
    acquired();
    return new Promise<void>((r) => (release = r));
  });
  await isHeld;

  const timeout = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms));
  const waiting = app.packages.push(ref, 'debian', 'bookworm', body(2));
  const answered = await Promise.race([app.packages.push(ref, 'debian', 'bookworm', body(3), { wait: false }), timeout(5000)]);
  assert.notEqual(answered, 'timeout', 'the asynchronous push answered while no publish could run');
  assert.equal(answered !== 'timeout' && answered.status, 'created');
  assert.equal(await Promise.race([waiting.then(() => 'answered'), timeout(300)]), 'timeout', 'the waiting push waits for the publish');
  assert.deepEqual(await listed(), [debMeta(1).name], 'nothing new is live yet');
  const rows = await app.db.selectFrom('deb_packages').select('name').orderBy('id').execute();
  assert.deepEqual(rows.map((r) => r.name), [1, 2, 3].map((i) => debMeta(i).name), 'both are stored');

  release();
  await held;
  await waiting;
  // The asynchronous push's package is in the publish that answered the waiting one (group commit) or the next.
  for (let i = 0; i < 100 && (await listed()).length < 3; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual((await listed()).sort(), [1, 2, 3].map((i) => debMeta(i).name).sort());
});

test('an asynchronous batch answers with every file stored and is published after', async (t) => {
  const { app, ref } = await newApp(t);
  const { tarHeader, tarPadding, TAR_END } = await import('../formats/tar-stream.ts');
  const parts: Uint8Array[] = [];
  for (let i = 10; i < 15; i++) {
    const m = debMeta(i);
    const bytes = buildDebBytes(m);
    parts.push(tarHeader(m.filename, bytes.byteLength), bytes, tarPadding(bytes.byteLength));
  }
  parts.push(TAR_END);
  const r = await app.packages.pushBatch(ref, 'debian', 'bookworm', (async function* () {
    yield* parts;
  })(), { wait: false });
  assert.deepEqual(r.results.map((x) => x.status), Array(5).fill('created'));
  assert.equal(r.generation, undefined, 'no generation: it was not waited for');
  const listed = async () => {
    const gz = await app.store.get('public/acme/tools/debian/dists/bookworm/main/binary-amd64/Packages.gz');
    return gz ? [...gunzipSync(gz).toString().matchAll(/^Package: (.+)$/gm)].length : 0;
  };
  for (let i = 0; i < 100 && (await listed()) < 5; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await listed(), 5);
});
