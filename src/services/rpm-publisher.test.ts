// The RPM publisher against the real layers below it (SQLite, the filesystem store, signing), reading its rows a
// small page at a time, so every publish crosses page boundaries.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { createApp, type App } from '../app.ts';
import { createLogger } from '../log.ts';
import { RpmPublisher } from './rpm-publisher.ts';
import { stageUpload } from './upload.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';

let dir: string;
let app: App;
const ref = { org: 'acme', repo: 'rpms' };

before(async () => {
  RpmPublisher.rowsPerRead = 7;
  dir = await mkdtemp(join(tmpdir(), 'wharf-rpm-publisher-'));
  const config = loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {});
  app = await createApp(config, { log: createLogger('silent') });
  await app.repos.create(ref, { private: false, signPackages: false });
});

after(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

async function push(i: number): Promise<void> {
  const bytes = buildRpmBytes({ ...rpmMeta(i), standalone: true });
  await app.packages.push(ref, 'el', '9', (async function* () {
    yield bytes;
  })());
}

/** primary.xml of one architecture directory, and the open checksum repomd.xml gives for it. */
async function primary(arch: string): Promise<{ xml: string; openChecksum: string }> {
  const base = `public/acme/rpms/el/9/${arch}/repodata`;
  const repomd = Buffer.from((await app.store.get(`${base}/repomd.xml`))!).toString();
  const m = /<data type="primary">[^]*?<open-checksum type="sha256">([0-9a-f]{64})<\/open-checksum>[^]*?<location href="repodata\/([^"]+)"/.exec(repomd);
  assert.ok(m, repomd);
  return { xml: gunzipSync((await app.store.get(`${base}/${m[2]}`))!).toString(), openChecksum: m[1]! };
}

test('documents built from rows read page by page list every package once, noarch ones in every architecture', async () => {
  for (let i = 1; i <= 25; i++) await push(i); // one publish each: incremental updates of a page or less
  // A batch of 30 more: one publish reading several pages.
  const { tarHeader, tarPadding, TAR_END } = await import('../formats/tar-stream.ts');
  const parts: Uint8Array[] = [];
  for (let i = 26; i <= 55; i++) {
    const m = rpmMeta(i);
    const bytes = buildRpmBytes({ ...m, standalone: true });
    parts.push(tarHeader(m.filename, bytes.byteLength), bytes, tarPadding(bytes.byteLength));
  }
  parts.push(TAR_END);
  const r = await app.packages.pushBatch(ref, 'el', '9', (async function* () {
    yield* parts;
  })());
  assert.equal(r.results.filter((x) => x.status === 'created').length, 30);
  for (const arch of ['x86_64', 'aarch64']) {
    const { xml, openChecksum } = await primary(arch);
    assert.equal(createHash('sha256').update(xml).digest('hex'), openChecksum, `${arch}: open-checksum`);
    const names = [...xml.matchAll(/<name>([^<]+)<\/name>/g)].map((x) => x[1]!);
    // x86_64 gets everything (every tenth package is noarch); aarch64 only the noarch ones.
    const expected = Array.from({ length: 55 }, (_, k) => rpmMeta(k + 1)).filter((m) => arch === 'x86_64' || m.arch === 'noarch').map((m) => m.name);
    assert.deepEqual(names, expected, arch);
    assert.match(xml, new RegExp(`packages="${expected.length}"`));
  }
  // A restart rebuilds the documents from every row, a page at a time.
  await app.close();
  app = await createApp(loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {}), { log: createLogger('silent') });
  await push(56);
  const { xml, openChecksum } = await primary('x86_64');
  assert.equal(createHash('sha256').update(xml).digest('hex'), openChecksum);
  assert.deepEqual([...xml.matchAll(/<name>([^<]+)<\/name>/g)].map((x) => x[1]!), Array.from({ length: 56 }, (_, k) => rpmMeta(k + 1).name));
});

