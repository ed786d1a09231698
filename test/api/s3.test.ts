// The whole server on S3: a real `wharf serve` process with WHARF_STORAGE=s3://… pointing at a real S3-API server
// (the s3rver harness, in this process, path style). Pushes of .deb and .rpm into public and private repositories,
// publishing, yank and retention, real apt-get against the public repository, Range/ETag/conditional requests served
// from S3, private package downloads as 302 to presigned S3 URLs (checked by the S3 server's own signature check),
// --public-base-url redirects of immutable public files, and /readyz on S3 (up and down).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';
import { buildRpm } from '../helpers/rpm.ts';
import { prepareAptRoot } from '../helpers/apt-root.ts';
import { startS3ForWharf, listKeys, type S3ForWharf } from '../helpers/s3.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';

const execFileP = promisify(execFile);

const CDN = 'http://cdn.example';
const PUB_POOL = '/acme/pub/debian/pool/bookworm/main/w/wharf-hello/wharf-hello_1.2.3-1_amd64.deb';
const PUB_RPM = '/acme/pub/el/9/x86_64/Packages/t/tool-1.0-1.x86_64.rpm';
const PUB_INRELEASE = '/acme/pub/debian/dists/bookworm/InRelease';
const SECRET_POOL = '/acme/secret/debian/pool/bookworm/main/s/secret-tool/secret-tool_2.0_amd64.deb';
const SECRET_RPM = '/acme/secret/el/9/x86_64/Packages/t/tool-1.0-1.x86_64.rpm';

let s3: S3ForWharf;
let w: WharfInstance;
let work: string;
let dataDir: string;
let deploy: { username: string; token: string };
let keyring: string; // the server's metadata key, dearmored (one key signs every repository's metadata)
const files: Record<string, string> = {};
const bytes: Record<string, Buffer> = {};

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const basic = (user: string, pass: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });

async function get(url: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await fetch(url.startsWith('http') ? url : w.url + url, { method, headers, redirect: 'manual' });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString('utf8') };
}

