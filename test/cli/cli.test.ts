// The real `wharf` CLI against a real server: repositories, push, ls, yank, errors and exit codes, and the admin token
// created on first start.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';

let w: WharfInstance;
let work: string;
let debs: string[];

const lines = (s: string) => s.split('\n').filter((l) => l.length > 0);

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-cli-test-'));
  w = await startWharf();
  debs = [];
  for (const [name, arch] of [
    ['alpha', 'amd64'],
    ['beta', 'arm64'],
    ['gamma', 'all'],
  ]) {
    debs.push(await buildDeb(work, `Package: ${name}\nVersion: 1.0-1\nArchitecture: ${arch}\nDescription: ${name}\n`));
  }
});

after(async () => {
  await w?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('repositories', () => {
  test('repo create, then repo list (human and --json)', async () => {
    const c = await w.cli(['repo', 'create', 'acme/cli']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout.trim(), 'created public repository acme/cli');
    const p = await w.cli(['repo', 'create', 'acme/hidden', '--private']);
    assert.equal(p.code, 0, p.stderr);
    // A private repository comes with a read-only deploy token, shown once.
    const out = lines(p.stdout);
    assert.equal(out[0], 'created private repository acme/hidden');
    assert.match(out[1]!, /^Deploy token default-deploy \(id \d+, scopes read, expires never\)/);
    assert.match(out[2]!, /^ {2}username: wharf-deploy-\d+$/);
    assert.match(out[3]!, /^ {2}token: {4}wharf_deploy_[A-Za-z0-9_-]{43}$/);

    const l = await w.cli(['repo', 'list']);
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(lines(l.stdout).sort(), ['acme/cli', 'acme/hidden (private)']);
    assert.equal(l.stderr, '');

    const j = await w.cli(['repo', 'list', '--json']);
    assert.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout);
    const names = doc.repositories.map((r: any) => `${r.org}/${r.name}:${r.private}`).sort();
    assert.deepEqual(names, ['acme/cli:false', 'acme/hidden:true']);

    const cj = await w.cli(['repo', 'create', 'acme/jsonrepo', '--json']);
    assert.equal(cj.code, 0, cj.stderr);
    assert.equal(JSON.parse(cj.stdout).repository.name, 'jsonrepo');
  });

  test('a duplicate repo create exits non-zero with one stderr line containing REPO_EXISTS', async () => {
    const c = await w.cli(['repo', 'create', 'acme/cli']);
    assert.notEqual(c.code, 0);
    assert.equal(c.code, 1);
    assert.equal(lines(c.stderr).length, 1, `stderr: ${c.stderr}`);
    assert.match(c.stderr, /REPO_EXISTS/);
    assert.match(c.stderr, /acme\/cli/);
    assert.equal(c.stdout, '');
  });

  test('an invalid repository name exits 1 with INVALID_NAME', async () => {
    const c = await w.cli(['repo', 'create', 'acme/bad name']);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /INVALID_NAME/);
    assert.equal(lines(c.stderr).length, 1, c.stderr);
  });
});