/** Every data file of a directory checked against repomd.xml: checksum of the .xml.gz, open checksum and sizes. */
async function checkRepomd(arch: string): Promise<void> {
  const base = `public/acme/rpms/el/9/${arch}/repodata`;
  const repomd = Buffer.from((await app.store.get(`${base}/repomd.xml`))!).toString();
  const records = [...repomd.matchAll(/<data type="(\w+)">([^]*?)<\/data>/g)];
  assert.equal(records.length, 3, repomd);
  for (const [, type, body] of records) {
    const field = (re: RegExp) => re.exec(body!)?.[1];
    const href = field(/<location href="repodata\/([^"]+)"/)!;
    const gz = Buffer.from((await app.store.get(`${base}/${href}`))!);
    const plain = gunzipSync(gz);
    assert.equal(field(/<checksum type="sha256">([0-9a-f]{64})</), createHash('sha256').update(gz).digest('hex'), `${arch} ${type}: checksum`);
    assert.equal(href, `${field(/<checksum type="sha256">([0-9a-f]{64})</)}-${type}.xml.gz`);
    assert.equal(field(/<open-checksum type="sha256">([0-9a-f]{64})</), createHash('sha256').update(plain).digest('hex'), `${arch} ${type}: open-checksum`);
    assert.equal(Number(field(/<size>(\d+)</)), gz.length, `${arch} ${type}: size`);
    assert.equal(Number(field(/<open-size>(\d+)</)), plain.length, `${arch} ${type}: open-size`);
  }
}

test('checksums hashed ahead for one more package: single pushes finish them, other changes hash the whole', async () => {
  const before = app.rpmPublisher.checksumsFromPrefix;
  // One package at a time: each publish after the first finishes the prefixes the previous one hashed ahead.
  for (let i = 57; i <= 60; i++) {
    await push(i);
    await checkRepomd('x86_64');
    await checkRepomd('aarch64');
  }
  const singles = app.rpmPublisher.checksumsFromPrefix - before;
  assert.ok(singles >= 3 * 2 * 3, `only ${singles} checksums came from prefixes`); // 3 pushes x 3 documents x gz/open
  // A package whose digest seals a chunk: the prefix is finished with the new chunk, the tail and the footer.
  let sealing = 1000;
  while (parseInt(createHash('sha256').update(buildRpmBytes({ ...rpmMeta(sealing), standalone: true })).digest('hex').slice(0, 2), 16) >= 2) sealing++;
  const n = app.rpmPublisher.checksumsFromPrefix;
  await push(sealing);
  assert.ok(app.rpmPublisher.checksumsFromPrefix > n, 'the push that sealed a chunk used its prefixes');
  await checkRepomd('x86_64');
  await checkRepomd('aarch64');
  // Two packages in one batch: another count than guessed, every checksum computed whole and still right.
  const { tarHeader, tarPadding, TAR_END } = await import('../formats/tar-stream.ts');
  const parts: Uint8Array[] = [];
  for (const i of [61, 62]) {
    const m = rpmMeta(i);
    const bytes = buildRpmBytes({ ...m, standalone: true });
    parts.push(tarHeader(m.filename, bytes.byteLength), bytes, tarPadding(bytes.byteLength));
  }
  parts.push(TAR_END);
  const m = app.rpmPublisher.checksumsFromPrefix;
  await app.packages.pushBatch(ref, 'el', '9', (async function* () {
    yield* parts;
  })());
  assert.equal(app.rpmPublisher.checksumsFromPrefix, m, 'a batch of two used no prefix');
  await checkRepomd('x86_64');
  await checkRepomd('aarch64');
  const { xml } = await primary('x86_64');
  assert.match(xml, /packages="\d+"/);
  assert.ok(xml.includes(`<name>${rpmMeta(sealing).name}</name>`) && xml.includes(`<name>${rpmMeta(62).name}</name>`));
});

/**
 * A server of its own (options as flags), with one repository without package signing, for tests that need other
 * settings than the shared one: `push(i)` pushes synthetic package i to el/9 and returns once it is published.
 */
async function withOwnApp(flags: Record<string, string>, repo: string, fn: (a: App, push: (i: number) => Promise<void>) => Promise<void>): Promise<void> {
  const d = await mkdtemp(join(tmpdir(), `wharf-rpm-${repo}-`));
  const a = await createApp(loadConfig({ data: d, 'signing-passphrase': 'test-passphrase', fsync: 'false', ...flags }, {}), { log: createLogger('silent') });
  try {
    const r = { org: 'acme', repo };
    await a.repos.create(r, { private: false, signPackages: false });
    await fn(a, async (i) => {
      const bytes = buildRpmBytes({ ...rpmMeta(i), standalone: true });
      await a.packages.push(r, 'el', '9', (async function* () {
        yield bytes;
      })());
    });
  } finally {
    await a.close();
    await rm(d, { recursive: true, force: true });
  }
}

