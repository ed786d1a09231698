// Trusted publishing end to end: real OIDC issuers over HTTPS on loopback (a throw-away CA handed to Wharf through
// NODE_EXTRA_CA_CERTS, discovery + JWKS, GitLab- and GitHub-shaped tokens signed with jose), the real `wharf` server
// and CLI, and real apt-get and dnf installing what CI pushed. Also: Wharf's own JWTs (discovery, JWKS, verification
// by a third party with jose, HTTP Basic with __token__), their key rotation through the CLI, and refusals over HTTP.
//
// Needs: apt, dpkg, dpkg-dev, gpg, dnf, rpm (rpmbuild), openssl.
import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { buildDeb, startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { prepareAptRoot } from '../helpers/apt-root.ts';
import { buildRpm } from '../helpers/rpm.ts';
import { killAgents, run, show, type Run } from '../helpers/rpm-clients.ts';
import { startOidcIssuer, type TestOidcIssuer } from '../helpers/oidc-issuer.ts';

const AUD = 'wharf-e2e';
const PUBLIC = 'acme/tools';
const PRIVATE = 'acme/secret';

let tmp: string;
let wharf: WharfInstance;
let gitlab: TestOidcIssuer;
let github: TestOidcIssuer;
/** an issuer nobody allowed */
let stranger: TestOidcIssuer;
let caBundle: string;
let keyring = '';
let rpmEnv: Record<string, string>;
let debs: { lib: string; hello: string; secret: string };
let rpms: { tool: string; toollib: string; secretTool: string };
/** GitHub's Actions token service, as a job sees it through ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN */
let actions: Server;
let actionsUrl: string;
const ACTIONS_REQUEST_TOKEN = 'actions-runtime-token-for-tests';
let actionsAudiences: string[] = [];

const basic = (user: string, pass: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

/** The GitLab job's CI file is ci/release.yml (as the issue's example). */
function gitlabToken(claims: Record<string, unknown> = {}): Promise<string> {
  const host = gitlab.url.slice('https://'.length);
  return gitlab.mintGitLab({ claims: { ci_config_ref_uri: `${host}/acme/sub/tools//ci/release.yml@refs/heads/main`, ...claims } });
}

async function mint(w: WharfInstance, ciToken: string, repository?: string): Promise<Response> {
  return fetch(`${w.url}/_/oidc/mint-token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: ciToken, ...(repository ? { repository } : {}) }),
  });
}

async function mintOk(w: WharfInstance, ciToken: string, repository?: string): Promise<string> {
  const r = await mint(w, ciToken, repository);
  const body = (await r.json()) as { token: string; expires: number; success: boolean };
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.equal(body.success, true);
  assert.equal(r.headers.get('cache-control'), 'private, no-store');
  return body.token;
}

async function mintRefused(w: WharfInstance, ciToken: string | unknown, code: string, repository?: string): Promise<string> {
  const r = await fetch(`${w.url}/_/oidc/mint-token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof ciToken === 'string' ? JSON.stringify({ token: ciToken, ...(repository ? { repository } : {}) }) : JSON.stringify(ciToken),
  });
  const body = (await r.json()) as { message: string; errors: { code: string; description: string }[] };
  assert.equal(r.status, 422, JSON.stringify(body));
  assert.equal(body.message, 'Token request failed');
  assert.equal(body.errors[0]?.code, code, JSON.stringify(body));
  return body.errors[0]!.description;
}

/** Runs the CLI as a CI job would: no stored Wharf token at all. */
function ciCli(args: string[], env: Record<string, string>) {
  return wharf.cli(args, { WHARF_TOKEN: '', ...env });
}

/** The metadata key, dearmored for signed-by (fetched once something is published). */
async function ensureKeyring(): Promise<void> {
  if (keyring) return;
  const key = await fetch(`${wharf.url}/${PUBLIC}/gpgkey`);
  assert.equal(key.status, 200);
  await writeFile(join(tmp, 'wharf.asc'), Buffer.from(await key.arrayBuffer()));
  const gnupg = join(tmp, 'gnupg');
  await mkdir(gnupg, { mode: 0o700 });
  const file = join(tmp, 'wharf.gpg');
  const d = await run('gpg', ['--homedir', gnupg, '--batch', '--yes', '--output', file, '--dearmor', join(tmp, 'wharf.asc')]);
  assert.equal(d.code, 0, d.out);
  keyring = file;
}

async function aptRoot(name: string, repo: string, auth?: { login: string; password: string }): Promise<{ dir: string; aptGet(args: string[]): Promise<Run> }> {
  await ensureKeyring();
  const dir = join(tmp, name);
  const { env } = await prepareAptRoot(dir, { arch: 'amd64' });
  await writeFile(join(dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${wharf.url}/${repo}/debian/ bookworm main\n`);
  if (auth) {
    const u = new URL(wharf.url);
    await writeFile(join(dir, 'etc/apt/auth.conf.d/wharf.conf'), `machine http://${u.host}/${repo} login ${auth.login} password ${auth.password}\n`, { mode: 0o600 });
  }
  return { dir, aptGet: (args) => run('apt-get', args, env) };
}

async function dnfInstall(name: string, repoText: string, pkg: string): Promise<{ root: string; r: Run }> {
  const root = join(tmp, name);
  await mkdir(join(root, 'etc/yum.repos.d'), { recursive: true });
  await mkdir(join(root, 'etc/dnf'), { recursive: true });
  await writeFile(join(root, 'etc/dnf/dnf.conf'), ['[main]', 'install_weak_deps=False', 'plugins=0', 'best=True', ''].join('\n'));
  await writeFile(join(root, 'etc/yum.repos.d/wharf.repo'), repoText, { mode: 0o600 });
  const r = await run(
    'dnf',
    [`--installroot=${root}`, `--config=${join(root, 'etc/dnf/dnf.conf')}`, `--setopt=reposdir=${join(root, 'etc/yum.repos.d')}`, '--releasever=9', '--noplugins', '-y', 'install', pkg],
    rpmEnv,
  );
  return { root, r };
}

describe('trusted publishing from CI, end to end', { timeout: 240_000 }, () => {
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-oidc-e2e-'));
    await chmod(tmp, 0o755);
    const home = join(tmp, 'home');
    await mkdir(join(home, '.gnupg'), { recursive: true, mode: 0o700 });
    await mkdir(join(tmp, 'tmp'));
    await writeFile(join(home, '.rpmmacros'), '%_dbpath /var/lib/rpm\n');
    rpmEnv = { HOME: home, TMPDIR: join(tmp, 'tmp'), GNUPGHOME: join(home, '.gnupg') };

    [gitlab, github, stranger] = await Promise.all([startOidcIssuer({ audience: AUD }), startOidcIssuer({ audience: AUD }), startOidcIssuer({ audience: AUD })]);
    // Wharf trusts the issuers' CAs the way an operator would: NODE_EXTRA_CA_CERTS.
    caBundle = join(tmp, 'test-cas.pem');
    await writeFile(caBundle, [gitlab, github, stranger].map((i) => i.caPem).join('\n'));
    wharf = await startWharf({ env: { NODE_EXTRA_CA_CERTS: caBundle, WHARF_AUTH_FAILURES_PER_MINUTE: '100000' }, args: ['--oidc-audience', AUD] });

    actions = createServer(async (req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (req.headers.authorization !== `bearer ${ACTIONS_REQUEST_TOKEN}`) {
        res.writeHead(401).end();
        return;
      }
      const audience = u.searchParams.get('audience') ?? '';
      actionsAudiences.push(audience);
      const value = await github.mintGitHub({ audience });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ count: 1, value }));
    });
    await new Promise<void>((r) => actions.listen(0, '127.0.0.1', r));
    actionsUrl = `http://127.0.0.1:${(actions.address() as AddressInfo).port}/_apis/distributedtask/hubs/build/plans/p/jobs/j/idtoken?api-version=2.0`;

    for (const args of [
      ['repo', 'create', PUBLIC],
      ['repo', 'create', PRIVATE, '--private', '--no-deploy-token'],
      ['repo', 'create', 'acme/other'],
      ['issuer', 'add', gitlab.url, '--type', 'gitlab', '--allow-private-network'],
      ['issuer', 'add', github.url, '--type', 'github', '--allow-private-network'],
      ['publisher', 'add', PUBLIC, '--gitlab', 'acme/sub/tools', '--workflow', 'ci/release.yml', '--environment', 'production', '--issuer', gitlab.url],
      ['publisher', 'add', PRIVATE, '--github', 'acme/tools', '--workflow', 'release.yml', '--issuer', github.url],
    ]) {
      const r = await wharf.cli(args);
      assert.equal(r.code, 0, `wharf ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    }

    const debDir = join(tmp, 'debs');
    await mkdir(debDir);
    const common = 'Maintainer: Wharf Tests <tests@example.org>\nSection: utils\nPriority: optional\n';
    debs = {
      lib: await buildDeb(debDir, `Package: ci-lib\nVersion: 1.0-1\nArchitecture: amd64\n${common}Description: library\n`, { 'usr/lib/ci/lib.txt': 'ci lib\n' }),
      hello: await buildDeb(debDir, `Package: ci-hello\nVersion: 2.0-1\nArchitecture: amd64\n${common}Depends: ci-lib (>= 1.0)\nDescription: hello\n`, {
        'usr/bin/ci-hello': '#!/bin/sh\necho published from CI\n',
      }),
      secret: await buildDeb(debDir, `Package: ci-secret\nVersion: 1.0-1\nArchitecture: amd64\n${common}Description: private\n`, { 'usr/bin/ci-secret': '#!/bin/sh\necho secret\n' }),
    };
    const rpmDir = join(tmp, 'rpms');
    await mkdir(rpmDir);
    rpms = {
      tool: (await buildRpm(rpmDir, { name: 'citool', version: '1.2', release: '1', arch: 'x86_64', requires: ['citoollib >= 1.0'], files: { '/usr/bin/citool': '#!/bin/sh\necho citool\n' } })).rpm,
      toollib: (await buildRpm(rpmDir, { name: 'citoollib', version: '1.0', release: '1', arch: 'noarch', files: { '/usr/share/citoollib/data.txt': 'data\n' } })).rpm,
      secretTool: (await buildRpm(rpmDir, { name: 'cisecret', version: '3.0', release: '1', arch: 'x86_64', files: { '/usr/bin/cisecret': '#!/bin/sh\necho cisecret\n' } })).rpm,
    };

  });

  after(async () => {
    if (tmp) await killAgents(tmp);
    await wharf?.stop();
    await Promise.all([gitlab?.close(), github?.close(), stranger?.close()]);
    actions?.closeAllConnections();
    await new Promise((r) => (actions ? actions.close(r) : r(undefined)));
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('audience, OIDC discovery and JWKS are published', async () => {
    const a = await fetch(`${wharf.url}/_/oidc/audience`);
    assert.deepEqual(await a.json(), { audience: AUD });
    const d = await fetch(`${wharf.url}/.well-known/openid-configuration`);
    assert.equal(d.status, 200);
    assert.match(d.headers.get('cache-control') ?? '', /^public, max-age=\d+$/);
    const disc = (await d.json()) as Record<string, unknown>;
    assert.equal(disc.issuer, wharf.url);
    assert.equal(disc.jwks_uri, `${wharf.url}/.well-known/jwks.json`);
    assert.deepEqual(disc.id_token_signing_alg_values_supported, ['ES256']);
    const j = (await (await fetch(disc.jwks_uri as string)).json()) as { keys: Record<string, unknown>[] };
    assert.equal(j.keys.length, 1);
    assert.equal(j.keys[0]!.alg, 'ES256');
    assert.ok(!('d' in j.keys[0]!), 'the JWKS must not hold private key material');
  });

  test('GitLab CI: wharf push --oidc with the id_token, then apt-get and dnf install what it pushed', async () => {
    const env = { WHARF_ID_TOKEN: await gitlabToken() };
    const p = await ciCli(['push', '--oidc', `${PUBLIC}/debian/bookworm`, debs.lib, debs.hello], env);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.match(p.stderr, /exchanged the CI token/);
    // The CI token was exchanged once; the next push of the job gets its own (GitLab issues one per job and variable).
    const again = await ciCli(['push', '--oidc', `${PUBLIC}/el/9`, rpms.tool, rpms.toollib], env);
    assert.notEqual(again.code, 0, 'a replayed CI token must be refused');
    assert.match(again.stderr, /OIDC_INVALID_REUSE_TOKEN/);
    const r = await ciCli(['push', '--oidc', `${PUBLIC}/el/9`, rpms.tool, rpms.toollib], { WHARF_ID_TOKEN: await gitlabToken() });
    assert.equal(r.code, 0, r.stdout + r.stderr);

    // apt with signature checking on.
    const root = await aptRoot('apt-public', PUBLIC);
    const up = await root.aptGet(['update']);
    assert.equal(up.code, 0, show('apt-get update', up));
    const inst = await root.aptGet(['install', '-y', 'ci-hello']);
    assert.equal(inst.code, 0, show('apt-get install', inst));
    assert.equal(await readFile(join(root.dir, 'usr/bin/ci-hello'), 'utf8'), '#!/bin/sh\necho published from CI\n');

    // dnf from the served .repo file (gpgcheck and repo_gpgcheck on).
    const repoText = await (await fetch(`${wharf.url}/${PUBLIC}/el/9.repo`)).text();
    const dnf = await dnfInstall('dnf-public', repoText, 'citool');
    assert.equal(dnf.r.code, 0, show('dnf install', dnf.r));
    assert.match(dnf.r.out, /Complete!/);
    assert.equal(await readFile(join(dnf.root, 'usr/bin/citool'), 'utf8'), '#!/bin/sh\necho citool\n');

    // The CI identity is recorded with each package: ls --long, the API, and the audit log.
    const ls = await wharf.cli(['ls', PUBLIC, '--long']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /ci-hello_2\.0-1_amd64\.deb[^\n]*\n {2}published from gitlab https:\/\/localhost:\d+ acme\/sub\/tools refs\/heads\/main \(sha 714a629c0b401fdce83e847fc9589983fc6f46bc, pipeline 574, workflow ci\/release\.yml, environment production\)/);
    const api = (await (await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}/packages`, { headers: bearer(wharf.token) })).json()) as { packages: any[] };
    const tool = api.packages.find((x) => x.name === 'citool');
    assert.equal(tool.provenance.provider, 'gitlab');
    assert.equal(tool.provenance.issuer, gitlab.url);
    assert.equal(tool.provenance.project, 'acme/sub/tools');
    assert.equal(tool.provenance.ref, 'refs/heads/main');
    assert.equal(tool.provenance.sha, '714a629c0b401fdce83e847fc9589983fc6f46bc');
    assert.equal(tool.provenance.run_id, '574');
    assert.equal(tool.provenance.job_id, '302');
    assert.equal(tool.provenance.workflow, 'ci/release.yml');
    assert.equal(tool.provenance.environment, 'production');
    assert.equal(typeof tool.provenance.publisher_id, 'number');
    assert.equal(tool.provenance.project_id, '20');
    assert.equal(tool.provenance.owner_id, '72');
    assert.equal(tool.provenance.runner_id, '1');
    assert.equal(tool.provenance.actor, 'alice');
    assert.match(tool.provenance.token_id, /^[0-9a-f-]{36}$/);
    const audit = (await (await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}/audit`, { headers: bearer(wharf.token) })).json()) as { entries: any[] };
    const mints = audit.entries.filter((e) => e.action === 'oidc.mint');
    assert.equal(mints.length, 2, JSON.stringify(audit.entries));
    assert.match(mints[0].actor, /^trusted-publisher:\d+$/);
    const pushes = audit.entries.filter((e) => e.action === 'package.push' && e.details?.ci);
    assert.equal(pushes.length, 4);
    assert.match(pushes[0].actor, /^jwt:publisher:\d+$/);
    assert.equal(pushes[0].details.ci.sha, '714a629c0b401fdce83e847fc9589983fc6f46bc');
  });

  test('GitHub Actions: push --oidc to a private repository; the Wharf JWT then works with apt and dnf as __token__', async () => {
    actionsAudiences = [];
    const p = await ciCli(['push', '--oidc', `${PRIVATE}/debian/bookworm`, debs.secret], {
      ACTIONS_ID_TOKEN_REQUEST_URL: actionsUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: ACTIONS_REQUEST_TOKEN,
    });
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.deepEqual(actionsAudiences, [AUD], 'the CLI asks the Actions token service for Wharf audience');

    // A minted token as the HTTP Basic password with user __token__: push (RPM), apt and dnf.
    const jwt = await mintOk(wharf, await github.mintGitHub(), PRIVATE);
    const body = await readFile(rpms.secretTool);
    const push = await fetch(`${wharf.url}/api/v1/repos/${PRIVATE}/distributions/el/9/packages`, { method: 'POST', headers: basic('__token__', jwt), body });
    assert.equal(push.status, 201, await push.text());

    const root = await aptRoot('apt-private', PRIVATE, { login: '__token__', password: jwt });
    const up = await root.aptGet(['update']);
    assert.equal(up.code, 0, show('apt-get update', up));
    const inst = await root.aptGet(['install', '-y', 'ci-secret']);
    assert.equal(inst.code, 0, show('apt-get install', inst));
    assert.equal(await readFile(join(root.dir, 'usr/bin/ci-secret'), 'utf8'), '#!/bin/sh\necho secret\n');

    const repoFile = await fetch(`${wharf.url}/${PRIVATE}/el/9.repo`, { headers: basic('__token__', jwt) });
    assert.equal(repoFile.status, 200);
    const repoText = (await repoFile.text()).replace(/^username=.*$/m, 'username=__token__').replace(/^password=.*$/m, `password=${jwt}`);
    const withCreds = /^password=/m.test(repoText) ? repoText : repoText.replace(/^(baseurl=.*)$/m, `$1\nusername=__token__\npassword=${jwt}`);
    const dnf = await dnfInstall('dnf-private', withCreds, 'cisecret');
    assert.equal(dnf.r.code, 0, show('dnf install', dnf.r));
    assert.equal(await readFile(join(dnf.root, 'usr/bin/cisecret'), 'utf8'), '#!/bin/sh\necho cisecret\n');

    // Without credentials the private repository stays closed; a JWT with another user name does not open it.
    assert.equal((await fetch(`${wharf.url}/${PRIVATE}/debian/dists/bookworm/InRelease`)).status, 401);
    assert.equal((await fetch(`${wharf.url}/${PRIVATE}/debian/dists/bookworm/InRelease`, { headers: basic('someone', jwt) })).status, 401);
    const ls = await wharf.cli(['ls', PRIVATE, '--long', '--json']);
    const pkgs = JSON.parse(ls.stdout).packages as any[];
    const secret = pkgs.find((x) => x.name === 'ci-secret');
    assert.equal(secret.provenance.provider, 'github');
    assert.equal(secret.provenance.project, 'acme/tools');
    assert.equal(secret.provenance.run_id, '9876543210');
    assert.equal(secret.provenance.workflow, '.github/workflows/release.yml');
  });

  test('a minted token reaches only its repository, and only to read and push', async () => {
    const jwt = await mintOk(wharf, await gitlabToken());
    const h = bearer(jwt);
    assert.equal((await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}`, { headers: h })).status, 200);
    // Another repository: not even visible.
    const other = await fetch(`${wharf.url}/api/v1/repos/acme/other/distributions/debian/bookworm/packages`, { method: 'POST', headers: h, body: await readFile(debs.lib) });
    assert.equal(other.status, 404);
    assert.equal((await fetch(`${wharf.url}/api/v1/repos/${PRIVATE}`, { headers: h })).status, 404);
    assert.equal((await fetch(`${wharf.url}/${PRIVATE}/debian/dists/bookworm/InRelease`, { headers: basic('__token__', jwt) })).status, 401);
    // Yanking is more than publishing: refused.
    const yank = await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}/distributions/debian/bookworm/packages/ci-lib_1.0-1_amd64.deb`, { method: 'DELETE', headers: h });
    assert.equal(yank.status, 403);
    // Administration: refused.
    const tok = await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}/tokens`, { method: 'POST', headers: { ...h, 'Content-Type': 'application/json' }, body: '{"name":"x"}' });
    assert.equal(tok.status, 403);
    assert.equal((await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}/publishers`, { headers: h })).status, 403);
    assert.equal((await fetch(`${wharf.url}/api/v1/keys`, { headers: h })).status, 403);
    // A tampered token: refused.
    const [hd, pl, sig] = jwt.split('.');
    const claims = JSON.parse(Buffer.from(pl!, 'base64url').toString());
    claims.repo_id += 1;
    const forged = `${hd}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
    assert.equal((await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}`, { headers: bearer(forged) })).status, 401);
  });

  test('a third party verifies a minted token offline from the published JWKS (jose)', async () => {
    const jwt = await mintOk(wharf, await gitlabToken());
    const keys = createRemoteJWKSet(new URL(`${wharf.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(jwt, keys, { issuer: wharf.url, audience: wharf.url, algorithms: ['ES256'] });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.ok(protectedHeader.kid);
    for (const c of ['iss', 'aud', 'sub', 'exp', 'iat', 'nbf', 'jti', 'scopes']) assert.ok(c in payload, `claim ${c} missing`);
    assert.deepEqual(payload.scopes, ['push']);
    assert.equal(payload.repository, PUBLIC);
    assert.match(String(payload.sub), /^publisher:\d+$/);
    const lifetime = (payload.exp as number) - (payload.iat as number);
    assert.equal(lifetime, 15 * 60);
  });

  test('exchange refusals over HTTP carry Warehouse error codes', async () => {
    const replayed = await gitlabToken();
    await mintOk(wharf, replayed);
    assert.match(await mintRefused(wharf, replayed, 'invalid-reuse-token'), /already/i);
    // An issuer no admin allowed: refused before Wharf fetches anything from it.
    const before = stranger.stats.requests;
    await mintRefused(wharf, await stranger.mintGitLab(), 'invalid-payload');
    assert.equal(stranger.stats.requests, before, 'Wharf contacted an issuer that is not allowed');
    await mintRefused(wharf, await gitlabToken({ ci_config_ref_uri: `${gitlab.url.slice(8)}/acme/sub/tools//ci/other.yml@refs/heads/main` }), 'invalid-publisher');
    await mintRefused(wharf, await gitlabToken({ environment: 'staging' }), 'invalid-publisher');
    await mintRefused(wharf, await gitlabToken({ ci_config_ref_uri: null }), 'invalid-publisher');
    await mintRefused(wharf, await gitlab.mintGitLab({ audience: 'someone-else' }), 'invalid-token');
    await mintRefused(wharf, await gitlab.mintGitLab({ audience: [AUD, 'other'] }), 'invalid-token');
    await mintRefused(wharf, await github.mintGitHub({ claims: { event_name: 'pull_request_target' } }), 'invalid-publisher');
    await mintRefused(wharf, 'not-a-jwt', 'invalid-payload');
    await mintRefused(wharf, { nothing: true }, 'invalid-payload');
    // The GitLab project is not trusted by acme/other; the refusal does not spend the token, so the job can name the
    // right repository and retry with the same one.
    const misdirected = await gitlabToken();
    await mintRefused(wharf, misdirected, 'invalid-publisher', 'acme/other');
    await mintOk(wharf, misdirected);
  });

  test('key rotation through the CLI: create -> rotate keeps old tokens valid; trim ends them', async () => {
    const t1 = await mintOk(wharf, await gitlabToken());
    const kid1 = decodeProtectedHeader(t1).kid;
    const ok = async (t: string) => (await fetch(`${wharf.url}/api/v1/repos/${PUBLIC}`, { headers: bearer(t) })).status;
    const kids = async () => ((await (await fetch(`${wharf.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();

    // Rotating before a new key is published is refused.
    const early = await wharf.cli(['keys', 'rotate']);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /JWT_KEY_NONE_PUBLISHED/);

    const created = await wharf.cli(['keys', 'create', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const kid2 = JSON.parse(created.stdout).key.kid as string;
    assert.deepEqual(await kids(), [kid1, kid2].sort(), 'the new key is published before it signs');
    assert.equal(decodeProtectedHeader(await mintOk(wharf, await gitlabToken())).kid, kid1, 'a published key does not sign yet');

    const rotated = await wharf.cli(['keys', 'rotate']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const t2 = await mintOk(wharf, await gitlabToken());
    assert.equal(decodeProtectedHeader(t2).kid, kid2);
    assert.equal(await ok(t1), 200, 'a token signed before the switch keeps validating');
    assert.equal(await ok(t2), 200);
    const list = await wharf.cli(['keys', 'list', '--json']);
    const states = Object.fromEntries((JSON.parse(list.stdout).keys as { kid: string; state: string }[]).map((k) => [k.kid, k.state]));
    assert.deepEqual(states, { [kid1!]: 'retired', [kid2]: 'active' });

    // trim keeps a key whose tokens may still be valid; --force drops it, and its tokens stop working.
    const keep = await wharf.cli(['keys', 'trim', '--json']);
    assert.deepEqual(JSON.parse(keep.stdout).trimmed, []);
    assert.equal(await ok(t1), 200);
    const trim = await wharf.cli(['keys', 'trim', '--force', '--json']);
    assert.equal(trim.code, 0, trim.stderr);
    assert.deepEqual(JSON.parse(trim.stdout).trimmed.map((k: { kid: string }) => k.kid), [kid1]);
    assert.equal(await ok(t1), 401);
    assert.equal(await ok(t2), 200);
    assert.deepEqual(await kids(), [kid2]);
  });
});

describe('minted tokens expire', { timeout: 60_000 }, () => {
  let w: WharfInstance;
  let issuer: TestOidcIssuer;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-oidc-expiry-'));
    // No --oidc-audience: the audience is the public URL, which the issuer learns after Wharf starts.
    issuer = await startOidcIssuer({ audience: 'placeholder' });
    await writeFile(join(dir, 'ca.pem'), issuer.caPem);
    w = await startWharf({ env: { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') }, args: ['--publish-token-seconds', '1'] });
    for (const args of [
      ['repo', 'create', PUBLIC],
      ['issuer', 'add', issuer.url, '--type', 'gitlab', '--allow-private-network'],
      ['publisher', 'add', PUBLIC, '--gitlab', 'acme/sub/tools', '--workflow', '.gitlab-ci.yml', '--issuer', issuer.url],
    ]) {
      const r = await w.cli(args);
      assert.equal(r.code, 0, `wharf ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    }
  });
  after(async () => {
    await w?.stop();
    await issuer?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the default audience is the public URL, and a minted token stops working after its lifetime', async () => {
    const aud = ((await (await fetch(`${w.url}/_/oidc/audience`)).json()) as { audience: string }).audience;
    assert.equal(aud, w.url);
    await mintRefused(w, await issuer.mintGitLab(), 'invalid-token'); // the issuer's default audience is not Wharf's
    const jwt = await mintOk(w, await issuer.mintGitLab({ audience: aud }));
    const status = async () => (await fetch(`${w.url}/api/v1/repos/${PUBLIC}`, { headers: bearer(jwt) })).status;
    assert.equal(await status(), 200);
    // lifetime 1 s + the 5 s leeway Wharf allows its own tokens
    await new Promise((r) => setTimeout(r, 7_500));
    assert.equal(await status(), 401);
  });
});