async function cliOk(args: string[]): Promise<string> {
  const r = await w.cli(args);
  assert.equal(r.code, 0, `wharf ${args.join(' ')} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  try {
    const r = await execFileP(cmd, args, { env: { ...process.env, LC_ALL: 'C.UTF-8', ...env }, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof err.code === 'string') throw e;
    return { code: err.code ?? 1, out: (err.stdout ?? '') + (err.stderr ?? '') || err.message };
  }
}

/** Every file under a directory (relative paths); [] when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) if (!e.isDirectory()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  return out;
}

/** The SHA256 of an index named in a Release/InRelease text. */
function releaseSha256(release: string, name: string): string {
  const section = release.slice(release.indexOf('\nSHA256:\n'));
  const m = new RegExp(`^ ([0-9a-f]{64}) +\\d+ ${name.replace(/[.+]/g, '\\$&')}$`, 'm').exec(section);
  assert.ok(m, `${name} is not in the SHA256 section:\n${release}`);
  return m[1]!;
}

function assertPrivateHeaders(h: Headers, what: string): void {
  assert.equal(h.get('cache-control'), 'private, no-store', `${what}: Cache-Control`);
  assert.match(h.get('vary') ?? '', /(^|,\s*)Authorization(\s*,|$)/i, `${what}: Vary "${h.get('vary')}"`);
}

async function redirectCount(): Promise<number> {
  const text = (await get('/metrics')).text;
  assert.match(text, /^# TYPE wharf_signed_url_redirects_total counter$/m);
  // A counter that never moved has no sample line.
  return Number(/^wharf_signed_url_redirects_total (\d+)$/m.exec(text)?.[1] ?? 0);
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-s3-test-'));
  await chmod(work, 0o755);
  dataDir = join(work, 'data');
  s3 = await startS3ForWharf();
  // Retention 0: a superseded file is deleted by the next publish, so the test sees deletes reach the bucket.
  await mkdir(join(work, 'imports'), { recursive: true });
  w = await startWharf({ dataDir, env: { ...s3.env, WHARF_RETENTION_SECONDS: '0', WHARF_IMPORT_ROOTS: join(work, 'imports') } });

  const common = 'Maintainer: Wharf Tests <tests@example.org>\nSection: utils\nPriority: optional\n';
  files.lib = await buildDeb(work, `Package: wharf-lib\nVersion: 1.0-1\nArchitecture: amd64\n${common}Description: library\n`, {
    'usr/lib/wharf/lib.txt': 'wharf-lib payload\n',
  });
  files.hello = await buildDeb(
    work,
    `Package: wharf-hello\nVersion: 1.2.3-1\nArchitecture: amd64\n${common}Depends: wharf-lib (>= 1.0)\nDescription: hello from S3\n`,
    { 'usr/bin/wharf-hello': '#!/bin/sh\necho hello from s3\n' },
  );
  files.secret = await buildDeb(work, `Package: secret-tool\nVersion: 2.0\nArchitecture: amd64\n${common}Description: private\n`, {
    'usr/bin/secret-tool': '#!/bin/sh\necho secret\n',
  });
  files.keep = await buildDeb(work, `Package: keepme\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n`);
  files.yank = await buildDeb(work, `Package: yankme\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n`);
  files.later = await buildDeb(work, `Package: later\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n`);
  files.rpm = (await buildRpm(work, { name: 'tool', version: '1.0', release: '1', arch: 'x86_64' })).rpm;
  files.noarch = (await buildRpm(work, { name: 'docs', version: '1.0', release: '1', arch: 'noarch' })).rpm;
  for (const [k, f] of Object.entries(files)) bytes[k] = await readFile(f);

  await cliOk(['repo', 'create', 'acme/pub']);
  const created = JSON.parse(await cliOk(['repo', 'create', 'acme/secret', '--private', '--json']));
  deploy = created.deploy_token;
  await cliOk(['push', 'acme/pub/debian/bookworm', files.lib!, files.hello!]);
  await cliOk(['push', 'acme/pub/el/9', files.rpm!, files.noarch!]);
  await cliOk(['push', 'acme/secret/debian/bookworm', files.secret!]);
  await cliOk(['push', 'acme/secret/el/9', files.rpm!]);
});

after(async () => {
  await w?.stop();
  await s3?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the server on S3', { timeout: 120_000 }, () => {
  test('the bytes are in the bucket, nothing under the data directory\'s storage/', async () => {
    assert.ok(existsSync(join(dataDir, 'wharf.db')), 'not the data directory');
    assert.deepEqual(await filesUnder(join(dataDir, 'storage')), []);
    assert.deepEqual(await filesUnder(join(dataDir, 'tmp')), [], 'staged uploads are consumed by the upload to S3');
    const keys = await listKeys(s3.store);
    for (const k of [
      `public${PUB_POOL}`,
      `public${PUB_RPM}`,
      `public${PUB_INRELEASE}`,
      'public/acme/pub/el/9/x86_64/repodata/repomd.xml',
      `private${SECRET_POOL}`,
      `private${SECRET_RPM}`,
      'private/acme/secret/debian/dists/bookworm/InRelease',
    ]) {
      assert.ok(keys.includes(k), `${k} is not in the bucket; keys:\n${keys.join('\n')}`);
    }
    assert.ok(keys.some((k) => k.startsWith('public/acme/pub/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/')), keys.join('\n'));
    assert.equal(sha256((await s3.store.get(`public${PUB_POOL}`))!), sha256(bytes.hello!));
    // The RPM is re-signed on push: the stored file is not the upload, but it is a whole RPM.
    const rpm = (await s3.store.get(`public${PUB_RPM}`))!;
    assert.deepEqual([...rpm.subarray(0, 4)], [0xed, 0xab, 0xee, 0xdb]);
    assert.ok(!w.output().includes(s3.server.secretAccessKey), 'the secret access key appears in the server output');
    // A noarch RPM is in every architecture directory: server-side copies, which keep the source's ETag.
    const noarch = keys.filter((k) => k.startsWith('public/acme/pub/el/9/') && k.endsWith('/docs-1.0-1.noarch.rpm'));
    assert.ok(noarch.some((k) => k.includes('/x86_64/')) && noarch.some((k) => k.includes('/aarch64/')), noarch.join('\n'));
    const etags = new Set(await Promise.all(noarch.map(async (k) => (await s3.store.stat(k))!.etag)));
    assert.equal(etags.size, 1, `copies of one file have one ETag: ${[...etags].join(' ')}`);
  });

  test('real apt-get update && apt-get install against the public repository', async () => {
    const gnupg = join(work, 'gnupg');
    await mkdir(gnupg, { mode: 0o700 });
    const armored = await get('/acme/pub/gpgkey');
    assert.equal(armored.status, 200);
    await writeFile(join(work, 'pub.asc'), armored.body);
    keyring = join(work, 'pub.gpg');
    const dearmor = await run('gpg', ['--homedir', gnupg, '--batch', '--yes', '--output', keyring, '--dearmor', join(work, 'pub.asc')]);
    assert.equal(dearmor.code, 0, dearmor.out);
    const root = await prepareAptRoot(join(work, 'apt-root'), { arch: 'amd64' });
    await writeFile(join(root.dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${w.url}/acme/pub/debian/ bookworm main\n`);
    const update = await run('apt-get', ['update'], root.env);
    assert.equal(update.code, 0, update.out);
    assert.doesNotMatch(update.out, /^(W|E|Err):|Hash Sum mismatch|NO_PUBKEY/m, update.out);
    const install = await run('apt-get', ['install', '-y', 'wharf-hello'], root.env);
    assert.equal(install.code, 0, install.out);
    assert.equal(await readFile(join(root.dir, 'usr/bin/wharf-hello'), 'utf8'), '#!/bin/sh\necho hello from s3\n');
    assert.equal(await readFile(join(root.dir, 'usr/lib/wharf/lib.txt'), 'utf8'), 'wharf-lib payload\n');
  });

  test('files streamed from S3 with Content-Length, ETag, Range, If-Range and conditional requests', async () => {
    const full = await get(PUB_POOL);
    assert.equal(full.status, 200);
    assert.equal(sha256(full.body), sha256(bytes.hello!));
    assert.equal(full.headers.get('content-length'), String(bytes.hello!.length));
    assert.equal(full.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const etag = full.headers.get('etag')!;
    assert.match(etag, /^"[0-9a-f]{32}"$/);
    const lastModified = full.headers.get('last-modified')!;

    const part = await get(PUB_POOL, { Range: 'bytes=100-299' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-299/${bytes.hello!.length}`);
    assert.deepEqual(part.body, bytes.hello!.subarray(100, 300));
    const tail = await get(PUB_POOL, { Range: 'bytes=-10' });
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, bytes.hello!.subarray(-10));
    assert.equal((await get(PUB_POOL, { Range: `bytes=${bytes.hello!.length}-` })).status, 416);
    // If-Range with another ETag: the whole file.
    const stale = await get(PUB_POOL, { Range: 'bytes=0-9', 'If-Range': '"0000"' });
    assert.equal(stale.status, 200);
    assert.equal(stale.body.length, bytes.hello!.length);
    const same = await get(PUB_POOL, { Range: 'bytes=0-9', 'If-Range': etag });
    assert.equal(same.status, 206);

    assert.equal((await get(PUB_POOL, { 'If-None-Match': etag })).status, 304);
    assert.equal((await get(PUB_POOL, { 'If-Modified-Since': lastModified })).status, 304);
    const head = await get(PUB_POOL, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(bytes.hello!.length));
    assert.equal(head.body.length, 0);

    // Mutable metadata from S3 (through the metadata cache), revalidated by ETag.
    const inRelease = await get(PUB_INRELEASE);
    assert.equal(inRelease.status, 200);
    assert.match(inRelease.text, /^-----BEGIN PGP SIGNED MESSAGE-----/);
    assert.equal((await get(PUB_INRELEASE, { 'If-None-Match': inRelease.headers.get('etag')! })).status, 304);
    assert.equal((await get('/acme/pub/debian/pool/bookworm/main/n/nothere/nothere_1_amd64.deb')).status, 404);
  });

  test('a private package download answers 302 to a presigned S3 URL that returns the exact bytes', async () => {
    const auth = basic(deploy.username, deploy.token);
    assert.equal((await get(SECRET_POOL)).status, 401, 'anonymous');
    const before = await redirectCount();
    for (const [path, expected] of [
      [SECRET_POOL, bytes.secret!],
      [SECRET_RPM, undefined],
    ] as const) {
      const r = await get(path, auth);
      assert.equal(r.status, 302, r.text);
      assertPrivateHeaders(r.headers, path);
      const location = r.headers.get('location')!;
      assert.ok(location.startsWith(`${s3.server.endpoint}/${s3.bucket}/private${path}?`), location);
      const url = new URL(location);
      assert.ok(url.searchParams.get('X-Amz-Signature'), location);
      assert.equal(url.searchParams.get('X-Amz-Expires'), '300');
      assert.equal(url.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
      assert.ok(!location.includes(s3.server.secretAccessKey));
      const followed = await fetch(location);
      assert.equal(followed.status, 200);
      const body = Buffer.from(await followed.arrayBuffer());
      assert.equal(sha256(body), sha256(expected ?? (await s3.store.get(`private${path}`))!));
      // S3 refuses a HEAD of a URL presigned for GET: HEAD is redirected to Wharf's own signed link instead.
      const head = await get(path, auth, 'HEAD');
      assert.equal(head.status, 302);
      assertPrivateHeaders(head.headers, `HEAD ${path}`);
      const headLocation = head.headers.get('location')!;
      assert.ok(headLocation.startsWith(`${w.url}${path}?expires=`), headLocation);
      const headed = await get(headLocation, {}, 'HEAD');
      assert.equal(headed.status, 200);
      assert.equal(headed.headers.get('content-length'), String(body.length));
    }
    assert.equal((await redirectCount()) - before, 4, 'the redirects are counted');

    // The S3 server refuses a tampered URL: the signature is what authorises the download.
    const location = (await get(SECRET_POOL, auth)).headers.get('location')!;
    const sig = new URL(location).searchParams.get('X-Amz-Signature')!;
    const flipped = location.replace(sig, (sig[0] === '0' ? '1' : '0') + sig.slice(1));
    const tampered = await fetch(flipped);
    assert.equal(tampered.status, 403);
    assert.match(await tampered.text(), /SignatureDoesNotMatch/);
    const otherKey = await fetch(location.replace('secret-tool_2.0_amd64.deb', 'secret-tool_2.1_amd64.deb'));
    assert.equal(otherKey.status, 403);

    // Metadata of the private repository is served directly, privately; a missing package is 404, not a redirect.
    const inRelease = await get('/acme/secret/debian/dists/bookworm/InRelease', auth);
    assert.equal(inRelease.status, 200);
    assertPrivateHeaders(inRelease.headers, 'private InRelease');
    assert.equal((await get('/acme/secret/debian/pool/bookworm/main/n/nothere/nothere_1_amd64.deb', auth)).status, 404);
  });

  test('real apt-get install from the private repository: credentials to Wharf, the package from S3', async () => {
    assert.ok(keyring, 'needs the keyring of the public apt test');
    const root = await prepareAptRoot(join(work, 'apt-private'), { arch: 'amd64' });
    await writeFile(join(root.dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${w.url}/acme/secret/debian/ bookworm main\n`);
    const u = new URL(w.url);
    await writeFile(join(root.dir, 'etc/apt/auth.conf.d/wharf.conf'), `machine http://${u.host}/acme/secret login ${deploy.username} password ${deploy.token}\n`, {
      mode: 0o600,
    });
    const since = s3.server.requests.length;
    const update = await run('apt-get', ['update'], root.env);
    assert.equal(update.code, 0, update.out);
    assert.doesNotMatch(update.out, /^(W|E|Err):/m, update.out);
    const install = await run('apt-get', ['install', '-y', 'secret-tool'], root.env);
    assert.equal(install.code, 0, install.out);
    assert.equal(await readFile(join(root.dir, 'usr/bin/secret-tool'), 'utf8'), '#!/bin/sh\necho secret\n');
    // apt followed the 302 to the S3 server with the presigned query, not with its Wharf credentials.
    const fetched = s3.server.requests.slice(since).filter((q) => q.method === 'GET' && q.url.includes('/private/acme/secret/debian/pool/'));
    assert.ok(fetched.length > 0 && fetched.every((q) => q.url.includes('X-Amz-Signature=')), JSON.stringify(fetched));
  });

  test('yank and retention delete from the bucket', async () => {
    await cliOk(['push', 'acme/pub/debian/yanky', files.keep!, files.yank!]);
    const key = 'public/acme/pub/debian/pool/yanky/main/y/yankme/yankme_1.0_amd64.deb';
    assert.ok(await s3.store.stat(key));
    const packagesBefore = (await get('/acme/pub/debian/dists/yanky/main/binary-amd64/Packages')).text;
    const inReleaseBefore = (await get('/acme/pub/debian/dists/yanky/InRelease')).text;
    await cliOk(['yank', 'acme/pub/debian/yanky', 'yankme_1.0_amd64.deb']);
    const packages = (await get('/acme/pub/debian/dists/yanky/main/binary-amd64/Packages')).text;
    assert.doesNotMatch(packages, /yankme/);
    assert.match(packagesBefore, /yankme/);
    // The next publish collects what the yank retired (retention 0): the pool file and the superseded index.
    const gzBefore = releaseSha256(inReleaseBefore, 'main/binary-amd64/Packages.gz');
    const oldByHash = `public/acme/pub/debian/dists/yanky/main/binary-amd64/by-hash/SHA256/${gzBefore}`;
    assert.ok(await s3.store.stat(oldByHash), 'the superseded index is kept until the next publish');
    await cliOk(['push', 'acme/pub/debian/yanky', files.later!]);
    assert.equal(await s3.store.stat(key), undefined, 'the yanked pool file is still in the bucket');
    assert.equal(await s3.store.stat(oldByHash), undefined, 'the superseded by-hash index is still in the bucket');
    assert.ok(await s3.store.stat('public/acme/pub/debian/pool/yanky/main/k/keepme/keepme_1.0_amd64.deb'));
    assert.equal((await get(`/acme/pub/debian/pool/yanky/main/y/yankme/yankme_1.0_amd64.deb`)).status, 404);
  });

  test('wharf import --link onto S3: no links there, the checked bytes are copied into the bucket (small and large files)', async () => {
    const dir = join(work, 'imports', 'el8');
    await mkdir(dir, { recursive: true });
    const made: Record<string, Buffer> = {};
    for (const i of [1, 2, 3]) {
      const m = rpmMeta(i);
      made[m.filename] = buildRpmBytes({ ...m, ...(i === 2 ? { extraBytes: 400_000 } : {}) });
      await writeFile(join(dir, m.filename), made[m.filename]!);
    }
    await cliOk(['repo', 'create', 'acme/raw', '--no-package-signing']);
    const out = JSON.parse(await cliOk(['import', 'acme/raw/el/8', dir, '--link', '--json'])) as { results: { status: string }[] };
    assert.deepEqual(out.results.map((r) => r.status), ['created', 'created', 'created']);
    const keys = await listKeys(s3.store);
    for (const [name, b] of Object.entries(made)) {
      const key = keys.find((k) => k.endsWith(`/acme/raw/el/8/x86_64/Packages/b/${name}`));
      assert.ok(key, `${name} in the bucket`);
      const got = await get(`/acme/raw/el/8/x86_64/Packages/b/${name}`);
      assert.equal(got.status, 200);
      assert.equal(sha256(got.body), sha256(b), name);
    }
    const repomd = (await get('/acme/raw/el/8/x86_64/repodata/repomd.xml')).text;
    assert.match(repomd, /<data type="primary">/);
    assert.equal(existsSync(join(dataDir, 'storage')), false, 'nothing under the data directory');
  });

  test('/readyz writes, reads and deletes a probe blob in the bucket', async () => {
    const r = await get('/readyz');
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text);
    assert.equal(body.checks.storage.ok, true);
    assert.deepEqual(await listKeys(s3.store, 'internal/readyz/'), [], 'the probe blob is deleted');
    assert.ok(s3.server.requests.some((q) => q.method === 'PUT' && q.url.includes('/internal/readyz/')), 'the probe went to S3');
  });
});

