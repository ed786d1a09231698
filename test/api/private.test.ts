// Private repositories and deploy tokens over real HTTP: the CLI's repo/token commands, the three credential forms,
// 401s that do not tell a private repository from a missing one, metadata served directly, package files through
// 302 to HMAC-signed short-lived URLs, private caching headers, the served .repo file with credentials, API
// authorisation by scope and reach (repository / organisation / server admin), revocation, expiry, rotation with a
// grace period, `token list` without secrets and with last use, and no secret in the server's output.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';
import { buildRpm } from '../helpers/rpm.ts';

// A rate limiter for failed authentications is being configured (WHARF_AUTH_FAILURES_PER_MINUTE): this file sends
// many wrong credentials on purpose, so it raises the limit.
const SERVER_ENV = { WHARF_AUTH_FAILURES_PER_MINUTE: '100000' };

let w: WharfInstance;
let work: string;
const debs: Record<string, Buffer> = {};
const debFiles: Record<string, string> = {};
let rpmFile: string;
let rpmBytes: Buffer;

interface Token {
  id: number;
  name: string;
  username: string;
  token: string;
  scopes: string[];
  expires_at: string | null;
}
let deploy: Token; // default-deploy of acme/secret (read)
/** Every secret handed out or presented in this file, for the log check. */
const secrets = new Set<string>();

const INRELEASE = '/acme/secret/debian/dists/bookworm/InRelease';
const PACKAGES = '/acme/secret/debian/dists/bookworm/main/binary-amd64/Packages';
const POOL = '/acme/secret/debian/pool/bookworm/main/h/hello/hello_1.0_amd64.deb';
const POOL2 = '/acme/secret/debian/pool/bookworm/main/g/goodbye/goodbye_2.0_amd64.deb';
const REPOMD = '/acme/secret/el/9/x86_64/repodata/repomd.xml';
const RPM_PATH = '/acme/secret/el/9/x86_64/Packages/t/tool-1.0-1.x86_64.rpm';

const basic = (user: string, pass: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await fetch(path.startsWith('http') ? path : w.url + path, { method, headers, redirect: 'manual' });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString('utf8') };
}

