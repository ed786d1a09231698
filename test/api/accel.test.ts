// Behind nginx, package files are handed over with X-Accel-Redirect after Wharf has authorised the request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWharf, buildDeb, type WharfInstance } from '../helpers/wharf.ts';

let w: WharfInstance;
let work: string;
before(async () => {
  w = await startWharf({ env: { WHARF_ACCEL_REDIRECT: '/_wharf_files' } });
  work = await mkdtemp(join(tmpdir(), 'wharf-accel-'));
  assert.equal((await w.cli(['repo', 'create', 'acme/tools'])).code, 0);
  const deb = await buildDeb(work, 'Package: accel\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n');
  assert.equal((await w.cli(['push', 'acme/tools/debian/bookworm', deb])).code, 0);
});
after(async () => {
  await w?.stop();
  await rm(work, { recursive: true, force: true });
});

test('a package file answers with X-Accel-Redirect into the storage tree and no body; metadata is served directly', async () => {
  const r = await fetch(`${w.url}/acme/tools/debian/pool/bookworm/main/a/accel/accel_1.0_amd64.deb`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-accel-redirect'), '/_wharf_files/public/acme/tools/debian/pool/bookworm/main/a/accel/accel_1.0_amd64.deb');
  assert.equal((await r.arrayBuffer()).byteLength, 0);
  assert.match(r.headers.get('cache-control') ?? '', /immutable/);
  const missing = await fetch(`${w.url}/acme/tools/debian/pool/bookworm/main/a/accel/nope_1.0_amd64.deb`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('x-accel-redirect'), null);
  const meta = await fetch(`${w.url}/acme/tools/debian/dists/bookworm/InRelease`);
  assert.equal(meta.headers.get('x-accel-redirect'), null);
  assert.match(await meta.text(), /^-----BEGIN PGP SIGNED MESSAGE-----/);
});