test('yank of a noarch package retires its copies in every architecture directory; pushed again, they stay', async () => {
  // A push returns once its publish is live; the clean-up after that publish (deleting files retired over the
  // retention period ago: 3 s, so that a slow machine does not reach it early) runs under the publish lock, so the
  // next push's publish starts after it.
  await withOwnApp({ 'retention-seconds': '3' }, 'yank', async (a, pushOne) => {
    const r = { org: 'acme', repo: 'yank' };
    const m = rpmMeta(10);
    assert.equal(m.arch, 'noarch');
    const keys = ['noarch', 'x86_64', 'aarch64'].map((dir) => `public/acme/yank/el/9/${dir}/Packages/b/${m.filename}`);
    const present = async () => Promise.all(keys.map(async (k) => (await a.store.stat(k)) !== undefined));
    await pushOne(1);
    await pushOne(10);
    assert.deepEqual(await present(), [true, true, true], 'published into noarch/ and linked into both architectures');
    // Yanked, then pushed again within the retention period: when the yanked files fall due, all three are live.
    await a.packages.yank(r, 'el', '9', m.filename);
    await pushOne(10);
    await new Promise((res) => setTimeout(res, 3200));
    await pushOne(2); // collects what the yank retired
    await pushOne(4);
    assert.deepEqual(await present(), [true, true, true], 'a copy of a live package was collected');
    // Yanked for good: collected with every copy once the retention period is over.
    await a.packages.yank(r, 'el', '9', m.filename);
    await pushOne(3);
    assert.deepEqual(await present(), [true, true, true], 'collected before the retention period was over');
    await new Promise((res) => setTimeout(res, 3200));
    await pushOne(5); // collects what the yank retired
    await pushOne(6);
    assert.deepEqual(await present(), [false, false, false], 'left behind after the yank');
  });
});

test("32-bit packages are published in the directory named by dnf's $basearch (i686 in i386/, armv7hl in armhfp/)", async () => {
  const d = await mkdtemp(join(tmpdir(), 'wharf-rpm-basearch-'));
  const flags = { data: d, 'signing-passphrase': 'test-passphrase', fsync: 'false' };
  let a = await createApp(loadConfig(flags, {}), { log: createLogger('silent') });
  const r = { org: 'acme', repo: 'b32' };
  const pkg = (i: number, arch: string) => {
    const m = rpmMeta(i);
    return { ...m, arch, filename: m.filename.replace(/\.\w+\.rpm$/, `.${arch}.rpm`) };
  };
  const pushMeta = async (app: App, m: ReturnType<typeof pkg>) => {
    const bytes = buildRpmBytes({ ...m, standalone: true });
    await app.packages.push(r, 'el', '9', (async function* () {
      yield bytes;
    })());
  };
  const names = async (app: App, dir: string) => {
    const base = `public/acme/b32/el/9/${dir}/repodata`;
    const repomd = Buffer.from((await app.store.get(`${base}/repomd.xml`))!).toString();
    const href = /<data type="primary">[^]*?<location href="repodata\/([^"]+)"/.exec(repomd)![1]!;
    const xml = gunzipSync((await app.store.get(`${base}/${href}`))!).toString();
    return [...xml.matchAll(/<location href="([^"]+)"/g)].map((x) => x[1]!);
  };
  try {
    await a.repos.create(r, { private: false, signPackages: false });
    const i686 = pkg(1, 'i686');
    const arm = pkg(2, 'armv7hl');
    const noarch = pkg(10, 'noarch');
    for (const m of [i686, arm, noarch]) await pushMeta(a, m);
    const at = (dir: string, m: { filename: string }) => `public/acme/b32/el/9/${dir}/Packages/${m.filename[0]}/${m.filename}`;
    assert.ok(await a.store.stat(at('i386', i686)), 'i686 package under i386/');
    assert.ok(await a.store.stat(at('armhfp', arm)), 'armv7hl package under armhfp/');
    assert.equal(await a.store.stat(at('i686', i686)), undefined, 'no i686/ directory');
    assert.deepEqual(await names(a, 'i386'), [`Packages/${i686.filename[0]}/${i686.filename}`, `Packages/${noarch.filename[0]}/${noarch.filename}`]);
    assert.deepEqual(await names(a, 'armhfp'), [`Packages/${arm.filename[0]}/${arm.filename}`, `Packages/${noarch.filename[0]}/${noarch.filename}`]);
    assert.ok(await a.store.stat(at('i386', noarch)), 'noarch packages linked into i386/ too');
    assert.equal(await a.store.stat('public/acme/b32/el/9/i686/repodata/repomd.xml'), undefined);

    // A row stored before the mapping (its file under armv7hl/): a publish from its rows links it where its
    // metadata says it is, and a yank retires both names.
    const oldKey = `9/armv7hl/Packages/${arm.filename[0]}/${arm.filename}`;
    await a.store.copy(at('armhfp', arm), `public/acme/b32/el/${oldKey}`);
    await a.store.delete(at('armhfp', arm));
    await a.db.updateTable('rpm_packages').set({ blob_key: oldKey }).where('filename', '=', arm.filename).execute();
    await a.close();
    a = await createApp(loadConfig(flags, {}), { log: createLogger('silent') }); // documents rebuilt from every row
    await pushMeta(a, pkg(3, 'x86_64'));
    const served = await a.store.get(at('armhfp', arm));
    assert.ok(served, 'the old row\'s file is linked into armhfp/');
    assert.ok(Buffer.from(served).equals(Buffer.from((await a.store.get(`public/acme/b32/el/${oldKey}`))!)));
    await a.packages.yank(r, 'el', '9', arm.filename);
    const retired = (await a.db.selectFrom('retired_files').select('key').execute()).map((x) => x.key);
    for (const k of [`public/acme/b32/el/${oldKey}`, at('armhfp', arm)]) assert.ok(retired.includes(k), `${k} not retired: ${retired.join(', ')}`);
  } finally {
    await a.close();
    await rm(d, { recursive: true, force: true });
  }
});