async function api(method: string, path: string, token: string, body?: Buffer | object) {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  let payload: BodyInit | undefined;
  if (Buffer.isBuffer(body)) payload = new Uint8Array(body);
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(`${w.url}/api/v1/${path}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

async function cliOk(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await w.cli(args, env);
  assert.equal(r.code, 0, `wharf ${args.join(' ')} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function createToken(scope: string, name: string, scopes: string[] = ['read'], extra: string[] = []): Promise<Token> {
  const out = await cliOk(['token', 'create', scope, '--name', name, ...scopes.flatMap((s) => ['--scope', s]), ...extra, '--json']);
  const t = JSON.parse(out) as Token;
  secrets.add(t.token);
  return t;
}

/** Headers without the ones that legitimately differ between two responses. */
function comparable(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((v, k) => {
    if (k !== 'date') out[k] = v;
  });
  return out;
}

function assertPrivateHeaders(h: Headers, what: string): void {
  assert.equal(h.get('cache-control'), 'private, no-store', `${what}: Cache-Control`);
  assert.match(h.get('vary') ?? '', /(^|,\s*)Authorization(\s*,|$)/i, `${what}: Vary "${h.get('vary')}"`);
}

/** Polls until `path` with `headers` answers `status`; returns the milliseconds that took. Fails after `limitMs`. */
async function eventually(path: string, headers: Record<string, string>, status: number, limitMs: number): Promise<number> {
  const start = Date.now();
  let last = 0;
  for (;;) {
    last = (await get(path, headers)).status;
    if (last === status) return Date.now() - start;
    if (Date.now() - start > limitMs) assert.fail(`${path} still answers ${last} (want ${status}) after ${Date.now() - start} ms`);
    await sleep(200);
  }
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-private-test-'));
  w = await startWharf({ env: SERVER_ENV });
  debFiles.hello = await buildDeb(work, 'Package: hello\nVersion: 1.0\nArchitecture: amd64\nDescription: hello\n', { 'usr/bin/hello': '#!/bin/sh\necho hi\n' });
  debFiles.goodbye = await buildDeb(work, 'Package: goodbye\nVersion: 2.0\nArchitecture: amd64\nDescription: goodbye\n', { 'usr/bin/goodbye': '#!/bin/sh\necho bye\n' });
  debFiles.extra = await buildDeb(work, 'Package: extra\nVersion: 3.0\nArchitecture: amd64\nDescription: extra\n');
  debFiles.extra2 = await buildDeb(work, 'Package: extra2\nVersion: 3.0\nArchitecture: amd64\nDescription: extra2\n');
  for (const [k, f] of Object.entries(debFiles)) debs[k] = await readFile(f);
  rpmFile = (await buildRpm(work, { name: 'tool', version: '1.0', release: '1', arch: 'x86_64' })).rpm;
  rpmBytes = await readFile(rpmFile);

  // The default deploy token, shown by `repo create --private --json`.
  const created = JSON.parse(await cliOk(['repo', 'create', 'acme/secret', '--private', '--json']));
  assert.equal(created.repository.private, true, JSON.stringify(created));
  deploy = created.deploy_token;
  assert.ok(deploy, `repo create --private --json has no deploy_token: ${JSON.stringify(created)}`);
  secrets.add(deploy.token);

  await cliOk(['repo', 'create', 'acme/pub']);
  await cliOk(['repo', 'create', 'acme/other', '--private', '--no-deploy-token']);
  await cliOk(['repo', 'create', 'beta/secret', '--private', '--no-deploy-token']);
  await cliOk(['push', 'acme/secret/debian/bookworm', debFiles.hello!, debFiles.goodbye!]);
  await cliOk(['push', 'acme/secret/el/9', rpmFile]);
  await cliOk(['push', 'acme/pub/debian/bookworm', debFiles.hello!]);
  await cliOk(['push', 'acme/other/debian/bookworm', debFiles.hello!]);
  await cliOk(['push', 'beta/secret/debian/bookworm', debFiles.hello!]);
});

after(async () => {
  await w?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('repo create --private and the token CLI', () => {
  test('a private repository comes with a read-only deploy token "default-deploy"', () => {
    assert.equal(deploy.name, 'default-deploy');
    assert.match(deploy.username, /^wharf-deploy-\d+$/);
    assert.match(deploy.token, /^wharf_deploy_[A-Za-z0-9_-]{20,}$/);
    assert.deepEqual(deploy.scopes, ['read']);
    assert.equal(deploy.expires_at, null);
    assert.equal(typeof deploy.id, 'number');
  });

  test('the human output of repo create --private shows the username and the token', async () => {
    const out = await cliOk(['repo', 'create', 'acme/human', '--private']);
    assert.match(out, /private repository acme\/human/, out);
    assert.match(out, /default-deploy/, out);
    const user = /username:\s+(wharf-deploy-\d+)/.exec(out);
    const tok = /token:\s+(wharf_deploy_\S+)/.exec(out);
    assert.ok(user && tok, out);
    secrets.add(tok[1]!);
    // The pair works (the repository is empty, so the API is the place to check it).
    const res = await fetch(`${w.url}/api/v1/repos/acme/human`, { headers: basic(user[1]!, tok[1]!) });
    assert.equal(res.status, 200, await res.text());
  });

  test('--no-deploy-token skips the token; a public repository gets none', async () => {
    const r = JSON.parse(await cliOk(['repo', 'create', 'acme/bare', '--private', '--no-deploy-token', '--json']));
    assert.equal(r.repository.private, true);
    assert.equal(r.deploy_token, undefined, JSON.stringify(r));
    const list = JSON.parse(await cliOk(['token', 'list', 'acme/bare', '--json']));
    assert.deepEqual(list.tokens, []);
    const pub = JSON.parse(await cliOk(['repo', 'create', 'acme/pub2', '--json']));
    assert.equal(pub.deploy_token, undefined, JSON.stringify(pub));
  });

  test('token create --json has exactly id, name, username, token, scopes, expires_at', async () => {
    const t = await createToken('acme/secret', 'ci-write', ['write'], ['--expires', '2099-06-30']);
    assert.deepEqual(Object.keys(t).sort(), ['expires_at', 'id', 'name', 'scopes', 'token', 'username']);
    assert.equal(t.name, 'ci-write');
    assert.equal(t.username, `wharf-deploy-${t.id}`);
    assert.deepEqual(t.scopes, ['write']);
    assert.equal(t.expires_at, '2099-06-30T00:00:00.000Z');
    // Names are unique per scope.
    const dup = await w.cli(['token', 'create', 'acme/secret', '--name', 'ci-write']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /TOKEN_EXISTS/, dup.stderr);
    // Past expiry is refused.
    const past = await w.cli(['token', 'create', 'acme/secret', '--name', 'old', '--expires', '2001-01-01']);
    assert.notEqual(past.code, 0);
    assert.match(past.stderr, /BAD_REQUEST/, past.stderr);
  });
});

describe('the private tree', () => {
  test('anonymous requests get 401 with WWW-Authenticate: Basic, identical to a repository that does not exist', async () => {
    for (const [real, missing] of [
      [INRELEASE, '/acme/nope/debian/dists/bookworm/InRelease'],
      [POOL, '/acme/nope/debian/pool/bookworm/main/h/hello/hello_1.0_amd64.deb'],
      ['/acme/secret/gpgkey', '/nobody/nothing/gpgkey'],
      [REPOMD, '/acme/nope/el/9/x86_64/repodata/repomd.xml'],
      ['/acme/secret/el/9.repo', '/acme/nope/el/9.repo'],
    ] as const) {
      const a = await get(real);
      const b = await get(missing);
      assert.equal(a.status, 401, `${real}: ${a.status} ${a.text}`);
      assert.match(a.headers.get('www-authenticate') ?? '', /^Basic\b/, `${real}: WWW-Authenticate`);
      assert.equal(JSON.parse(a.text).error.code, 'UNAUTHORIZED');
      assertPrivateHeaders(a.headers, `401 for ${real}`);
      assert.equal(b.status, a.status, `${missing} vs ${real}`);
      assert.deepEqual(comparable(b.headers), comparable(a.headers), `headers of ${missing} vs ${real}`);
      assert.equal(b.text, a.text, `body of ${missing} vs ${real}`);
    }
  });

  test('wrong credentials and valid tokens without access get the same 401 as an unknown repository', async () => {
    const otherRepo = await createToken('acme/other', 'other-read');
    const otherOrg = await createToken('beta', 'beta-org-read');
    const wrong = 'wharf_deploy_' + 'x'.repeat(43);
    secrets.add(wrong);
    const cases: [string, Record<string, string>][] = [
      ['wrong bearer', bearer(wrong)],
      ['wrong basic password', basic(deploy.username, wrong)],
      ['wrong basic token-as-user', basic(wrong, '')],
      ['token of another repository (bearer)', bearer(otherRepo.token)],
      ['token of another repository (basic)', basic(otherRepo.username, otherRepo.token)],
      ['token of another organisation', basic(otherOrg.username, otherOrg.token)],
      ['malformed header', { Authorization: 'Basic !!!notbase64' }],
    ];
    const reference = await get('/acme/nope/debian/dists/bookworm/InRelease');
    for (const [what, headers] of cases) {
      for (const path of [INRELEASE, POOL, '/acme/nope/debian/dists/bookworm/InRelease']) {
        const r = await get(path, headers);
        assert.equal(r.status, 401, `${what} ${path}: ${r.status} ${r.text}`);
        assert.deepEqual(comparable(r.headers), comparable(reference.headers), `${what} ${path}: headers`);
        assert.equal(r.text, reference.text, `${what} ${path}: body`);
      }
    }
  });

  test('all three credential forms read metadata directly (200), with private caching headers', async () => {
    const forms: [string, Record<string, string>][] = [
      ['basic user+token', basic(deploy.username, deploy.token)],
      ['basic token as user, empty password', basic(deploy.token, '')],
      ['bearer', bearer(deploy.token)],
    ];
    for (const [what, headers] of forms) {
      for (const path of [
        INRELEASE,
        '/acme/secret/debian/dists/bookworm/Release',
        PACKAGES,
        '/acme/secret/gpgkey',
        '/acme/secret/package-gpgkey',
        REPOMD,
        `${REPOMD}.key`,
        `${REPOMD}.asc`,
      ]) {
        const r = await get(path, headers);
        assert.equal(r.status, 200, `${what} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
        assertPrivateHeaders(r.headers, `${what} ${path}`);
      }
    }
    const pk = await get(PACKAGES, bearer(deploy.token));
    assert.match(pk.text, /^Package: hello$/m);
    assert.match(pk.text, /^Filename: pool\/bookworm\/main\/h\/hello\/hello_1\.0_amd64\.deb$/m, pk.text);
  });

  test('a package file answers 302 to a signed URL that works without credentials', async () => {
    for (const [path, bytes] of [
      [POOL, debs.hello!],
      [RPM_PATH, rpmBytes],
    ] as const) {
      for (const method of ['GET', 'HEAD']) {
        const r = await get(path, basic(deploy.username, deploy.token), method);
        assert.equal(r.status, 302, `${method} ${path}: ${r.status} ${r.text}`);
        assertPrivateHeaders(r.headers, `302 for ${method} ${path}`);
        const loc = r.headers.get('location') ?? '';
        assert.match(loc, new RegExp(`^${w.url.replace(/[.]/g, '\\.')}${path.replace(/[.]/g, '\\.')}\\?expires=\\d+&signature=[A-Za-z0-9_-]+$`), loc);
        const expires = Number(new URL(loc).searchParams.get('expires'));
        const now = Date.now() / 1000;
        assert.ok(expires > now + 200 && expires <= now + 301, `expires=${expires} is not ~300 s from now (${now})`);
        const f = await get(loc, {}, method);
        assert.equal(f.status, 200, `${method} signed ${loc}: ${f.status} ${f.text.slice(0, 200)}`);
        assertPrivateHeaders(f.headers, `signed ${method} ${path}`);
        if (path.endsWith('.deb')) assert.equal(Number(f.headers.get('content-length')), bytes.length);
        // RPMs are re-signed with the package key on push: only the .deb is byte-identical.
        if (method === 'GET' && path.endsWith('.deb')) assert.ok(f.body.equals(bytes), `signed download of ${path} differs from the pushed file`);
        if (method === 'GET' && path.endsWith('.rpm')) assert.equal(f.body.subarray(0, 4).toString('hex'), 'edabeedb', 'not an RPM');
      }
    }
    // Without credentials the package path is a 401, not a redirect.
    assert.equal((await get(POOL)).status, 401);
    // A missing package with valid credentials: 404, not a signed link.
    const missing = await get('/acme/secret/debian/pool/bookworm/main/n/nope/nope_1_amd64.deb', bearer(deploy.token));
    assert.equal(missing.status, 404, missing.text);
    assertPrivateHeaders(missing.headers, '404 in a private repository');
  });

  test('tampered, moved or re-dated signatures are refused with 403 SIGNED_URL_INVALID', async () => {
    const loc = new URL((await get(POOL, bearer(deploy.token))).headers.get('location')!);
    const loc2 = new URL((await get(POOL2, bearer(deploy.token))).headers.get('location')!);
    const sig = loc.searchParams.get('signature')!;
    const exp = loc.searchParams.get('expires')!;
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    const bad: [string, string][] = [
      ['tampered signature', `${POOL}?expires=${exp}&signature=${flip(sig)}`],
      ['truncated signature', `${POOL}?expires=${exp}&signature=${sig.slice(0, -2)}`],
      ['empty signature', `${POOL}?expires=${exp}&signature=`],
      ['later expiry', `${POOL}?expires=${Number(exp) + 3600}&signature=${sig}`],
      ['signature moved to another file', `${POOL2}?expires=${exp}&signature=${sig}`],
      ['other file signature on this file', `${POOL}?expires=${loc2.searchParams.get('expires')}&signature=${loc2.searchParams.get('signature')}`],
      ['signature moved to another repository', `/acme/other/debian/pool/bookworm/main/h/hello/hello_1.0_amd64.deb?expires=${exp}&signature=${sig}`],
      ['signature moved to metadata', `${INRELEASE}?expires=${exp}&signature=${sig}`],
    ];
    for (const [what, path] of bad) {
      const r = await get(path);
      assert.equal(r.status, 403, `${what} (${path}): ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(JSON.parse(r.text).error.code, 'SIGNED_URL_INVALID', `${what}: ${r.text}`);
      assertPrivateHeaders(r.headers, `403 for ${what}`);
    }
    // The genuine one still works.
    assert.equal((await get(`${POOL}?expires=${exp}&signature=${sig}`)).status, 200);
  });

  test('the served .repo file of a private RPM distribution carries the credentials used', async () => {
    const r = await get('/acme/secret/el/9.repo', basic(deploy.username, deploy.token));
    assert.equal(r.status, 200, r.text);
    assertPrivateHeaders(r.headers, '.repo');
    const lines = r.text.split('\n');
    assert.ok(lines.includes(`username=${deploy.username}`), r.text);
    assert.ok(lines.includes(`password=${deploy.token}`), r.text);
    assert.ok(lines.includes(`baseurl=${w.url}/acme/secret/el/9/$basearch`), r.text);
    // With the token alone (Bearer), it is still the credential in the file.
    const b = await get('/acme/secret/el/9.repo', bearer(deploy.token));
    assert.equal(b.status, 200, b.text);
    assert.ok(b.text.includes(deploy.token), b.text);
    assert.match(b.text, /^username=\S+$/m, b.text);
    assert.match(b.text, /^password=/m, b.text);
  });

  test('public repositories keep their public caching and serve packages directly', async () => {
    const rel = await get('/acme/pub/debian/dists/bookworm/InRelease');
    assert.equal(rel.status, 200);
    assert.match(rel.headers.get('cache-control') ?? '', /^public, max-age=\d+$/);
    const pkg = await get('/acme/pub/debian/pool/bookworm/main/h/hello/hello_1.0_amd64.deb');
    assert.equal(pkg.status, 200);
    assert.equal(pkg.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.ok(pkg.body.equals(debs.hello!));
    assert.doesNotMatch(pkg.headers.get('vary') ?? '', /authorization/i);
    // Credentials change nothing for a public repository.
    const withAuth = await get('/acme/pub/debian/pool/bookworm/main/h/hello/hello_1.0_amd64.deb', bearer(deploy.token));
    assert.equal(withAuth.status, 200);
  });

  test('the server admin token reads every private repository and learns that a missing one is missing', async () => {
    assert.equal((await get(INRELEASE, bearer(w.token))).status, 200);
    assert.equal((await get('/beta/secret/debian/dists/bookworm/InRelease', bearer(w.token))).status, 200);
    assert.equal((await get(POOL, bearer(w.token))).status, 302);
    assert.equal((await get('/acme/nope/debian/dists/bookworm/InRelease', bearer(w.token))).status, 404);
  });
});

describe('signed URL lifetime', () => {
  test('a link expires after WHARF_SIGNED_URL_SECONDS', async () => {
    const s = await startWharf({ env: { ...SERVER_ENV, WHARF_SIGNED_URL_SECONDS: '1' } });
    try {
      const c = JSON.parse((await s.cli(['repo', 'create', 'acme/secret', '--private', '--json'])).stdout);
      const t = c.deploy_token as Token;
      secrets.add(t.token);
      const p = await s.cli(['push', 'acme/secret/debian/bookworm', debFiles.hello!]);
      assert.equal(p.code, 0, p.stderr);
      const r = await fetch(`${s.url}${POOL}`, { headers: bearer(t.token), redirect: 'manual' });
      assert.equal(r.status, 302);
      const loc = r.headers.get('location')!;
      const exp = Number(new URL(loc).searchParams.get('expires'));
      assert.ok(exp <= Date.now() / 1000 + 1.01, `expires ${exp} is more than 1 s away`);
      await sleep(Math.max(0, (exp + 1) * 1000 - Date.now()) + 300);
      const f = await fetch(loc, { redirect: 'manual' });
      const body = await f.text();
      assert.equal(f.status, 403, `expired link: ${f.status} ${body.slice(0, 200)}`);
      assert.equal(JSON.parse(body).error.code, 'SIGNED_URL_INVALID');
      assert.equal(f.headers.get('cache-control'), 'private, no-store');
      // A fresh redirect works again.
      const again = await fetch(`${s.url}${POOL}`, { headers: bearer(t.token), redirect: 'follow' });
      assert.equal(again.status, 200);
      assert.doesNotMatch(s.output(), new RegExp(t.token));
    } finally {
      await s.stop();
    }
  });
});

describe('API authorisation', () => {
  const pushPath = (repo: string) => `repos/${repo}/distributions/debian/bookworm/packages`;

  test('a read token downloads but cannot push or yank (403 FORBIDDEN)', async () => {
    const push = await api('POST', pushPath('acme/secret'), deploy.token, debs.extra!);
    assert.equal(push.status, 403, push.text);
    assert.equal(push.json.error.code, 'FORBIDDEN');
    const yank = await api('DELETE', `${pushPath('acme/secret')}/hello_1.0_amd64.deb`, deploy.token);
    assert.equal(yank.status, 403, yank.text);
    assert.equal(yank.json.error.code, 'FORBIDDEN');
    // Through the CLI too.
    const cli = await w.cli(['push', 'acme/secret/debian/bookworm', debFiles.extra!], { WHARF_TOKEN: deploy.token });
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /FORBIDDEN/, cli.stderr);
    // It may list the packages of its repository.
    assert.equal((await api('GET', 'repos/acme/secret/packages', deploy.token)).status, 200);
    // And sees only its repository in the list.
    const list = await api('GET', 'repos', deploy.token);
    assert.deepEqual(list.json.repositories.map((r: any) => `${r.org}/${r.name}`), ['acme/secret']);
  });

  test('a write token pushes and yanks in its repository only', async () => {
    const t = await createToken('acme/secret', 'writer', ['write']);
    const push = await w.cli(['push', 'acme/secret/debian/bookworm', debFiles.extra!], { WHARF_TOKEN: t.token });
    assert.equal(push.code, 0, push.stderr);
    const yank = await w.cli(['yank', 'acme/secret/debian/bookworm', 'extra_3.0_amd64.deb'], { WHARF_TOKEN: t.token });
    assert.equal(yank.code, 0, yank.stderr);
    // A write token also reads.
    assert.equal((await get(INRELEASE, basic(t.username, t.token))).status, 200);
    // Another repository of the same organisation (public or private) does not exist for it.
    for (const repo of ['acme/pub', 'acme/other']) {
      const p = await api('POST', pushPath(repo), t.token, debs.extra!);
      assert.equal(p.status, 404, `${repo}: ${p.text}`);
      assert.equal(p.json.error.code, 'REPO_NOT_FOUND');
      const y = await api('DELETE', `${pushPath(repo)}/hello_1.0_amd64.deb`, t.token);
      assert.equal(y.status, 404, `${repo}: ${y.text}`);
      assert.equal(y.json.error.code, 'REPO_NOT_FOUND');
    }
    // A write token cannot manage tokens.
    const tok = await api('POST', 'repos/acme/secret/tokens', t.token, { name: 'sneaky', scopes: ['admin'] });
    assert.equal(tok.status, 403, tok.text);
    assert.equal(tok.json.error.code, 'FORBIDDEN');
    assert.equal((await api('GET', 'repos/acme/secret/tokens', t.token)).status, 403);
  });

  test('an organisation token reaches every repository of its organisation and nothing of another', async () => {
    const t = await createToken('acme', 'org-writer', ['write']);
    assert.equal((await get(INRELEASE, basic(t.username, t.token))).status, 200);
    assert.equal((await get('/acme/other/debian/dists/bookworm/InRelease', basic(t.username, t.token))).status, 200);
    const p = await api('POST', pushPath('acme/other'), t.token, debs.extra2!);
    assert.equal(p.status, 201, p.text);
    const y = await api('DELETE', `${pushPath('acme/other')}/extra2_3.0_amd64.deb`, t.token);
    assert.equal(y.status, 200, y.text);
    // Another organisation.
    const b = await get('/beta/secret/debian/dists/bookworm/InRelease', basic(t.username, t.token));
    assert.equal(b.status, 401);
    const bp = await api('POST', pushPath('beta/secret'), t.token, debs.extra2!);
    assert.equal(bp.status, 404, bp.text);
    assert.equal(bp.json.error.code, 'REPO_NOT_FOUND');
    const bt = await api('GET', 'orgs/beta/tokens', t.token);
    assert.equal(bt.status, 404, bt.text);
    // A write organisation token does not manage organisation tokens.
    assert.equal((await api('GET', 'orgs/acme/tokens', t.token)).status, 404);
  });

  test('a repository admin token manages the tokens of its repository, not of another', async () => {
    const admin = await createToken('acme/secret', 'repo-admin', ['admin']);
    const env = { WHARF_TOKEN: admin.token };
    const c = await w.cli(['token', 'create', 'acme/secret', '--name', 'made-by-repo-admin', '--json'], env);
    assert.equal(c.code, 0, c.stderr);
    const made = JSON.parse(c.stdout) as Token;
    secrets.add(made.token);
    assert.equal((await get(INRELEASE, bearer(made.token))).status, 200);
    const l = await w.cli(['token', 'list', 'acme/secret', '--json'], env);
    assert.equal(l.code, 0, l.stderr);
    assert.ok(JSON.parse(l.stdout).tokens.some((x: any) => x.id === made.id));
    const rv = await w.cli(['token', 'revoke', 'acme/secret', String(made.id)], env);
    assert.equal(rv.code, 0, rv.stderr);
    // Another repository of the organisation, the organisation itself, another organisation.
    for (const scope of ['acme/other', 'acme/pub', 'beta/secret']) {
      const o = await w.cli(['token', 'create', scope, '--name', 'nope'], env);
      assert.notEqual(o.code, 0, `${scope}: ${o.stdout}`);
      assert.match(o.stderr, /REPO_NOT_FOUND/, `${scope}: ${o.stderr}`);
      const ol = await w.cli(['token', 'list', scope], env);
      assert.notEqual(ol.code, 0, `${scope}: ${ol.stdout}`);
    }
    const org = await w.cli(['token', 'create', 'acme', '--name', 'nope'], env);
    assert.notEqual(org.code, 0, org.stdout);
    assert.match(org.stderr, /NOT_FOUND/, org.stderr);
    // It cannot revoke a token of another repository by id (even knowing the id).
    const other = await createToken('acme/other', 'victim');
    const rvo = await w.cli(['token', 'revoke', 'acme/secret', String(other.id)], env);
    assert.notEqual(rvo.code, 0, rvo.stdout);
    assert.match(rvo.stderr, /TOKEN_NOT_FOUND/, rvo.stderr);
    assert.equal((await get('/acme/other/gpgkey', bearer(other.token))).status, 200);
    // Nor rotate the org-wide tokens.
    const orgTok = await createToken('acme', 'org-read-for-rotate');
    const rot = await w.cli(['token', 'rotate', 'acme/secret', String(orgTok.id)], env);
    assert.notEqual(rot.code, 0, rot.stdout);
  });

  test('an organisation admin token manages organisation tokens; only the server admin creates repositories', async () => {
    const orgAdmin = await createToken('acme', 'org-admin', ['admin']);
    const c = await w.cli(['token', 'create', 'acme', '--name', 'made-by-org-admin', '--json'], { WHARF_TOKEN: orgAdmin.token });
    assert.equal(c.code, 0, c.stderr);
    secrets.add(JSON.parse(c.stdout).token);
    const other = await w.cli(['token', 'create', 'beta', '--name', 'nope'], { WHARF_TOKEN: orgAdmin.token });
    assert.notEqual(other.code, 0);
    for (const token of [orgAdmin.token, deploy.token]) {
      const r = await api('POST', 'repos', token, { name: 'acme/new-one', private: true });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json.error.code, 'FORBIDDEN');
      const cli = await w.cli(['repo', 'create', 'acme/new-two'], { WHARF_TOKEN: token });
      assert.notEqual(cli.code, 0);
      assert.match(cli.stderr, /FORBIDDEN/);
    }
    const anon = await fetch(`${w.url}/api/v1/repos`, { method: 'POST', body: '{"name":"acme/x"}' });
    assert.equal(anon.status, 401);
  });
});

describe('token lifecycle', () => {
  test('token list never shows a secret, and records the last use', async () => {
    const used = await createToken('acme/secret', 'used');
    const unused = await createToken('acme/secret', 'unused');
    assert.equal((await get(INRELEASE, basic(used.username, used.token))).status, 200);
    let row: any;
    for (let i = 0; i < 20; i++) {
      const list = JSON.parse(await cliOk(['token', 'list', 'acme/secret', '--json']));
      row = list.tokens.find((x: any) => x.id === used.id);
      if (row?.last_used_at) break;
      await sleep(100);
    }
    assert.ok(row?.last_used_at, `last_used_at not set after use: ${JSON.stringify(row)}`);
    assert.ok(Math.abs(Date.parse(row.last_used_at) - Date.now()) < 60_000, row.last_used_at);
    const json = await cliOk(['token', 'list', 'acme/secret', '--json']);
    const human = await cliOk(['token', 'list', 'acme/secret']);
    const orgJson = await cliOk(['token', 'list', 'acme', '--json']);
    const list = JSON.parse(json).tokens as any[];
    assert.equal(list.find((x) => x.id === unused.id).last_used_at, null);
    for (const t of list) {
      assert.equal(t.token, undefined, JSON.stringify(t));
      assert.ok(!Object.keys(t).some((k) => /secret|sha256|digest|hash/i.test(k)), JSON.stringify(t));
    }
    for (const s of secrets) {
      assert.ok(!json.includes(s) && !human.includes(s) && !orgJson.includes(s), `token list shows secret ${s.slice(0, 16)}…`);
    }
    assert.match(human, new RegExp(`^${used.id}\\tused\\tread\\tacme/secret\\t.*last used 20`, 'm'), human);
    assert.match(human, new RegExp(`^${unused.id}\\tunused\\t.*last used never`, 'm'), human);
  });

  test('revocation takes effect within 5 seconds, for the tree and the API', async () => {
    const t = await createToken('acme/secret', 'to-revoke', ['write']);
    // Warm any cache.
    assert.equal((await get(INRELEASE, basic(t.username, t.token))).status, 200);
    assert.equal((await get(INRELEASE, bearer(t.token))).status, 200);
    assert.equal((await api('GET', 'repos/acme/secret/packages', t.token)).status, 200);
    const out = await cliOk(['token', 'revoke', 'acme/secret', String(t.id)]);
    assert.match(out, new RegExp(`revoked token ${t.id}`));
    const ms = await eventually(INRELEASE, basic(t.username, t.token), 401, 5000);
    assert.ok(ms <= 5000, `revocation took ${ms} ms`);
    assert.equal((await get(INRELEASE, bearer(t.token))).status, 401);
    assert.equal((await get(POOL, basic(t.token, ''))).status, 401);
    const p = await api('POST', 'repos/acme/secret/distributions/debian/bookworm/packages', t.token, debs.extra!);
    assert.equal(p.status, 401, p.text);
    // The list shows it revoked; the name can be reused.
    const list = JSON.parse(await cliOk(['token', 'list', 'acme/secret', '--json'])).tokens as any[];
    assert.ok(list.find((x) => x.id === t.id).revoked_at, JSON.stringify(list));
    const again = await createToken('acme/secret', 'to-revoke');
    assert.notEqual(again.id, t.id);
    // Revoking twice, or a token that does not exist: TOKEN_NOT_FOUND or success, never a crash.
    const missing = await w.cli(['token', 'revoke', 'acme/secret', '999999']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /TOKEN_NOT_FOUND/);
  });

  test('a revoked organisation token stops working within 5 seconds', async () => {
    const t = await createToken('acme', 'org-to-revoke');
    assert.equal((await get(INRELEASE, bearer(t.token))).status, 200);
    await cliOk(['token', 'revoke', 'acme', String(t.id)]);
    await eventually(INRELEASE, bearer(t.token), 401, 5000);
  });

  test('an expired token fails', async () => {
    const expires = new Date(Date.now() + 2500).toISOString();
    const t = await createToken('acme/secret', 'short-lived', ['read'], ['--expires', expires]);
    assert.equal(t.expires_at, expires);
    assert.equal((await get(INRELEASE, basic(t.username, t.token))).status, 200);
    await sleep(Math.max(0, Date.parse(expires) - Date.now()) + 200);
    // Expiry is exact (the cache never outlives it); allow the revocation bound anyway.
    await eventually(INRELEASE, basic(t.username, t.token), 401, 5000);
    assert.equal((await api('GET', 'repos/acme/secret/packages', t.token)).status, 401);
  });

  test('rotation: both secrets during the grace period, only the new one after it', async () => {
    const t = await createToken('acme/secret', 'rotating');
    assert.equal((await get(INRELEASE, basic(t.username, t.token))).status, 200);
    const r = JSON.parse(await cliOk(['token', 'rotate', 'acme/secret', String(t.id), '--grace', '1s', '--json'])) as Token;
    secrets.add(r.token);
    assert.equal(r.id, t.id);
    assert.equal(r.username, t.username);
    assert.notEqual(r.token, t.token);
    assert.match(r.token, /^wharf_deploy_/);
    assert.equal((await get(INRELEASE, basic(t.username, t.token))).status, 200, 'old secret during the grace period');
    assert.equal((await get(INRELEASE, basic(r.username, r.token))).status, 200, 'new secret');
    await sleep(5500);
    assert.equal((await get(INRELEASE, basic(t.username, t.token))).status, 401, 'old secret after the grace period');
    assert.equal((await get(INRELEASE, bearer(t.token))).status, 401, 'old secret after the grace period (bearer)');
    assert.equal((await get(INRELEASE, basic(r.username, r.token))).status, 200, 'new secret after the grace period');

    // --grace 0s: only the new one.
    const r2 = JSON.parse(await cliOk(['token', 'rotate', 'acme/secret', String(t.id), '--grace', '0s', '--json'])) as Token;
    secrets.add(r2.token);
    assert.equal((await get(INRELEASE, bearer(r2.token))).status, 200);
    await eventually(INRELEASE, bearer(r.token), 401, 5000);

    // The human output of rotate shows the new secret once and the grace.
    const out = await cliOk(['token', 'rotate', 'acme/secret', String(t.id), '--grace', '24h']);
    const m = /token:\s+(wharf_deploy_\S+)/.exec(out);
    assert.ok(m, out);
    secrets.add(m[1]!);
    assert.match(out, /86400 s/, out);
    assert.equal((await get(INRELEASE, bearer(r2.token))).status, 200, 'previous secret within a 24h grace');
    assert.equal((await get(INRELEASE, bearer(m[1]!))).status, 200);
    // A revoked token cannot be rotated back to life.
    await cliOk(['token', 'revoke', 'acme/secret', String(t.id)]);
    const dead = await w.cli(['token', 'rotate', 'acme/secret', String(t.id)]);
    assert.notEqual(dead.code, 0, dead.stdout);
    await eventually(INRELEASE, bearer(m[1]!), 401, 5000);
    await eventually(INRELEASE, bearer(r2.token), 401, 5000);
  });
});

describe('secrets stay out of the server output', () => {
  test('every secret presented through every path is absent from the logs', async () => {
    // Present known secrets (valid and wrong) through Basic, Bearer, token-as-user, the API and signed URLs.
    const probe = await createToken('acme/secret', 'log-probe', ['write']);
    const wrong = ['wharf_deploy_WRONGWRONGWRONGWRONGWRONGWRONGWRONGWRONG123', 'not-a-token-at-all-but-secret-ish-987654'];
    for (const s of wrong) secrets.add(s);
    for (const s of [probe.token, ...wrong]) {
      for (const h of [bearer(s), basic(probe.username, s), basic(s, ''), basic('someone', s)]) {
        await get(INRELEASE, h);
        await get(POOL, h);
        await get('/acme/nope/debian/dists/bookworm/InRelease', h);
        await get('/acme/secret/el/9.repo', h);
        await api('GET', 'repos/acme/secret/packages', s);
        await api('POST', 'repos/acme/secret/distributions/debian/bookworm/packages', s, Buffer.from('not a package'));
        await fetch(`${w.url}/api/v1/repos`, { headers: h });
      }
      // As a query parameter, where a confused client might put it.
      await get(`${INRELEASE}?token=${s}`);
      await get(`${POOL}?expires=1&signature=${s}`);
    }
    await sleep(300);
    const out = w.output();
    assert.ok(out.length > 0);
    for (const s of secrets) {
      assert.ok(!out.includes(s), `the server output contains the secret ${s.slice(0, 16)}…`);
      for (const user of [probe.username, deploy.username, 'someone', '']) {
        const enc = Buffer.from(`${user}:${s}`).toString('base64');
        assert.ok(!out.includes(enc), `the server output contains Basic credentials for ${s.slice(0, 16)}…`);
      }
    }
    // The admin token appears only in the first-start banner (shown once by design).
    assert.ok(out.split(w.token).length - 1 <= 1, 'the admin token is printed more than once');
  });
});
