// End-to-end over HTTPS with a throw-away test CA: Wharf serves TLS itself (--tls-cert/--tls-key) with a server
// certificate for 127.0.0.1 signed by a CA made in the test setup, and REAL apt, dnf and zypper install from a PRIVATE
// repository, each trusting only that CA (never the system store): apt with Acquire::https::CaInfo and its credentials
// in auth.conf.d (no protocol prefix: apt sends such credentials only over https), dnf with the .repo file fetched over
// https with credentials plus sslcacert=, zypper with the credentials in the https URL and ssl_capath= pointing at a
// hashed directory holding the CA. All follow Wharf's 302 for package files to an https signed URL. Wrong tokens fail.
//
// Nothing on the machine is changed (same isolation as private-clients.test.ts): every client runs in a throw-away root
// under a temporary directory; libzypp's hard-coded cookie jar /var/lib/YaST2/cookies is put back.
//
// Needs: openssl, curl, apt, dpkg, dpkg-dev, gpg, dnf, zypper, rpm (rpmbuild).
import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareAptRoot } from '../helpers/apt-root.ts';
import { assertSignedDownloads, requestLog } from '../helpers/access-log.ts';
import { buildDeb, startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { buildRpm } from '../helpers/rpm.ts';
import { diffSnapshots, HOST_PATHS, killAgents, run, show, snapshot, type Run, ZyppCookieJar } from '../helpers/rpm-clients.ts';

const REPO = 'acme/secret';
const DEB_TARGET = `${REPO}/debian/bookworm`;
const DNF_TARGET = `${REPO}/el/9`;
const ZYP_TARGET = `${REPO}/opensuse/15.6`;

interface Token {
  username: string;
  token: string;
}

let wharf: WharfInstance;
let tmp: string;
let ca: string; // the test CA certificate (PEM)
let caDir: string; // a directory with only the CA, hashed (openssl rehash) for libzypp's ssl_capath
let cliEnv: Record<string, string>;
let deploy: Token;
let rpmEnv: Record<string, string>;
let zypEnv: Record<string, string>;
let keyring: string;
const wrongToken = 'wharf_deploy_' + 'W'.repeat(43);
const hostPaths = [...HOST_PATHS, '/etc/apt', '/var/lib/dpkg/status', join(homedir(), '.rpmdb'), join(homedir(), '.gnupg'), join(homedir(), '.rpmmacros')];
let hostBefore: Map<string, string>;

/** libzypp's cookie jar, saved in before() and put back afterwards. */
let cookies: ZyppCookieJar | undefined;

const basic = (user: string, pass: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });

/** A GET over https trusting only the test CA (no redirects followed). */
function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${wharf.url}${path}`, { ca: readFileSync(ca), headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  assert.equal(r.code, 0, show(`openssl ${args[0]}`, r));
}

// ---------------------------------------------------------------------------------------------------------- apt ---

/** An isolated apt installation trusting the test CA, whose credentials are in its own auth.conf.d. */
async function aptRoot(name: string, login: string, password: string): Promise<{ dir: string; aptGet(args: string[]): Promise<Run>; aptCache(args: string[]): Promise<Run> }> {
  const dir = join(tmp, name);
  const { env } = await prepareAptRoot(dir, { arch: 'amd64', extraConf: [`Acquire::https::127.0.0.1::CaInfo "${ca}";`] });
  await writeFile(join(dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${wharf.url}/${REPO}/debian/ bookworm main\n`);
  // No protocol prefix: apt uses such an entry over https only (never over plain http).
  const u = new URL(wharf.url);
  await writeFile(join(dir, 'etc/apt/auth.conf.d/wharf.conf'), `machine ${u.host}/${REPO} login ${login} password ${password}\n`, { mode: 0o600 });
  return {
    dir,
    aptGet: (args) => run('apt-get', args, env),
    aptCache: (args) => run('apt-cache', args, env),
  };
}

// ---------------------------------------------------------------------------------------------------------- dnf ---

async function dnfRoot(name: string, repoText: string): Promise<string> {
  const root = join(tmp, name);
  await mkdir(join(root, 'etc/yum.repos.d'), { recursive: true });
  await mkdir(join(root, 'etc/dnf'), { recursive: true });
  await writeFile(join(root, 'etc/dnf/dnf.conf'), ['[main]', 'install_weak_deps=False', 'keepcache=1', 'plugins=0', 'best=True', ''].join('\n'));
  await writeFile(join(root, 'etc/yum.repos.d/wharf.repo'), repoText, { mode: 0o600 });
  return root;
}