test('a directory once published stays, empty when its last package goes; one named before $basearch (armv7hl/) is retired with its noarch copies', async () => {
  const d = await mkdtemp(join(tmpdir(), 'wharf-rpm-dirs-'));
  const flags = { data: d, 'signing-passphrase': 'test-passphrase', fsync: 'false', 'retention-seconds': '2' };
  let a = await createApp(loadConfig(flags, {}), { log: createLogger('silent') });
  const r = { org: 'acme', repo: 'dirs' };
  const base = 'public/acme/dirs/el';
  const pkg = (i: number, arch: string) => {
    const m = rpmMeta(i);
    return { ...m, arch, filename: m.filename.replace(/\.\w+\.rpm$/, `.${arch}.rpm`) };
  };
  const pushMeta = async (m: ReturnType<typeof pkg>) => {
    const bytes = buildRpmBytes({ ...m, standalone: true });
    await a.packages.push(r, 'el', '9', (async function* () {
      yield bytes;
    })());
  };
  const state = async () => JSON.parse((await a.db.selectFrom('distributions').select('published_state').executeTakeFirstOrThrow()).published_state!) as { dirs: Record<string, { href: string }[]> };
  const file = (dir: string, m: { filename: string }) => `${base}/9/${dir}/Packages/${m.filename[0]}/${m.filename}`;
  try {
    await a.repos.create(r, { private: false, signPackages: false });
    const i686 = pkg(1, 'i686');
    const arm = pkg(2, 'armv7hl');
    const noarch = pkg(10, 'noarch');
    for (const m of [i686, arm, noarch]) await pushMeta(m);

    // What an earlier release left: the armv7hl package and a published armv7hl/ directory (metadata, noarch copy).
    await a.store.copy(file('armhfp', arm), file('armv7hl', arm));
    await a.store.delete(file('armhfp', arm));
    await a.db.updateTable('rpm_packages').set({ blob_key: `9/armv7hl/Packages/${arm.filename[0]}/${arm.filename}` }).where('filename', '=', arm.filename).execute();
    for await (const e of a.store.list(`${base}/9/armhfp/repodata/`)) await a.store.copy(e.key, e.key.replace('/armhfp/', '/armv7hl/'));
    await a.store.copy(file('noarch', noarch), file('armv7hl', noarch));
    const s0 = await state();
    s0.dirs.armv7hl = s0.dirs.armhfp!;
    await a.db.updateTable('distributions').set({ published_state: JSON.stringify(s0) }).execute();
    await a.close();
    a = await createApp(loadConfig(flags, {}), { log: createLogger('silent') });

    await pushMeta(pkg(3, 'x86_64'));
    assert.deepEqual(Object.keys((await state()).dirs).sort(), ['aarch64', 'armhfp', 'i386', 'x86_64']);
    const retired = (await a.db.selectFrom('retired_files').select('key').execute()).map((x) => x.key);
    for (const k of ['repomd.xml', 'repomd.xml.asc', 'repomd.xml.key'].map((f) => `${base}/9/armv7hl/repodata/${f}`).concat(file('armv7hl', noarch))) {
      assert.ok(retired.includes(k), `${k} not retired`);
    }

    // The last i686 package yanked: i386/ stays published, with the noarch packages only.
    await a.packages.yank(r, 'el', '9', i686.filename);
    await pushMeta(pkg(4, 'x86_64'));
    assert.ok('i386' in (await state()).dirs, 'i386/ is no longer published');
    const repomd = Buffer.from((await a.store.get(`${base}/9/i386/repodata/repomd.xml`))!).toString();
    const href = /<data type="primary">[^]*?<location href="repodata\/([^"]+)"/.exec(repomd)![1]!;
    const xml = gunzipSync((await a.store.get(`${base}/9/i386/repodata/${href}`))!).toString();
    assert.deepEqual([...xml.matchAll(/<name>([^<]+)<\/name>/g)].map((x) => x[1]), [noarch.name]);

    // Past the retention period the retired files go; the armv7hl package's own file stays (its row names it).
    await new Promise((res) => setTimeout(res, 2200));
    await pushMeta(pkg(5, 'x86_64')); // collects what is due
    await pushMeta(pkg(6, 'x86_64'));
    assert.equal(await a.store.stat(`${base}/9/armv7hl/repodata/repomd.xml`), undefined, 'the retired directory\'s repomd.xml');
    assert.equal(await a.store.stat(file('armv7hl', noarch)), undefined, 'the retired directory\'s noarch copy');
    assert.equal(await a.store.stat(file('i386', i686)), undefined, 'the yanked package');
    assert.ok(await a.store.stat(file('armv7hl', arm)), 'the file its row names');
    assert.ok(await a.store.stat(file('armhfp', arm)), 'its link in armhfp/');
    assert.ok(await a.store.stat(`${base}/9/i386/repodata/repomd.xml`));
    assert.ok(await a.store.stat(file('i386', noarch)), 'noarch copies in a published directory stay');
  } finally {
    await a.close();
    await rm(d, { recursive: true, force: true });
  }
});

