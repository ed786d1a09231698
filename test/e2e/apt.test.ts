// End-to-end with the REAL apt: a Wharf server, packages pushed with the real CLI, and apt-get / apt-cache / dpkg /
// gpgv running against it in throw-away roots under a temporary directory.
//
// Nothing on the machine is changed: every apt run gets APT_CONFIG pointing at a config file inside its own root,
// which moves Dir, Dir::Etc::parts (so the host's /etc/apt/apt.conf.d hooks such as dpkg-preconfigure do NOT run), the
// dpkg status file, the keyrings and the lists into the root; dpkg runs with --root. gpg/gpgv use a temporary
// --homedir. The last test checks that /etc/apt and /var/lib/dpkg/status were not modified.
//
// Needs: apt, dpkg, dpkg-dev (dpkg-deb), gpg, gpgv (Debian packages apt, dpkg, gpg, gpgv).
import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { buildDeb, startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { prepareAptRoot } from '../helpers/apt-root.ts';

const execFileP = promisify(execFile);

const REPO = 'acme/tools';
const OS = 'debian';
const DIST = 'bookworm';
const TARGET = `${REPO}/${OS}/${DIST}`;

interface Run {
  code: number;
  out: string; // stdout + stderr
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  try {
    const r = await execFileP(cmd, args, { env: { ...process.env, LC_ALL: 'C.UTF-8', ...env }, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof err.code === 'string') throw e; // ENOENT etc.: the tool is missing
    return { code: err.code ?? 1, out: (err.stdout ?? '') + (err.stderr ?? '') || err.message };
  }
}

/** An isolated apt installation under a temporary directory. */
class AptRoot {
  readonly dir: string;
  readonly conf: string;
  constructor(dir: string) {
    this.dir = dir;
    this.conf = join(dir, 'etc/apt/apt.conf');
  }

  static async create(parent: string, name: string, opts: { arch: string; keyring: string; url: string }): Promise<AptRoot> {
    const dir = join(parent, name);
    await prepareAptRoot(dir, { arch: opts.arch });
    const root = new AptRoot(dir);
    await root.setSource(opts.url, opts.keyring);
    return root;
  }

  async setSource(url: string, keyring: string): Promise<void> {
    await writeFile(join(this.dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${url}/${REPO}/${OS}/ ${DIST} main\n`);
  }

  env(): Record<string, string> {
    return { APT_CONFIG: this.conf, DEBIAN_FRONTEND: 'noninteractive' };
  }
  aptGet(args: string[]): Promise<Run> {
    return run('apt-get', args, this.env());
  }
  aptCache(args: string[]): Promise<Run> {
    return run('apt-cache', args, this.env());
  }
  async update(): Promise<Run> {
    return this.aptGet(['update']);
  }
}

/** Lines apt prints for warnings and errors. */
function problemLines(out: string): string[] {
  return out.split('\n').filter((l) => /^(W|E|Err):/.test(l.trim()));
}

function assertCleanUpdate(r: Run, what = 'apt-get update'): void {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.out}`);
  assert.deepEqual(problemLines(r.out), [], `${what} printed warnings/errors:\n${r.out}`);
  assert.doesNotMatch(r.out, /not signed|unsigned|NO_PUBKEY|Hash Sum mismatch|allow-insecure/i, `${what}:\n${r.out}`);
}

/** The hash section of a Release file: path -> {hash, size}. */
function releaseSection(release: string, title: string): Map<string, { hash: string; size: number }> {
  const lines = release.split('\n');
  const start = lines.indexOf(`${title}:`);
  assert.ok(start >= 0, `no ${title} section in Release:\n${release}`);
  const out = new Map<string, { hash: string; size: number }>();
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith(' ')) break;
    const [hash, size, path] = l.trim().split(/\s+/);
    out.set(path!, { hash: hash!, size: Number(size) });
  }
  return out;
}

/** The signed text of an InRelease (between the armor header block and the signature), dash-unescaped. */
function inReleaseBody(inRelease: string): string {
  const m = /^-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n([\s\S]*?)\n-----BEGIN PGP SIGNATURE-----/.exec(inRelease);
  assert.ok(m, `InRelease is not a clearsigned message:\n${inRelease.slice(0, 400)}`);
  return m[1]!.replace(/^- /gm, '') + '\n';
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sha512 = (b: Uint8Array) => createHash('sha512').update(b).digest('hex');

async function fetchBytes(url: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const r = await fetch(url);
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
}

/** Snapshot of the host state the test must not change. */
async function hostSnapshot(): Promise<string> {
  const parts: string[] = [];
  const walk = async (p: string): Promise<void> => {
    let st;
    try {
      st = await stat(p);
    } catch {
      parts.push(`${p} missing`);
      return;
    }
    parts.push(`${p} ${st.mtimeMs} ${st.size}`);
    if (st.isDirectory()) for (const e of (await readdir(p)).sort()) await walk(join(p, e));
  };
  await walk('/etc/apt');
  await walk('/var/lib/dpkg/status');
  await walk('/var/lib/apt/lists');
  return parts.join('\n');
}

describe('apt end-to-end', { timeout: 150_000 }, () => {
  let wharf: WharfInstance;
  let tmp: string;
  let gnupg: string;
  let keyring: string; // the repository key, dearmored
  let otherKeyring: string; // an unrelated key
  let amd64: AptRoot;
  let hostBefore: string;
  const debs: Record<string, string> = {};
  let base: string; // URL of /acme/tools/debian
  let distUrl: string;

  const MULTI_DESCRIPTION = [
    'multi-line description test',
    ' This package has a long description spanning several lines.',
    ' .',
    ' A second paragraph, after an empty line, with  two spaces',
    '  and a verbatim line indented by two spaces.',
  ];

  before(async () => {
    hostBefore = await hostSnapshot();
    tmp = await mkdtemp(join(tmpdir(), 'wharf-apt-e2e-'));
    await chmod(tmp, 0o755);
    gnupg = join(tmp, 'gnupg');
    await mkdir(gnupg, { mode: 0o700 });
    // The built packages' directory is an import root too (`wharf import`).
    wharf = await startWharf({ env: { WHARF_IMPORT_ROOTS: join(tmp, 'debs') } });
    base = `${wharf.url}/${REPO}/${OS}`;
    distUrl = `${base}/dists/${DIST}`;

    const debDir = join(tmp, 'debs');
    await mkdir(debDir);
    const common = 'Maintainer: Wharf Tests <tests@example.org>\nSection: utils\nPriority: optional\n';
    debs.lib = await buildDeb(
      debDir,
      `Package: wharf-lib\nVersion: 1.0-1\nArchitecture: amd64\n${common}Description: library for wharf-hello\n`,
      { 'usr/lib/wharf/lib.txt': 'wharf-lib payload\n' },
    );
    debs.hello = await buildDeb(
      debDir,
      `Package: wharf-hello\nVersion: 1.2.3-1\nArchitecture: amd64\n${common}Depends: wharf-lib (>= 1.0)\nDescription: hello from wharf\n`,
      { 'usr/bin/wharf-hello': '#!/bin/sh\necho hello from wharf\n' },
    );
    debs.helloArm = await buildDeb(
      debDir,
      `Package: wharf-hello\nVersion: 1.2.3-1\nArchitecture: arm64\n${common}Depends: wharf-lib (>= 1.0)\nDescription: hello from wharf\n`,
      { 'usr/bin/wharf-hello': '#!/bin/sh\necho hello from wharf on arm\n' },
    );
    debs.data = await buildDeb(debDir, `Package: wharf-data\nVersion: 0.5\nArchitecture: all\n${common}Description: architecture-independent data\n`, {
      'usr/share/wharf/data.txt': 'data\n',
    });
    debs.epoch = await buildDeb(debDir, `Package: wharf-epoch\nVersion: 2:1.5-1\nArchitecture: amd64\n${common}Description: package with an epoch\n`);
    debs.multi = await buildDeb(
      debDir,
      `Package: wharf-multi\nVersion: 3.0\nArchitecture: amd64\n${common}Description: ${MULTI_DESCRIPTION.join('\n')}\n`,
    );

    assert.equal((await wharf.cli(['repo', 'create', REPO])).code, 0);
    const push = await wharf.cli(['push', TARGET, ...Object.values(debs)]);
    assert.equal(push.code, 0, `push failed:\n${push.stdout}${push.stderr}`);

    // The repository key, fetched over HTTP and dearmored with gpg (temporary homedir: no ~/.gnupg).
    const armored = await fetchBytes(`${wharf.url}/${REPO}/gpgkey`);
    assert.equal(armored.status, 200);
    await writeFile(join(tmp, 'wharf.asc'), armored.body);
    keyring = join(tmp, 'wharf.gpg');
    const dearmor = await run('gpg', ['--homedir', gnupg, '--batch', '--yes', '--output', keyring, '--dearmor', join(tmp, 'wharf.asc')]);
    assert.equal(dearmor.code, 0, dearmor.out);

    // An unrelated key, for the negative signature test (made with openpgp.js: no gpg-agent is started).
    const other = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: 'Not Wharf', email: 'other@example.org' }], format: 'binary' });
    otherKeyring = join(tmp, 'other.gpg');
    await writeFile(otherKeyring, other.publicKey);

    amd64 = await AptRoot.create(tmp, 'root-amd64', { arch: 'amd64', keyring, url: wharf.url });
  });

  after(async () => {
    await wharf?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('apt-get update succeeds with signature checking, through InRelease', async () => {
    const r = await amd64.update();
    assertCleanUpdate(r);
    const lists = await readdir(join(amd64.dir, 'var/lib/apt/lists'));
    assert.ok(
      lists.some((f) => f.endsWith(`_dists_${DIST}_InRelease`)),
      `apt did not keep a verified InRelease; lists: ${lists.join(', ')}`,
    );
    assert.ok(
      lists.some((f) => /_main_binary-amd64_Packages/.test(f)),
      `no Packages list for amd64; lists: ${lists.join(', ')}`,
    );
  });

  test('apt-get update with a different key in signed-by fails (signature checking is real)', async () => {
    const wrong = await AptRoot.create(tmp, 'root-wrongkey', { arch: 'amd64', keyring: otherKeyring, url: wharf.url });
    const r = await wrong.update();
    assert.notEqual(r.code, 0, `update with the wrong key succeeded:\n${r.out}`);
    assert.match(r.out, /NO_PUBKEY|BADSIG|signature/i, r.out);
    // And it did not load the packages anyway.
    const policy = await wrong.aptCache(['policy', 'wharf-hello']);
    assert.doesNotMatch(policy.out, /Candidate: 1\.2\.3-1/, policy.out);
  });

  test('apt-cache policy and show see the pushed versions', async () => {
    const expect: Record<string, string> = {
      'wharf-hello': '1.2.3-1',
      'wharf-lib': '1.0-1',
      'wharf-data': '0.5',
      'wharf-epoch': '2:1.5-1',
      'wharf-multi': '3.0',
    };
    const policy = await amd64.aptCache(['policy', ...Object.keys(expect)]);
    assert.equal(policy.code, 0, policy.out);
    for (const [name, version] of Object.entries(expect)) {
      const block = policy.out.split(/^(?=\S)/m).find((b) => b.startsWith(`${name}:`));
      assert.ok(block, `no policy for ${name}:\n${policy.out}`);
      assert.match(block, new RegExp(`Candidate: ${version.replace(/[.+]/g, '\\$&')}\\n`), block);
      assert.match(block, new RegExp(`${base.replace(/[.]/g, '\\.')} ${DIST}/main amd64 Packages`), block);
    }

    const show = await amd64.aptCache(['show', 'wharf-multi']);
    assert.equal(show.code, 0, show.out);
    const desc = /^Description(?:-en)?: ([\s\S]*?)\n(?=\S|\n)/m.exec(show.out);
    assert.ok(desc, show.out);
    assert.equal(desc[1], MULTI_DESCRIPTION.join('\n'), `multi-line Description as apt sees it:\n${show.out}`);

    const showEpoch = await amd64.aptCache(['show', 'wharf-epoch']);
    assert.match(showEpoch.out, /^Version: 2:1\.5-1$/m, showEpoch.out);
    assert.match(showEpoch.out, /^Filename: pool\/\S+\.deb$/m, showEpoch.out);

    const showHello = await amd64.aptCache(['show', 'wharf-hello']);
    assert.match(showHello.out, /^Depends: wharf-lib \(>= 1\.0\)$/m, showHello.out);
  });

  test('apt-get install pulls the dependency from the repository and installs both into the root', async () => {
    const r = await amd64.aptGet(['install', '-y', 'wharf-hello']);
    assert.equal(r.code, 0, `install failed:\n${r.out}`);
    assert.deepEqual(problemLines(r.out), [], r.out);
    assert.match(r.out, /wharf-lib/, r.out);
    assert.equal(await readFile(join(amd64.dir, 'usr/bin/wharf-hello'), 'utf8'), '#!/bin/sh\necho hello from wharf\n');
    assert.equal(await readFile(join(amd64.dir, 'usr/lib/wharf/lib.txt'), 'utf8'), 'wharf-lib payload\n');
    const status = await readFile(join(amd64.dir, 'var/lib/dpkg/status'), 'utf8');
    for (const [name, version] of [
      ['wharf-hello', '1.2.3-1'],
      ['wharf-lib', '1.0-1'],
    ]) {
      assert.match(status, new RegExp(`Package: ${name}\\nStatus: install ok installed\\n[\\s\\S]*?Version: ${version.replace(/\./g, '\\.')}\\n`), status);
    }
    assert.ok(!existsSync('/usr/bin/wharf-hello'), 'wharf-hello was installed onto the host');
  });

  test('the same packages imported where they lie (wharf import --link): apt-get update and install from them, signatures checked', async () => {
    assert.equal((await wharf.cli(['repo', 'create', 'acme/imported'])).code, 0);
    const i = await wharf.cli(['import', 'acme/imported/debian/bookworm', join(tmp, 'debs'), '--link', '--json']);
    assert.equal(i.code, 0, i.stdout + i.stderr);
    const out = JSON.parse(i.stdout) as { results: { status: string }[] };
    assert.equal(out.results.filter((x) => x.status === 'created').length, Object.keys(debs).length);
    const root = await AptRoot.create(tmp, 'root-imported', { arch: 'amd64', keyring, url: wharf.url });
    await writeFile(join(root.dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${wharf.url}/acme/imported/debian/ bookworm main\n`);
    assertCleanUpdate(await root.update());
    const r = await root.aptGet(['install', '-y', 'wharf-hello']);
    assert.equal(r.code, 0, `install failed:\n${r.out}`);
    assert.deepEqual(problemLines(r.out), [], r.out);
    assert.equal(await readFile(join(root.dir, 'usr/bin/wharf-hello'), 'utf8'), '#!/bin/sh\necho hello from wharf\n');
    assert.equal(await readFile(join(root.dir, 'usr/lib/wharf/lib.txt'), 'utf8'), 'wharf-lib payload\n');
  });

  test('arch:all package is visible for amd64 and arm64; arm64 sees the arm64 build', async () => {
    const arm = await AptRoot.create(tmp, 'root-arm64', { arch: 'arm64', keyring, url: wharf.url });
    assertCleanUpdate(await arm.update(), 'apt-get update (arm64)');
    const policy = await arm.aptCache(['policy', 'wharf-data', 'wharf-hello', 'wharf-epoch']);
    assert.match(policy.out, /^wharf-data:\n\s+Installed: \(none\)\n\s+Candidate: 0\.5\n/m, policy.out);
    assert.match(policy.out, /^wharf-hello:\n\s+Installed: \(none\)\n\s+Candidate: 1\.2\.3-1\n/m, policy.out);
    assert.match(policy.out, /binary-arm64|arm64 Packages/, policy.out);
    // wharf-epoch exists only for amd64.
    assert.doesNotMatch(policy.out, /^wharf-epoch:\n\s+Installed: \(none\)\n\s+Candidate: 2/m, policy.out);
    const showArm = await arm.aptCache(['show', 'wharf-hello']);
    assert.match(showArm.out, /^Architecture: arm64$/m, showArm.out);

    const amdPolicy = await amd64.aptCache(['policy', 'wharf-data']);
    assert.match(amdPolicy.out, /Candidate: 0\.5\n/, amdPolicy.out);
  });

  test('gpgv verifies InRelease and Release.gpg with the published key', async () => {
    for (const name of ['InRelease', 'Release', 'Release.gpg']) {
      const f = await fetchBytes(`${distUrl}/${name}`);
      assert.equal(f.status, 200, name);
      await writeFile(join(tmp, name), f.body);
    }
    const gv = (args: string[]) => run('gpgv', ['--homedir', gnupg, '--keyring', keyring, ...args]);
    const a = await gv([join(tmp, 'InRelease')]);
    assert.equal(a.code, 0, `gpgv InRelease:\n${a.out}`);
    assert.match(a.out, /Good signature/, a.out);
    const b = await gv([join(tmp, 'Release.gpg'), join(tmp, 'Release')]);
    assert.equal(b.code, 0, `gpgv Release.gpg Release:\n${b.out}`);
    // The InRelease body is the Release file.
    assert.equal(inReleaseBody(await readFile(join(tmp, 'InRelease'), 'utf8')), await readFile(join(tmp, 'Release'), 'utf8'));
    // Wrong key: gpgv must refuse.
    const c = await run('gpgv', ['--homedir', gnupg, '--keyring', otherKeyring, join(tmp, 'InRelease')]);
    assert.notEqual(c.code, 0, c.out);
  });

  test('by-hash files named in InRelease exist and equal the named index files', async () => {
    const release = inReleaseBody((await fetchBytes(`${distUrl}/InRelease`)).body.toString('utf8'));
    assert.match(release, /^Acquire-By-Hash: yes$/m);
    const s256 = releaseSection(release, 'SHA256');
    const s512 = releaseSection(release, 'SHA512');
    for (const arch of ['amd64', 'arm64']) {
      for (const name of ['Packages', 'Packages.gz', 'Packages.xz']) {
        const path = `main/binary-${arch}/${name}`;
        const e = s256.get(path);
        assert.ok(e, `${path} not in SHA256 section`);
        const named = await fetchBytes(`${distUrl}/${path}`);
        assert.equal(named.status, 200, path);
        assert.equal(named.body.length, e.size, `${path} size`);
        assert.equal(sha256(named.body), e.hash, `${path} sha256`);
        assert.equal(named.headers.get('content-encoding'), null, `${path} must not be served with Content-Encoding`);
        // The uncompressed index is listed (for its hashes) and served decompressed, but not stored, so it has no
        // by-hash copy: apt downloads, and asks by hash for, a compressed variant.
        if (name === 'Packages') continue;
        const bh = await fetchBytes(`${distUrl}/main/binary-${arch}/by-hash/SHA256/${e.hash}`);
        assert.equal(bh.status, 200, `by-hash/SHA256 for ${path}`);
        assert.ok(bh.body.equals(named.body), `by-hash/SHA256 for ${path} differs from ${name}`);
        const e512 = s512.get(path)!;
        assert.ok(e512, `${path} not in SHA512 section`);
        const bh512 = await fetchBytes(`${distUrl}/main/binary-${arch}/by-hash/SHA512/${e512.hash}`);
        assert.equal(bh512.status, 200, `by-hash/SHA512 for ${path}`);
        assert.equal(sha512(bh512.body), e512.hash);
      }
    }
    // Decompressed variants agree with the plain index.
    const plain = (await fetchBytes(`${distUrl}/main/binary-amd64/Packages`)).body;
    const xz = await run('sh', ['-c', `curl -fsS ${distUrl}/main/binary-amd64/Packages.xz | xz -dc | sha256sum`]);
    assert.equal(xz.out.split(' ')[0], sha256(plain), `Packages.xz does not decompress to Packages: ${xz.out}`);
    const gz = await run('sh', ['-c', `curl -fsS ${distUrl}/main/binary-amd64/Packages.gz | gzip -dc | sha256sum`]);
    assert.equal(gz.out.split(' ')[0], sha256(plain), `Packages.gz does not decompress to Packages: ${gz.out}`);
  });

  test('after pushes, the by-hash files of the previous generations are still served (retention)', async () => {
    const debDir = join(tmp, 'debs-retention');
    await mkdir(debDir);
    const releases = [inReleaseBody((await fetchBytes(`${distUrl}/InRelease`)).body.toString('utf8'))];
    for (let i = 0; i < 3; i++) {
      const deb = await buildDeb(debDir, `Package: wharf-retention${i}\nVersion: 1\nArchitecture: amd64\nMaintainer: T <t@example.org>\nDescription: retention\n`);
      const push = await wharf.cli(['push', TARGET, deb]);
      assert.equal(push.code, 0, push.stderr);
      releases.push(inReleaseBody((await fetchBytes(`${distUrl}/InRelease`)).body.toString('utf8')));
    }
    const xzHashes = releases.map((r) => releaseSection(r, 'SHA256').get('main/binary-amd64/Packages.xz')!.hash);
    assert.equal(new Set(xzHashes).size, releases.length, 'the index did not change with every push');
    // Every generation (default retention: one hour) is still downloadable by hash.
    for (const [gen, release] of releases.entries()) {
      for (const [path, { hash, size }] of releaseSection(release, 'SHA256')) {
        if (path.endsWith('/Packages')) continue; // listed, not stored (apt fetches .xz or .gz)
        const dir = path.slice(0, path.lastIndexOf('/'));
        const r = await fetchBytes(`${distUrl}/${dir}/by-hash/SHA256/${hash}`);
        assert.equal(r.status, 200, `by-hash/SHA256 file for ${path} of generation -${releases.length - 1 - gen} is gone`);
        assert.equal(r.body.length, size);
        assert.equal(sha256(r.body), hash);
      }
      for (const [path, { hash }] of releaseSection(release, 'SHA512')) {
        if (path.endsWith('/Packages')) continue;
        const dir = path.slice(0, path.lastIndexOf('/'));
        const r = await fetchBytes(`${distUrl}/${dir}/by-hash/SHA512/${hash}`);
        assert.equal(r.status, 200, `by-hash/SHA512 file for ${path} of generation -${releases.length - 1 - gen} is gone`);
      }
    }
  });

  /** Pushes through the HTTP API (faster than starting the CLI: the same-second tests need that). */
  async function pushHttp(file: string): Promise<void> {
    const r = await fetch(`${wharf.url}/api/v1/repos/${REPO}/distributions/${OS}/${DIST}/packages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${wharf.token}`, 'Content-Type': 'application/octet-stream' },
      body: await readFile(file),
    });
    assert.ok(r.ok, `push ${file}: ${r.status} ${await r.text()}`);
  }

  async function quickDeb(dir: string, name: string): Promise<string> {
    return buildDeb(dir, `Package: ${name}\nVersion: 1\nArchitecture: amd64\nMaintainer: T <t@example.org>\nDescription: ${name}\n`);
  }

  test('a changed InRelease is not answered 304 to If-Modified-Since (republish within the same second)', async () => {
    const debDir = join(tmp, 'debs-ims');
    await mkdir(debDir);
    const inRelease = `${distUrl}/InRelease`;
    let conclusive = 0;
    for (let i = 0; i < 8 && conclusive < 2; i++) {
      const deb = await quickDeb(debDir, `wharf-ims${i}`);
      const before = await fetch(inRelease);
      const oldBody = await before.text();
      const lastModified = before.headers.get('last-modified')!;
      await pushHttp(deb);
      const after = await fetch(inRelease, { headers: { 'If-Modified-Since': lastModified } });
      const current = await (await fetch(inRelease)).text();
      assert.notEqual(current, oldBody, 'InRelease did not change after a push');
      if (after.headers.get('last-modified') !== lastModified && after.status === 200) continue; // next second: inconclusive
      conclusive++;
      assert.equal(
        after.status,
        200,
        `InRelease changed (push of wharf-ims${i}) but GET with If-Modified-Since: ${lastModified} answered ${after.status}; ` +
          `Last-Modified of the new file: ${after.headers.get('last-modified')}`,
      );
    }
  });

  test('a package pushed right after an update is seen by the next apt-get update (same second)', async () => {
    const debDir = join(tmp, 'debs-quick');
    await mkdir(debDir);
    const inRelease = `${distUrl}/InRelease`;
    let conclusive = 0;
    for (let i = 0; i < 8 && conclusive < 2; i++) {
      const deb = await quickDeb(debDir, `wharf-quick${i}`);
      // Start right after a second boundary so that the update and the next publish fall into the same second.
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));
      await pushHttp(await quickDeb(debDir, `wharf-quickpre${i}`));
      assertCleanUpdate(await amd64.update());
      const lm = (await fetch(inRelease, { method: 'HEAD' })).headers.get('last-modified');
      await pushHttp(deb);
      const lm2 = (await fetch(inRelease, { method: 'HEAD' })).headers.get('last-modified');
      const r = await amd64.update();
      assertCleanUpdate(r);
      const policy = await amd64.aptCache(['policy', `wharf-quick${i}`]);
      if (lm !== lm2 && /Candidate: 1\n/.test(policy.out)) continue; // crossed a second boundary: inconclusive
      conclusive++;
      assert.match(
        policy.out,
        /Candidate: 1\n/,
        `wharf-quick${i} was pushed (InRelease Last-Modified ${lm} -> ${lm2}) but apt-get update did not pick it up:\n${r.out}\n${policy.out}`,
      );
    }
  });

  test('yank removes the package from the index apt sees', async () => {
    const ls = await wharf.cli(['ls', REPO, `${OS}/${DIST}`, '--json']);
    assert.equal(ls.code, 0, ls.stderr);
    const pkg = (JSON.parse(ls.stdout).packages as any[]).find((p) => p.name === 'wharf-epoch');
    assert.ok(pkg, ls.stdout);
    const y = await wharf.cli(['yank', TARGET, pkg.filename]);
    assert.equal(y.code, 0, y.stdout + y.stderr);
    assertCleanUpdate(await amd64.update());
    const policy = await amd64.aptCache(['policy', 'wharf-epoch']);
    assert.doesNotMatch(policy.out, /Candidate: 2:1\.5-1/, policy.out);
    const show = await amd64.aptCache(['show', 'wharf-epoch']);
    assert.notEqual(show.code === 0 && /^Package: wharf-epoch$/m.test(show.out), true, `still shown after yank:\n${show.out}`);
    // Other packages are still there.
    const other = await amd64.aptCache(['policy', 'wharf-multi']);
    assert.match(other.out, /Candidate: 3\.0\n/, other.out);
  });

  test('pushes during a loop of apt-get update never break an update', { timeout: 120_000 }, async (t) => {
    const loopRoot = await AptRoot.create(tmp, 'root-loop', { arch: 'amd64', keyring, url: wharf.url });
    const debDir = join(tmp, 'debs-loop');
    await mkdir(debDir);
    const N = 20;
    const files: string[] = [];
    for (let i = 0; i < N; i++) {
      files.push(
        await buildDeb(
          debDir,
          `Package: wharf-loop${i}\nVersion: 1.${i}\nArchitecture: ${i % 3 === 0 ? 'all' : 'amd64'}\nMaintainer: T <t@example.org>\nDescription: loop ${i}\n padding line ${'x'.repeat(i * 50)}\n`,
        ),
      );
    }
    let done = false;
    const results: Run[] = [];
    const loop = (async () => {
      while (!done || results.length < 3) results.push(await loopRoot.update());
    })();
    try {
      for (const f of files) {
        const push = await wharf.cli(['push', TARGET, f]);
        assert.equal(push.code, 0, `push ${f}:\n${push.stdout}${push.stderr}`);
      }
    } finally {
      done = true;
      await loop;
    }
    const bad = results.filter((r) => r.code !== 0 || problemLines(r.out).length > 0 || /Hash Sum mismatch/i.test(r.out));
    assert.deepEqual(
      bad.map((r) => r.out),
      [],
      `${bad.length} of ${results.length} apt-get update runs failed while pushing`,
    );
    // After the pushes, one more update sees all of them. (This can also fail through the If-Modified-Since problem
    // tested above: an InRelease replaced within the second of the loop's last fetch is answered 304.)
    assertCleanUpdate(await loopRoot.update());
    const policy = await loopRoot.aptCache(['policy', ...files.map((_, i) => `wharf-loop${i}`)]);
    for (let i = 0; i < N; i++) assert.match(policy.out, new RegExp(`wharf-loop${i}:\\n\\s+Installed: \\(none\\)\\n\\s+Candidate: 1\\.${i}\\n`), policy.out);
    t.diagnostic(`${results.length} apt-get update runs during ${N} pushes`);
  });

  test('the host apt configuration, lists and dpkg database were not touched', async () => {
    assert.equal(await hostSnapshot(), hostBefore);
  });
});
