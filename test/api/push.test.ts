// Pushing packages over the real HTTP API: idempotence, immutability, rejection of bad input without side effects,
// concurrency (group commit) and yanking. One server for the whole file (plus a short-lived one for the upload limit).
import { test, before, after, beforeEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';
import { tar, tarHeader } from '../helpers/tar.ts';

const execFileP = promisify(execFile);
const RPM = '/work/shared/fixtures/rpm/Rimmer-1.0.2-2.x86_64.rpm';
const ORG_REPO = 'acme/tools';
const DIST = 'debian/bookworm';
const PUSH = `/api/v1/repos/${ORG_REPO}/distributions/${DIST}/packages`;
const TREE = `/${ORG_REPO}/debian/dists/bookworm`;
const PACKAGES = `${TREE}/main/binary-amd64/Packages`;

let w: WharfInstance;
let work: string;
let goodDeb: Buffer; // published in before(): hello 1.0 amd64
let goodInfo: { filename: string; sha256: string };

// ---------------------------------------------------------------------------------------------------------------
// Hand-built archives (dpkg-deb refuses to build most of the malformed inputs; tar members: ../helpers/tar.ts).

function ar(members: [string, Buffer | string][]): Buffer {
  const parts: Buffer[] = [Buffer.from('!<arch>\n')];
  for (const [name, content] of members) {
    const data = Buffer.from(content);
    const h = `${name}/`.padEnd(16) + '0'.padEnd(12) + '0'.padEnd(6) + '0'.padEnd(6) + '100644'.padEnd(8) + String(data.length).padEnd(10) + '`\n';
    parts.push(Buffer.from(h, 'latin1'), data);
    if (data.length % 2) parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** A .deb with the given raw DEBIAN/control text (no validation on our side). */
function handDeb(control: string, controlTarGz?: Buffer): Buffer {
  return ar([
    ['debian-binary', '2.0\n'],
    ['control.tar.gz', controlTarGz ?? gzipSync(tar({ './control': control }))],
    ['data.tar.gz', gzipSync(tar({ './usr/share/doc/x/README': 'hello\n' }))],
  ]);
}

/** gzip of a tar holding a 200 MB file of zeros (then a valid control file), built streaming (~200 KB). */
async function bombControlTarGz(): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((r) => gz.on('end', r));
  const write = (b: Buffer) => new Promise<void>((r) => (gz.write(b) ? r() : gz.once('drain', () => r())));
  const size = 200 * 1024 * 1024;
  await write(tarHeader('./', 0, '5'));
  await write(tarHeader('./zeros', size));
  const zeros = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < size / zeros.length; i++) await write(zeros);
  const control = Buffer.from('Package: bomb\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n');
  await write(tarHeader('./control', control.length));
  await write(Buffer.concat([control, Buffer.alloc(512 - control.length)]));
  await write(Buffer.alloc(1024));
  gz.end();
  await done;
  return Buffer.concat(out);
}

/** Offsets of the members of an ar archive. */
function arMembers(buf: Buffer): { name: string; offset: number; size: number }[] {
  const out = [];
  let pos = 8;
  while (pos + 60 <= buf.length) {
    const name = buf.toString('latin1', pos, pos + 16).trim().replace(/\/$/, '');
    const size = Number(buf.toString('latin1', pos + 48, pos + 58).trim());
    out.push({ name, offset: pos + 60, size });
    pos += 60 + size + (size % 2);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP helpers

async function api(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) {
  const res = await fetch(w.url + path, {
    method,
    headers: { Authorization: `Bearer ${w.token}`, ...headers },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : new Uint8Array(body) } : {}),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A request with the path sent exactly as given (fetch would normalise dot-segments). */
function raw(
  base: string,
  method: string,
  path: string,
  opts: { headers?: Record<string, string | number>; body?: Buffer } = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; json: any }> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = httpRequest({ host: u.hostname, port: u.port, method, path, headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json: any;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {}
        resolve({ status: res.statusCode!, headers: res.headers, body, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function get(path: string): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(w.url + path);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

async function listFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => !e.isDirectory())
      .map((e) => join(e.parentPath, e.name).slice(dir.length))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

interface Snapshot {
  list: string;
  packages: Buffer;
  inRelease: Buffer;
  publicFiles: string[];
}

async function snapshot(): Promise<Snapshot> {
  const list = await api('GET', `/api/v1/repos/${ORG_REPO}/packages`);
  assert.equal(list.status, 200);
  const packages = await get(PACKAGES);
  assert.equal(packages.status, 200);
  const inRelease = await get(`${TREE}/InRelease`);
  assert.equal(inRelease.status, 200);
  return { list: JSON.stringify(list.json), packages: packages.body, inRelease: inRelease.body, publicFiles: await listFiles(join(w.dataDir, 'storage/public')) };
}

/** Asserts that a rejected request left no trace and that the server still serves. */
async function assertNothingWritten(beforeSnap: Snapshot, what: string): Promise<void> {
  const afterSnap = await snapshot();
  assert.equal(afterSnap.list, beforeSnap.list, `${what}: the package list changed`);
  assert.equal(afterSnap.packages.toString(), beforeSnap.packages.toString(), `${what}: the served Packages changed`);
  assert.equal(afterSnap.inRelease.toString(), beforeSnap.inRelease.toString(), `${what}: InRelease changed`);
  assert.deepEqual(afterSnap.publicFiles, beforeSnap.publicFiles, `${what}: files appeared or vanished under DATA/storage/public`);
  assert.deepEqual(await listFiles(join(w.dataDir, 'tmp')), [], `${what}: DATA/tmp is not empty`);
  const h = await fetch(`${w.url}/healthz`);
  assert.equal(h.status, 200, `${what}: /healthz after the rejection`);
  await h.arrayBuffer();
}

/** Pushes `body`, expects an error with `status` and `code` and a helpful message, and that nothing was written. */
async function expectRejected(what: string, body: Buffer | string, status: number, code: string, message: RegExp, path = PUSH): Promise<void> {
  const s = await snapshot();
  const r = await api('POST', path, body);
  assert.equal(r.status, status, `${what}: expected HTTP ${status}, got ${r.status}: ${r.text}`);
  assert.equal(r.json?.error?.code, code, `${what}: expected ${code}, got ${r.text}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.match(r.json.error.message, message, `${what}: unhelpful message`);
  assert.doesNotMatch(r.json.error.message, /\n\s+at /, `${what}: the message contains a stack trace`);
  await assertNothingWritten(s, what);
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** "SHA256:" section of an InRelease/Release as a map path -> "hash size". */
function releaseHashes(release: string, section = 'SHA256'): Map<string, string> {
  const m = new Map<string, string>();
  const lines = release.split('\n');
  let i = lines.indexOf(`${section}:`);
  assert.ok(i >= 0, `no ${section} section in:\n${release}`);
  for (i++; i < lines.length && lines[i]!.startsWith(' '); i++) {
    const [hash, size, path] = lines[i]!.trim().split(/\s+/);
    m.set(path!, `${hash} ${size}`);
  }
  return m;
}

function stanzas(packages: string): string[] {
  return packages.split('\n\n').map((s) => s.trim()).filter(Boolean);
}

function fieldOf(stanza: string, name: string): string | undefined {
  return new RegExp(`^${name}: (.*)$`, 'm').exec(stanza)?.[1];
}

// ---------------------------------------------------------------------------------------------------------------

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-push-test-'));
  w = await startWharf();
  const r = await api('POST', '/api/v1/repos', JSON.stringify({ name: ORG_REPO, private: false }), { 'Content-Type': 'application/json' });
  assert.equal(r.status, 201, r.text);
  goodDeb = await readFile(await buildDeb(work, 'Package: hello\nVersion: 1.0\nArchitecture: amd64\nMaintainer: T <t@example.com>\nDescription: hello\n', { 'usr/bin/hello': '#!/bin/sh\necho hi\n' }));
  const p = await api('POST', PUSH, goodDeb);
  assert.equal(p.status, 201, p.text);
  assert.equal(p.json.status, 'created');
  goodInfo = p.json.package;
});

after(async () => {
  await w?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('idempotence and immutability', () => {
  test('an identical re-push answers 200 unchanged and the published metadata keeps its content', async () => {
    const s = await snapshot();
    const r = await api('POST', PUSH, goodDeb);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'unchanged');
    assert.equal(r.json.package.sha256, sha256(goodDeb));
    assert.equal(r.json.package.filename, 'hello_1.0_amd64.deb');
    const a = await snapshot();
    assert.equal(a.packages.toString(), s.packages.toString(), 'Packages changed after an identical re-push');
    assert.deepEqual(releaseHashes(a.inRelease.toString()), releaseHashes(s.inRelease.toString()), 'InRelease hash lines changed');
    assert.deepEqual(releaseHashes(a.inRelease.toString(), 'SHA512'), releaseHashes(s.inRelease.toString(), 'SHA512'));
    assert.equal(a.list, s.list);
    assert.deepEqual(await listFiles(join(w.dataDir, 'tmp')), []);
  });

  test('same name+version+arch with different bytes is a 409 PACKAGE_CONFLICT and the pool keeps the original', async () => {
    const dir = await mkdtemp(join(work, 'conflict-'));
    const other = await readFile(await buildDeb(dir, 'Package: hello\nVersion: 1.0\nArchitecture: amd64\nMaintainer: T <t@example.com>\nDescription: hello, rebuilt\n', { 'usr/bin/hello': '#!/bin/sh\necho changed\n' }));
    assert.notEqual(sha256(other), sha256(goodDeb));
    const s = await snapshot();
    const r = await api('POST', PUSH, other);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.code, 'PACKAGE_CONFLICT');
    assert.match(r.json.error.message, /hello 1\.0/);
    assert.match(r.json.error.message, /bump the version/);
    assert.ok(r.json.error.message.includes(sha256(goodDeb)), 'the message names the published sha256');
    await assertNothingWritten(s, 'conflicting push');
    const filename = fieldOf(stanzas(s.packages.toString())[0]!, 'Filename')!;
    const pool = await get(`/${ORG_REPO}/debian/${filename}`);
    assert.equal(pool.status, 200);
    assert.equal(sha256(pool.body), sha256(goodDeb), 'the pool no longer serves the original bytes');
  });

  test('the same filename through an epoch (1:1.0 vs 1.0) with different bytes is also a conflict', async () => {
    const dir = await mkdtemp(join(work, 'epoch-'));
    const other = await readFile(await buildDeb(dir, 'Package: hello\nVersion: 1:1.0\nArchitecture: amd64\nMaintainer: T <t@example.com>\nDescription: hello epoch\n'));
    const s = await snapshot();
    const r = await api('POST', PUSH, other);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.code, 'PACKAGE_CONFLICT');
    await assertNothingWritten(s, 'epoch conflict');
  });
});

describe('asynchronous pushes (Prefer: respond-async)', () => {
  test('202 with Preference-Applied once stored; the package is published after; a refusal is still an error', async () => {
    const deb = await readFile(await buildDeb(await mkdtemp(join(work, 'async-')), 'Package: later\nVersion: 1.0\nArchitecture: amd64\nDescription: published after the answer\n'));
    const res = await fetch(w.url + PUSH, { method: 'POST', headers: { Authorization: `Bearer ${w.token}`, Prefer: 'wait=5, respond-async' }, body: new Uint8Array(deb) });
    const j = await res.json();
    assert.equal(res.status, 202, JSON.stringify(j));
    assert.equal(res.headers.get('preference-applied'), 'respond-async');
    assert.equal(j.status, 'created');
    assert.equal(j.package.sha256, sha256(deb));
    let listed = false;
    for (let i = 0; i < 100 && !listed; i++) {
      listed = /^Package: later$/m.test((await get(PACKAGES)).body.toString());
      if (!listed) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(listed, 'the package reaches the signed metadata');
    // Without the preference: the usual answers.
    assert.equal((await api('POST', PUSH, deb)).status, 200);
    // Refusals are not deferred: the same name with other bytes is a conflict at once.
    const other = await readFile(await buildDeb(await mkdtemp(join(work, 'async-')), 'Package: later\nVersion: 1.0\nArchitecture: amd64\nDescription: other bytes\n'));
    const conflict = await api('POST', PUSH, other, { Prefer: 'respond-async' });
    assert.equal(conflict.status, 409, conflict.text);
    assert.equal(conflict.json.error.code, 'PACKAGE_CONFLICT');
  });
});

describe('bad input is rejected with a stable code and leaves nothing behind', () => {
  test('empty body → 400 EMPTY_UPLOAD', async () => {
    await expectRejected('empty body', Buffer.alloc(0), 400, 'EMPTY_UPLOAD', /empty/i);
  });

  test('random bytes → 415 UNSUPPORTED_PACKAGE', async () => {
    const bytes = randomBytes(4096);
    bytes.write('garbage!', 0); // never accidentally the ar or RPM magic
    await expectRejected('random bytes', bytes, 415, 'UNSUPPORTED_PACKAGE', /not a Debian package/i);
  });

  test('a text file → 415 UNSUPPORTED_PACKAGE', async () => {
    await expectRejected('text file', 'Package: hello\nVersion: 1.0\nArchitecture: amd64\n', 415, 'UNSUPPORTED_PACKAGE', /not a Debian package/i);
  });

  test('a .deb cut in the middle of the data member → 422 DEB_TRUNCATED', async () => {
    const dir = await mkdtemp(join(work, 'trunc-'));
    const deb = await readFile(
      await buildDeb(dir, 'Package: trunc\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n', { 'usr/share/trunc/blob': randomBytes(20000).toString('base64') }),
    );
    const data = arMembers(deb).find((m) => m.name.startsWith('data.tar'))!;
    assert.ok(data.size > 1000, 'the data member should be large enough to cut');
    await expectRejected('cut in data', deb.subarray(0, data.offset + Math.floor(data.size / 2)), 422, 'DEB_TRUNCATED', /truncated/i);
  });

  test('a .deb cut inside the control member → 422 DEB_TRUNCATED', async () => {
    const dir = await mkdtemp(join(work, 'trunc2-'));
    const deb = await readFile(await buildDeb(dir, 'Package: trunc2\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n'));
    const control = arMembers(deb).find((m) => m.name.startsWith('control.tar'))!;
    await expectRejected('cut in control', deb.subarray(0, control.offset + Math.floor(control.size / 2)), 422, 'DEB_TRUNCATED', /truncated/i);
  });

  test('flipped ar magic → 415 UNSUPPORTED_PACKAGE', async () => {
    const deb = Buffer.from(goodDeb);
    deb.write('!<arcH>\n', 0, 'latin1');
    await expectRejected('flipped magic', deb, 415, 'UNSUPPORTED_PACKAGE', /!<arch>/);
  });

  test('a control.tar.gz decompression bomb (200 MB of zeros) → 422 DEB_CONTROL_TOO_LARGE', async () => {
    const bomb = await bombControlTarGz();
    assert.ok(bomb.length < 1024 * 1024, `bomb is ${bomb.length} bytes`);
    const started = Date.now();
    await expectRejected('decompression bomb', handDeb('', bomb), 422, 'DEB_CONTROL_TOO_LARGE', /decompress/i);
    assert.ok(Date.now() - started < 20_000, 'rejecting the bomb took too long');
  });

  test('control with an embedded blank line (second stanza smuggled into Packages) → 422 DEB_BAD_CONTROL', async () => {
    const control = 'Package: trick\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n\nPackage: evil\nVersion: 9.9\nArchitecture: amd64\n';
    await expectRejected('blank line', handDeb(control), 422, 'DEB_BAD_CONTROL', /stanza/i);
  });

  test('control with a whitespace-only continuation line (breaks the Packages stanza) → 422 DEB_BAD_CONTROL', async () => {
    const control = 'Package: trick\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n \t\nFilename: ../../../../etc/passwd\n';
    await expectRejected('blank continuation', handDeb(control), 422, 'DEB_BAD_CONTROL', /blank line/i);
  });

  test('control with a carriage return inside a value → 422 DEB_BAD_CONTROL', async () => {
    const control = 'Package: trick\nVersion: 1.0\nArchitecture: amd64\nDescription: x\r\nFilename: evil\n';
    await expectRejected('carriage return', handDeb(control), 422, 'DEB_BAD_CONTROL', /carriage return/i);
  });

  test('duplicate field → 422 DEB_BAD_CONTROL', async () => {
    const control = 'Package: dup\nVersion: 1.0\nVersion: 2.0\nArchitecture: amd64\nDescription: x\n';
    await expectRejected('duplicate field', handDeb(control), 422, 'DEB_BAD_CONTROL', /duplicate field Version/i);
  });

  test('invalid package name "Foo_Bar" → 422 DEB_BAD_FIELD', async () => {
    await expectRejected('Foo_Bar', handDeb('Package: Foo_Bar\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n'), 422, 'DEB_BAD_FIELD', /Foo_Bar/);
  });

  test("version with '/' → 422 DEB_BAD_FIELD", async () => {
    await expectRejected('version slash', handDeb('Package: slashy\nVersion: 1.0/../../x\nArchitecture: amd64\nDescription: x\n'), 422, 'DEB_BAD_FIELD', /version/i);
  });

  test("architecture with '/' → 422 DEB_BAD_FIELD", async () => {
    await expectRejected('arch slash', handDeb('Package: slashy\nVersion: 1.0\nArchitecture: amd64/../../x\nDescription: x\n'), 422, 'DEB_BAD_FIELD', /Architecture/);
  });

  test('a Filename field in the control file cannot redirect the Packages entry', async () => {
    const control = 'Package: sneaky\nVersion: 1.0\nArchitecture: amd64\nFilename: ../../../../etc/passwd\nSize: 1\nSHA256: 00\nDescription: x\n';
    const r = await api('POST', `/api/v1/repos/${ORG_REPO}/distributions/debian/sneaky/packages`, handDeb(control));
    assert.equal(r.status, 201, r.text);
    const p = await get(`/${ORG_REPO}/debian/dists/sneaky/main/binary-amd64/Packages`);
    assert.equal(p.status, 200);
    const st = stanzas(p.body.toString());
    assert.equal(st.length, 1);
    assert.equal(fieldOf(st[0]!, 'Filename'), 'pool/sneaky/main/s/sneaky/sneaky_1.0_amd64.deb');
    assert.equal((p.body.toString().match(/^Filename:/gm) ?? []).length, 1);
    assert.equal((p.body.toString().match(/^SHA256:/gm) ?? []).length, 1);
    const pool = await get(`/${ORG_REPO}/debian/pool/sneaky/main/s/sneaky/sneaky_1.0_amd64.deb`);
    assert.equal(pool.status, 200);
  });

  test('an RPM pushed to a deb distribution → 415 UNSUPPORTED_PACKAGE', async () => {
    await expectRejected('rpm', await readFile(RPM), 415, 'UNSUPPORTED_PACKAGE', /RPM/);
  });

  test('unknown ORG/REPO → 404 REPO_NOT_FOUND', async () => {
    await expectRejected('unknown repo', goodDeb, 404, 'REPO_NOT_FOUND', /nope\/missing.*wharf repo create/, `/api/v1/repos/nope/missing/distributions/${DIST}/packages`);
  });

  for (const [label, os, dist] of [
    ['dist ".."', 'debian', '..'],
    ['os ".."', '..', 'bookworm'],
    ['dist "%2e%2e"', 'debian', '%2e%2e'],
    ['os "%2e%2e"', '%2e%2e', 'bookworm'],
    ['dist "a b" (encoded)', 'debian', 'a%20b'],
    ['os "a b" (encoded)', 'a%20b', 'bookworm'],
    ['70-character dist', 'debian', 'd'.repeat(70)],
    ['70-character os', 'o'.repeat(70), 'bookworm'],
    ['dist with an encoded slash', 'debian', 'a%2Fb'],
    ['reserved os "pool"', 'pool', 'bookworm'],
  ] as const) {
    test(`invalid distribution: ${label} → 400`, async () => {
      const s = await snapshot();
      const r = await raw(w.url, 'POST', `/api/v1/repos/${ORG_REPO}/distributions/${os}/${dist}/packages`, {
        headers: { Authorization: `Bearer ${w.token}`, 'Content-Length': goodDeb.length },
        body: goodDeb,
      });
      assert.equal(r.status, 400, `${label}: ${r.status} ${r.body}`);
      assert.ok(['INVALID_DISTRIBUTION', 'BAD_REQUEST'].includes(r.json?.error?.code), `${label}: ${r.body}`);
      assert.ok(r.json.error.message.length > 10);
      await assertNothingWritten(s, label);
      assert.deepEqual(await listFiles(join(w.dataDir, 'storage/public/acme/tools')).then((f) => f.filter((p) => /a b|\.\.|o{70}|d{70}/.test(p))), []);
    });
  }

  test('dot-segments in an API path are rejected, not resolved to another resource', async () => {
    // pathSegments() documents that dot-segments are rejected; a path naming nope/missing must not act on acme/tools.
    const r = await raw(w.url, 'POST', `/api/v1/repos/nope/missing/../../${ORG_REPO}/distributions/${DIST}/packages`, {
      headers: { Authorization: `Bearer ${w.token}`, 'Content-Length': goodDeb.length },
      body: goodDeb,
    });
    assert.equal(r.status, 400, `a path through nope/missing/../.. reached ${ORG_REPO}: ${r.status} ${r.body}`);
    assert.equal(r.json?.error?.code, 'BAD_REQUEST');
  });

  test('no token → 401 with WWW-Authenticate, nothing written', async () => {
    const s = await snapshot();
    const res = await fetch(w.url + PUSH, { method: 'POST', body: new Uint8Array(goodDeb) });
    const j = (await res.json()) as any;
    assert.equal(res.status, 401);
    assert.equal(j.error.code, 'UNAUTHORIZED');
    assert.match(res.headers.get('www-authenticate') ?? '', /^(Basic|Bearer)\b/);
    await assertNothingWritten(s, 'no token');
  });

  test('wrong token → 401, nothing written', async () => {
    const s = await snapshot();
    const r = await api('POST', PUSH, goodDeb, { Authorization: 'Bearer wharf_admin_not-the-right-one' });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.code, 'UNAUTHORIZED');
    assert.ok(r.headers.get('www-authenticate'));
    await assertNothingWritten(s, 'wrong token');
  });

  test('a client that disconnects mid-upload leaves nothing behind', async () => {
    const s = await snapshot();
    const u = new URL(w.url);
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path: PUSH,
        headers: { Authorization: `Bearer ${w.token}`, 'Content-Length': goodDeb.length },
      });
      req.on('error', () => resolve());
      req.on('response', (res) => {
        res.resume();
        resolve();
      });
      req.write(goodDeb.subarray(0, 600));
      setTimeout(() => req.destroy(), 200);
    });
    // Give the server a moment to notice the reset.
    await new Promise((r) => setTimeout(r, 300));
    await assertNothingWritten(s, 'aborted upload');
  });
});

describe('upload size limit', () => {
  let small: WharfInstance;
  const startSmall = async () => {
    small = await startWharf({ env: { WHARF_MAX_UPLOAD_BYTES: '100000' } });
    const r = await fetch(`${small.url}/api/v1/repos`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${small.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: ORG_REPO }),
    });
    assert.equal(r.status, 201);
  };
  /** The server process must survive every rejection; show its last words when it did not. */
  const assertAlive = async (what: string) => {
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(small.process.exitCode, null, `${what}: the server process exited (${small.process.exitCode}):\n${small.output().split('\n').filter((l) => !l.startsWith('{')).slice(-15).join('\n')}`);
    const h = await fetch(`${small.url}/healthz`);
    assert.equal(h.status, 200);
  };
  before(startSmall);
  // A crash in one test must not fail the next one: restart a dead server.
  beforeEach(async () => {
    if (small.process.exitCode !== null || small.process.signalCode !== null) {
      await small.stop();
      await startSmall();
    }
  });
  after(async () => {
    await small?.stop();
  });

  const big = () => ar([['debian-binary', '2.0\n'], ['control.tar.gz', gzipSync(tar({ './control': 'Package: big\nVersion: 1\nArchitecture: amd64\n' }))], ['data.tar', randomBytes(150_000)]]);

  test('oversized upload with Content-Length → 413 PAYLOAD_TOO_LARGE', async () => {
    const r = await raw(small.url, 'POST', PUSH, { headers: { Authorization: `Bearer ${small.token}`, 'Content-Length': big().length }, body: big() });
    assert.equal(r.status, 413, String(r.body));
    assert.equal(r.json.error.code, 'PAYLOAD_TOO_LARGE');
    assert.match(r.json.error.message, /100000/);
    assert.match(r.json.error.message, /WHARF_MAX_UPLOAD_BYTES/);
    assert.deepEqual(await listFiles(join(small.dataDir, 'tmp')), []);
    assert.deepEqual(await listFiles(join(small.dataDir, 'storage/public')), []);
    await assertAlive('oversized upload');
  });

  test('an upload just under the limit is accepted', async () => {
    const dir = await mkdtemp(join(work, 'small-'));
    const deb = await readFile(await buildDeb(dir, 'Package: fits\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n'));
    assert.ok(deb.length < 100000);
    const r = await fetch(`${small.url}${PUSH}`, { method: 'POST', headers: { Authorization: `Bearer ${small.token}` }, body: deb });
    assert.equal(r.status, 201, await r.text());
  });

  test('oversized chunked upload (no Content-Length) → 413 PAYLOAD_TOO_LARGE, scratch file removed', async () => {
    const publishedBefore = await listFiles(join(small.dataDir, 'storage/public'));
    const body = big();
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < body.length; i += 16384) c.enqueue(body.subarray(i, i + 16384));
        c.close();
      },
    });
    let status = 0;
    let j: any;
    try {
      const res = await fetch(`${small.url}${PUSH}`, { method: 'POST', headers: { Authorization: `Bearer ${small.token}` }, body: stream, duplex: 'half' } as RequestInit);
      status = res.status;
      j = await res.json();
    } catch (e) {
      await assertAlive(`chunked oversized upload (client saw ${(e as Error).message}: ${String((e as { cause?: unknown }).cause)})`);
      throw e;
    }
    await assertAlive('chunked oversized upload');
    assert.equal(status, 413);
    assert.equal(j.error.code, 'PAYLOAD_TOO_LARGE');
    assert.deepEqual(await listFiles(join(small.dataDir, 'tmp')), []);
    assert.deepEqual(await listFiles(join(small.dataDir, 'storage/public')), publishedBefore);
  });

  test('a refused upload still arriving: the answer comes while the client sends, the rest is read, the connection stays usable', async () => {
    const { connect } = await import('node:net');
    const u = new URL(small.url);
    const sock = connect(Number(u.port), u.hostname);
    await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
    let received = '';
    sock.on('data', (c: Buffer) => (received += c.toString('latin1')));
    const errors: Error[] = [];
    sock.on('error', (e) => errors.push(e));
    const waitFor = async (re: RegExp, what: string) => {
      for (let i = 0; i < 200 && !re.test(received); i++) await new Promise((r) => setTimeout(r, 25));
      assert.match(received, re, what);
    };
    sock.write(`POST ${PUSH} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${small.token}\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const body = big();
    const half = 120_000; // past the 100,000-byte limit, and not the whole body
    sock.write(`${half.toString(16)}\r\n`);
    sock.write(body.subarray(0, half));
    sock.write('\r\n');
    // The answer arrives while the client has not finished sending.
    await waitFor(/^HTTP\/1\.1 413 [^]*\r\n\r\n[^]*PAYLOAD_TOO_LARGE[^]*\}/, 'a 413 before the upload ended');
    assert.doesNotMatch(received, /connection: close/i, 'a short remainder is read, not cut off');
    // The rest goes through without a reset, and the same connection answers the next request.
    const rest = body.subarray(half);
    sock.write(`${rest.length.toString(16)}\r\n`);
    sock.write(rest);
    sock.write('\r\n0\r\n\r\n');
    sock.write(`GET /healthz HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    await waitFor(/HTTP\/1\.1 200 [^]*"status":\s*"ok"/, 'the next request on the same connection is answered');
    sock.destroy();
    assert.deepEqual(errors, []);
    await assertAlive('lingering after a refused upload');
  });

  test('an oversized JSON body (> 64 KiB) to POST /repos → 413 PAYLOAD_TOO_LARGE and the server survives', async () => {
    const body = JSON.stringify({ name: 'acme/big', pad: 'x'.repeat(100_000) });
    let status = 0;
    let j: any;
    try {
      const res = await fetch(`${small.url}/api/v1/repos`, { method: 'POST', headers: { Authorization: `Bearer ${small.token}`, 'Content-Type': 'application/json' }, body });
      status = res.status;
      j = await res.json();
    } catch (e) {
      await assertAlive(`oversized JSON (client saw ${(e as Error).message}: ${String((e as { cause?: unknown }).cause)})`);
      throw e;
    }
    await assertAlive('oversized JSON');
    assert.equal(status, 413);
    assert.equal(j.error.code, 'PAYLOAD_TOO_LARGE');
  });

});

describe('concurrency', () => {
  test('30 different packages pushed at once are all published (group commit)', async () => {
    const dir = await mkdtemp(join(work, 'conc-'));
    const debs = await Promise.all(
      Array.from({ length: 30 }, (_, i) => buildDeb(dir, `Package: conc${i}\nVersion: 1.${i}\nArchitecture: amd64\nDescription: package ${i}\n`).then((f) => readFile(f))),
    );
    const path = `/api/v1/repos/${ORG_REPO}/distributions/debian/conc/packages`;
    const logBefore = w.output().length;
    const results = await Promise.all(debs.map((d) => api('POST', path, d)));
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 201, `push ${i}: ${r.text}`);
      assert.equal(r.json.status, 'created');
    }
    const base = `/${ORG_REPO}/debian/dists/conc/main/binary-amd64`;
    const plain = await get(`${base}/Packages`);
    const gz = await get(`${base}/Packages.gz`);
    const xz = await get(`${base}/Packages.xz`);
    assert.equal(plain.status, 200);
    assert.equal(gz.status, 200);
    assert.equal(xz.status, 200);
    const xzFile = join(dir, 'Packages.xz');
    await (await import('node:fs/promises')).writeFile(xzFile, xz.body);
    const fromXz = (await execFileP('xz', ['-dc', xzFile], { encoding: 'buffer', maxBuffer: 1 << 26 })).stdout as Buffer;
    const fromGz = gunzipSync(gz.body);
    for (const [label, text] of [
      ['Packages', plain.body.toString()],
      ['Packages.gz', fromGz.toString()],
      ['Packages.xz', fromXz.toString()],
    ] as const) {
      const names = stanzas(text).map((s) => fieldOf(s, 'Package')).sort();
      assert.deepEqual(names, Array.from({ length: 30 }, (_, i) => `conc${i}`).sort(), `${label} does not list all 30 packages`);
    }
    assert.ok(fromGz.equals(plain.body), 'Packages.gz does not decompress to Packages');
    assert.ok(fromXz.equals(plain.body), 'Packages.xz does not decompress to Packages');

    // InRelease names exactly the files served.
    const inRelease = (await get(`/${ORG_REPO}/debian/dists/conc/InRelease`)).body.toString();
    const h = releaseHashes(inRelease);
    for (const [name, body] of [['Packages', plain.body], ['Packages.gz', gz.body], ['Packages.xz', xz.body]] as const) {
      assert.equal(h.get(`main/binary-amd64/${name}`), `${sha256(body)} ${body.length}`, `InRelease entry for ${name}`);
    }

    // Group commit: fewer publishes than pushes (the server logs one 'published' line per generation).
    const published = w
      .output()
      .slice(logBefore)
      .split('\n')
      .filter((l) => l.includes('"published"') && l.includes('acme/tools/debian/conc'));
    const generations = published.map((l) => JSON.parse(l).generation as number);
    assert.ok(published.length > 0, 'no "published" log lines seen');
    assert.equal(Math.max(...generations), published.length, 'generation numbers and publish log lines disagree');
    assert.ok(published.length < 30, `expected group commit to publish fewer than 30 times, saw ${published.length}`);
    const lastLine = JSON.parse(published.at(-1)!);
    assert.equal(lastLine.packages, 30);
  });
});

describe('yank', () => {
  test('yank removes the package from Packages and the pool file stays downloadable', async () => {
    const dir = await mkdtemp(join(work, 'yank-'));
    const keep = await readFile(await buildDeb(dir, 'Package: keepme\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n'));
    const gone = await readFile(await buildDeb(dir, 'Package: yankme\nVersion: 2.0-1\nArchitecture: all\nDescription: x\n'));
    const path = `/api/v1/repos/${ORG_REPO}/distributions/debian/yanky/packages`;
    assert.equal((await api('POST', path, keep)).status, 201);
    assert.equal((await api('POST', path, gone)).status, 201);
    const base = `/${ORG_REPO}/debian/dists/yanky/main/binary-amd64/Packages`;
    const beforeYank = (await get(base)).body.toString();
    const poolPath = fieldOf(stanzas(beforeYank).find((s) => fieldOf(s, 'Package') === 'yankme')!, 'Filename')!;
    const oldInRelease = (await get(`/${ORG_REPO}/debian/dists/yanky/InRelease`)).body.toString();

    const r = await api('DELETE', `${path}/yankme_2.0-1_all.deb`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.yanked.filename, 'yankme_2.0-1_all.deb');
    assert.equal(r.json.yanked.sha256, sha256(gone));

    const afterYank = (await get(base)).body.toString();
    assert.deepEqual(stanzas(afterYank).map((s) => fieldOf(s, 'Package')), ['keepme']);
    const arm = (await get(`/${ORG_REPO}/debian/dists/yanky/main/binary-arm64/Packages`)).body.toString();
    assert.equal(arm.includes('yankme'), false, 'an Architecture: all package stays in binary-arm64 after the yank');
    const list = await api('GET', `/api/v1/repos/${ORG_REPO}/packages?distribution=debian/yanky`);
    assert.deepEqual(list.json.packages.map((p: any) => p.name), ['keepme']);

    const pool = await get(`/${ORG_REPO}/debian/${poolPath}`);
    assert.equal(pool.status, 200, 'the yanked pool file is not downloadable during retention');
    assert.equal(sha256(pool.body), sha256(gone));
    // Clients with the previous InRelease still find the by-hash index it named (apt fetches a compressed one).
    const oldHash = releaseHashes(oldInRelease).get('main/binary-amd64/Packages.gz')!.split(' ')[0]!;
    const byHash = await get(`/${ORG_REPO}/debian/dists/yanky/main/binary-amd64/by-hash/SHA256/${oldHash}`);
    assert.equal(byHash.status, 200);
    assert.equal(gunzipSync(byHash.body).toString(), beforeYank);

    // Yanking it again: 404 PACKAGE_NOT_FOUND.
    const again = await api('DELETE', `${path}/yankme_2.0-1_all.deb`);
    assert.equal(again.status, 404, again.text);
    assert.equal(again.json.error.code, 'PACKAGE_NOT_FOUND');
  });

  test('`wharf yank` of a missing file → 404 PACKAGE_NOT_FOUND (API and CLI)', async () => {
    const r = await api('DELETE', `/api/v1/repos/${ORG_REPO}/distributions/${DIST}/packages/nothere_1.0_amd64.deb`);
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json.error.code, 'PACKAGE_NOT_FOUND');
    assert.match(r.json.error.message, /nothere_1\.0_amd64\.deb/);
    const c = await w.cli(['yank', `${ORG_REPO}/${DIST}`, 'nothere_1.0_amd64.deb']);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /PACKAGE_NOT_FOUND/);
    assert.match(c.stderr, /nothere_1\.0_amd64\.deb/);
    // in a distribution that does not exist at all
    const d = await api('DELETE', `/api/v1/repos/${ORG_REPO}/distributions/debian/neverused/packages/x_1_amd64.deb`);
    assert.equal(d.status, 404, d.text);
    assert.equal(d.json.error.code, 'PACKAGE_NOT_FOUND');
  });

  test('the pushed file survives as served: size and sha256 of the pool file match the upload', async () => {
    const st = await stat(join(w.dataDir, 'storage/public/acme/tools/debian/pool/bookworm/main/h/hello/hello_1.0_amd64.deb'));
    assert.equal(st.size, goodDeb.length);
    assert.equal(goodInfo.sha256, sha256(goodDeb));
  });
});
