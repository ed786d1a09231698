// Serving the published tree over real HTTP: headers, ranges, conditional requests, caching, path safety, and the
// public endpoints (/healthz, /api/v1/openapi.json). One server for the whole file.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';
import { requestLog } from '../helpers/access-log.ts';

let w: WharfInstance;
let work: string;
let deb: Buffer;
const DISTS = '/acme/tools/debian/dists/bookworm';
const POOL = '/acme/tools/debian/pool/bookworm/main/h/hello/hello_1.0_amd64.deb';
const files: Record<string, string> = {};

async function api(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) {
  const res = await fetch(w.url + path, { method, headers: { Authorization: `Bearer ${w.token}`, ...headers }, ...(body !== undefined ? { body: typeof body === 'string' ? body : new Uint8Array(body) } : {}) });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

async function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await fetch(w.url + path, { method, headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** A request with the path sent exactly as given (fetch would normalise dot-segments and some escapes). */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = new URL(w.url);
    const req = httpRequest({ host: u.hostname, port: u.port, method: 'GET', path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function maxAge(cc: string | null): number {
  const m = /(?:^|[,\s])max-age=(\d+)/.exec(cc ?? '');
  assert.ok(m, `no max-age in Cache-Control "${cc}"`);
  return Number(m[1]);
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-serve-test-'));
  w = await startWharf();
  assert.equal((await api('POST', '/api/v1/repos', JSON.stringify({ name: 'acme/tools' }), { 'Content-Type': 'application/json' })).status, 201);
  assert.equal((await api('POST', '/api/v1/repos', JSON.stringify({ name: 'acme/secret', private: true }), { 'Content-Type': 'application/json' })).status, 201);
  deb = await readFile(await buildDeb(work, 'Package: hello\nVersion: 1.0\nArchitecture: amd64\nDescription: hello\n', { 'usr/bin/hello': '#!/bin/sh\necho hi\n' }));
  const p = await api('POST', '/api/v1/repos/acme/tools/distributions/debian/bookworm/packages', deb);
  assert.equal(p.status, 201, p.text);
  const s = await api('POST', '/api/v1/repos/acme/secret/distributions/debian/bookworm/packages', deb);
  assert.equal(s.status, 201, s.text);
  const inRelease = (await get(`${DISTS}/InRelease`)).body.toString();
  // by-hash holds the compressed indexes apt downloads (the uncompressed Packages is listed but not stored).
  const m = /^ ([0-9a-f]{64}) +\d+ main\/binary-amd64\/Packages\.xz$/m.exec(inRelease.slice(inRelease.indexOf('SHA256:')));
  assert.ok(m, `no SHA256 line for Packages.xz in InRelease:\n${inRelease}`);
  Object.assign(files, {
    InRelease: `${DISTS}/InRelease`,
    Release: `${DISTS}/Release`,
    Packages: `${DISTS}/main/binary-amd64/Packages`,
    'Packages.gz': `${DISTS}/main/binary-amd64/Packages.gz`,
    'Packages.xz': `${DISTS}/main/binary-amd64/Packages.xz`,
    pool: POOL,
    'by-hash': `${DISTS}/main/binary-amd64/by-hash/SHA256/${m[1]}`,
  });
});

after(async () => {
  await w?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('GET and HEAD', () => {
  for (const name of ['InRelease', 'Release', 'Packages', 'Packages.gz', 'Packages.xz', 'pool', 'by-hash']) {
    test(`${name}: Content-Length, ETag, Last-Modified; HEAD matches GET without a body`, async () => {
      const g = await get(files[name]!);
      assert.equal(g.status, 200);
      assert.ok(g.body.length > 0);
      assert.equal(g.headers.get('content-length'), String(g.body.length));
      const etag = g.headers.get('etag');
      assert.match(etag ?? '', /^(W\/)?"[^"]+"$/, `ETag ${etag}`);
      const lm = g.headers.get('last-modified');
      assert.ok(lm && !Number.isNaN(Date.parse(lm)), `Last-Modified ${lm}`);
      assert.ok(Math.abs(Date.parse(lm!) - Date.now()) < 10 * 60_000, `Last-Modified ${lm} is not recent`);
      assert.equal(g.headers.get('accept-ranges'), 'bytes');
      assert.equal(g.headers.get('content-encoding'), null, `${name} is served with Content-Encoding`);
      const h = await get(files[name]!, {}, 'HEAD');
      assert.equal(h.status, 200);
      assert.equal(h.body.length, 0);
      assert.equal(h.headers.get('content-length'), String(g.body.length));
      assert.equal(h.headers.get('etag'), etag);
      assert.equal(h.headers.get('last-modified'), lm);
      assert.equal(h.headers.get('cache-control'), g.headers.get('cache-control'));
    });
  }

  test('the pool file is the pushed bytes; by-hash is the Packages.xz it names; Packages is Packages.gz decompressed; .gz/.xz have no Content-Encoding', async () => {
    assert.equal(sha256((await get(POOL)).body), sha256(deb));
    assert.deepEqual((await get(files['by-hash']!)).body, (await get(files['Packages.xz']!)).body);
    const plain = (await get(files.Packages!)).body;
    assert.deepEqual(plain, gunzipSync((await get(files['Packages.gz']!)).body));
    assert.match(plain.toString(), /^Package: hello$/m);
    const gz = await get(files['Packages.gz']!, { 'Accept-Encoding': 'gzip, br' });
    assert.equal(gz.headers.get('content-encoding'), null);
    assert.equal(gz.headers.get('content-type'), 'application/gzip');
    assert.equal(gz.body[0], 0x1f);
    assert.equal(gz.body[1], 0x8b);
    const xz = await get(files['Packages.xz']!, { 'Accept-Encoding': 'gzip, br' });
    assert.equal(xz.headers.get('content-encoding'), null);
    assert.equal(xz.body.subarray(0, 6).toString('latin1'), '\xfd7zXZ\0');
    assert.equal((await get(POOL)).headers.get('content-type'), 'application/vnd.debian.binary-package');
  });
});

describe('ranges', () => {
  test('Range bytes=0-9 → 206 with Content-Range and the first 10 bytes', async () => {
    const full = (await get(POOL)).body;
    const r = await get(POOL, { Range: 'bytes=0-9' });
    assert.equal(r.status, 206);
    assert.equal(r.headers.get('content-range'), `bytes 0-9/${full.length}`);
    assert.equal(r.headers.get('content-length'), '10');
    assert.deepEqual(r.body, full.subarray(0, 10));
    assert.equal(r.body.subarray(0, 8).toString('latin1'), '!<arch>\n');
  });

  test('a middle range and an open-ended range', async () => {
    const full = (await get(files.Packages!)).body;
    const mid = await get(files.Packages!, { Range: 'bytes=5-14' });
    assert.equal(mid.status, 206);
    assert.deepEqual(mid.body, full.subarray(5, 15));
    const open = await get(files.Packages!, { Range: `bytes=${full.length - 3}-` });
    assert.equal(open.status, 206);
    assert.equal(open.headers.get('content-range'), `bytes ${full.length - 3}-${full.length - 1}/${full.length}`);
    assert.deepEqual(open.body, full.subarray(full.length - 3));
    const past = await get(files.Packages!, { Range: `bytes=0-${full.length + 1000}` });
    assert.equal(past.status, 206);
    assert.equal(past.headers.get('content-range'), `bytes 0-${full.length - 1}/${full.length}`);
    assert.deepEqual(past.body, full);
  });

  test('suffix range bytes=-20 → the last 20 bytes; a suffix longer than the file → all of it', async () => {
    const full = (await get(POOL)).body;
    const r = await get(POOL, { Range: 'bytes=-20' });
    assert.equal(r.status, 206);
    assert.equal(r.headers.get('content-range'), `bytes ${full.length - 20}-${full.length - 1}/${full.length}`);
    assert.deepEqual(r.body, full.subarray(full.length - 20));
    const all = await get(POOL, { Range: `bytes=-${full.length * 2}` });
    assert.equal(all.status, 206);
    assert.deepEqual(all.body, full);
  });

  test('unsatisfiable range → 416 with Content-Range bytes */SIZE', async () => {
    const size = (await get(POOL)).body.length;
    for (const range of [`bytes=${size}-`, `bytes=${size + 100}-${size + 200}`, 'bytes=-0']) {
      const r = await get(POOL, { Range: range });
      assert.equal(r.status, 416, range);
      assert.equal(r.headers.get('content-range'), `bytes */${size}`, range);
    }
  });

  test('HEAD with a Range → 206 headers and no body', async () => {
    const r = await get(POOL, { Range: 'bytes=0-9' }, 'HEAD');
    assert.equal(r.status, 206);
    assert.equal(r.headers.get('content-length'), '10');
    assert.equal(r.body.length, 0);
  });

  test('multiple ranges are answered with the whole file (200), never a wrong 206', async () => {
    const full = (await get(POOL)).body;
    const r = await get(POOL, { Range: 'bytes=0-1,5-6' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, full);
  });

  test('If-Range with the current ETag → 206; with a stale or weak ETag → 200 full; with an old date → 200 full', async () => {
    const g = await get(POOL);
    const etag = g.headers.get('etag')!;
    const ok = await get(POOL, { Range: 'bytes=0-9', 'If-Range': etag });
    assert.equal(ok.status, 206);
    const stale = await get(POOL, { Range: 'bytes=0-9', 'If-Range': '"stale-etag-0"' });
    assert.equal(stale.status, 200);
    assert.deepEqual(stale.body, g.body);
    assert.equal(stale.headers.get('content-range'), null);
    const weak = await get(POOL, { Range: 'bytes=0-9', 'If-Range': `W/${etag}` });
    assert.equal(weak.status, 200, 'If-Range needs a strong comparison: a weak ETag must not match');
    const old = await get(POOL, { Range: 'bytes=0-9', 'If-Range': new Date(Date.parse(g.headers.get('last-modified')!) - 3600_000).toUTCString() });
    assert.equal(old.status, 200);
    assert.deepEqual(old.body, g.body);
    const same = await get(POOL, { Range: 'bytes=0-9', 'If-Range': g.headers.get('last-modified')! });
    assert.equal(same.status, 206);
  });
});

describe('conditional requests', () => {
  for (const name of ['InRelease', 'Packages', 'pool', 'by-hash']) {
    test(`${name}: If-None-Match → 304; If-Modified-Since → 304; a different ETag → 200`, async () => {
      const g = await get(files[name]!);
      const etag = g.headers.get('etag')!;
      const inm = await get(files[name]!, { 'If-None-Match': etag });
      assert.equal(inm.status, 304);
      assert.equal(inm.body.length, 0);
      assert.equal(inm.headers.get('etag'), etag);
      const list = await get(files[name]!, { 'If-None-Match': `"nope", ${etag}` });
      assert.equal(list.status, 304);
      const lastModified = Date.parse(g.headers.get('last-modified')!);
      const ims = await get(files[name]!, { 'If-Modified-Since': g.headers.get('last-modified')! });
      if (name === 'InRelease' || name === 'Packages') {
        // Mutable metadata: the same second may hold a republish, so only a later second gives 304.
        assert.equal(ims.status, 200);
        const later = await get(files[name]!, { 'If-Modified-Since': new Date(lastModified + 1000).toUTCString() });
        assert.equal(later.status, 304);
      } else {
        assert.equal(ims.status, 304);
      }
      const other = await get(files[name]!, { 'If-None-Match': '"something-else"' });
      assert.equal(other.status, 200);
      assert.deepEqual(other.body, g.body);
      const older = await get(files[name]!, { 'If-Modified-Since': new Date(Date.parse(g.headers.get('last-modified')!) - 3600_000).toUTCString() });
      assert.equal(older.status, 200);
      // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
      const both = await get(files[name]!, { 'If-None-Match': '"something-else"', 'If-Modified-Since': g.headers.get('last-modified')! });
      assert.equal(both.status, 200);
    });
  }

  test('after a republish InRelease gets a new ETag and the old one no longer yields 304', async () => {
    const g = await get(files.InRelease!);
    const oldEtag = g.headers.get('etag')!;
    const other = await readFile(await buildDeb(await mkdtemp(join(work, 'b-')), 'Package: second\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n'));
    const p = await api('POST', '/api/v1/repos/acme/tools/distributions/debian/bookworm/packages', other);
    assert.equal(p.status, 201, p.text);
    const after = await get(files.InRelease!, { 'If-None-Match': oldEtag });
    assert.equal(after.status, 200);
    assert.notEqual(after.headers.get('etag'), oldEtag);
    assert.notEqual(after.body.toString(), g.body.toString());
    // The by-hash file of the previous index is still there (immutable, retained).
    assert.equal((await get(files['by-hash']!)).status, 200);
  });
});

describe('Cache-Control', () => {
  test('pool and by-hash files are immutable with a long max-age', async () => {
    for (const name of ['pool', 'by-hash']) {
      const cc = (await get(files[name]!)).headers.get('cache-control');
      assert.match(cc ?? '', /\bimmutable\b/, `${name}: ${cc}`);
      assert.match(cc ?? '', /\bpublic\b/, `${name}: ${cc}`);
      assert.ok(maxAge(cc) >= 86400 * 30, `${name}: ${cc}`);
    }
  });

  test('InRelease, Release and Packages* are revalidated within 60 s and never immutable', async () => {
    for (const name of ['InRelease', 'Release', 'Packages', 'Packages.gz', 'Packages.xz']) {
      const cc = (await get(files[name]!)).headers.get('cache-control');
      assert.doesNotMatch(cc ?? '', /immutable/, `${name}: ${cc}`);
      assert.ok(maxAge(cc) <= 60, `${name}: ${cc}`);
    }
    const rg = (await get(`${DISTS}/Release.gpg`)).headers.get('cache-control');
    assert.ok(maxAge(rg) <= 60, `Release.gpg: ${rg}`);
  });

  test('private trees: 401 without a token; with it, private no-store and Vary: Authorization', async () => {
    const path = '/acme/secret/debian/dists/bookworm/InRelease';
    const anon = await get(path);
    assert.equal(anon.status, 401);
    assert.ok(anon.headers.get('www-authenticate'));
    const r = await get(path, { Authorization: `Bearer ${w.token}` });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('cache-control') ?? '', /private/);
    assert.match(r.headers.get('cache-control') ?? '', /no-store/);
    assert.match(r.headers.get('vary') ?? '', /Authorization/i);
  });

  test('a private repository cannot be told apart from a missing one without a token', async () => {
    const secret = await get('/acme/secret/debian/dists/bookworm/InRelease');
    const missing = await get('/acme/no-such-repo/debian/dists/bookworm/InRelease');
    assert.equal(
      secret.status,
      missing.status,
      `an anonymous client learns that acme/secret exists: private repo → ${secret.status} ${secret.body}, missing repo → ${missing.status} ${missing.body}`,
    );
  });
});

describe('paths and errors', () => {
  const traversals = [
    '/acme/tools/../../etc/passwd',
    '/acme/tools/debian/../../../../../../etc/passwd',
    '/acme/tools/%2e%2e/%2e%2e/etc/passwd',
    '/acme/tools/%2E%2E/%2E%2E/%2E%2E/%2E%2E/admin-token',
    '/acme/tools/..%2f..%2f..%2f..%2fadmin-token',
    '/acme/tools/debian%2f..%2f..%2f..%2f..%2fadmin-token',
    '/acme/tools/..%5c..%5c..%5c..%5cadmin-token',
    '/acme/tools/../../../../admin-token',
    '/acme/tools/../../../../wharf.db',
    '/acme/tools/../../.tmp/',
    '/acme/tools/%00/InRelease',
    '/acme/tools/debian/dists/bookworm/InRelease%00.txt',
    '/acme/../../internal/apt-chunks',
    '/%2e%2e/%2e%2e/etc/passwd',
    '//etc/passwd',
  ];
  for (const p of traversals) {
    test(`path traversal ${p} → 4xx, never a file outside the tree`, async () => {
      const token = (await readFile(join(w.dataDir, 'admin-token'), 'utf8')).trim();
      const r = await raw(p);
      assert.ok(r.status >= 400 && r.status < 500, `${p} → ${r.status}`);
      const text = r.body.toString('latin1');
      assert.ok(!text.includes('root:'), `${p} served /etc/passwd`);
      assert.ok(!text.includes(token), `${p} served the admin token`);
      assert.ok(!text.includes('SQLite format'), `${p} served the database`);
      assert.match(String(r.headers['content-type']), /json/);
    });
  }

  test('an unknown repository answers 401 like a private one (names cannot be probed); the admin sees 404', async () => {
    const anon = await get('/nope/nothing/debian/dists/bookworm/InRelease');
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic /);
    const admin = await fetch(w.url + '/nope/nothing/debian/dists/bookworm/InRelease', { headers: { Authorization: `Bearer ${w.token}` } });
    assert.equal(admin.status, 404);
  });

  test('unknown file, bare repository → 404 NOT_FOUND', async () => {
    for (const p of ['/acme/tools/debian/dists/sid/InRelease', '/acme/tools', '/acme/tools/debian/pool/nothing.deb']) {
      const r = await get(p);
      assert.equal(r.status, 404, p);
      assert.equal(JSON.parse(r.body.toString()).error.code, 'NOT_FOUND', p);
    }
  });

  test('methods other than GET/HEAD on the tree → 405', async () => {
    const r = await fetch(w.url + files.InRelease, { method: 'POST', body: 'x', headers: { Authorization: `Bearer ${w.token}` } });
    assert.equal(r.status, 405);
    assert.equal(((await r.json()) as any).error.code, 'METHOD_NOT_ALLOWED');
  });

  test('/healthz → 200', async () => {
    const r = await get('/healthz');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body.toString()).status, 'ok');
  });
});

describe('OpenAPI', () => {
  test('GET /api/v1/openapi.json is valid OpenAPI 3.x without a token and documents every path the CLI uses', async () => {
    const r = await get('/api/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    const doc = JSON.parse(r.body.toString());
    assert.match(doc.openapi, /^3\.\d+\.\d+$/);
    assert.equal(typeof doc.info?.title, 'string');
    assert.equal(typeof doc.info?.version, 'string');
    // What src/cli/main.ts requests (method, path relative to /api/v1).
    const used: [string, string][] = [
      ['post', '/repos'],
      ['get', '/repos'],
      ['get', '/repos/{org}/{repo}/packages'],
      ['post', '/repos/{org}/{repo}/distributions/{os}/{dist}/packages'],
      ['delete', '/repos/{org}/{repo}/distributions/{os}/{dist}/packages/{filename}'],
    ];
    for (const [method, path] of used) {
      const op = doc.paths?.[path]?.[method];
      assert.ok(op, `openapi.json does not document ${method.toUpperCase()} ${path}`);
      assert.ok(op.responses && Object.keys(op.responses).length > 0, `${method} ${path} has no responses`);
      // Every {param} in the path is declared.
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        assert.ok(
          (op.parameters ?? []).some((p: any) => p.name === name && p.in === 'path' && p.required === true),
          `${method} ${path} does not declare path parameter ${name}`,
        );
      }
    }
    // $refs resolve.
    for (const m of JSON.stringify(doc).matchAll(/"\$ref":"#\/([^"]+)"/g)) {
      let node: any = doc;
      for (const part of m[1]!.split('/')) node = node?.[part];
      assert.ok(node, `unresolved $ref #/${m[1]}`);
    }
  });

  test('the OpenAPI servers URL is where the API actually answers', async () => {
    const doc = JSON.parse((await get('/api/v1/openapi.json')).body.toString());
    const server = doc.servers?.[0]?.url as string;
    assert.equal(server, `${w.url}/api/v1`, `openapi servers[0].url is ${server}, but the server listens on ${w.url}`);
  });
});

describe('install instructions', () => {
  test('GET /ORG/REPO/install explains the apt setup for each distribution', async () => {
    const r = await get('/acme/tools/install');
    assert.equal(r.status, 200);
    const text = r.body.toString();
    assert.match(text, /signed-by=\/usr\/share\/keyrings\/acme-tools\.gpg\] http:\/\/127\.0\.0\.1:\d+\/acme\/tools\/debian\/ bookworm main/);
    assert.match(text, /curl -fsSL http:\/\/127\.0\.0\.1:\d+\/acme\/tools\/gpgkey \| sudo gpg --dearmor/);
    assert.match(r.headers.get('cache-control') ?? '', /public/);
  });
});

describe('access log', () => {
  test('a download the client abandons halfway is logged, marked aborted; a whole one is not marked', async () => {
    // 24 MB uncompressed: more than the loopback socket buffers hold, so the answer is still being written when the
    // client goes away.
    const big = await readFile(await buildDeb(work, 'Package: big\nVersion: 1.0\nArchitecture: amd64\nDescription: big\n', { 'usr/share/big/blob': 'x'.repeat(24 * 1024 * 1024) }, { compression: 'none' }));
    assert.equal((await api('POST', '/api/v1/repos/acme/tools/distributions/debian/bookworm/packages', big)).status, 201);
    const path = '/acme/tools/debian/pool/bookworm/main/b/big/big_1.0_amd64.deb';
    const whole = await get(path);
    assert.equal(whole.body.length, big.length);
    await new Promise<void>((resolve, reject) => {
      const u = new URL(w.url);
      const req = httpRequest({ host: u.hostname, port: u.port, method: 'GET', path, headers: { 'X-Test': 'abandon' } }, (res) => {
        assert.equal(res.statusCode, 200);
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      req.end();
    });
    const lines = async () => requestLog(w).filter((l) => l.path === path);
    for (let i = 0; i < 100 && (await lines()).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const [first, second] = await lines();
    assert.ok(first && second, `two access lines for ${path}: ${JSON.stringify(await lines())}`);
    assert.equal(first.status, 200);
    assert.equal((first as { aborted?: boolean }).aborted, undefined, 'the whole download is not marked');
    assert.equal(second.status, 200);
    assert.equal((second as { aborted?: boolean }).aborted, true, 'the abandoned download is marked aborted');
  });

  test('an upload abandoned before any answer is logged as aborted with status 0, not as a 200', async () => {
    const path = '/api/v1/repos/acme/tools/distributions/debian/abandoned/packages';
    await new Promise<void>((resolve) => {
      const u = new URL(w.url);
      const req = httpRequest({ host: u.hostname, port: u.port, method: 'POST', path, headers: { Authorization: `Bearer ${w.token}`, 'Content-Length': 100_000 } });
      req.on('error', () => resolve());
      req.on('response', (res) => {
        res.resume();
        resolve();
      });
      req.write(Buffer.alloc(1000));
      setTimeout(() => req.destroy(), 200);
    });
    const lines = async () => requestLog(w).filter((l) => l.path === path);
    for (let i = 0; i < 100 && (await lines()).length < 1; i++) await new Promise((r) => setTimeout(r, 50));
    const [line] = await lines();
    assert.ok(line, `an access line for ${path}`);
    assert.equal(line.status, 0, JSON.stringify(line));
    assert.equal((line as { aborted?: boolean }).aborted, true);
  });
});