describe('push, ls, yank', () => {
  test('push of several files (human output), then the same files again → unchanged', async () => {
    const c = await w.cli(['push', 'acme/cli/debian/bookworm', ...debs]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(lines(c.stdout).sort(), [
      'pushed alpha_1.0-1_amd64.deb to acme/cli/debian/bookworm',
      'pushed beta_1.0-1_arm64.deb to acme/cli/debian/bookworm',
      'pushed gamma_1.0-1_all.deb to acme/cli/debian/bookworm',
    ]);
    const again = await w.cli(['push', 'acme/cli/debian/bookworm', ...debs, '--jobs', '1']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(lines(again.stdout).length, 3);
    for (const l of lines(again.stdout)) assert.match(l, /^unchanged \S+\.deb to acme\/cli\/debian\/bookworm$/);
    // What the CLI pushed is really served.
    const res = await fetch(`${w.url}/acme/cli/debian/dists/bookworm/main/binary-arm64/Packages`);
    const text = await res.text();
    assert.match(text, /^Package: beta$/m);
    assert.match(text, /^Package: gamma$/m);
    assert.doesNotMatch(text, /^Package: alpha$/m);
  });

  test('the progress bar: one for the whole push (batched or file by file) with --progress; none off a terminal', async () => {
    const bars = (stderr: string) => stderr.split(/[\r\n]/).filter((l) => /\[[= ]{30}\] \d+% /.test(l));
    for (const extra of [[], ['--batch-size', '1']]) {
      const c = await w.cli(['push', 'acme/cli/debian/bookworm', ...debs, '--progress', ...extra]);
      assert.equal(c.code, 0, c.stderr);
      const drawn = bars(c.stderr);
      assert.ok(drawn.length >= 1, `no bar drawn (${extra.join(' ')}): ${JSON.stringify(c.stderr)}`);
      assert.match(drawn.at(-1)!, /^3 files \[={30}\] 100% /, c.stderr);
      assert.ok(c.stderr.endsWith('\n'), 'the bar ends its line');
      assert.equal(lines(c.stdout).length, 3, 'the results are still on stdout');
    }
    // The tests' stderr is a pipe, not a terminal: no bar unless asked for; --no-progress wins over a terminal.
    const quiet = await w.cli(['push', 'acme/cli/debian/bookworm', debs[0]!]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.deepEqual(bars(quiet.stderr), []);
    const off = await w.cli(['push', 'acme/cli/debian/bookworm', debs[0]!, '--no-progress']);
    assert.deepEqual(bars(off.stderr), []);
  });

  test('push --json reports pushed and failed files', async () => {
    const d = await buildDeb(await mkdtemp(join(work, 'j-')), 'Package: delta\nVersion: 2.0\nArchitecture: amd64\nDescription: d\n');
    const c = await w.cli(['push', 'acme/cli/ubuntu/jammy', d, debs[0]!, '--json']);
    assert.equal(c.code, 0, c.stderr);
    const doc = JSON.parse(c.stdout);
    assert.deepEqual(doc.failed, []);
    assert.equal(doc.pushed.length, 2);
    const byName = Object.fromEntries(doc.pushed.map((p: any) => [p.package.name, p]));
    assert.equal(byName.delta.status, 'created');
    assert.equal(byName.delta.file, d);
    assert.equal(byName.delta.package.filename, 'delta_2.0_amd64.deb');
    assert.match(byName.delta.package.sha256, /^[0-9a-f]{64}$/);
    assert.equal(byName.alpha.package.distribution, 'ubuntu/jammy');
  });

  test('ls with and without OS/DIST (human and --json)', async () => {
    const all = await w.cli(['ls', 'acme/cli']);
    assert.equal(all.code, 0, all.stderr);
    const rows = lines(all.stdout).map((l) => l.split('\t'));
    for (const r of rows) assert.equal(r.length, 5, `not 5 tab-separated columns: ${r.join('|')}`);
    assert.deepEqual(rows.map((r) => `${r[0]} ${r[1]}`).sort(), [
      'debian/bookworm alpha',
      'debian/bookworm beta',
      'debian/bookworm gamma',
      'ubuntu/jammy alpha',
      'ubuntu/jammy delta',
    ]);
    assert.deepEqual(rows.find((r) => r[1] === 'beta'), ['debian/bookworm', 'beta', '1.0-1', 'arm64', 'beta_1.0-1_arm64.deb']);

    const one = await w.cli(['ls', 'acme/cli', 'ubuntu/jammy']);
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(lines(one.stdout).map((l) => l.split('\t')[1]).sort(), ['alpha', 'delta']);

    const j = await w.cli(['ls', 'acme/cli', 'debian/bookworm', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout).packages.map((p: any) => p.name).sort(), ['alpha', 'beta', 'gamma']);

    const empty = await w.cli(['ls', 'acme/jsonrepo']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout.trim(), '(no packages)');

    const bad = await w.cli(['ls', 'acme/cli', 'debian']);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stderr, /INVALID_DISTRIBUTION/);

    const missing = await w.cli(['ls', 'acme/nothing']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /REPO_NOT_FOUND/);
  });

  test('yank removes a package; yanking it again fails with PACKAGE_NOT_FOUND', async () => {
    const y = await w.cli(['yank', 'acme/cli/debian/bookworm', 'beta_1.0-1_arm64.deb']);
    assert.equal(y.code, 0, y.stderr);
    assert.equal(y.stdout.trim(), 'yanked beta_1.0-1_arm64.deb from acme/cli/debian/bookworm');
    const ls = await w.cli(['ls', 'acme/cli', 'debian/bookworm']);
    assert.deepEqual(lines(ls.stdout).map((l) => l.split('\t')[1]).sort(), ['alpha', 'gamma']);
    const again = await w.cli(['yank', 'acme/cli/debian/bookworm', 'beta_1.0-1_arm64.deb']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /PACKAGE_NOT_FOUND/);
    assert.equal(lines(again.stderr).length, 1, again.stderr);
    const yj = await w.cli(['yank', 'acme/cli/ubuntu/jammy', 'delta_2.0_amd64.deb', '--json']);
    assert.equal(yj.code, 0, yj.stderr);
    assert.equal(JSON.parse(yj.stdout).yanked.name, 'delta');
  });

  test('a missing file: non-zero exit, stderr names the file; the other files are still pushed', async () => {
    const missing = join(work, 'does-not-exist_1.0_amd64.deb');
    const c = await w.cli(['push', 'acme/cli/debian/trixie', missing]);
    assert.notEqual(c.code, 0);
    assert.ok(c.stderr.includes(missing), `stderr does not name the file: ${c.stderr}`);
    assert.match(c.stderr, /ENOENT/);
    const mixed = await w.cli(['push', 'acme/cli/debian/trixie', debs[0]!, missing, '--json']);
    assert.equal(mixed.code, 1);
    const doc = JSON.parse(mixed.stdout);
    assert.equal(doc.pushed.length, 1);
    assert.equal(doc.failed.length, 1);
    assert.equal(doc.failed[0].file, missing);
    const dir = await w.cli(['push', 'acme/cli/debian/trixie', work]);
    assert.equal(dir.code, 1);
    assert.ok(dir.stderr.includes(work), dir.stderr);
  });

  test('a file that changes while it is sent fails its request, not the CLI (batched and streamed)', async () => {
    // /proc files stat as 0 bytes and then read as more: the archive or the stream notices, the push reports it
    const proc = join(work, 'procfile_1.0_amd64.deb');
    await symlink('/proc/version', proc);
    for (const extra of [[], ['--batch-size', '1']]) {
      const c = await w.cli(['push', 'acme/cli/debian/trixie', debs[1]!, proc, '--json', ...extra]);
      assert.equal(c.code, 1, c.stderr);
      assert.doesNotMatch(c.stderr, /Unhandled|INTERNAL|at .*\.ts:\d+/, c.stderr);
      const doc = JSON.parse(c.stdout);
      assert.ok(doc.failed.some((f: { file: string }) => f.file === proc), c.stdout);
    }
  });

  test('a bad package: non-zero exit with the server error code and the file name', async () => {
    const junk = join(work, 'junk.deb');
    await writeFile(junk, 'this is not a package\n');
    const c = await w.cli(['push', 'acme/cli/debian/bookworm', junk]);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /UNSUPPORTED_PACKAGE/);
    assert.ok(c.stderr.includes(junk), c.stderr);
  });
});

describe('usage and connection errors', () => {
  for (const args of [
    ['push', 'acme/cli/debian/bookworm'],
    ['push', 'acme/cli', 'x.deb'],
    ['repo', 'frobnicate'],
    ['repo', 'create'],
    ['ls'],
    ['ls', 'acme'],
    ['yank', 'acme/cli/debian/bookworm'],
    ['frobnicate'],
    ['repo', 'list', '--bogus-flag'],
    ['push', 'acme/cli/debian/bookworm', 'x.deb', '--jobs', '0'],
    [],
  ]) {
    test(`bad usage: wharf ${args.join(' ')} → exit 2 with USAGE`, async () => {
      const c = await w.cli(args);
      assert.equal(c.code, 2, `exit ${c.code}; stderr: ${c.stderr}; stdout: ${c.stdout}`);
      assert.match(c.stderr + c.stdout, /USAGE|Usage:/);
      if (args.length > 0) {
        assert.match(c.stderr, /USAGE/);
        assert.equal(c.stderr.trimEnd().split('\n').length, 1, `one line: ${c.stderr}`);
      }
    });
  }

  test('--help exits 0 and prints the usage', async () => {
    const c = await w.cli(['--help']);
    assert.equal(c.code, 0);
    assert.match(c.stdout, /Usage: wharf/);
  });

  test('unreachable server → non-zero with CONNECTION_FAILED', async () => {
    const c = await w.cli(['repo', 'list'], { WHARF_URL: 'http://127.0.0.1:1' });
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /CONNECTION_FAILED/);
    assert.match(c.stderr, /127\.0\.0\.1:1/);
    const p = await w.cli(['push', 'acme/cli/debian/bookworm', debs[0]!], { WHARF_URL: 'http://127.0.0.1:1' });
    assert.notEqual(p.code, 0);
    assert.match(p.stderr, /CONNECTION_FAILED/);
  });

  test('no token or a wrong token → exit 1 with UNAUTHORIZED', async () => {
    const none = await w.cli(['repo', 'list'], { WHARF_TOKEN: '' });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /UNAUTHORIZED/);
    const wrong = await w.cli(['repo', 'list'], { WHARF_TOKEN: 'wharf_admin_wrong-wrong-wrong' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /UNAUTHORIZED/);
    const flag = await w.cli(['repo', 'list', '--token', w.token], { WHARF_TOKEN: '' });
    assert.equal(flag.code, 0, flag.stderr);
  });
});

