// The import in process: how far checking runs ahead of a slow store, and a file linked again onto a key that is
// already a link to it (an orphan of a failed chunk, or a yanked package within its retention period).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { createApp, type App } from '../app.ts';
import { createLogger } from '../log.ts';
import { ImportWorkers } from './import.ts';
import { checkImportFile } from './import-worker.ts';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { RpmPackageService } from './rpm-packages.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';

let dir: string;
let root: string;
let app: App;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-import-'));
  root = join(dir, 'root');
  await mkdir(root);
  app = await createApp(loadConfig({ data: join(dir, 'data'), 'signing-passphrase': 'test-passphrase', fsync: 'false', 'import-roots': root }, {}), { log: createLogger('silent') });
});

after(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

test('a store slower than the checks: checking runs at most a few windows ahead of storing', async () => {
  const files = join(root, 'many');
  await mkdir(files);
  const N = 256 * 6;
  for (let i = 1; i <= N; i++) await writeFile(join(files, rpmMeta(i).filename), buildRpmBytes(rpmMeta(i)));
  const ref = { org: 'acme', repo: 'slow' };
  await app.repos.create(ref, { private: false, signPackages: false });
  let checked = 0;
  let stored = 0;
  let ahead = 0;
  const check = ImportWorkers.prototype.check;
  ImportWorkers.prototype.check = function (paths, req) {
    checked += paths.length;
    return check.call(this, paths, req);
  };
  const rpm = app.rpm as RpmPackageService & { store: RpmPackageService['store'] };
  const store = rpm.store.bind(rpm);
  rpm.store = async (...a) => {
    ahead = Math.max(ahead, checked - stored);
    await new Promise((r) => setTimeout(r, 150)); // a slow store (S3 far away)
    const r = await store(...a);
    stored += a[4].length;
    return r;
  };
  try {
    const r = await app.packages.importDirectory(ref, 'el', '9', { path: files });
    assert.equal(r.results.filter((x) => x.status === 'created').length, N);
    // The window checked ahead, the one being turned into packages, and the chunks waiting to be stored.
    assert.ok(ahead <= 256 * 4, `checking ran ${ahead} files ahead of storing`);
  } finally {
    ImportWorkers.prototype.check = check;
    rpm.store = store;
  }
});

test('linking again a file its key already links to leaves no hidden link behind', async () => {
  const files = join(root, 'again');
  await mkdir(files);
  for (let i = 1; i <= 3; i++) await writeFile(join(files, rpmMeta(i).filename), buildRpmBytes(rpmMeta(i)), { mode: 0o644 });
  const ref = { org: 'acme', repo: 'again' };
  await app.repos.create(ref, { private: false, signPackages: false });
  const first = await app.packages.importDirectory(ref, 'el', '9', { path: files, link: true });
  assert.deepEqual(first.results.map((x) => x.status), ['created', 'created', 'created']);
  await app.packages.yank(ref, 'el', '9', rpmMeta(2).filename); // its file stays for the retention period
  const again = await app.packages.importDirectory(ref, 'el', '9', { path: files, link: true });
  assert.deepEqual(again.results.map((x) => x.status), ['unchanged', 'created', 'unchanged']);
  const hidden: string[] = [];
  for (const e of await readdir(join(dir, 'data', 'storage'), { withFileTypes: true, recursive: true })) if (e.name.startsWith('.wharf-tmp-')) hidden.push(e.name);
  assert.deepEqual(hidden, []);
});

test('a large RPM is read once: its SHA-256 is taken in the pass that checks its payload digest', async () => {
  const big = join(root, 'big');
  await mkdir(big);
  const m = rpmMeta(7);
  const file = join(big, m.filename);
  await writeFile(file, buildRpmBytes({ ...m, extraBytes: 2_000_000 }));
  const size = (await readFile(file)).byteLength;
  const fs = createRequire(import.meta.url)('node:fs') as { readSync: (...a: unknown[]) => number };
  const readSync = fs.readSync;
  let read = 0;
  fs.readSync = (...a: unknown[]) => {
    const n = readSync(...a);
    read += n;
    return n;
  };
  syncBuiltinESMExports();
  try {
    const r = await checkImportFile(file, { roots: [root], dist: '9', maxBytes: 1 << 30, rpmLimits: {}, resign: false, keepBytes: false });
    assert.equal(r.sha256, createHash('sha256').update(await readFile(file)).digest('hex'));
    assert.equal(r.filename, m.filename);
    assert.ok(read < size * 1.1, `read ${read} bytes of a ${size}-byte file`);
  } finally {
    fs.readSync = readSync;
    syncBuiltinESMExports();
  }
});

test('--link where no link can be made (another filesystem): the copies instead keep to a few at a time', async () => {
  const files = join(root, 'nolink');
  await mkdir(files);
  const N = 300;
  for (let i = 1; i <= N; i++) await writeFile(join(files, rpmMeta(i).filename), buildRpmBytes({ ...rpmMeta(i), extraBytes: 300_000 }), { mode: 0o644 });
  const ref = { org: 'acme', repo: 'nolink' };
  await app.repos.create(ref, { private: false, signPackages: false });
  const store = app.store as typeof app.store & { linkFile?: unknown; put: typeof app.store.put };
  const linkFile = store.linkFile;
  const put = store.put;
  let now = 0;
  let max = 0;
  store.linkFile = async () => 'unsupported'; // as link(2) answers EXDEV
  store.put = async function (this: unknown, ...a: Parameters<typeof put>) {
    const pkg = a[0].includes('/Packages/');
    if (pkg) max = Math.max(max, ++now);
    try {
      return await put.apply(store, a);
    } finally {
      if (pkg) now--;
    }
  };
  try {
    const r = await app.packages.importDirectory(ref, 'el', '9', { path: files, link: true });
    assert.equal(r.results.filter((x) => x.status === 'created').length, N);
    assert.ok(max > 1 && max <= 16, `${max} package copies ran at once`);
  } finally {
    store.linkFile = linkFile;
    store.put = put;
  }
});
