// Differential test on REAL Debian packages: the Packages index Wharf serves for a set of .debs from the Debian archive
// must carry every field the real dpkg-scanpackages (dpkg-dev) writes for the same files, with the same values; and,
// as a second opinion, every field the real apt-ftparchive (apt-utils) writes.
//
// The .debs are fetched in the setup with `apt-get download` from the machine's configured Debian archive (network
// needed; there is no silent skip). Needs: apt, dpkg-dev; apt-ftparchive is taken from apt-utils if installed, otherwise
// apt-utils (the version matching the installed apt) is downloaded and unpacked into the temporary directory.
import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startWharf, type WharfInstance } from '../helpers/wharf.ts';

const execFileP = promisify(execFile);

// Chosen for their fields: Replaces/Conflicts/Breaks/Homepage (hello), Multi-Arch foreign/same/allowed (jq, libjq1,
// ripgrep), Source without and with a version in parentheses (libjq1; busybox, busybox-static, ripgrep are binNMUs),
// an epoch (busybox, busybox-static), Essential + Pre-Depends + Suggests (gzip), Provides + Built-Using (busybox-static,
// tzdata), an unknown field X-Cargo-Built-Using (ripgrep), arch all with long multi-paragraph Descriptions
// (tzdata, ca-certificates, python3-six), non-ASCII Maintainer (libonig5).
const PACKAGES = ['hello', 'jq', 'libjq1', 'libonig5', 'tzdata', 'ca-certificates', 'busybox', 'busybox-static', 'python3-six', 'gzip', 'ripgrep'];

const REPO = 'acme/real';
const TARGET = `${REPO}/debian/bookworm`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  try {
    const r = await execFileP(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, LC_ALL: 'C.UTF-8', ...opts.env },
      maxBuffer: 256 * 1024 * 1024,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof err.code === 'string') throw new Error(`cannot run ${cmd}: ${err.message}`);
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: (err.stderr ?? '') || err.message };
  }
}

// ---- a small deb822 parser (independent of Wharf's) ----

interface Field {
  name: string;
  /** First-line value without the separating whitespace; continuation lines verbatim (with their leading space). */
  value: string;
}
type Stanza = Field[];

function parseDeb822(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  let cur: Stanza = [];
  for (const line of text.split('\n')) {
    if (line === '') {
      if (cur.length > 0) stanzas.push(cur);
      cur = [];
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      assert.ok(cur.length > 0, `continuation line without a field: ${JSON.stringify(line)}`);
      cur[cur.length - 1]!.value += '\n' + line;
      continue;
    }
    const m = /^([^\s:][^:]*):[ \t]*(.*)$/.exec(line);
    assert.ok(m, `not a field line: ${JSON.stringify(line)}`);
    assert.ok(!cur.some((f) => f.name.toLowerCase() === m[1]!.toLowerCase()), `duplicate field ${m[1]} in stanza`);
    cur.push({ name: m[1]!, value: m[2]!.replace(/[ \t]+$/, '') });
  }
  if (cur.length > 0) stanzas.push(cur);
  return stanzas;
}

const get = (s: Stanza, name: string) => s.find((f) => f.name === name)?.value;
const key = (s: Stanza) => `${get(s, 'Package')} ${get(s, 'Version')} ${get(s, 'Architecture')}`;
const basename = (p: string) => p.slice(p.lastIndexOf('/') + 1);

function byKey(stanzas: Stanza[]): Map<string, Stanza> {
  const m = new Map<string, Stanza>();
  for (const s of stanzas) {
    assert.ok(!m.has(key(s)), `duplicate stanza for ${key(s)}`);
    m.set(key(s), s);
  }
  return m;
}

/** Every field of `reference` must be in `actual` with the same value (Filename: same basename). */
function compareStanza(reference: Stanza, actual: Stanza, tool: string): string[] {
  const problems: string[] = [];
  for (const f of reference) {
    const v = get(actual, f.name);
    if (v === undefined) {
      const other = actual.find((a) => a.name.toLowerCase() === f.name.toLowerCase());
      problems.push(`${key(reference)}: field ${f.name} (from ${tool}) missing in Wharf${other ? ` (Wharf spells it ${other.name})` : ''}`);
    } else if (f.name === 'Filename') {
      if (basename(v) !== basename(f.value)) problems.push(`${key(reference)}: Filename basename ${basename(v)} != ${tool}'s ${basename(f.value)}`);
    } else if (v !== f.value) {
      problems.push(`${key(reference)}: field ${f.name} differs\n  ${tool}: ${JSON.stringify(f.value)}\n  Wharf: ${JSON.stringify(v)}`);
    }
  }
  return problems;
}