describe('admin token bootstrap', () => {
  test('the first start printed the admin token once, and DATA/admin-token has mode 0600', async () => {
    const out = w.output();
    assert.equal(out.split(w.token).length - 1, 1, 'the admin token should be printed exactly once');
    assert.match(out, /Admin token \(shown once/);
    assert.match(w.token, /^wharf_admin_[A-Za-z0-9_-]{40,}$/);
    const st = await stat(join(w.dataDir, 'admin-token'));
    assert.equal(st.mode & 0o777, 0o600, `admin-token mode is ${(st.mode & 0o777).toString(8)}`);
    const dataMode = (await stat(w.dataDir)).mode & 0o777;
    assert.equal(dataMode & 0o077, 0, `the data directory is accessible to others: ${dataMode.toString(8)}`);
  });

  test('WHARF_ADMIN_TOKEN is honoured on first start, and a restart neither prints nor replaces the token', async () => {
    const preset = 'some-long-secret-value-123';
    const dataDir = await mkdtemp(join(work, 'preset-'));
    let w2 = await startWharf({ env: { WHARF_ADMIN_TOKEN: preset }, dataDir });
    try {
      assert.equal(w2.token, preset);
      assert.equal((await readFile(join(dataDir, 'admin-token'), 'utf8')).trim(), preset);
      assert.equal((await stat(join(dataDir, 'admin-token'))).mode & 0o777, 0o600);
      const ok = await w2.cli(['repo', 'create', 'preset/repo'], { WHARF_TOKEN: preset });
      assert.equal(ok.code, 0, ok.stderr);
      const other = await w2.cli(['repo', 'list'], { WHARF_TOKEN: w.token });
      assert.equal(other.code, 1);
      assert.match(other.stderr, /UNAUTHORIZED/);
      await w2.stop();

      // Restart on the same data: no token printed, the same token still works.
      w2 = await startWharf({ dataDir });
      assert.doesNotMatch(w2.output(), /Admin token/);
      assert.ok(!w2.output().includes(preset), 'a restart printed the admin token');
      const l = await w2.cli(['repo', 'list'], { WHARF_TOKEN: preset });
      assert.equal(l.code, 0, l.stderr);
      assert.equal(l.stdout.trim(), 'preset/repo');
    } finally {
      await w2.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('push --no-wait', () => {
  test('returns once stored (human and --json); the packages reach the signed metadata after', async () => {
    assert.equal((await w.cli(['repo', 'create', 'acme/later'])).code, 0);
    const dir = await mkdtemp(join(work, 'nowait-'));
    const one = await buildDeb(dir, 'Package: soon\nVersion: 1.0\nArchitecture: amd64\nDescription: soon\n');
    const c = await w.cli(['push', 'acme/later/debian/bookworm', one, '--no-wait']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(lines(c.stdout), ['stored soon_1.0_amd64.deb to acme/later/debian/bookworm (metadata follows)']);
    // Several files: one batch request with the same preference.
    const two = [await buildDeb(dir, 'Package: soon2\nVersion: 1.0\nArchitecture: amd64\nDescription: s\n'), await buildDeb(dir, 'Package: soon3\nVersion: 1.0\nArchitecture: all\nDescription: s\n')];
    const j = await w.cli(['push', 'acme/later/debian/bookworm', ...two, '--no-wait', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout).pushed.map((p: any) => p.status), ['created', 'created']);
    let names: string[] = [];
    for (let i = 0; i < 100 && names.length < 3; i++) {
      const res = await fetch(`${w.url}/acme/later/debian/dists/bookworm/main/binary-amd64/Packages`);
      names = res.ok ? [...(await res.text()).matchAll(/^Package: (.+)$/gm)].map((m) => m[1]!).sort() : [];
      if (names.length < 3) await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(names, ['soon', 'soon2', 'soon3']);
  });
});