test('a directory another node published (its architectures differ) is kept, not retired, by a node whose documents lack it', async () => {
  await withOwnApp({}, 'twonodes', async (a, pushOne) => {
    await pushOne(1);
    await pushOne(10); // noarch
    const st = JSON.parse((await a.db.selectFrom('distributions').select('published_state').executeTakeFirstOrThrow()).published_state!) as { dirs: Record<string, unknown> };
    // As if a node with defaultRpmArchitectures=x86_64,aarch64,ppc64le had published meanwhile.
    st.dirs.ppc64le = st.dirs.aarch64;
    await a.db.updateTable('distributions').set({ published_state: JSON.stringify(st) }).execute();
    await pushOne(2); // this node's documents are current but lack ppc64le
    const now = JSON.parse((await a.db.selectFrom('distributions').select('published_state').executeTakeFirstOrThrow()).published_state!) as { dirs: Record<string, unknown> };
    assert.ok('ppc64le' in now.dirs, 'ppc64le/ was dropped');
    const retired = (await a.db.selectFrom('retired_files').select('key').execute()).map((x) => x.key);
    assert.ok(!retired.some((k) => k.includes('/ppc64le/')), `retired: ${retired.filter((k) => k.includes('/ppc64le/')).join(', ')}`);
    const m = rpmMeta(10);
    assert.ok(await a.store.stat(`public/acme/twonodes/el/9/ppc64le/Packages/${m.filename[0]}/${m.filename}`), 'the noarch package is linked into ppc64le/');
    assert.ok(await a.store.stat('public/acme/twonodes/el/9/ppc64le/repodata/repomd.xml'));
  });
});

