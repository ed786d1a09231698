// End-to-end with REAL package managers against a PRIVATE Wharf repository: apt with auth.conf credentials, dnf with
// the .repo file Wharf serves (fetched with credentials, so it carries username=/password=), zypper with the
// credentials in the repository URL. Each follows Wharf's 302 to a signed URL for the package files. Wrong tokens fail.
//
// Nothing on the machine is changed (same isolation as apt.test.ts, dnf.test.ts and zypper.test.ts): every client runs
// in a throw-away root under a temporary directory with its configuration pointed into it; apt's auth.conf lives in
// the root (Dir::Etc::netrc / netrcparts); libzypp's hard-coded cookie jar /var/lib/YaST2/cookies is put back.
//
// Needs: apt, dpkg, dpkg-dev, gpg, dnf, zypper, rpm (rpmbuild).
import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDeb, startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { assertSignedDownloads, requestLog } from '../helpers/access-log.ts';
import { prepareAptRoot } from '../helpers/apt-root.ts';
import { buildRpm } from '../helpers/rpm.ts';
import { diffSnapshots, HOST_PATHS, killAgents, run, show, snapshot, type Run, ZyppCookieJar } from '../helpers/rpm-clients.ts';

const REPO = 'acme/secret';
const DEB_TARGET = `${REPO}/debian/bookworm`;
const DNF_TARGET = `${REPO}/el/9`;
const ZYP_TARGET = `${REPO}/opensuse/15.6`;

interface Token {
  id: number;
  name: string;
  username: string;
  token: string;
}

let wharf: WharfInstance;
let tmp: string;
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

// ---------------------------------------------------------------------------------------------------------- apt ---