describe('--public-base-url on S3', { timeout: 120_000 }, () => {
  before(async () => {
    // The same data directory and bucket, restarted with the CDN in front of the public tree.
    await w.stop();
    w = await startWharf({ dataDir, env: { ...s3.env, WHARF_RETENTION_SECONDS: '0' }, args: ['--public-base-url', `${CDN}/`] });
  });

  test('public pool files, RPM packages, by-hash indexes and RPM data files answer 302 to the public base URL, cacheable', async () => {
    const inRelease = (await get(PUB_INRELEASE)).text;
    const byHash = `/acme/pub/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/${releaseSha256(inRelease, 'main/binary-amd64/Packages.xz')}`;
    const repomd = (await get('/acme/pub/el/9/x86_64/repodata/repomd.xml')).text;
    const primary = /<location href="(repodata\/[0-9a-f]{64}-primary\.xml\.gz)"/.exec(repomd)?.[1];
    assert.ok(primary, repomd);
    const before = await redirectCount();
    for (const path of [PUB_POOL, PUB_RPM, byHash, `/acme/pub/el/9/x86_64/${primary}`]) {
      for (const method of ['GET', 'HEAD']) {
        const r = await get(path, {}, method);
        assert.equal(r.status, 302, `${method} ${path}: ${r.text}`);
        assert.equal(r.headers.get('location'), `${CDN}${path}`);
        assert.match(r.headers.get('cache-control') ?? '', /^public, max-age=\d+$/);
      }
      // The CDN's URL layout is the bucket's public/ tree: the file it would serve is the one Wharf would.
      assert.ok(await s3.store.stat(`public${path}`), `public${path} is not in the bucket`);
    }
    assert.equal(await redirectCount(), before, 'public redirects are not signed-URL redirects');
    // The redirect needs no Wharf-side lookup of the file, only of the repository.
    assert.equal((await get('/acme/nope/debian/pool/bookworm/main/x/x/x_1_amd64.deb')).status, 401);
  });

  test('mutable metadata is still served by Wharf directly', async () => {
    for (const path of [
      PUB_INRELEASE,
      '/acme/pub/debian/dists/bookworm/Release',
      '/acme/pub/debian/dists/bookworm/main/binary-amd64/Packages',
      '/acme/pub/debian/dists/bookworm/main/binary-amd64/Packages.gz',
      '/acme/pub/el/9/x86_64/repodata/repomd.xml',
      '/acme/pub/el/9.repo',
      '/acme/pub/gpgkey',
    ]) {
      const r = await get(path);
      assert.equal(r.status, 200, `${path}: ${r.status} ${r.headers.get('location') ?? ''}`);
      assert.ok(r.body.length > 0, path);
    }
  });

  test('a private repository never redirects to the public base URL', async () => {
    const auth = basic(deploy.username, deploy.token);
    const pool = await get(SECRET_POOL, auth);
    assert.equal(pool.status, 302);
    assert.ok(pool.headers.get('location')!.startsWith(`${s3.server.endpoint}/`), pool.headers.get('location')!);
    assertPrivateHeaders(pool.headers, 'private pool');
    const inRelease = (await get('/acme/secret/debian/dists/bookworm/InRelease', auth)).text;
    const byHash = `/acme/secret/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/${releaseSha256(inRelease, 'main/binary-amd64/Packages.xz')}`;
    const r = await get(byHash, auth);
    assert.equal(r.status, 200);
    assertPrivateHeaders(r.headers, 'private by-hash');
    for (const path of [SECRET_POOL, SECRET_RPM, byHash]) {
      const anon = await get(path);
      assert.equal(anon.status, 401, path);
      assert.equal(anon.headers.get('location'), null);
    }
  });

  test('/readyz answers 503 naming the storage check when the S3 server is down', async () => {
    assert.equal((await get('/readyz')).status, 200);
    await s3.close();
    const r = await get('/readyz');
    assert.equal(r.status, 503, r.text);
    const body = JSON.parse(r.text);
    assert.equal(body.status, 'not ready');
    assert.equal(body.checks.storage.ok, false);
    assert.match(body.checks.storage.error, /S3 put of "internal\/readyz\/[0-9a-f]+" failed: 0 ECONNREFUSED/);
    assert.ok(!body.checks.storage.error.includes(s3.server.secretAccessKey));
    assert.equal(body.checks.database.ok, true);
    assert.equal((await get('/healthz')).status, 200, 'alive, though not ready');
  });
});

