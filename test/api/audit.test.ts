// Every mutation is in the audit log with who (token), what, when and from where; never a secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';

let w: WharfInstance;
let work: string;
before(async () => {
  w = await startWharf();
  work = await mkdtemp(join(tmpdir(), 'wharf-audit-'));
});
after(async () => {
  await w?.stop();
  await rm(work, { recursive: true, force: true });
});

test('repository, push, yank and token changes are audited; wharf audit shows them; secrets never appear', async () => {
  const created = JSON.parse((await w.cli(['repo', 'create', 'acme/audited', '--private', '--json'])).stdout);
  const deb = await buildDeb(work, 'Package: audited\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n');
  assert.equal((await w.cli(['push', 'acme/audited/debian/bookworm', deb])).code, 0);
  const tok = JSON.parse((await w.cli(['token', 'create', 'acme/audited', '--name', 'ci', '--scope', 'write', '--json'])).stdout);
  assert.equal((await w.cli(['token', 'rotate', 'acme/audited', String(tok.id), '--grace', '0s'])).code, 0);
  assert.equal((await w.cli(['token', 'revoke', 'acme/audited', String(tok.id)])).code, 0);
  assert.equal((await w.cli(['yank', 'acme/audited/debian/bookworm', 'audited_1.0_amd64.deb'])).code, 0);

  const r = await w.cli(['audit', 'acme/audited', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const entries = JSON.parse(r.stdout).entries as { action: string; actor: string; ip: string; target: string }[];
  const actions = entries.map((e) => e.action).reverse();
  assert.deepEqual(actions, ['repository.create', 'token.create', 'package.push', 'token.create', 'token.rotate', 'token.revoke', 'package.yank']);
  for (const e of entries) {
    assert.match(e.actor, /^admin-token:\d+$/);
    assert.match(e.ip, /127\.0\.0\.1/);
  }
  assert.ok(entries.some((e) => e.target === 'acme/audited/debian/bookworm/audited_1.0_amd64.deb'));
  const human = await w.cli(['audit', 'acme']);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /package\.yank/);
  for (const secret of [created.deploy_token.token, tok.token, w.token]) {
    assert.ok(!r.stdout.includes(secret) && !human.stdout.includes(secret), 'a secret leaked into the audit log');
  }
});

test('a deploy token without admin scope cannot read the audit log', async () => {
  const tok = JSON.parse((await w.cli(['token', 'create', 'acme/audited', '--name', 'reader', '--scope', 'read', '--json'])).stdout);
  const r = await fetch(`${w.url}/api/v1/repos/acme/audited/audit`, { headers: { Authorization: `Bearer ${tok.token}` } });
  assert.equal(r.status, 403);
});