/** An isolated apt installation whose credentials are in its own auth.conf.d. */
async function aptRoot(name: string, login: string, password: string): Promise<{ dir: string; aptGet(args: string[]): Promise<Run>; aptCache(args: string[]): Promise<Run> }> {
  const dir = join(tmp, name);
  const { env } = await prepareAptRoot(dir, { arch: 'amd64' });
  // The source has no credentials: they come from auth.conf.d (the http:// prefix makes apt use them over plain http).
  await writeFile(join(dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${wharf.url}/${REPO}/debian/ bookworm main\n`);
  const u = new URL(wharf.url);
  await writeFile(join(dir, 'etc/apt/auth.conf.d/wharf.conf'), `machine http://${u.host}/${REPO} login ${login} password ${password}\n`, { mode: 0o600 });
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

// ------------------------------------------------------------------------------------------------------- zypper ---

function zypper(root: string, args: string[]): Promise<Run> {
  return run('zypper', ['--config', join(tmp, 'zypper.conf'), '--root', root, '--non-interactive', '--gpg-auto-import-keys', ...args], zypEnv);
}

describe('real clients against a private repository', { timeout: 170_000 }, () => {
  before(async () => {
    hostBefore = snapshot(hostPaths);
    cookies = ZyppCookieJar.save();
    tmp = await mkdtemp(join(tmpdir(), 'wharf-private-e2e-'));
    await chmod(tmp, 0o755);
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

    wharf = await startWharf({ env: { WHARF_AUTH_FAILURES_PER_MINUTE: '100000' } });
    const c = await wharf.cli(['repo', 'create', REPO, '--private', '--json']);
    assert.equal(c.code, 0, c.stderr);
    deploy = JSON.parse(c.stdout).deploy_token;

    const debDir = join(tmp, 'debs');
    await mkdir(debDir);
    const common = 'Maintainer: Wharf Tests <tests@example.org>\nSection: utils\nPriority: optional\n';
    const debs = [
      await buildDeb(debDir, `Package: wharf-lib\nVersion: 1.0-1\nArchitecture: amd64\n${common}Description: library\n`, { 'usr/lib/wharf/lib.txt': 'private lib\n' }),
      await buildDeb(debDir, `Package: wharf-hello\nVersion: 1.2.3+git1-1\nArchitecture: amd64\n${common}Depends: wharf-lib (>= 1.0)\nDescription: hello\n`, {
        'usr/bin/wharf-hello': '#!/bin/sh\necho private hello\n',
      }),
    ];
    const pd = await wharf.cli(['push', DEB_TARGET, ...debs]);
    assert.equal(pd.code, 0, pd.stdout + pd.stderr);

    const rpmDir = join(tmp, 'rpms');
    await mkdir(rpmDir);
    const rpms = [
      (await buildRpm(rpmDir, { name: 'tool', version: '1.2', release: '1', arch: 'x86_64', requires: ['toollib >= 1.0'], files: { '/usr/bin/tool': '#!/bin/sh\necho private tool\n' } })).rpm,
      (await buildRpm(rpmDir, { name: 'toollib', version: '1.0', release: '1', arch: 'noarch', files: { '/usr/share/toollib/data.txt': 'toollib data\n' } })).rpm,
    ];
    for (const t of [DNF_TARGET, ZYP_TARGET]) {
      const p = await wharf.cli(['push', t, ...rpms]);
      assert.equal(p.code, 0, p.stdout + p.stderr);
    }

    // The repository key, fetched with the deploy token and dearmored (temporary gpg home).
    const key = await fetch(`${wharf.url}/${REPO}/gpgkey`, { headers: basic(deploy.username, deploy.token) });
    assert.equal(key.status, 200);
    await writeFile(join(tmp, 'wharf.asc'), Buffer.from(await key.arrayBuffer()));
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

  test('apt-get update + install with auth.conf.d credentials, packages through the signed redirect', async () => {
    const root = await aptRoot('apt-ok', deploy.username, deploy.token);
    const up = await root.aptGet(['update']);
    assert.equal(up.code, 0, show('apt-get update', up));
    assert.deepEqual(
      up.out.split('\n').filter((l) => /^(W|E|Err):/.test(l.trim())),
      [],
      show('apt-get update printed warnings', up),
    );
    const lists = await readdir(join(root.dir, 'var/lib/apt/lists'));
    assert.ok(lists.some((f) => f.endsWith('_dists_bookworm_InRelease')), `no InRelease kept: ${lists.join(', ')}`);
    const inst = await root.aptGet(['install', '-y', 'wharf-hello']);
    assert.equal(inst.code, 0, show('apt-get install', inst));
    assert.equal(await readFile(join(root.dir, 'usr/bin/wharf-hello'), 'utf8'), '#!/bin/sh\necho private hello\n');
    assert.equal(await readFile(join(root.dir, 'usr/lib/wharf/lib.txt'), 'utf8'), 'private lib\n');
    // apt went through the 302 and then the signed URL.
    await assertSignedDownloads(wharf, '/acme/secret/debian/pool/', '.deb', 0);
  });

  test('apt-get update with a wrong token fails and loads nothing', async () => {
    const root = await aptRoot('apt-wrong', deploy.username, wrongToken);
    const up = await root.aptGet(['update']);
    assert.ok(up.code !== 0 || /^(E|Err):/m.test(up.out), show('apt-get update with a wrong token', up));
    assert.match(up.out, /401|Unauthori[sz]ed/i, show('apt-get update with a wrong token', up));
    const policy = await root.aptCache(['policy', 'wharf-hello']);
    assert.doesNotMatch(policy.out, /Candidate: 1\.2\.3/, policy.out);
    const inst = await root.aptGet(['install', '-y', 'wharf-hello']);
    assert.notEqual(inst.code, 0, show('apt-get install with a wrong token', inst));
  });

  test('dnf --installroot installs from the served private .repo file (credentials in it)', async () => {
    const r = await fetch(`${wharf.url}/${DNF_TARGET}.repo`, { headers: basic(deploy.username, deploy.token) });
    assert.equal(r.status, 200);
    const repoText = await r.text();
    assert.match(repoText, new RegExp(`^username=${deploy.username}$`, 'm'), repoText);
    assert.match(repoText, new RegExp(`^password=${deploy.token}$`, 'm'), repoText);
    const root = await dnfRoot('dnf-ok', repoText);
    const since = requestLog(wharf).length;
    const inst = await dnf(root, ['-y', 'install', 'tool']);
    assert.equal(inst.code, 0, show('dnf install', inst));
    assert.match(inst.out, /Installed:[\s\S]*tool-1\.2-1\.x86_64[\s\S]*Complete!/, show('dnf install', inst));
    assert.doesNotMatch(inst.out, /nogpgcheck|not signed|GPG check FAILED/i, show('dnf install', inst));
    // Both keys came from the private gpgkey= URLs (with the .repo credentials).
    assert.equal((inst.out.match(/Key imported successfully/g) ?? []).length, 2, show('dnf install: both keys imported', inst));
    await assertSignedDownloads(wharf, `/${DNF_TARGET}/`, '.rpm', since);
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho private tool\n');
    assert.equal(await readFile(join(root, 'usr/share/toollib/data.txt'), 'utf8'), 'toollib data\n');
    const q = await run('rpm', ['--root', root, '-q', 'tool', 'toollib'], rpmEnv);
    assert.deepEqual(q.out.trim().split('\n'), ['tool-1.2-1.x86_64', 'toollib-1.0-1.noarch'], show('rpm -q', q));
  });

  test('dnf with a wrong token in the .repo file fails', async () => {
    const r = await fetch(`${wharf.url}/${DNF_TARGET}.repo`, { headers: basic(deploy.username, deploy.token) });
    const text = (await r.text()).replace(/^password=.*$/m, `password=${wrongToken}`);
    const root = await dnfRoot('dnf-wrong', text);
    const inst = await dnf(root, ['-y', 'install', 'tool']);
    assert.notEqual(inst.code, 0, show('dnf install with a wrong token', inst));
    assert.match(inst.out, /401|Failed to download metadata|Cannot download repomd\.xml/i, show('dnf install with a wrong token', inst));
    assert.ok(!existsSync(join(root, 'usr/bin/tool')));
  });

  test('zypper --root with the credentials in the repository URL refreshes and installs', async () => {
    const root = join(tmp, 'zypper-ok');
    await mkdir(root, { recursive: true });
    const u = new URL(wharf.url);
    const url = `http://${encodeURIComponent(deploy.username)}:${encodeURIComponent(deploy.token)}@${u.host}/${ZYP_TARGET}/x86_64`;
    const since = requestLog(wharf).length;
    const ar = await zypper(root, ['addrepo', url, 'wharf-private']);
    assert.equal(ar.code, 0, show('zypper addrepo', ar));
    const ref = await zypper(root, ['refresh']);
    assert.equal(ref.code, 0, show('zypper refresh', ref));
    assert.match(ref.out, /All repositories have been refreshed/, show('zypper refresh', ref));
    assert.doesNotMatch(ref.out, /unsigned|Signature verification failed/i, show('zypper refresh', ref));
    const inst = await zypper(root, ['install', 'tool']);
    assert.equal(inst.code, 0, show('zypper install', inst));
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho private tool\n');
    assert.match(ref.out, /importing the following key/i, show('zypper refresh: repomd.xml.key imported', ref));
    await assertSignedDownloads(wharf, `/${ZYP_TARGET}/`, '.rpm', since);
  });

  test('zypper with a wrong token in the URL fails', async () => {
    const root = join(tmp, 'zypper-wrong');
    await mkdir(root, { recursive: true });
    const u = new URL(wharf.url);
    const url = `http://${encodeURIComponent(deploy.username)}:${encodeURIComponent(wrongToken)}@${u.host}/${ZYP_TARGET}/x86_64`;
    assert.equal((await zypper(root, ['addrepo', url, 'wharf-private'])).code, 0);
    const ref = await zypper(root, ['refresh']);
    assert.notEqual(ref.code, 0, show('zypper refresh with a wrong token', ref));
    const inst = await zypper(root, ['install', 'tool']);
    assert.notEqual(inst.code, 0, show('zypper install with a wrong token', inst));
    assert.ok(!existsSync(join(root, 'usr/bin/tool')));
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
