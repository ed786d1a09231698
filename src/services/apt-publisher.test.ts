// The publisher against the real layers below it: SQLite, the filesystem blob store, openpgp signing, xz and gzip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
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
    const data = await app.store.get(`${DIST}/${path}`);
    assert.ok(data, `${path} listed in Release exists`);
    assert.equal(data.byteLength, Number(size), `${path} size`);
    assert.equal(createHash('sha256').update(data).digest('hex'), hash, `${path} sha256`);
    const byHash = await app.store.get(`${DIST}/${path!.slice(0, path!.lastIndexOf('/'))}/by-hash/SHA256/${hash}`);
    assert.ok(byHash && Buffer.compare(byHash, data) === 0, `by-hash file for ${path}`);
    sha256.set(path!, hash!);
  }
  for (const dirName of ['main/binary-amd64', 'main/binary-arm64']) {
    const plain = await app.store.get(`${DIST}/${dirName}/Packages`);
    const gz = await app.store.get(`${DIST}/${dirName}/Packages.gz`);
    const xz = await app.store.get(`${DIST}/${dirName}/Packages.xz`);
    assert.deepEqual(gunzipSync(gz!), Buffer.from(plain!));
    assert.deepEqual(execFileSync('xz', ['-dc'], { input: xz! }), Buffer.from(plain!));
  }
  return sha256;
}

before(async () => {
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
  assert.equal((await text(`${DIST}/main/binary-amd64/Packages`)).length, 0);
  const inRelease = await text(`${DIST}/InRelease`);
  assert.match(inRelease, /^-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n/);
});

test('indexes list every package in insertion order, arch all in every architecture', async () => {
  await addRows(0, 600);
  await addRows(600, 650, 'all');
  await addRows(650, 700, 'arm64');
  await app.publisher.request(distId);
  await checkRelease();
  const amd64 = await text(`${DIST}/main/binary-amd64/Packages`);
  const arm64 = await text(`${DIST}/main/binary-arm64/Packages`);
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
  await app.publisher.request(distId); // retention 0: collects them
  assert.equal(await app.store.stat(`${DIST}/main/binary-amd64/by-hash/SHA256/${old}`), undefined);
  await checkRelease();
});

test('concurrent requests share publishes (group commit) and all see their rows', async () => {
  const g0 = (await app.db.selectFrom('distributions').select('generation').where('id', '=', distId).executeTakeFirstOrThrow()).generation;
  // Twenty writers at once, each asking for a publish as soon as its row is in: requests that arrive while a publish
  // runs wait for the next one. (One after the other, on a database with network round trips, each insert could
  // outlast a publish of a small index, and there would be nothing to share.)
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      await addRows(800 + i, 801 + i);
      await app.publisher.request(distId);
    }),
  );
  const g1 = (await app.db.selectFrom('distributions').select('generation').where('id', '=', distId).executeTakeFirstOrThrow()).generation;
  assert.ok(g1 - g0 <= 2, `20 requests caused ${g1 - g0} publishes`);
  const amd64 = await text(`${DIST}/main/binary-amd64/Packages`);
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
  assert.match(await text(`${DIST}/main/binary-amd64/Packages`), /^Package: p950$/m);
});
