// Stopping a node (SIGTERM, as systemd and Kubernetes do in a rolling restart): requests in flight finish, /readyz
// tells the load balancer first, nothing new is taken, and what cannot finish in time is cut off, not waited for.
// Real server processes, real HTTP over loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startWharf, ROOT, type WharfInstance } from '../helpers/wharf.ts';

const RPM = join(ROOT, 'test/fixtures/rpm/Rimmer-1.0.2-2.x86_64.rpm');
const PUSH = '/api/v1/repos/acme/stop/distributions/el/9/packages';

/** A push whose body is sent by the caller, a part at a time: the request, and its answer when it comes. */
function slowPush(w: WharfInstance, size: number): { req: ClientRequest; answer: Promise<{ status: number; body: string; connection: string | undefined }> } {
  const req = httpRequest(new URL(PUSH, w.url), {
    method: 'POST',
    headers: { Authorization: `Bearer ${w.token}`, 'Content-Type': 'application/octet-stream', 'Content-Length': size },
  });
  const answer = new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
    req.on('response', (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  answer.catch(() => {});
  return { req, answer };
}

function exited(w: WharfInstance): Promise<number | null> {
  return w.process.exitCode !== null ? Promise.resolve(w.process.exitCode) : new Promise((r) => w.process.once('exit', (code) => r(code)));
}

/** Resolves once `text` appears in the server's output. */
async function logged(w: WharfInstance, text: RegExp): Promise<void> {
  for (let i = 0; i < 500 && !text.test(w.output()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(w.output(), text);
}

test('SIGTERM: a push in flight is still stored, published and answered; no new connection is taken; exit 0', { timeout: 60_000 }, async () => {
  const w = await startWharf({ env: { WHARF_SHUTDOWN_TIMEOUT: '30' } });
  try {
    assert.equal((await w.cli(['repo', 'create', 'acme/stop'])).code, 0);
    const rpm = await readFile(RPM);
    const push = slowPush(w, rpm.byteLength);
    push.req.write(rpm.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 200));
    w.process.kill('SIGTERM');
    await logged(w, /stopping: finishing the requests in flight/);
    // The listener is closed: a new client is refused at once.
    await assert.rejects(fetch(`${w.url}/healthz`), (e: Error) => /ECONNREFUSED/.test(String((e.cause as Error)?.message ?? e.message)));
    // The upload goes on and is answered as any push is: stored and published.
    push.req.end(rpm.subarray(1000));
    const answer = await push.answer;
    assert.equal(answer.status, 201, answer.body);
    assert.equal(JSON.parse(answer.body).status, 'created', answer.body);
    assert.equal(answer.connection, 'close', 'no connection is kept while the node stops');
    assert.equal(await exited(w), 0, w.output());
    assert.doesNotMatch(w.output(), /cut off/);
    // Published before the answer (a push waits for its publish): the metadata on disk lists it.
    const dir = join(w.dataDir, 'storage/public/acme/stop/el/9/x86_64');
    const repomd = await readFile(join(dir, 'repodata/repomd.xml'), 'utf8');
    const primary = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(repomd)![1]!;
    assert.match(gunzipSync(await readFile(join(dir, primary))).toString(), /<name>Rimmer<\/name>/);
  } finally {
    await w.stop();
  }
});

test('WHARF_SHUTDOWN_DELAY: /readyz answers 503 at once while the node still serves, then it stops taking requests', { timeout: 60_000 }, async () => {
  const w = await startWharf({ env: { WHARF_SHUTDOWN_DELAY: '2' } });
  try {
    assert.equal((await fetch(`${w.url}/readyz`)).status, 200);
    w.process.kill('SIGTERM');
    await logged(w, /stopping: finishing the requests in flight/);
    const ready = await fetch(`${w.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { status: string }).status, 'stopping');
    const health = await fetch(`${w.url}/healthz`);
    assert.equal(health.status, 200, 'still serving during the delay');
    assert.equal(health.headers.get('connection'), 'close');
    assert.equal(await exited(w), 0, w.output());
    await assert.rejects(fetch(`${w.url}/healthz`));
  } finally {
    await w.stop();
  }
});

test('a request still running when WHARF_SHUTDOWN_TIMEOUT ends is cut off; a second SIGTERM does not wait at all', { timeout: 60_000 }, async () => {
  // A stalled upload holds the first node only for the timeout.
  const w = await startWharf({ env: { WHARF_SHUTDOWN_TIMEOUT: '1' } });
  try {
    assert.equal((await w.cli(['repo', 'create', 'acme/stop'])).code, 0);
    const stalled = slowPush(w, 100_000);
    stalled.req.write(Buffer.alloc(1000));
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    w.process.kill('SIGTERM');
    await assert.rejects(stalled.answer, /socket hang up|ECONNRESET/);
    assert.equal(await exited(w), 0, w.output());
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(seconds >= 0.9 && seconds < 10, `stopped after ${seconds.toFixed(1)} s (timeout 1 s)`);
    assert.match(w.output(), /"requests":1.*cut off/);
  } finally {
    await w.stop();
  }
  // With the default timeout (30 s), a second SIGTERM stops the node at once.
  const v = await startWharf();
  try {
    assert.equal((await v.cli(['repo', 'create', 'acme/stop'])).code, 0);
    const stalled = slowPush(v, 100_000);
    stalled.req.write(Buffer.alloc(1000));
    await new Promise((r) => setTimeout(r, 200));
    v.process.kill('SIGTERM');
    await logged(v, /stopping: finishing the requests in flight/);
    const t0 = performance.now();
    v.process.kill('SIGTERM');
    await assert.rejects(stalled.answer, /socket hang up|ECONNRESET/);
    assert.equal(await exited(v), 0, v.output());
    assert.ok((performance.now() - t0) / 1000 < 10, 'the second SIGTERM did not wait for the timeout');
    assert.match(v.output(), /stopping at once/);
  } finally {
    await v.stop();
  }
});