describe('Packages index vs dpkg-scanpackages on real Debian packages', { timeout: 170_000 }, () => {
  let tmp: string;
  let debDir: string;
  let wharf: WharfInstance;
  let wharfAmd64: Stanza[];
  let wharfArm64: Stanza[];
  let scan: Stanza[];
  let scanText: string;
  let wharfText: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-scanpackages-'));
    await chmod(tmp, 0o755); // apt-get download, as root, drops to the _apt user, which must be able to write here
    debDir = join(tmp, 'debs');
    await mkdir(debDir, { mode: 0o755 });
    await chmod(debDir, 0o755);

    // No package cache is written (the lists are only read).
    const download = (names: string[]) =>
      run('apt-get', ['-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache=', 'download', ...names], { cwd: debDir });
    let probe = await download(['hello']);
    if (probe.code !== 0 && /Unable to locate package|has no installation candidate/.test(probe.stderr)) {
      // The package lists are empty (fresh container): fetch them once.
      const upd = await run('apt-get', ['update']);
      assert.equal(upd.code, 0, `apt-get update failed, cannot fetch real Debian packages:\n${upd.stdout}${upd.stderr}`);
      probe = await download(['hello']);
    }
    assert.equal(
      probe.code,
      0,
      `cannot fetch real .debs with "apt-get download hello" (network or apt sources needed for this test):\n${probe.stdout}${probe.stderr}`,
    );
    const rest = await download(PACKAGES.filter((p) => p !== 'hello'));
    assert.equal(rest.code, 0, `apt-get download failed:\n${rest.stdout}${rest.stderr}`);

    // Give the files their archive names (name_version-without-epoch_arch.deb): apt-get download writes %3a for ':'.
    const files = (await readdir(debDir)).filter((f) => f.endsWith('.deb'));
    assert.equal(files.length, PACKAGES.length, `downloaded ${files.join(', ')}`);
    for (const f of files) {
      const r = await run('dpkg-deb', ['--showformat=${Package}_${Version}_${Architecture}', '--show', join(debDir, f)]);
      assert.equal(r.code, 0, r.stderr);
      const canonical = r.stdout.trim().replace(/_\d+:/, '_') + '.deb';
      if (canonical !== f) await rename(join(debDir, f), join(debDir, canonical));
    }

    // The reference: the real dpkg-scanpackages over the same files.
    const s = await run('dpkg-scanpackages', ['-m', '.', '/dev/null'], { cwd: debDir });
    assert.equal(s.code, 0, `dpkg-scanpackages failed:\n${s.stderr}`);
    scanText = s.stdout;
    scan = parseDeb822(scanText);
    assert.equal(scan.length, PACKAGES.length, `dpkg-scanpackages gave ${scan.length} stanzas`);

    // Wharf: push them all with the CLI, then fetch the served index.
    wharf = await startWharf();
    assert.equal((await wharf.cli(['repo', 'create', REPO])).code, 0);
    const debs = (await readdir(debDir)).filter((f) => f.endsWith('.deb')).map((f) => join(debDir, f));
    const push = await wharf.cli(['push', TARGET, ...debs]);
    assert.equal(push.code, 0, `push failed:\n${push.stdout}${push.stderr}`);
    const fetchText = async (path: string) => {
      const r = await fetch(`${wharf.url}/${REPO}/debian/dists/bookworm/${path}`);
      assert.equal(r.status, 200, path);
      return r.text();
    };
    wharfText = await fetchText('main/binary-amd64/Packages');
    wharfAmd64 = parseDeb822(wharfText);
    wharfArm64 = parseDeb822(await fetchText('main/binary-arm64/Packages'));
  });

  after(async () => {
    await wharf?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('the amd64 index holds exactly the pushed packages (arch all included), arm64 only the arch all ones', () => {
    assert.deepEqual([...byKey(wharfAmd64).keys()].sort(), [...byKey(scan).keys()].sort());
    const all = scan.filter((s) => get(s, 'Architecture') === 'all').map(key).sort();
    assert.ok(all.length >= 3, 'expected several arch all packages');
    assert.deepEqual([...byKey(wharfArm64).keys()].sort(), all);
  });

  test('every field dpkg-scanpackages writes is in Wharf\'s stanza with the same value', () => {
    const wharfByKey = byKey(wharfAmd64);
    const problems: string[] = [];
    for (const ref of scan) {
      const w = wharfByKey.get(key(ref));
      if (!w) problems.push(`${key(ref)}: no stanza in Wharf's Packages`);
      else problems.push(...compareStanza(ref, w, 'dpkg-scanpackages'));
    }
    // Sanity: the comparison covered the interesting fields.
    const seen = new Set(scan.flatMap((s) => s.map((f) => f.name)));
    for (const f of ['Pre-Depends', 'Breaks', 'Provides', 'Built-Using', 'Multi-Arch', 'Homepage', 'Source', 'Essential', 'X-Cargo-Built-Using']) {
      assert.ok(seen.has(f), `no test package has ${f}`);
    }
    assert.ok(scan.some((s) => /\(.+\)/.test(get(s, 'Source') ?? '')), 'no Source with a version');
    assert.ok(scan.some((s) => /^\d+:/.test(get(s, 'Version')!)), 'no epoch');
    assert.deepEqual(problems, []);
  });

  test('the arm64 index has the same stanzas for the arch all packages', () => {
    const amd = byKey(wharfAmd64);
    for (const s of wharfArm64) assert.deepEqual(s, amd.get(key(s)), key(s));
  });

  test('Wharf adds nothing but SHA512, and SHA512/SHA256/Size match the files', async () => {
    const scanByKey = byKey(scan);
    for (const w of wharfAmd64) {
      const ref = scanByKey.get(key(w))!;
      const extra = w.filter((f) => get(ref, f.name) === undefined).map((f) => f.name);
      assert.deepEqual(extra, ['SHA512'], `${key(w)}: fields not written by dpkg-scanpackages`);
      const data = await readFile(join(debDir, basename(get(w, 'Filename')!)));
      assert.equal(get(w, 'SHA512'), createHash('sha512').update(data).digest('hex'), `${key(w)} SHA512`);
      assert.equal(get(w, 'SHA256'), createHash('sha256').update(data).digest('hex'), `${key(w)} SHA256`);
      assert.equal(get(w, 'Size'), String(data.length), `${key(w)} Size`);
      // The pool file Wharf serves is the same file.
      const r = await fetch(`${wharf.url}/${REPO}/debian/${get(w, 'Filename')}`);
      assert.equal(r.status, 200, `GET ${get(w, 'Filename')}`);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(data), `${get(w, 'Filename')} differs from the pushed file`);
    }
  });

  test('stanzas are byte-identical to dpkg-scanpackages apart from the Filename directory and the SHA512 line', () => {
    const normalise = (stanzaText: string) =>
      stanzaText
        .split('\n')
        .filter((l) => !l.startsWith('SHA512: '))
        .map((l) => (l.startsWith('Filename: ') ? `Filename: ${basename(l.slice(10))}` : l))
        .join('\n');
    const blocks = (t: string) => new Map(t.split('\n\n').filter(Boolean).map((b) => [key(parseDeb822(b)[0]!), normalise(b.trim())] as const));
    const want = blocks(scanText);
    const got = blocks(wharfText);
    for (const [k, text] of want) assert.equal(got.get(k), text, `stanza of ${k}`);
  });

  test('second opinion: every field apt-ftparchive writes is in Wharf\'s stanza (Description handling, SHA512)', async (t) => {
    let ftparchive = 'apt-ftparchive';
    if ((await run('sh', ['-c', 'command -v apt-ftparchive'])).code !== 0) {
      // Not installed: unpack apt-utils matching the installed apt (libapt-pkg) into the temporary directory.
      const aptVersion = (await run('dpkg-query', ['-W', '-f=${Version}', 'apt'])).stdout.trim();
      const dl = join(tmp, 'apt-utils');
      await mkdir(dl, { mode: 0o755 });
      await chmod(dl, 0o755);
      const r = await run('apt-get', ['-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache=', 'download', `apt-utils=${aptVersion}`], { cwd: dl });
      const deb = (await readdir(dl)).find((f) => f.endsWith('.deb'));
      if (r.code !== 0 || !deb) {
        t.skip(`apt-ftparchive not installed and apt-utils=${aptVersion} not downloadable: ${r.stderr.trim()}`);
        return;
      }
      const x = await run('dpkg-deb', ['-x', join(dl, deb), join(dl, 'root')]);
      assert.equal(x.code, 0, x.stderr);
      ftparchive = join(dl, 'root/usr/bin/apt-ftparchive');
      assert.ok(existsSync(ftparchive), 'apt-utils has no usr/bin/apt-ftparchive');
    }
    const r = await run(ftparchive, ['packages', '.'], { cwd: debDir });
    assert.equal(r.code, 0, `apt-ftparchive packages failed:\n${r.stderr}`);
    const ref = parseDeb822(r.stdout);
    assert.equal(ref.length, PACKAGES.length);
    const wharfByKey = byKey(wharfAmd64);
    const problems: string[] = [];
    for (const s of ref) {
      const w = wharfByKey.get(key(s));
      if (!w) problems.push(`${key(s)}: no stanza in Wharf's Packages`);
      else problems.push(...compareStanza(s, w, 'apt-ftparchive'));
    }
    assert.deepEqual(problems, []);
  });
});