test('the clean-up and a push of the same package do not interleave: a retried package keeps the file it wrote', async () => {
  await withOwnApp({ 'retention-seconds': '1' }, 'race', async (a, pushOne) => {
    const r = { org: 'acme', repo: 'race' };
    const repo = await a.repos.get(r);
    const prepare = async (i: number) => {
      const bytes = buildRpmBytes({ ...rpmMeta(i), standalone: true });
      const staged = await stageUpload((async function* () {
        yield bytes;
      })(), { dir: join(a.config.dataDir, 'tmp'), maxBytes: 1 << 30 });
      return a.rpm.prepare(r, repo, 'el', '9', staged);
    };
    await pushOne(1);
    // A chunk fails after writing package 5's file: the file is retired (no row names it).
    const [p5, p6] = [await prepare(5), await prepare(6)];
    const eio = async () => {
      await new Promise((res) => setTimeout(res, 50));
      throw new Error('EIO');
    };
    await assert.rejects(a.rpm.store(r, repo, 'el', '9', [p5, { ...p6, write: eio }]), /EIO/);
    await new Promise((res) => setTimeout(res, 1100)); // past the retention period
    // The clean-up after the next publish deletes it slowly (object storage); the retry starts meanwhile.
    const retry = await prepare(5);
    const del = a.store.delete.bind(a.store);
    let retried: Promise<unknown> | undefined;
    a.store.delete = async (key: string) => {
      if (key === p5.key && !retried) {
        retried = a.rpm.store(r, repo, 'el', '9', [retry]);
        await new Promise((res) => setTimeout(res, 300));
      }
      return del(key);
    };
    try {
      await pushOne(2); // its clean-up runs after the answer, under the publish lock
      await pushOne(3); // waits for that clean-up
      assert.ok(retried, 'the clean-up did not delete the orphan');
      await retried;
    } finally {
      a.store.delete = del;
    }
    const row = await a.db.selectFrom('rpm_packages').select('blob_key').where('filename', '=', rpmMeta(5).filename).executeTakeFirst();
    assert.ok(row, 'the retry stored its row');
    assert.ok(await a.store.stat(p5.key), 'the retried package lost its file to the clean-up');
  });
});

test("a noarch copy is judged by its package's row, not by the directories of the publish that swept it: a copy another node linked stays", async () => {
  await withOwnApp({ 'retention-seconds': '1' }, 'copies', async (a, pushOne) => {
    await pushOne(1);
    await pushOne(10); // noarch: copies in x86_64/ and aarch64/
    const m = rpmMeta(10);
    const dist = await a.db.selectFrom('distributions').select('id').executeTakeFirstOrThrow();
    // A copy in ppc64le/, which this node never published (another node did, its architectures configured
    // differently), retired by a yank there and linked again when the package came back.
    const copy = `public/acme/copies/el/9/ppc64le/Packages/${m.filename[0]}/${m.filename}`;
    await a.store.copy(`public/acme/copies/el/9/noarch/Packages/${m.filename[0]}/${m.filename}`, copy);
    await a.db.insertInto('retired_files').values({ distribution_id: dist.id, key: copy, retired_at: Date.now() - 5000 }).execute();
    await new Promise((res) => setTimeout(res, 300)); // (the last look found nothing due: the next waits 0.1 s)
    await pushOne(2); // sweeps what is due
    await pushOne(3);
    assert.equal((await a.db.selectFrom('retired_files').select('key').where('key', '=', copy).execute()).length, 0, 'not swept');
    assert.ok(await a.store.stat(copy), "a live package's copy was deleted");
  });
});

