// /healthz says the process is alive; /readyz says it can work: database, storage round trip, signing key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startWharf, type WharfInstance } from '../helpers/wharf.ts';

let w: WharfInstance;
before(async () => {
  w = await startWharf();
});
after(async () => {
  await w?.stop();
});

test('/readyz answers 200 with every check passing', async () => {
  const r = await fetch(`${w.url}/readyz`);
  assert.equal(r.status, 200);
  const body = (await r.json()) as { status: string; checks: Record<string, { ok: boolean }> };
  assert.equal(body.status, 'ready');
  assert.deepEqual(Object.keys(body.checks).sort(), ['database', 'signing_key', 'storage', 'url_signing_secret']);
  for (const [name, c] of Object.entries(body.checks)) assert.ok(c.ok, name);
});

test('/readyz answers 503 naming the failing check when storage cannot be written', async () => {
  // Where the check writes is now a file, so no blob can be created under it (root ignores permission bits).
  const internal = join(w.dataDir, 'storage', 'internal');
  await rm(internal, { recursive: true, force: true });
  await writeFile(internal, 'not a directory');
  try {
    const r = await fetch(`${w.url}/readyz`);
    assert.equal(r.status, 503);
    const body = (await r.json()) as { status: string; checks: Record<string, { ok: boolean; error?: string }> };
    assert.equal(body.status, 'not ready');
    assert.equal(body.checks.storage!.ok, false);
    assert.ok(body.checks.storage!.error);
    assert.equal(body.checks.database!.ok, true);
    assert.equal((await fetch(`${w.url}/healthz`)).status, 200, 'alive, though not ready');
  } finally {
    await rm(internal, { force: true });
    await mkdir(internal, { recursive: true });
  }
  assert.equal((await fetch(`${w.url}/readyz`)).status, 200);
});

test('/metrics exposes request counts, latency histograms and publish durations in Prometheus format, without names', async () => {
  await w.cli(['repo', 'create', 'secretorg/secretrepo']);
  const { buildDeb } = await import('../helpers/wharf.ts');
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'wharf-metrics-'));
  const deb = await buildDeb(dir, 'Package: metered\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n');
  assert.equal((await w.cli(['push', 'secretorg/secretrepo/debian/bookworm', deb])).code, 0);
  await fetch(`${w.url}/secretorg/secretrepo/debian/dists/bookworm/InRelease`);
  await fetch(`${w.url}/api/v1/repos`, { headers: { Authorization: 'Bearer wrong-token-for-metrics' } });
  const r = await fetch(`${w.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  assert.match(text, /^# TYPE wharf_http_requests_total counter$/m);
  assert.match(text, /^wharf_http_requests_total\{method="GET",route="metadata",status="200"\} \d+$/m);
  assert.match(text, /^wharf_http_request_duration_seconds_bucket\{route="api",le="\+Inf"\} \d+$/m);
  assert.match(text, /^wharf_publish_duration_seconds_count\{format="deb"\} [1-9]\d*$/m);
  assert.match(text, /^wharf_auth_failures_total [1-9]\d*$/m);
  assert.doesNotMatch(text, /secretorg|secretrepo|metered/, 'names never appear in metrics');
  await rm(dir, { recursive: true, force: true });
});
