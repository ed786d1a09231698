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