test('close() waits for the clean-up a publish left for after its lock', async () => {
  const d = await mkdtemp(join(tmpdir(), 'wharf-rpm-close-'));
  const a = await createApp(loadConfig({ data: d, 'signing-passphrase': 'test-passphrase', fsync: 'false', 'retention-seconds': '1' }, {}), { log: createLogger('silent') });
  let closed = false;
  const late: string[] = [];
  try {
    const r = { org: 'acme', repo: 'closing' };
    await a.repos.create(r, { private: false, signPackages: false });
    const push = async (i: number) => {
      const bytes = buildRpmBytes({ ...rpmMeta(i), standalone: true });
      await a.packages.push(r, 'el', '9', (async function* () {
        yield bytes;
      })());
    };
    for (const i of [1, 2, 3, 4]) await push(i);
    for (const i of [2, 3, 4]) await a.packages.yank(r, 'el', '9', rpmMeta(i).filename);
    await new Promise((res) => setTimeout(res, 1100));
    const del = a.store.delete.bind(a.store);
    a.store.delete = async (key: string) => {
      if (key.includes('/Packages/')) await new Promise((res) => setTimeout(res, 100)); // slow object storage
      if (closed) late.push(key);
      return del(key);
    };
    await push(5); // answered; the package files due are deleted after
  } finally {
    await a.close();
    closed = true;
  }
  await new Promise((res) => setTimeout(res, 500));
  assert.deepEqual(late, [], 'deletes after close()');
  for (const i of [2, 3, 4]) assert.equal(await a.store.stat(`public/acme/closing/el/9/x86_64/Packages/b/${rpmMeta(i).filename}`), undefined, 'swept before close() returned');
  await rm(d, { recursive: true, force: true });
});

test('an architecture that is not a directory name a repository can hold is refused: RPM_BAD_HEADER, nothing stored', async () => {
  for (const arch of ['..', 'SRPMS', 'repodata', 'src', 'x86-64', 'a'.repeat(33), 'constructor', '__proto__', 'toString']) {
    const m = { ...rpmMeta(900), arch, filename: `x.rpm` };
    const bytes = buildRpmBytes({ ...m, standalone: true });
    await assert.rejects(
      app.packages.push(ref, 'el', '9', (async function* () {
        yield bytes;
      })()),
      (e: unknown) => (e as { code?: string }).code === 'RPM_BAD_HEADER' && /architecture/.test((e as Error).message),
      arch,
    );
  }
  const listed = await app.packages.list(ref, { os: 'el', dist: '9' });
  assert.ok(!listed.some((p) => p.name === rpmMeta(900).name));
});

test('maxRpmHeaderBytes: a main header above it is RPM_HEADER_TOO_LARGE (rpm itself allows 256 MiB)', async () => {
  await withOwnApp({ 'max-rpm-header-bytes': '512' }, 'cap', async (a, pushOne) => {
    const bytes = buildRpmBytes({ ...rpmMeta(1), standalone: true });
    // the main header's data store size: after the 96-byte lead and the signature header (intro, index, data, padding)
    const sigIl = bytes.readUInt32BE(96 + 8);
    const sigDl = bytes.readUInt32BE(96 + 12);
    const main = 96 + 16 + 16 * sigIl + sigDl + ((8 - (sigDl % 8)) % 8);
    assert.ok(bytes.readUInt32BE(main + 12) > 512, 'the synthetic package has more header data than the cap');
    await assert.rejects(
      pushOne(1),
      (e: unknown) => (e as { code?: string }).code === 'RPM_HEADER_TOO_LARGE' && /limit 512, /.test((e as Error).message) && /WHARF_MAX_RPM_HEADER_BYTES/.test((e as Error).message),
    );
    assert.equal(a.config.maxRpmHeaderBytes, 512);
  });
  assert.equal(loadConfig({ data: dir }, {}).maxRpmHeaderBytes, 64 * 1024 * 1024, 'the default');
});

test('superseded repodata files stay downloadable for the retention period, then go', async () => {
  await withOwnApp({ 'retention-seconds': '3' }, 'grace', async (a, pushOne) => {
    const base = 'public/acme/grace/el/9/x86_64/repodata';
    const hrefs = async () => [...Buffer.from((await a.store.get(`${base}/repomd.xml`))!).toString().matchAll(/<location href="repodata\/([^"]+)"/g)].map((m) => m[1]!);
    const exist = async (names: string[]) => Promise.all(names.map(async (n) => (await a.store.stat(`${base}/${n}`)) !== undefined));
    await pushOne(1);
    const first = await hrefs();
    assert.equal(first.length, 3);
    await pushOne(2);
    const second = await hrefs();
    assert.ok(first.every((h) => !second.includes(h)), 'every document changed');
    // A client holding the first repomd.xml still finds what it names.
    assert.deepEqual(await exist(first), [true, true, true], 'collected within the retention period');
    await new Promise((res) => setTimeout(res, 3200));
    await pushOne(3); // collects what the second publish retired
    await pushOne(4);
    assert.deepEqual(await exist(first), [false, false, false], 'kept past the retention period');
    assert.deepEqual(await exist(await hrefs()), [true, true, true]);
  });
});
