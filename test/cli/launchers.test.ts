// What a new user runs: `npm start` (the README's first command) and `npx wharf` (the package's bin, bin/wharf.js),
// not the module the other tests start directly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/wharf.ts';

const execFileP = promisify(execFile);

test('npm start serves (healthz, admin token), and npx wharf talks to it', { timeout: 120_000 }, async () => {
  const data = await mkdtemp(join(tmpdir(), 'wharf-launch-'));
  // npm runs the start script with the project's node_modules/.bin first on PATH: the Node 24 the project installs.
  const child = spawn('npm', ['start', '--silent', '--', '--listen', '127.0.0.1:0', '--data', data], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  try {
    const url = await new Promise<string>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`npm start did not listen within 60 s:\n${out}`)), 60_000);
      child.stdout.on('data', () => {
        const m = /Wharf listening on (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          res(m[1]!);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`npm start exited with ${code}:\n${out}`));
      });
    });
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const token = (await readFile(join(data, 'admin-token'), 'utf8')).trim();
    assert.equal((await stat(join(data, 'admin-token'))).mode & 0o777, 0o600);
    assert.match(out, new RegExp(token), 'the first start prints the admin token');
    const env = { ...process.env, WHARF_URL: url, WHARF_TOKEN: token };
    const created = await execFileP('npx', ['--no-install', 'wharf', 'repo', 'create', 'acme/launch', '--json'], { cwd: ROOT, env });
    assert.match(created.stdout, /launch/, created.stdout);
    assert.doesNotThrow(() => JSON.parse(created.stdout), '--json prints JSON');
    const listed = await execFileP('npx', ['--no-install', 'wharf', 'repo', 'list'], { cwd: ROOT, env });
    assert.match(listed.stdout, /acme\/launch/);
  } finally {
    try {
      process.kill(-child.pid!, 'SIGTERM'); // npm and the server it started
    } catch {
      // already gone
    }
    await new Promise((res) => (child.exitCode !== null ? res(undefined) : child.once('exit', res)));
    await rm(data, { recursive: true, force: true });
  }
});

test('bin/wharf.js refuses a Node older than 24 with a clear error instead of a syntax error', async (t) => {
  const old = '/usr/bin/node';
  const version = await execFileP(old, ['--version']).then((r) => r.stdout.trim(), () => undefined);
  if (!version || Number(version.slice(1).split('.')[0]) >= 24) {
    t.skip('needs a Node older than 24 at /usr/bin/node (the Debian machines have 20)');
    return;
  }
  const r = await execFileP(old, [join(ROOT, 'bin/wharf.js'), '--help']).then(
    () => assert.fail('exit 0 on an old Node'),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /NODE_VERSION/);
});

test('listening on every interface without --url warns that generated URLs name 0.0.0.0; with --url it does not', async () => {
  const { startWharf } = await import('../helpers/wharf.ts');
  const wild = await startWharf({ args: ['--listen', '0.0.0.0:0'] });
  try {
    // written to stderr right after the listening line on stdout: wait for it
    for (let i = 0; i < 100 && !/PUBLIC_URL/.test(wild.output()); i++) await new Promise((res) => setTimeout(res, 20));
    assert.match(wild.output(), /warning PUBLIC_URL: .*set --url/);
  } finally {
    await wild.stop();
  }
  const named = await startWharf({ args: ['--listen', '0.0.0.0:0', '--url', 'https://packages.example.com'] });
  try {
    assert.doesNotMatch(named.output(), /PUBLIC_URL/);
    assert.match(named.output(), /public URL https:\/\/packages\.example\.com/);
  } finally {
    await named.stop();
  }
});