describe('--public-base-url over the data directory (no S3)', { timeout: 60_000 }, () => {
  let fsWharf: WharfInstance;
  before(async () => {
    fsWharf = await startWharf({ args: ['--public-base-url', CDN] });
    for (const args of [
      ['repo', 'create', 'acme/pub'],
      ['push', 'acme/pub/debian/bookworm', files.lib!, files.hello!],
      ['push', 'acme/pub/debian/pool', files.keep!],
      ['push', 'acme/pub/el/pool', files.rpm!],
    ]) {
      const r = await fsWharf.cli(args);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
  });
  after(async () => {
    await fsWharf?.stop();
  });

  test('pool files redirect to the base URL, which maps onto DATA/storage/public/', async () => {
    const r = await fetch(`${fsWharf.url}${PUB_POOL}`, { redirect: 'manual' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.get('location'), `${CDN}${PUB_POOL}`);
    // What a web server rooted at DATA/storage/public would answer for that URL.
    assert.equal(sha256(await readFile(join(fsWharf.dataDir, 'storage/public', PUB_POOL))), sha256(bytes.hello!));
    assert.equal((await fetch(`${fsWharf.url}${PUB_INRELEASE}`, { redirect: 'manual' })).status, 200);
  });

  test('the metadata of distributions named "pool" is mutable: served here, never redirected or cached for long', async () => {
    for (const path of ['/acme/pub/debian/dists/pool/InRelease', '/acme/pub/debian/dists/pool/main/binary-amd64/Packages', '/acme/pub/el/pool/x86_64/repodata/repomd.xml']) {
      const r = await fetch(`${fsWharf.url}${path}`, { redirect: 'manual' });
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('cache-control'), 'public, max-age=60', path);
    }
    const pool = await fetch(`${fsWharf.url}/acme/pub/debian/pool/pool/main/k/keepme/keepme_1.0_amd64.deb`, { redirect: 'manual' });
    assert.equal(pool.status, 302);
  });
});
