// The publisher against the real layers below it: SQLite, the filesystem blob store, openpgp signing, xz and gzip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AptPublisher } from './apt-publisher.ts';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { createApp, type App } from '../app.ts';
import { createLogger } from '../log.ts';

let app: App;
let dir: string;
let distId: number;
const DIST = 'public/acme/tools/debian/dists/stable';

function stanza(i: number, arch: string): { stanza: string; sha256: string } {
  const sha256 = createHash('sha256').update(`pkg-${i}-${randomBytes(4).toString('hex')}`).digest('hex');
  return {
    sha256,
    stanza: `Package: p${i}\nVersion: 1.${i}\nArchitecture: ${arch}\nFilename: pool/stable/main/p/p${i}/p${i}_1.${i}_${arch}.deb\nSize: ${i}\nSHA256: ${sha256}\nDescription: package ${i}\n more text\n`,
  };
}

async function addRows(from: number, to: number, arch = 'amd64'): Promise<void> {
  const rows = [];
  for (let i = from; i < to; i++) {
    const s = stanza(i, arch);
    rows.push({
      distribution_id: distId,
      component: 'main',
      name: `p${i}`,
      version: `1.${i}`,
      architecture: arch,
      filename: `p${i}_1.${i}_${arch}.deb`,
      pool_key: `pool/stable/main/p/p${i}/p${i}_1.${i}_${arch}.deb`,
      size: i,
      md5: '0'.repeat(32),
      sha1: '0'.repeat(40),
      sha256: s.sha256,
      sha512: '0'.repeat(128),
      stanza: s.stanza,
      created_at: Date.now(),
    });
  }
  for (let i = 0; i < rows.length; i += 200) await app.db.insertInto('deb_packages').values(rows.slice(i, i + 200)).execute();
}

async function text(key: string): Promise<string> {
  const b = await app.store.get(key);
  assert.ok(b, `${key} exists`);
  return Buffer.from(b).toString('utf8');
}

async function countChunks(): Promise<number> {
  let n = 0;
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else n++;
    }
  };
  await walk(join(dir, 'storage/internal/apt-chunks'));
  return n;
}

/** Checks every file the Release lists against its hashes, and that gz/xz decompress to the plain index. */
async function checkRelease(): Promise<Map<string, string>> {
  const release = await text(`${DIST}/Release`);
  const sha256 = new Map<string, string>();
  const section = release.split('SHA256:\n')[1]!.split(/\n(?=\S)/)[0]!;
  for (const line of section.trim().split('\n')) {
    const [hash, size, path] = line.trim().split(/\s+/);
    if (path!.endsWith('/Packages')) {
      // Listed for its hashes, not stored (apt fetches .xz or .gz): checked below as what they decompress to.
      assert.equal(await app.store.stat(`${DIST}/${path}`), undefined, `${path} is not stored`);
      const plain = await plainOf(path!.slice(0, -'/Packages'.length));
      assert.equal(plain.byteLength, Number(size), `${path} size`);
      assert.equal(createHash('sha256').update(plain).digest('hex'), hash, `${path} sha256`);
      sha256.set(path!, hash!);
      continue;
    }
    const data = await app.store.get(`${DIST}/${path}`);
    assert.ok(data, `${path} listed in Release exists`);
    assert.equal(data.byteLength, Number(size), `${path} size`);
    assert.equal(createHash('sha256').update(data).digest('hex'), hash, `${path} sha256`);
    const byHash = await app.store.get(`${DIST}/${path!.slice(0, path!.lastIndexOf('/'))}/by-hash/SHA256/${hash}`);
    assert.ok(byHash && Buffer.compare(byHash, data) === 0, `by-hash file for ${path}`);
    sha256.set(path!, hash!);
  }
  for (const dirName of ['main/binary-amd64', 'main/binary-arm64']) {
    const xz = await app.store.get(`${DIST}/${dirName}/Packages.xz`);
    assert.deepEqual(execFileSync('xz', ['-dc'], { input: xz! }), await plainOf(dirName), `${dirName}: Packages.xz and Packages.gz hold the same index`);
  }
  return sha256;
}

/** The uncompressed index of a directory (main/binary-amd64): Packages.gz decompressed. */
async function plainOf(dirName: string): Promise<Buffer> {
  const gz = await app.store.get(`${DIST}/${dirName}/Packages.gz`);
  assert.ok(gz, `${dirName}/Packages.gz exists`);
  return gunzipSync(gz);
}

before(async () => {
  // Rows are read a page at a time: small pages here, so every publish below crosses page boundaries.
  AptPublisher.rowsPerRead = 97;
  dir = await mkdtemp(join(tmpdir(), 'wharf-publisher-'));
  const config = loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', 'retention-seconds': '0', fsync: 'false' }, {});
  app = await createApp(config, { log: createLogger('silent') });
  const repo = await app.repos.create({ org: 'acme', repo: 'tools' }, { private: false });
  const row = await app.db
    .insertInto('distributions')
    .values({ repo_id: repo.id, kind: 'deb', os: 'debian', name: 'stable', created_at: Date.now(), generation: 0, published_state: null, published_at: null })
    .returning('id')
    .executeTakeFirstOrThrow();
  distId = row.id;
});