function dnf(root: string, args: string[]): Promise<Run> {
  return run(
    'dnf',
    [`--installroot=${root}`, `--config=${join(root, 'etc/dnf/dnf.conf')}`, `--setopt=reposdir=${join(root, 'etc/yum.repos.d')}`, '--releasever=9', '--noplugins', ...args],
    rpmEnv,
  );
}

/** The private .repo file, fetched over https with the deploy token by curl trusting the test CA. */
async function fetchRepoFile(): Promise<string> {
  const r = await run('curl', ['-sS', '--fail', '--cacert', ca, '-u', `${deploy.username}:${deploy.token}`, `${wharf.url}/${DNF_TARGET}.repo`]);
  assert.equal(r.code, 0, show('curl the .repo file', r));
  return r.out;
}

/** Adds sslcacert= (the test CA) to the repository section. */
function withCa(repoText: string): string {
  return repoText.replace(/^sslverify=1$/m, `sslverify=1\nsslcacert=${ca}`);
}

// ------------------------------------------------------------------------------------------------------- zypper ---

function zypper(root: string, args: string[]): Promise<Run> {
  return run('zypper', ['--config', join(tmp, 'zypper.conf'), '--root', root, '--non-interactive', '--gpg-auto-import-keys', ...args], zypEnv);
}

function zypperUrl(token: string, capath: string | undefined): string {
  const u = new URL(wharf.url);
  const q = capath ? `?ssl_capath=${capath}` : '';
  return `https://${encodeURIComponent(deploy.username)}:${encodeURIComponent(token)}@${u.host}/${ZYP_TARGET}/x86_64${q}`;
}

