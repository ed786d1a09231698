// HTTPS served directly with --tls-cert/--tls-key: real TLS, checked by curl and by the CLI trusting the certificate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';

const run = promisify(execFile);
let w: WharfInstance;
let work: string;
let cert: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-tls-'));
  cert = join(work, 'cert.pem');
  const key = join(work, 'key.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  w = await startWharf({ args: ['--tls-cert', cert, '--tls-key', key] });
});

after(async () => {
  await w?.stop();
  await rm(work, { recursive: true, force: true });
});

test('the server speaks HTTPS on the listening port and announces an https URL', async () => {
  assert.match(w.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const { stdout } = await run('curl', ['-sS', '--cacert', cert, `${w.url}/healthz`]);
  assert.equal(JSON.parse(stdout).status, 'ok');
  // Plain HTTP on the TLS port is not served.
  await assert.rejects(run('curl', ['-sS', '--max-time', '5', `${w.url.replace('https:', 'http:')}/healthz`]));
  // An untrusted certificate is refused by the client (the TLS is real).
  await assert.rejects(run('curl', ['-sS', `${w.url}/healthz`]));
});

test('the CLI creates, pushes and lists over HTTPS when it trusts the certificate', async () => {
  const env = { NODE_EXTRA_CA_CERTS: cert };
  assert.equal((await w.cli(['repo', 'create', 'acme/tls'], env)).code, 0);
  const deb = await buildDeb(work, 'Package: tls-pkg\nVersion: 1.0\nArchitecture: amd64\nDescription: over TLS\n');
  const push = await w.cli(['push', 'acme/tls/debian/bookworm', deb], env);
  assert.equal(push.code, 0, push.stderr);
  const { stdout } = await run('curl', ['-sS', '--cacert', cert, `${w.url}/acme/tls/debian/dists/bookworm/main/binary-amd64/Packages`]);
  assert.match(stdout, /^Package: tls-pkg$/m);
  const untrusted = await w.cli(['repo', 'list']);
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /CONNECTION_FAILED/);
});