after(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

test('an empty distribution publishes valid, signed, empty indexes', async () => {
  const r = await app.publisher.request(distId);
  assert.equal(r.generation, 1);
  await checkRelease();
  assert.equal(((await plainOf('main/binary-amd64')).toString()).length, 0);
  const inRelease = await text(`${DIST}/InRelease`);
  assert.match(inRelease, /^-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n/);
});

test('indexes list every package in insertion order, arch all in every architecture', async () => {
  await addRows(0, 600);
  await addRows(600, 650, 'all');
  await addRows(650, 700, 'arm64');
  await app.publisher.request(distId);
  await checkRelease();
  const amd64 = (await plainOf('main/binary-amd64')).toString();
  const arm64 = (await plainOf('main/binary-arm64')).toString();
  const names = (t: string) => [...t.matchAll(/^Package: (\S+)$/gm)].map((m) => m[1]);
  assert.deepEqual(names(amd64), Array.from({ length: 650 }, (_, i) => `p${i}`));
  assert.deepEqual(names(arm64), Array.from({ length: 100 }, (_, i) => `p${600 + i}`));
  // Stanzas are separated by exactly one blank line and the file ends with one.
  assert.ok(!amd64.includes('\n\n\n'));
  assert.ok(amd64.endsWith('\n\n'));
});

test('one more package recompresses only the chunks it touches and keeps old by-hash files', async () => {
  const before = await checkRelease();
  const chunksBefore = await countChunks();
  await addRows(700, 701);
  await app.publisher.request(distId);
  const afterPublish = await checkRelease();
  // At most one amd64 chunk was sealed (one new .gz and one new .xz piece); an open tail is stored uncompressed.
  assert.ok([0, 2].includes((await countChunks()) - chunksBefore));
  // arm64 did not change, so its files are the same.
  assert.equal(afterPublish.get('main/binary-arm64/Packages.xz'), before.get('main/binary-arm64/Packages.xz'));
  assert.notEqual(afterPublish.get('main/binary-amd64/Packages.xz'), before.get('main/binary-amd64/Packages.xz'));
  // The previous generation's by-hash files are still there for clients holding the old InRelease.
  const old = before.get('main/binary-amd64/Packages.xz')!;
  assert.ok(await app.store.stat(`${DIST}/main/binary-amd64/by-hash/SHA256/${old}`));
});

test('retired by-hash files are deleted after the retention period (0 s here) but never while live', async () => {
  const before = await checkRelease();
  const old = before.get('main/binary-amd64/Packages.xz')!;
  await addRows(701, 702);
  await app.publisher.request(distId); // retires the files of `before`
  await app.publisher.request(distId); // retention 0: collects them, right after answering
  const deadline = Date.now() + 5000;
  while ((await app.store.stat(`${DIST}/main/binary-amd64/by-hash/SHA256/${old}`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await app.store.stat(`${DIST}/main/binary-amd64/by-hash/SHA256/${old}`), undefined);
  await checkRelease();
});

test('concurrent requests share publishes (group commit) and all see their rows', async () => {
  const g0 = (await app.db.selectFrom('distributions').select('generation').where('id', '=', distId).executeTakeFirstOrThrow()).generation;
  // Twenty writers, then their twenty requests at once: the first starts a publish, the nineteen that arrive while
  // it runs wait for the next one, together. (Requests made as each row lands would depend on timing: on a database
  // with network round trips, a slow insert can outlast two publishes of a small index.)
  await Promise.all(Array.from({ length: 20 }, (_, i) => addRows(800 + i, 801 + i)));
  await Promise.all(Array.from({ length: 20 }, () => app.publisher.request(distId)));
  const g1 = (await app.db.selectFrom('distributions').select('generation').where('id', '=', distId).executeTakeFirstOrThrow()).generation;
  assert.ok(g1 - g0 <= 2, `20 requests caused ${g1 - g0} publishes`);
  const amd64 = (await plainOf('main/binary-amd64')).toString();
  for (let i = 0; i < 20; i++) assert.match(amd64, new RegExp(`^Package: p${800 + i}$`, 'm'));
});

test('Release Date never goes backwards', async () => {
  const date = (t: string) => Date.parse(/^Date: (.+)$/m.exec(t)![1]!.replace(/UTC$/, 'GMT'));
  const d1 = date(await text(`${DIST}/Release`));
  await addRows(900, 901);
  await app.publisher.request(distId);
  assert.ok(date(await text(`${DIST}/Release`)) >= d1);
});

test('a publish that fails halfway leaves the old metadata live, and the next one publishes everything', async () => {
  const before = await text(`${DIST}/InRelease`);
  await addRows(950, 951);
  // Where the new by-hash file must go is blocked: the write fails after the index was built in memory.
  const byHash = join(dir, 'storage', DIST, 'main/binary-amd64/by-hash');
  const { rename, writeFile } = await import('node:fs/promises');
  await rename(byHash, `${byHash}.aside`);
  await writeFile(byHash, 'blocked');
  await assert.rejects(app.publisher.request(distId));
  assert.equal(await text(`${DIST}/InRelease`), before, 'clients still see the previous, consistent metadata');
  await rm(byHash);
  await rename(`${byHash}.aside`, byHash);
  await app.publisher.request(distId);
  await checkRelease();
  assert.match((await plainOf('main/binary-amd64')).toString(), /^Package: p950$/m);
});

test('after an upgrade from a version that stored the uncompressed Packages, the stale copies are deleted', async () => {
  // What an older Wharf left: the named Packages and its by-hash copy, and a published state without the marker.
  const row = await app.db.selectFrom('distributions').select('published_state').where('id', '=', distId).executeTakeFirstOrThrow();
  const state = JSON.parse(row.published_state!) as { plainStored?: boolean; indexes: Record<string, { files: { path: string; sha256: string }[] }> };
  delete state.plainStored;
  await app.db.updateTable('distributions').set({ published_state: JSON.stringify(state) }).where('id', '=', distId).execute();
  const entry = state.indexes['main/binary-amd64']!.files.find((f) => f.path.endsWith('/Packages'))!;
  const named = `${DIST}/main/binary-amd64/Packages`;
  const byHash = `${DIST}/main/binary-amd64/by-hash/SHA256/${entry.sha256}`;
  await app.store.put(named, 'stale');
  await app.store.put(byHash, 'stale');
  await addRows(960, 961);
  await app.publisher.request(distId);
  // Deleted right after the push is answered, under the publish lock: the next request waits for it.
  await addRows(961, 962);
  await app.publisher.request(distId);
  assert.equal(await app.store.stat(named), undefined, 'the stale named Packages is gone');
  assert.equal(await app.store.stat(byHash), undefined, 'its by-hash copy is gone');
  await checkRelease();
  // The next publish has nothing of the kind left to do.
  const after = await app.db.selectFrom('distributions').select('published_state').where('id', '=', distId).executeTakeFirstOrThrow();
  assert.equal((JSON.parse(after.published_state!) as { plainStored?: boolean }).plainStored, false);
});

test('an index rebuilt from scratch (a restart) retires the .gz and .xz that held the same text compressed otherwise', async () => {
  // A row whose SHA-256 seals a chunk: a small publish sends that chunk out stored and compresses it afterwards.
  const s = stanza(980, 'amd64');
  const sha256 = `00${s.sha256.slice(2)}`;
  await app.db
    .insertInto('deb_packages')
    .values({
      distribution_id: distId, component: 'main', name: 'p980', version: '1.980', architecture: 'amd64', filename: 'p980_1.980_amd64.deb',
      pool_key: 'pool/stable/main/p/p980/p980_1.980_amd64.deb', size: 980, md5: '0'.repeat(32), sha1: '0'.repeat(40), sha256,
      sha512: '0'.repeat(128), stanza: s.stanza, created_at: Date.now(),
    })
    .execute();
  await app.publisher.request(distId);
  await app.publisher.idle(); // the chunk's compression, run after that publish, has finished
  await addRows(981, 982);
  await app.publisher.request(distId); // carries the compressed chunk
  const before = await checkRelease();
  // Another process on the same data (a restart, or another node) builds the index from the rows: the same text,
  // with the chunks stored again until its own publishes compress them.
  const config = loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', 'retention-seconds': '0', fsync: 'false' }, {});
  const other = await createApp(config, { log: createLogger('silent') });
  try {
    await other.publisher.request(distId);
    const rebuilt = await checkRelease();
    assert.equal(rebuilt.get('main/binary-amd64/Packages'), before.get('main/binary-amd64/Packages'), 'the same text');
    const oldXz = before.get('main/binary-amd64/Packages.xz')!;
    assert.notEqual(rebuilt.get('main/binary-amd64/Packages.xz'), oldXz, 'compressed otherwise (else this test shows nothing)');
    // Retired by that publish, collected after the next one (retention 0 s here), like any replaced index file.
    await other.publisher.request(distId);
    const byHash = `${DIST}/main/binary-amd64/by-hash/SHA256/${oldXz}`;
    const deadline = Date.now() + 5000;
    while ((await app.store.stat(byHash)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await app.store.stat(byHash), undefined, 'the .xz no Release names any more is deleted');
    await checkRelease();
  } finally {
    await other.close();
  }
});