describe('real clients over HTTPS with a test CA against a private repository', { timeout: 170_000 }, () => {
  before(async () => {
    hostBefore = snapshot(hostPaths);
    cookies = ZyppCookieJar.save();
    tmp = await mkdtemp(join(tmpdir(), 'wharf-https-e2e-'));
    await chmod(tmp, 0o755);

    // The throw-away CA and a server certificate for 127.0.0.1 signed by it.
    const pki = join(tmp, 'pki');
    await mkdir(pki);
    ca = join(pki, 'ca.pem');
    const caKey = join(pki, 'ca-key.pem');
    const cert = join(pki, 'server.pem');
    const key = join(pki, 'server-key.pem');
    const csr = join(pki, 'server.csr');
    const ext = join(pki, 'server.ext');
    await openssl([
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=Wharf Test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout', caKey, '-out', ca,
    ]); // prettier-ignore
    await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', csr]);
    await writeFile(ext, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n');
    await openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-sha256', '-extfile', ext, '-out', cert]);
    caDir = join(tmp, 'cadir');
    await mkdir(caDir);
    await copyFile(ca, join(caDir, 'wharf-test-ca.pem'));
    await openssl(['rehash', caDir]);

    const home = join(tmp, 'home');
    await mkdir(home, { recursive: true });
    await mkdir(join(tmp, 'tmp'), { recursive: true });
    await writeFile(join(home, '.rpmmacros'), '%_dbpath /var/lib/rpm\n');
    rpmEnv = { HOME: home, TMPDIR: join(tmp, 'tmp'), GNUPGHOME: join(home, '.gnupg') };
    const zhome = join(tmp, 'zhome');
    await mkdir(zhome, { recursive: true });
    await writeFile(join(zhome, '.rpmmacros'), `%_dbpath ${join(tmp, 'rpmdb')}\n`);
    await writeFile(join(tmp, 'zypp.conf'), '[main]\n');
    await writeFile(join(tmp, 'zypper.conf'), '[main]\n');
    zypEnv = {
      HOME: zhome,
      TMPDIR: join(tmp, 'tmp'),
      ZYPPTMPDIR: join(tmp, 'tmp'),
      ZYPP_CONF: join(tmp, 'zypp.conf'),
      ZYPP_LOGFILE: join(tmp, 'zypper.log'),
      ZYPP_LOCKFILE_ROOT: tmp,
      GNUPGHOME: join(zhome, '.gnupg'),
    };

    wharf = await startWharf({ args: ['--tls-cert', cert, '--tls-key', key], env: { WHARF_AUTH_FAILURES_PER_MINUTE: '100000' } });
    assert.match(wharf.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    cliEnv = { NODE_EXTRA_CA_CERTS: ca };
    const c = await wharf.cli(['repo', 'create', REPO, '--private', '--json'], cliEnv);
    assert.equal(c.code, 0, c.stderr);
    deploy = JSON.parse(c.stdout).deploy_token;

    const debDir = join(tmp, 'debs');
    await mkdir(debDir);
    const common = 'Maintainer: Wharf Tests <tests@example.org>\nSection: utils\nPriority: optional\n';
    const debs = [
      await buildDeb(debDir, `Package: wharf-lib\nVersion: 1.0-1\nArchitecture: amd64\n${common}Description: library\n`, { 'usr/lib/wharf/lib.txt': 'tls lib\n' }),
      await buildDeb(debDir, `Package: wharf-hello\nVersion: 1.2.3-1\nArchitecture: amd64\n${common}Depends: wharf-lib (>= 1.0)\nDescription: hello\n`, {
        'usr/bin/wharf-hello': '#!/bin/sh\necho tls hello\n',
      }),
    ];
    const pd = await wharf.cli(['push', DEB_TARGET, ...debs], cliEnv);
    assert.equal(pd.code, 0, pd.stdout + pd.stderr);

    const rpmDir = join(tmp, 'rpms');
    await mkdir(rpmDir);
    const rpms = [
      (await buildRpm(rpmDir, { name: 'tool', version: '1.2', release: '1', arch: 'x86_64', requires: ['toollib >= 1.0'], files: { '/usr/bin/tool': '#!/bin/sh\necho tls tool\n' } })).rpm,
      (await buildRpm(rpmDir, { name: 'toollib', version: '1.0', release: '1', arch: 'noarch', files: { '/usr/share/toollib/data.txt': 'toollib data\n' } })).rpm,
    ];
    for (const t of [DNF_TARGET, ZYP_TARGET]) {
      const p = await wharf.cli(['push', t, ...rpms], cliEnv);
      assert.equal(p.code, 0, p.stdout + p.stderr);
    }

    // The repository key, fetched over https with the deploy token and dearmored (temporary gpg home).
    const k = await get(`/${REPO}/gpgkey`, basic(deploy.username, deploy.token));
    assert.equal(k.status, 200);
    await writeFile(join(tmp, 'wharf.asc'), k.body);
    const gnupg = join(tmp, 'gnupg');
    await mkdir(gnupg, { mode: 0o700 });
    keyring = join(tmp, 'wharf.gpg');
    const d = await run('gpg', ['--homedir', gnupg, '--batch', '--yes', '--output', keyring, '--dearmor', join(tmp, 'wharf.asc')]);
    assert.equal(d.code, 0, d.out);
  });

  after(async () => {
    if (tmp) await killAgents(tmp);
    cookies?.restore();
    await wharf?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('over https Basic credentials are accepted and a package file redirects to an https signed URL', async () => {
    const pkg = `/${DEB_TARGET.replace('/bookworm', '')}/dists/bookworm/main/binary-amd64/Packages`;
    assert.equal((await get(pkg)).status, 401);
    assert.equal((await get(pkg, basic(deploy.username, wrongToken))).status, 401);
    const ok = await get(pkg, basic(deploy.username, deploy.token));
    assert.equal(ok.status, 200, ok.body.toString());
    const m = /^Filename: (\S+)$/m.exec(ok.body.toString());
    assert.ok(m, ok.body.toString());
    const r = await get(`/${REPO}/debian/${m[1]}`, basic(deploy.username, deploy.token));
    assert.equal(r.status, 302, r.body.toString());
    const location = String(r.headers.location);
    assert.ok(location.startsWith(`${wharf.url}/${REPO}/debian/pool/`), location);
    assert.match(location, /^https:\/\/127\.0\.0\.1:\d+\/.*[?&]signature=/);
    // The signed URL works without credentials, over https.
    const signed = await get(location.slice(wharf.url.length));
    assert.equal(signed.status, 200);
    assert.ok(signed.body.length > 0);
    // The served install instructions tell apt users to write the auth.conf line without a protocol prefix.
    const inst = await get(`/${REPO}/install`, basic(deploy.username, deploy.token));
    assert.equal(inst.status, 200);
    assert.match(inst.body.toString(), new RegExp(`machine 127\\.0\\.0\\.1:\\d+/${REPO}/ login`), inst.body.toString());
  });

  test('apt-get update + install over https with the test CA and auth.conf.d credentials', async () => {
    const root = await aptRoot('apt-ok', deploy.username, deploy.token);
    const since = requestLog(wharf).length;
    const up = await root.aptGet(['update']);
    assert.equal(up.code, 0, show('apt-get update', up));
    assert.deepEqual(
      up.out.split('\n').filter((l) => /^(W|E|Err):/.test(l.trim())),
      [],
      show('apt-get update printed warnings', up),
    );
    assert.match(up.out, /https:\/\/127\.0\.0\.1:\d+\/acme\/secret\/debian bookworm InRelease/, show('apt-get update', up));
    const lists = await readdir(join(root.dir, 'var/lib/apt/lists'));
    assert.ok(lists.some((f) => f.endsWith('_dists_bookworm_InRelease')), `no InRelease kept: ${lists.join(', ')}`);
    const inst = await root.aptGet(['install', '-y', 'wharf-hello']);
    assert.equal(inst.code, 0, show('apt-get install', inst));
    assert.equal(await readFile(join(root.dir, 'usr/bin/wharf-hello'), 'utf8'), '#!/bin/sh\necho tls hello\n');
    assert.equal(await readFile(join(root.dir, 'usr/lib/wharf/lib.txt'), 'utf8'), 'tls lib\n');
    await assertSignedDownloads(wharf, `/${REPO}/debian/pool/`, '.deb', since);
  });

  test('apt-get update over https with a wrong token fails and loads nothing', async () => {
    const root = await aptRoot('apt-wrong', deploy.username, wrongToken);
    const up = await root.aptGet(['update']);
    assert.ok(up.code !== 0 || /^(E|Err):/m.test(up.out), show('apt-get update with a wrong token', up));
    assert.match(up.out, /401|Unauthori[sz]ed/i, show('apt-get update with a wrong token', up));
    const policy = await root.aptCache(['policy', 'wharf-hello']);
    assert.doesNotMatch(policy.out, /Candidate: 1\.2\.3/, policy.out);
    const inst = await root.aptGet(['install', '-y', 'wharf-hello']);
    assert.notEqual(inst.code, 0, show('apt-get install with a wrong token', inst));
  });

  test('apt-get update without the test CA refuses the server certificate', async () => {
    const root = await aptRoot('apt-noca', deploy.username, deploy.token);
    const conf = join(root.dir, 'etc/apt/apt.conf');
    // (No retries: apt would otherwise try three more times, with back-off.)
    await writeFile(conf, (await readFile(conf, 'utf8')).replace(/^Acquire::https::127\.0\.0\.1::CaInfo .*\n/m, 'Acquire::Retries "0";\n'));
    const up = await root.aptGet(['update']);
    // apt only warns (exit 0) when an index cannot be fetched: the Err: line and the empty candidate are what count.
    assert.ok(up.code !== 0 || /^(E|Err):/m.test(up.out), show('apt-get update without the CA', up));
    assert.match(up.out, /Certificate verification failed/i, show('apt-get update without the CA', up));
    const policy = await root.aptCache(['policy', 'wharf-hello']);
    assert.doesNotMatch(policy.out, /Candidate: 1\.2\.3/, policy.out);
  });

  test('dnf --installroot installs over https from the served private .repo file with sslcacert=', async () => {
    const repoText = await fetchRepoFile();
    assert.match(repoText, new RegExp(`^baseurl=https://127\\.0\\.0\\.1:\\d+/${DNF_TARGET}/\\$basearch$`, 'm'), repoText);
    assert.match(repoText, /^gpgcheck=1$/m, repoText);
    assert.match(repoText, /^repo_gpgcheck=1$/m, repoText);
    assert.match(repoText, new RegExp(`^username=${deploy.username}$`, 'm'), repoText);
    assert.match(repoText, new RegExp(`^password=${deploy.token}$`, 'm'), repoText);
    const root = await dnfRoot('dnf-ok', withCa(repoText));
    const since = requestLog(wharf).length;
    const inst = await dnf(root, ['-y', 'install', 'tool']);
    assert.equal(inst.code, 0, show('dnf install', inst));
    assert.match(inst.out, /Installed:[\s\S]*tool-1\.2-1\.x86_64[\s\S]*Complete!/, show('dnf install', inst));
    assert.doesNotMatch(inst.out, /nogpgcheck|not signed|GPG check FAILED/i, show('dnf install', inst));
    assert.equal((inst.out.match(/Key imported successfully/g) ?? []).length, 2, show('dnf install: both keys imported', inst));
    await assertSignedDownloads(wharf, `/${DNF_TARGET}/`, '.rpm', since);
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho tls tool\n');
    assert.equal(await readFile(join(root, 'usr/share/toollib/data.txt'), 'utf8'), 'toollib data\n');
    const q = await run('rpm', ['--root', root, '-q', 'tool', 'toollib'], rpmEnv);
    assert.deepEqual(q.out.trim().split('\n'), ['tool-1.2-1.x86_64', 'toollib-1.0-1.noarch'], show('rpm -q', q));
  });

  test('dnf over https fails with a wrong token, and without the test CA', async () => {
    const good = withCa(await fetchRepoFile());
    const wrong = await dnfRoot('dnf-wrong', good.replace(/^password=.*$/m, `password=${wrongToken}`));
    const w = await dnf(wrong, ['-y', 'install', 'tool']);
    assert.notEqual(w.code, 0, show('dnf install with a wrong token', w));
    assert.match(w.out, /401|Failed to download metadata|Cannot download repomd\.xml/i, show('dnf install with a wrong token', w));
    assert.ok(!existsSync(join(wrong, 'usr/bin/tool')));
    const noCa = await dnfRoot('dnf-noca', good.replace(/^sslcacert=.*\n/m, ''));
    const n = await dnf(noCa, ['-y', 'install', 'tool']);
    assert.notEqual(n.code, 0, show('dnf install without the CA', n));
    assert.match(n.out, /certificate|SSL|Curl error \(60\)/i, show('dnf install without the CA', n));
    assert.ok(!existsSync(join(noCa, 'usr/bin/tool')));
  });

  test('zypper --root refreshes and installs over https (credentials in the URL, ssl_capath= for the CA)', async () => {
    const root = join(tmp, 'zypper-ok');
    await mkdir(root, { recursive: true });
    const since = requestLog(wharf).length;
    const ar = await zypper(root, ['addrepo', zypperUrl(deploy.token, caDir), 'wharf-private']);
    assert.equal(ar.code, 0, show('zypper addrepo', ar));
    const ref = await zypper(root, ['refresh']);
    assert.equal(ref.code, 0, show('zypper refresh', ref));
    assert.match(ref.out, /All repositories have been refreshed/, show('zypper refresh', ref));
    assert.doesNotMatch(ref.out, /unsigned|Signature verification failed/i, show('zypper refresh', ref));
    assert.match(ref.out, /importing the following key/i, show('zypper refresh: repomd.xml.key imported', ref));
    const inst = await zypper(root, ['install', 'tool']);
    assert.equal(inst.code, 0, show('zypper install', inst));
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho tls tool\n');
    assert.equal(await readFile(join(root, 'usr/share/toollib/data.txt'), 'utf8'), 'toollib data\n');
    await assertSignedDownloads(wharf, `/${ZYP_TARGET}/`, '.rpm', since);
  });

  test('zypper over https fails with a wrong token, and without the test CA', async () => {
    for (const [name, url] of [
      ['zypper-wrong', zypperUrl(wrongToken, caDir)],
      ['zypper-noca', zypperUrl(deploy.token, undefined)],
    ] as const) {
      const root = join(tmp, name);
      await mkdir(root, { recursive: true });
      assert.equal((await zypper(root, ['addrepo', url, 'wharf-private'])).code, 0);
      const ref = await zypper(root, ['refresh']);
      assert.notEqual(ref.code, 0, show(`${name}: zypper refresh`, ref));
      if (name === 'zypper-noca') assert.match(ref.out, /SSL|certificate/i, show(`${name}: zypper refresh`, ref));
      const inst = await zypper(root, ['install', 'tool']);
      assert.notEqual(inst.code, 0, show(`${name}: zypper install`, inst));
      assert.ok(!existsSync(join(root, 'usr/bin/tool')));
    }
  });

  test('no secret reached the server output, and the host was not touched', async () => {
    const out = wharf.output();
    assert.ok(!out.includes(deploy.token), 'the deploy token is in the server output');
    assert.ok(!out.includes(wrongToken), 'the wrong token is in the server output');
    await killAgents(tmp);
    cookies?.restore();
    assert.deepEqual(diffSnapshots(hostBefore, snapshot(hostPaths)), []);
  });
});
