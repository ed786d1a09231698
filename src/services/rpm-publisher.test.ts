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
