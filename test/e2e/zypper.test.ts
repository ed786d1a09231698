// End-to-end with the REAL zypper (libzypp): a Wharf server, RPMs built with rpmbuild and pushed with the real CLI,
// and `zypper --root` adding, refreshing and installing from it with its signature checks on: repomd.xml must verify
// against the key zypper finds at repodata/repomd.xml.key (imported with --gpg-auto-import-keys, which only answers
// the "trust this key?" question) and, in strict mode (pkg_gpgcheck), every package against the keys named by the
// gpgkey= lines of Wharf's .repo file. --no-gpg-checks is never used.
//
// Negative cases go through a small loopback proxy in front of Wharf that swaps repomd.xml.key for an unrelated key,
// alters repomd.xml, or (strict mode) a .repo file whose package key is unrelated: zypper must refuse each.
//
// Nothing on the machine is changed: every root lives under a temporary directory (--root), zypper's own config
// (--config), libzypp's (ZYPP_CONF), its log (ZYPP_LOGFILE), lock (ZYPP_LOCKFILE_ROOT) and temporary files
// (ZYPPTMPDIR, TMPDIR) point into it, HOME is temporary (its .rpmmacros puts the rpm database at a path under the
// temporary directory: Debian's rpm would otherwise use ~/.rpmdb, and libzypp's strict package check opens that path
// without the --root prefix). libzypp always writes its curl cookie jar to the hard-coded
// /var/lib/YaST2/cookies: the test puts that path back as it found it. The last test compares host paths.
//
// Needs: zypper, rpm (rpmbuild) — Debian packages zypper, rpm.
import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { buildRpm } from '../helpers/rpm.ts';
import { diffSnapshots, HOST_PATHS, killAgents, run, show, snapshot, type Run, ZyppCookieJar } from '../helpers/rpm-clients.ts';

const REPO = 'acme/tools';
const TARGET = `${REPO}/opensuse/15.6`;
const ARCH_PATH = `/${TARGET}/x86_64`;

let wharf: WharfInstance;
let tmp: string;
let env: Record<string, string>;
let hostBefore: Map<string, string>;
const hostPaths = [...HOST_PATHS, join(homedir(), '.rpmdb'), join(homedir(), '.gnupg'), join(homedir(), '.rpmmacros')];
const rpms: Record<string, string> = {};
let otherKey: string;
let metaFpr: string; // upper-case hex
let pkgFpr: string;
let proxy: Server;
let proxyUrl: string;
/** path -> replacement body (or a function of the real body) served by the proxy */
const overrides = new Map<string, string | ((real: Buffer) => Buffer)>();
const roots: string[] = [];

/** libzypp's cookie jar, saved in before() and put back afterwards. */
let cookies: ZyppCookieJar | undefined;

async function makeRoot(name: string): Promise<string> {
  const root = join(tmp, name);
  await mkdir(root, { recursive: true });
  roots.push(root);
  return root;
}

function zypper(root: string, args: string[]): Promise<Run> {
  return run('zypper', ['--config', join(tmp, 'zypper.conf'), '--root', root, '--non-interactive', '--gpg-auto-import-keys', ...args], env);
}

const rpmq = (root: string, args: string[]) => run('rpm', ['--root', root, ...args], env);

/** zypper prints fingerprints in groups of 8: "BE4058CB DB462213 ...". */
const grouped = (fpr: string) => fpr.match(/.{1,8}/g)!.join(' ');

