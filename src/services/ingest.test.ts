// storePackages: a write refused for its own file (an imported file that changed or vanished since it was checked)
// refuses that package only; the others of the chunk are stored and their rows inserted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { createApp, type App } from '../app.ts';
import { createLogger } from '../log.ts';
import { WharfError } from '../errors.ts';
import { stageUpload } from './upload.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';

let app: App;
let dir: string;
const ref = { org: 'acme', repo: 'ingest' };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-ingest-'));
  app = await createApp(loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {}), { log: createLogger('silent') });
  await app.repos.create(ref, { private: false, signPackages: false });
});

after(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

test('a write refused for its own file refuses that package only; a duplicate of it in the chunk too', async () => {
  const repo = await app.repos.get(ref);
  const prepared = [];
  for (const i of [1, 2, 3, 2]) {
    const bytes = buildRpmBytes(rpmMeta(i));
    const staged = await stageUpload((async function* () {
      yield bytes;
    })(), { dir: join(dir, 'tmp'), maxBytes: 1 << 30 });
    prepared.push(await app.rpm.prepare(ref, repo, 'el', '9', staged));
  }
  const changed = new WharfError('IMPORT_FILE_CHANGED', ['bench-rpm-00002']);
  const p2 = prepared[1]!;
  prepared[1] = { ...p2, write: async () => Promise.reject(changed) };
  const r = await app.rpm.store(ref, repo, 'el', '9', prepared);
  assert.deepEqual(
    r.results.map((x) => (x instanceof WharfError ? x.code : x.status)),
    ['created', 'IMPORT_FILE_CHANGED', 'created', 'IMPORT_FILE_CHANGED'],
  );
  const rows = await app.db.selectFrom('rpm_packages').select('name').where('distribution_id', '=', r.distributionId).orderBy('name').execute();
  assert.deepEqual(rows.map((x) => x.name), [rpmMeta(1).name, rpmMeta(3).name]);
  assert.equal(await app.store.stat(p2.key), undefined, 'nothing written for it');
  // A failure of the store itself (not a 4xx of one file) still fails the chunk.
  const bytes = buildRpmBytes(rpmMeta(4));
  const staged = await stageUpload((async function* () {
    yield bytes;
  })(), { dir: join(dir, 'tmp'), maxBytes: 1 << 30 });
  const p4 = await app.rpm.prepare(ref, repo, 'el', '9', staged);
  await assert.rejects(app.rpm.store(ref, repo, 'el', '9', [{ ...p4, write: async () => Promise.reject(new Error('EIO')) }]), /EIO/);
});

test('a chunk that fails after writing some files records them as retired: no row names them, the clean-up deletes them', async () => {
  const repo = await app.repos.get(ref);
  const prepare = async (i: number) => {
    const bytes = buildRpmBytes(rpmMeta(i));
    const staged = await stageUpload((async function* () {
      yield bytes;
    })(), { dir: join(dir, 'tmp'), maxBytes: 1 << 30 });
    return app.rpm.prepare(ref, repo, 'el', '9', staged);
  };
  const retired = async () => (await app.db.selectFrom('retired_files').select('key').execute()).map((x) => x.key);
  // A later write of the chunk fails (the store, not one file): the file written before it is retired.
  const [p5, p6] = [await prepare(5), await prepare(6)];
  const eio = Object.assign(new Error('EIO'), { code: 'EIO' });
  const slowFail = async () => {
    await new Promise((r) => setTimeout(r, 50)); // after p5's write
    throw eio;
  };
  await assert.rejects(app.rpm.store(ref, repo, 'el', '9', [p5, { ...p6, write: slowFail }]), /EIO/);
  assert.ok(await app.store.stat(p5.key), 'p5 was written');
  assert.ok((await retired()).includes(p5.key), 'the file no row names is retired');
  assert.ok(!(await retired()).includes(p6.key));
  // The transaction fails (here: the package's name and version are already stored under another file name):
  // the file written for it is retired too.
  const p1 = await prepare(1);
  const renamed = p1.key.replace(/[^/]+$/, 'renamed-1.rpm');
  const other = {
    ...p1,
    filename: 'renamed-1.rpm',
    key: renamed,
    row: { ...p1.row, filename: 'renamed-1.rpm' },
    write: async (store: typeof app.store) => void (await store.put(renamed, Buffer.from('its bytes'))),
  };
  await assert.rejects(app.rpm.store(ref, repo, 'el', '9', [other]));
  assert.ok(await app.store.stat(other.key), 'written before the insert failed');
  assert.ok((await retired()).includes(other.key), 'retired after the insert failed');
});
