// End-to-end with the REAL dnf (and rpm/rpmkeys): a Wharf server, RPMs built with rpmbuild and pushed with the real
// CLI, and `dnf --installroot` installing from the .repo file Wharf serves, with every signature check on
// (gpgcheck=1 for packages, repo_gpgcheck=1 for repomd.xml; the keys come from the gpgkey= URLs and dnf imports them
// after asking, which -y answers). --nogpgcheck is never used.
//
// Nothing on the machine is changed: every root lives under a temporary directory; dnf gets --installroot (so its
// cache, logs, history and rpm database are inside the root), its own dnf.conf inside the root (read before the host's)
// and --setopt=reposdir pointing into the root; HOME is a temporary directory whose .rpmmacros puts the rpm database
// at /var/lib/rpm inside each root (Debian's rpm would otherwise use ~/.rpmdb), TMPDIR is temporary, plugins are off.
// dnf's librepo starts a gpg-agent per repository key ring: they are killed. The last test compares host paths.
//
// Needs: dnf, rpm (rpmbuild, rpmkeys), gnupg (gpgconf) — Debian packages dnf, rpm, gpg.
import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as openpgp from 'openpgp';
import { startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { buildRpm } from '../helpers/rpm.ts';
import { diffSnapshots, HOST_PATHS, killAgents, run, show, snapshot, type Run } from '../helpers/rpm-clients.ts';

const REPO = 'acme/tools';
const TARGET = `${REPO}/el/9`;
const REPO_ID = 'acme-tools-el-9';

let wharf: WharfInstance;
let tmp: string;
let env: Record<string, string>;
let hostBefore: Map<string, string>;
const hostPaths = [...HOST_PATHS, join(homedir(), '.rpmdb'), join(homedir(), '.gnupg'), join(homedir(), '.rpmmacros')];
const rpms: Record<string, string> = {};
let repoFile: string;
let otherKey: string; // armored public key Wharf never used
const roots: string[] = [];

/** A fresh dnf installroot with its own dnf.conf (no gpgcheck settings: the .repo file from Wharf turns them on) and the given .repo files. */
async function makeRoot(name: string, repos: Record<string, string>): Promise<string> {
  const root = join(tmp, name);
  await mkdir(join(root, 'etc/yum.repos.d'), { recursive: true });
  await mkdir(join(root, 'etc/dnf'), { recursive: true });
  await writeFile(
    join(root, 'etc/dnf/dnf.conf'),
    ['[main]', 'localpkg_gpgcheck=1', 'install_weak_deps=False', 'keepcache=1', 'plugins=0', 'best=True', ''].join('\n'),
  );
  for (const [file, text] of Object.entries(repos)) await writeFile(join(root, 'etc/yum.repos.d', file), text);
  roots.push(root);
  return root;
}

function dnf(root: string, args: string[]): Promise<Run> {
  return run(
    'dnf',
    [
      `--installroot=${root}`,
      `--config=${join(root, 'etc/dnf/dnf.conf')}`,
      `--setopt=reposdir=${join(root, 'etc/yum.repos.d')}`,
      '--releasever=9',
      '--setopt=install_weak_deps=False',
      '--noplugins',
      ...args,
    ],
    env,
  );
}

const rpmq = (root: string, args: string[]) => run('rpm', ['--root', root, ...args], env);

async function cachedPackages(root: string): Promise<string[]> {
  const cache = join(root, 'var/cache/dnf');
  const out: string[] = [];
  for (const d of existsSync(cache) ? await readdir(cache) : []) {
    const p = join(cache, d, 'packages');
    if (existsSync(p)) for (const f of await readdir(p)) out.push(join(p, f));
  }
  return out;
}

describe('dnf against a Wharf RPM repository', { timeout: 170_000 }, () => {
  before(async () => {
    hostBefore = snapshot(hostPaths);
    tmp = await mkdtemp(join(tmpdir(), 'wharf-dnf-e2e-'));
    await chmod(tmp, 0o755);
    const home = join(tmp, 'home');
    await mkdir(join(tmp, 'tmp'), { recursive: true });
    await mkdir(home, { recursive: true });
    await writeFile(join(home, '.rpmmacros'), '%_dbpath /var/lib/rpm\n');
    env = { HOME: home, TMPDIR: join(tmp, 'tmp'), GNUPGHOME: join(home, '.gnupg') };

    // The built packages' directory is an import root too (`wharf import`, the last tests).
    wharf = await startWharf({ env: { WHARF_IMPORT_ROOTS: join(tmp, 'rpms') } });
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

    const r = await fetch(`${wharf.url}/${TARGET}.repo`);
    assert.equal(r.status, 200, `GET /${TARGET}.repo`);
    repoFile = await r.text();

    // An unrelated key (openpgp.js: no gpg-agent), for the negative tests.
    otherKey = (await openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [{ name: 'Not Wharf', email: 'other@example.invalid' }], format: 'armored' }))
      .publicKey;
    await writeFile(join(tmp, 'other-key.asc'), otherKey);
  });

  after(async () => {
    await killAgents(tmp);
    await wharf?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('the served .repo file names the repository, its baseurl and both keys, with checks on', () => {
    const lines = repoFile.split('\n').map((l) => l.trim());
    assert.equal(lines[0], `[${REPO_ID}]`, repoFile);
    assert.ok(lines.includes(`baseurl=${wharf.url}/${TARGET}/$basearch`), repoFile);
    assert.ok(lines.includes('gpgcheck=1'), repoFile);
    assert.ok(lines.includes('repo_gpgcheck=1'), repoFile);
    assert.ok(lines.includes('enabled=1'), repoFile);
    assert.ok(lines.includes(`gpgkey=${wharf.url}/${REPO}/gpgkey ${wharf.url}/${REPO}/package-gpgkey`), repoFile);
  });

  test('dnf --installroot installs the package and its noarch dependency, importing both keys', async () => {
    const root = await makeRoot('root-main', { [`${REPO_ID}.repo`]: repoFile });
    const r = await dnf(root, ['-y', 'install', 'tool']);
    assert.equal(r.code, 0, show('dnf install', r));
    assert.match(r.out, /Importing GPG key/, show('dnf install', r));
    assert.equal((r.out.match(/Key imported successfully/g) ?? []).length, 2, show('dnf install: both keys imported', r));
    assert.match(r.out, /Installed:[\s\S]*tool-1\.2-1\.x86_64[\s\S]*Complete!/, show('dnf install', r));
    assert.match(r.out, /toollib-1\.0-1\.noarch/, show('dnf install', r));
    assert.doesNotMatch(r.out, /nogpgcheck|not signed|GPG check FAILED/i, show('dnf install', r));

    const q = await rpmq(root, ['-q', 'tool', 'toollib']);
    assert.equal(q.code, 0, show('rpm -q', q));
    assert.deepEqual(q.out.trim().split('\n'), ['tool-1.2-1.x86_64', 'toollib-1.0-1.noarch']);
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho tool 1.2\n');
    assert.equal(await readFile(join(root, 'usr/share/toollib/data.txt'), 'utf8'), 'toollib data\n');
    // Both keys went into the root's rpm database (gpg-pubkey pseudo-packages), none into the host's.
    const keys = await rpmq(root, ['-q', 'gpg-pubkey']);
    assert.equal(keys.code, 0, show('rpm -q gpg-pubkey', keys));
    assert.equal(keys.out.trim().split('\n').length, 2, show('rpm -q gpg-pubkey', keys));
  });

  test('rpmkeys --checksig: packages dnf downloaded carry a valid Wharf package signature', async () => {
    const root = join(tmp, 'root-main');
    const pkgs = await cachedPackages(root);
    const tool = pkgs.find((p) => p.endsWith('/tool-1.2-1.x86_64.rpm'));
    assert.ok(tool, `dnf kept no tool-1.2-1.x86_64.rpm in its cache: ${pkgs.join(', ')}`);
    // Against the keys dnf imported into the root.
    const inRoot = await run('rpmkeys', ['--root', root, '--checksig', tool], env);
    assert.equal(inRoot.code, 0, show('rpmkeys --root --checksig', inRoot));
    assert.match(inRoot.out, /: digests signatures OK\n?$/, show('rpmkeys --root --checksig', inRoot));

    // Against only the package key fetched from /ORG/REPO/package-gpgkey, in a temporary database.
    const pk = await fetch(`${wharf.url}/${REPO}/package-gpgkey`);
    assert.equal(pk.status, 200);
    await writeFile(join(tmp, 'package-gpgkey.asc'), await pk.text());
    const db = join(tmp, 'keydb');
    await mkdir(db);
    const imp = await run('rpmkeys', ['--dbpath', db, '--import', join(tmp, 'package-gpgkey.asc')], env);
    assert.equal(imp.code, 0, show('rpmkeys --import', imp));
    for (const p of [tool, pkgs.find((x) => x.endsWith('/toollib-1.0-1.noarch.rpm'))!]) {
      const k = await run('rpmkeys', ['--dbpath', db, '--checksig', p], env);
      assert.equal(k.code, 0, show('rpmkeys --checksig', k));
      assert.match(k.out, /: digests signatures OK\n?$/, show('rpmkeys --checksig', k));
    }
    // The metadata key alone does not verify packages: Wharf signs them with the package key.
    const mk = await fetch(`${wharf.url}/${REPO}/gpgkey`);
    await writeFile(join(tmp, 'gpgkey.asc'), await mk.text());
    const db2 = join(tmp, 'keydb-meta');
    await mkdir(db2);
    assert.equal((await run('rpmkeys', ['--dbpath', db2, '--import', join(tmp, 'gpgkey.asc')], env)).code, 0);
    const nk = await run('rpmkeys', ['--dbpath', db2, '--checksig', tool], env);
    assert.notEqual(nk.code, 0, show('rpmkeys --checksig with the metadata key only', nk));
    assert.match(nk.out, /NOKEY|SIGNATURES NOT OK/i, show('rpmkeys --checksig with the metadata key only', nk));
  });

  test('an unrelated key in gpgkey= makes dnf refuse the repository metadata', async () => {
    const text = repoFile.replace(/^gpgkey=.*$/m, `gpgkey=file://${join(tmp, 'other-key.asc')}`);
    assert.notEqual(text, repoFile);
    const root = await makeRoot('root-wrong-key', { [`${REPO_ID}.repo`]: text });
    const r = await dnf(root, ['-y', 'install', 'tool']);
    assert.notEqual(r.code, 0, show('dnf install with a foreign key', r));
    assert.match(r.out, /repomd\.xml GPG signature verification error: Bad GPG signature/, show('dnf install with a foreign key', r));
    assert.equal((await rpmq(root, ['-q', 'tool'])).code === 0, false, 'tool was installed with a foreign key');
    assert.ok(!existsSync(join(root, 'usr/bin/tool')));
  });

  test('the right metadata key but an unrelated package key makes dnf refuse the packages', async () => {
    const text = repoFile.replace(/^gpgkey=.*$/m, `gpgkey=${wharf.url}/${REPO}/gpgkey file://${join(tmp, 'other-key.asc')}`);
    const root = await makeRoot('root-wrong-pkg-key', { [`${REPO_ID}.repo`]: text });
    const r = await dnf(root, ['-y', 'install', 'tool']);
    assert.notEqual(r.code, 0, show('dnf install with a foreign package key', r));
    assert.match(r.out, /GPG check FAILED|Public key for tool-1\.2-1\.x86_64\.rpm is not installed/, show('dnf install with a foreign package key', r));
    assert.ok(!existsSync(join(root, 'usr/bin/tool')));
  });

  test('noarch packages are published for aarch64 too; x86_64 ones are not', async () => {
    const root = await makeRoot('root-aarch64', { [`${REPO_ID}.repo`]: repoFile });
    const r = await dnf(root, ['-y', '--forcearch=aarch64', 'repoquery', '--qf', '%{name}-%{version}-%{release}.%{arch}']);
    assert.equal(r.code, 0, show('dnf --forcearch=aarch64 repoquery', r));
    const found = r.out.split('\n').filter((l) => /^[\w.+-]+-[\w.+]+-[\w.+]+\.\w+$/.test(l.trim()));
    assert.ok(found.includes('toollib-1.0-1.noarch'), show('aarch64 repoquery lacks toollib', r));
    assert.ok(!found.some((l) => l.startsWith('tool-')), show('aarch64 repoquery lists an x86_64 package', r));
  });

  test('dnf sees the source package in SRPMS (signed metadata, signed package)', async () => {
    const srcRepo = repoFile
      .replace(`[${REPO_ID}]`, `[${REPO_ID}-source]`)
      .replace(/^baseurl=.*$/m, `baseurl=${wharf.url}/${TARGET}/SRPMS`)
      .replace(/^name=(.*)$/m, 'name=$1 (source)');
    const root = await makeRoot('root-source', { [`${REPO_ID}-source.repo`]: srcRepo });
    const r = await dnf(root, ['-y', 'repoquery', '--arch', 'src', '--qf', '%{name}-%{version}-%{release}.%{arch}', '--location', 'tool']);
    assert.equal(r.code, 0, show('dnf repoquery --arch src', r));
    const loc = /^(http\S+\.src\.rpm)$/m.exec(r.out)?.[1];
    assert.ok(loc, show('dnf repoquery --location gave no source package', r));
    assert.ok(loc.startsWith(`${wharf.url}/${TARGET}/SRPMS/`), show('location outside SRPMS/', r));
    assert.ok(loc.endsWith('/tool-1.2-1.src.rpm'), loc);
    const nevra = await dnf(root, ['-y', 'repoquery', '--arch', 'src', '--qf', '%{name}-%{version}-%{release}.%{arch}', 'tool']);
    assert.match(nevra.out, /^tool-1\.2-1\.src$/m, show('dnf repoquery', nevra));
    // The source package is signed by the package key too.
    const body = Buffer.from(await (await fetch(loc)).arrayBuffer());
    await writeFile(join(tmp, 'tool.src.rpm'), body);
    const k = await run('rpmkeys', ['--dbpath', join(tmp, 'keydb'), '--checksig', join(tmp, 'tool.src.rpm')], env);
    assert.match(k.out, /: digests signatures OK\n?$/, show('rpmkeys --checksig (source package)', k));
  });

  test('after tool-1.3 is pushed, dnf upgrade --refresh installs it', async () => {
    const p = await wharf.cli(['push', TARGET, rpms.tool13]);
    assert.equal(p.code, 0, `push: ${p.stdout}${p.stderr}`);
    const root = join(tmp, 'root-main');
    const r = await dnf(root, ['-y', '--refresh', 'upgrade']);
    assert.equal(r.code, 0, show('dnf upgrade', r));
    assert.match(r.out, /Upgraded:[\s\S]*tool-1\.3-1\.x86_64/, show('dnf upgrade', r));
    const q = await rpmq(root, ['-q', 'tool']);
    assert.equal(q.out.trim(), 'tool-1.3-1.x86_64', show('rpm -q tool', q));
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho tool 1.3\n');
    const v = await rpmq(root, ['-V', 'tool', 'toollib']);
    assert.equal(v.code, 0, show('rpm -V', v));
  });

  test('a repository without package signing: its .repo checks the signed metadata only, and dnf installs its unsigned package', async () => {
    const c = await wharf.cli(['repo', 'create', 'acme/unsigned', '--no-package-signing']);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    const p = await wharf.cli(['push', 'acme/unsigned/el/9', rpms.toollib]);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    const text = await (await fetch(`${wharf.url}/acme/unsigned/el/9.repo`)).text();
    const lines = text.split('\n');
    assert.ok(lines.includes('gpgcheck=0') && lines.includes('repo_gpgcheck=1'), text);
    assert.ok(lines.includes(`gpgkey=${wharf.url}/acme/unsigned/gpgkey`), text);
    assert.equal((await fetch(`${wharf.url}/acme/unsigned/package-gpgkey`)).status, 404, 'no package key for a repository that signs no packages');
    const root = await makeRoot('root-unsigned', { 'acme-unsigned.repo': text });
    const r = await dnf(root, ['-y', 'install', 'toollib']);
    assert.equal(r.code, 0, show('dnf install (unsigned packages)', r));
    assert.match(r.out, /toollib-1\.0-1\.noarch[\s\S]*Complete!/, show('dnf install (unsigned packages)', r));
    // what Wharf serves (and dnf installed) is the package as pushed, byte for byte: unsigned
    const name = basename(rpms.toollib);
    const served = Buffer.from(await (await fetch(`${wharf.url}/acme/unsigned/el/9/x86_64/Packages/${name[0]}/${name}`)).arrayBuffer());
    assert.ok(served.equals(await readFile(rpms.toollib)), 'the served package differs from the pushed one');
    const probe = join(tmp, 'served-unsigned.rpm');
    await writeFile(probe, served);
    const sig = await run('rpm', ['--dbpath', join(tmp, 'rpmdb-probe'), '-qp', '--qf', '%{RSAHEADER:pgpsig}', probe], env);
    assert.match(sig.out, /none/i, show('rpm -qp', sig));
  });

  test('the same packages imported where they lie (wharf import, re-signed as pushes are): dnf installs from them with every check on', async () => {
    assert.equal((await wharf.cli(['repo', 'create', 'acme/imported'])).code, 0);
    const i = await wharf.cli(['import', 'acme/imported/el/9', join(tmp, 'rpms'), '--link', '--json']);
    assert.equal(i.code, 0, i.stdout + i.stderr);
    const out = JSON.parse(i.stdout) as { results: { file: string; status: string }[] };
    assert.deepEqual(out.results.map((x) => x.status), out.results.map(() => 'created'));
    assert.equal(out.results.length, 4, 'tool 1.2 and its source package, toollib, tool 1.3');
    const text = await (await fetch(`${wharf.url}/acme/imported/el/9.repo`)).text();
    const root = await makeRoot('root-imported', { 'acme-imported.repo': text });
    const r = await dnf(root, ['-y', 'install', 'tool']);
    assert.equal(r.code, 0, show('dnf install (imported)', r));
    assert.equal((r.out.match(/Key imported successfully/g) ?? []).length, 2, show('dnf install (imported): both keys imported', r));
    assert.match(r.out, /Installed:[\s\S]*tool-1\.3-1\.x86_64[\s\S]*Complete!/, show('dnf install (imported)', r));
    assert.doesNotMatch(r.out, /nogpgcheck|not signed|GPG check FAILED/i, show('dnf install (imported)', r));
    const q = await rpmq(root, ['-q', 'tool', 'toollib']);
    assert.deepEqual(q.out.trim().split('\n'), ['tool-1.3-1.x86_64', 'toollib-1.0-1.noarch']);
  });

  test("a 32-bit package: dnf on an i686 machine ($basearch i386) installs it from the .repo file's baseurl", async () => {
    assert.equal((await wharf.cli(['repo', 'create', 'acme/legacy32'])).code, 0);
    await mkdir(join(tmp, 'rpms32'), { recursive: true });
    const lib32 = await buildRpm(join(tmp, 'rpms32'), { name: 'lib32demo', version: '2.0', release: '1', arch: 'i686', requires: ['toollib'] });
    const p = await wharf.cli(['push', 'acme/legacy32/el/9', lib32.rpm, rpms.toollib]);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    const text = await (await fetch(`${wharf.url}/acme/legacy32/el/9.repo`)).text();
    assert.match(text, /^baseurl=.*\/acme\/legacy32\/el\/9\/\$basearch$/m, text);
    const root = await makeRoot('root-i686', { 'acme-legacy32.repo': text });
    const q = await dnf(root, ['-y', '--forcearch=i686', 'repoquery', '--location', 'lib32demo']);
    assert.equal(q.code, 0, show('dnf --forcearch=i686 repoquery', q));
    assert.match(q.out, new RegExp(`^${wharf.url}/acme/legacy32/el/9/i386/Packages/l/lib32demo-2\\.0-1\\.i686\\.rpm$`, 'm'), show('location', q));
    const r = await dnf(root, ['-y', '--forcearch=i686', 'install', 'lib32demo']);
    assert.equal(r.code, 0, show('dnf --forcearch=i686 install', r));
    assert.match(r.out, /Installed:[\s\S]*lib32demo-2\.0-1\.i686[\s\S]*toollib-1\.0-1\.noarch[\s\S]*Complete!/, show('dnf install (i686)', r));
    assert.doesNotMatch(r.out, /GPG check FAILED|not signed/i, show('dnf install (i686)', r));
    // An x86_64 machine's $basearch is x86_64: the 32-bit package is not in that directory.
    const x = await dnf(await makeRoot('root-x86_64-of-32', { 'acme-legacy32.repo': text }), ['-y', 'repoquery', '--qf', '%{name}.%{arch}']);
    assert.equal(x.code, 0, show('dnf repoquery (x86_64)', x));
    assert.match(x.out, /^toollib\.noarch$/m, show('dnf repoquery (x86_64)', x));
    assert.doesNotMatch(x.out, /lib32demo/, show('dnf repoquery (x86_64)', x));
  });

  test('the host was not touched', async () => {
    await killAgents(tmp);
    assert.deepEqual(diffSnapshots(hostBefore, snapshot(hostPaths)), []);
  });
});