describe('zypper against a Wharf RPM repository', { timeout: 170_000 }, () => {
  before(async () => {
    hostBefore = snapshot(hostPaths);
    cookies = ZyppCookieJar.save();

    tmp = await mkdtemp(join(tmpdir(), 'wharf-zypper-e2e-'));
    await chmod(tmp, 0o755);
    const home = join(tmp, 'home');
    await mkdir(home, { recursive: true });
    await mkdir(join(tmp, 'tmp'), { recursive: true });
    // libzypp's package signature check (strict mode) opens the rpm database at %_dbpath WITHOUT the --root prefix,
    // creating it if missing: an absolute path inside the temporary directory keeps that one off the host too. The
    // root's own database is then <root><tmp>/rpmdb, which rpm --root finds through the same macro.
    await writeFile(join(home, '.rpmmacros'), `%_dbpath ${join(tmp, 'rpmdb')}\n`);
    await writeFile(join(tmp, 'zypp.conf'), '[main]\n');
    await writeFile(join(tmp, 'zypper.conf'), '[main]\n');
    env = {
      HOME: home,
      TMPDIR: join(tmp, 'tmp'),
      ZYPPTMPDIR: join(tmp, 'tmp'),
      ZYPP_CONF: join(tmp, 'zypp.conf'),
      ZYPP_LOGFILE: join(tmp, 'zypper.log'),
      ZYPP_LOCKFILE_ROOT: tmp,
      GNUPGHOME: join(home, '.gnupg'),
    };

    wharf = await startWharf();
    const build = join(tmp, 'rpms');
    await mkdir(build);
    const tool = await buildRpm(build, {
      name: 'tool',
      version: '1.2',
      release: '1',
      arch: 'x86_64',
      requires: ['toollib >= 1.0'],
      files: { '/usr/bin/tool': '#!/bin/sh\necho tool 1.2\n' },
      source: true,
    });
    rpms.tool = tool.rpm;
    rpms.toolSrc = tool.srpm!;
    rpms.toollib = (await buildRpm(build, { name: 'toollib', version: '1.0', release: '1', arch: 'noarch', files: { '/usr/share/toollib/data.txt': 'toollib data\n' } })).rpm;
    rpms.tool13 = (
      await buildRpm(build, {
        name: 'tool',
        version: '1.3',
        release: '1',
        arch: 'x86_64',
        requires: ['toollib >= 1.0'],
        files: { '/usr/bin/tool': '#!/bin/sh\necho tool 1.3\n' },
      })
    ).rpm;
    const c = await wharf.cli(['repo', 'create', REPO]);
    assert.equal(c.code, 0, `repo create: ${c.stdout}${c.stderr}`);
    const p = await wharf.cli(['push', TARGET, rpms.tool, rpms.toolSrc, rpms.toollib]);
    assert.equal(p.code, 0, `push: ${p.stdout}${p.stderr}`);

    const metaKey = await openpgp.readKey({ armoredKey: await (await fetch(`${wharf.url}/${REPO}/gpgkey`)).text() });
    const pkgKey = await openpgp.readKey({ armoredKey: await (await fetch(`${wharf.url}/${REPO}/package-gpgkey`)).text() });
    metaFpr = metaKey.getFingerprint().toUpperCase();
    pkgFpr = pkgKey.getFingerprint().toUpperCase();
    assert.notEqual(metaFpr, pkgFpr);
    otherKey = (await openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [{ name: 'Not Wharf', email: 'other@example.invalid' }], format: 'armored' }))
      .publicKey;
    await writeFile(join(tmp, 'other-key.asc'), otherKey);

    // A loopback proxy in front of Wharf, for the tampering tests.
    proxy = createServer((req, res) => {
      void (async () => {
        const path = (req.url ?? '/').split('?')[0]!;
        const upstream = await fetch(`${wharf.url}${req.url}`, { method: req.method });
        const real = Buffer.from(await upstream.arrayBuffer());
        const o = overrides.get(path);
        if (o !== undefined && upstream.status === 200) {
          const body = typeof o === 'string' ? Buffer.from(o) : o(real);
          res.writeHead(200, { 'content-length': body.length });
          res.end(req.method === 'HEAD' ? undefined : body);
          return;
        }
        const headers: Record<string, string> = {};
        upstream.headers.forEach((v, k) => {
          if (!['transfer-encoding', 'connection', 'content-encoding', 'keep-alive'].includes(k)) headers[k] = v;
        });
        res.writeHead(upstream.status, headers);
        res.end(req.method === 'HEAD' ? undefined : real);
      })().catch((e) => {
        res.writeHead(502);
        res.end(String(e));
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  after(async () => {
    await killAgents(tmp);
    cookies?.restore();
    await new Promise((r) => proxy?.close(r));
    await wharf?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('repodata/repomd.xml.key is the metadata key', async () => {
    const r = await fetch(`${wharf.url}${ARCH_PATH}/repodata/repomd.xml.key`);
    assert.equal(r.status, 200);
    const key = await openpgp.readKey({ armoredKey: await r.text() });
    assert.equal(key.getFingerprint().toUpperCase(), metaFpr);
  });

  test('zypper addrepo + refresh imports the key from repomd.xml.key, then installs the package and its dependency', async () => {
    const root = await makeRoot('root-plain');
    const ar = await zypper(root, ['addrepo', `${wharf.url}${ARCH_PATH}`, 'wharf']);
    assert.equal(ar.code, 0, show('zypper addrepo', ar));
    assert.match(ar.out, /GPG Check\s*:\s*Yes/, show('zypper addrepo', ar));

    const ref = await zypper(root, ['refresh']);
    assert.equal(ref.code, 0, show('zypper refresh', ref));
    assert.match(ref.out, /importing the following key/i, show('zypper refresh', ref));
    assert.ok(ref.out.includes(grouped(metaFpr)), show(`zypper refresh: metadata key ${metaFpr} not imported`, ref));
    assert.match(ref.out, /All repositories have been refreshed/, show('zypper refresh', ref));
    assert.doesNotMatch(ref.out, /unsigned|Signature verification failed|no-gpg-checks/i, show('zypper refresh', ref));

    const inst = await zypper(root, ['install', 'tool']);
    assert.equal(inst.code, 0, show('zypper install', inst));
    assert.match(inst.out, /Installing: toollib-1\.0-1\.noarch[\s\S]*Installing: tool-1\.2-1\.x86_64/, show('zypper install', inst));
    const q = await rpmq(root, ['-q', 'tool', 'toollib']);
    assert.equal(q.code, 0, show('rpm -q', q));
    assert.deepEqual(q.out.trim().split('\n'), ['tool-1.2-1.x86_64', 'toollib-1.0-1.noarch']);
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho tool 1.2\n');
    assert.equal(await readFile(join(root, 'usr/share/toollib/data.txt'), 'utf8'), 'toollib data\n');
  });

  test('strict package checks (pkg_gpgcheck) with the served .repo file: packages verify against the package key', async () => {
    const root = await makeRoot('root-strict');
    const ar = await zypper(root, ['addrepo', '--gpgcheck-strict', `${wharf.url}/${TARGET}.repo`]);
    assert.equal(ar.code, 0, show('zypper addrepo .repo', ar));
    assert.match(ar.out, new RegExp(`URI\\s*:\\s*${wharf.url}${ARCH_PATH}\\s`), show('zypper addrepo .repo ($basearch expanded)', ar));
    const ref = await zypper(root, ['refresh']);
    assert.equal(ref.code, 0, show('zypper refresh', ref));
    const inst = await zypper(root, ['install', 'tool']);
    assert.equal(inst.code, 0, show('zypper install (strict)', inst));
    assert.doesNotMatch(inst.out, /Signature verification failed/i, show('zypper install (strict)', inst));
    // The package key is found through the .repo file's gpgkey= URLs when the first package is checked.
    assert.match(inst.out, /gpgkey=\S+\/package-gpgkey/, show('zypper install (strict)', inst));
    assert.ok(inst.out.includes(grouped(pkgFpr)), show(`zypper install (strict): package key ${pkgFpr} not imported`, inst));
    assert.equal((await rpmq(root, ['-q', 'tool'])).out.trim(), 'tool-1.2-1.x86_64');
    // Both keys ended up in the root's rpm database.
    const keys = await rpmq(root, ['-q', 'gpg-pubkey']);
    const ids = keys.out.trim().split('\n');
    assert.ok(ids.some((k) => k.startsWith(`gpg-pubkey-${metaFpr.slice(-8).toLowerCase()}-`)), show('rpm -q gpg-pubkey', keys));
    assert.ok(ids.some((k) => k.startsWith(`gpg-pubkey-${pkgFpr.slice(-8).toLowerCase()}-`)), show('rpm -q gpg-pubkey', keys));
  });

  test('strict mode with an unrelated package key in gpgkey=: zypper refuses the packages', async () => {
    const root = await makeRoot('root-strict-wrong-pkg-key');
    const repoText = await (await fetch(`${wharf.url}/${TARGET}.repo`)).text();
    const text = repoText.replace(/^gpgkey=.*$/m, `gpgkey=${wharf.url}/${REPO}/gpgkey file://${join(tmp, 'other-key.asc')}`);
    assert.notEqual(text, repoText);
    await writeFile(join(tmp, 'wrong-pkg-key.repo'), text);
    const ar = await zypper(root, ['addrepo', '--gpgcheck-strict', join(tmp, 'wrong-pkg-key.repo')]);
    assert.equal(ar.code, 0, show('zypper addrepo', ar));
    assert.equal((await zypper(root, ['refresh'])).code, 0);
    const inst = await zypper(root, ['install', 'tool']);
    assert.notEqual(inst.code, 0, show('zypper install with an unrelated package key', inst));
    assert.match(inst.out, /Signature verification failed \[4-Signatures public key is not available\]/, show('zypper install', inst));
    assert.ok(!existsSync(join(root, 'usr/bin/tool')));
    assert.notEqual((await rpmq(root, ['-q', 'tool'])).code, 0);
  });

  test('a repomd.xml.key swapped for an unrelated key is refused', async () => {
    overrides.clear();
    overrides.set(`${ARCH_PATH}/repodata/repomd.xml.key`, otherKey);
    try {
      const root = await makeRoot('root-swapped-key');
      assert.equal((await zypper(root, ['addrepo', `${proxyUrl}${ARCH_PATH}`, 'wharf'])).code, 0);
      const ref = await zypper(root, ['refresh']);
      assert.notEqual(ref.code, 0, show('zypper refresh with a swapped key', ref));
      assert.match(ref.out, /'repomd\.xml' from repository 'wharf' is signed with an unknown key/, show('zypper refresh with a swapped key', ref));
      assert.match(ref.out, /Signature verification failed for repomd\.xml/, show('zypper refresh with a swapped key', ref));
      assert.doesNotMatch(ref.out, /All repositories have been refreshed/, show('zypper refresh with a swapped key', ref));
      const inst = await zypper(root, ['install', 'tool']);
      assert.notEqual(inst.code, 0, show('zypper install after a refused refresh', inst));
      assert.ok(!existsSync(join(root, 'usr/bin/tool')));
    } finally {
      overrides.clear();
    }
  });

  test('an altered repomd.xml (genuine key) is refused', async () => {
    overrides.clear();
    overrides.set(`${ARCH_PATH}/repodata/repomd.xml`, (real) => Buffer.concat([real, Buffer.from('<!-- altered in transit -->\n')]));
    try {
      const root = await makeRoot('root-altered');
      assert.equal((await zypper(root, ['addrepo', `${proxyUrl}${ARCH_PATH}`, 'wharf'])).code, 0);
      const ref = await zypper(root, ['refresh']);
      assert.notEqual(ref.code, 0, show('zypper refresh with an altered repomd.xml', ref));
      // The genuine key was found and imported; the file no longer matches its signature.
      assert.ok(ref.out.includes(grouped(metaFpr)), show('zypper refresh: genuine key not imported', ref));
      assert.match(ref.out, /Signature verification failed for file 'repomd\.xml' from repository 'wharf'/, show('zypper refresh with an altered repomd.xml', ref));
    } finally {
      overrides.clear();
    }
  });

  test('after tool-1.3 is pushed, zypper refresh + update installs it', async () => {
    const p = await wharf.cli(['push', TARGET, rpms.tool13]);
    assert.equal(p.code, 0, `push: ${p.stdout}${p.stderr}`);
    const root = join(tmp, 'root-strict');
    const ref = await zypper(root, ['refresh', '--force']);
    assert.equal(ref.code, 0, show('zypper refresh --force', ref));
    const up = await zypper(root, ['update']);
    assert.equal(up.code, 0, show('zypper update', up));
    assert.equal((await rpmq(root, ['-q', 'tool'])).out.trim(), 'tool-1.3-1.x86_64');
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho tool 1.3\n');
  });

  test('the host was not touched', async () => {
    await killAgents(tmp);
    cookies?.restore();
    assert.deepEqual(diffSnapshots(hostBefore, snapshot(hostPaths)), []);
    assert.ok(cookies?.unchanged(), 'libzypp cookie jar restored');
  });
});

