// Stopping a node (SIGTERM, as systemd and Kubernetes do in a rolling restart): requests in flight finish, /readyz
// tells the load balancer first, nothing new is taken, and what cannot finish in time is cut off, not waited for.
// Real server processes, real HTTP over loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startWharf, ROOT, type WharfInstance } from '../helpers/wharf.ts';
import { tar } from '../helpers/tar.ts';

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

test('an answer still being sent when the node stops arrives whole (a large one, to a client that reads slowly)', { timeout: 120_000 }, async () => {
  const w = await startWharf();
  const work = await mkdtemp(join(tmpdir(), 'wharf-stop-'));
  try {
    assert.equal((await w.cli(['repo', 'create', 'acme/stop'])).code, 0);
    // A batch of 19,000 files that are not packages: each is refused with its own result, so the answer (one JSON
    // document, written at once) is about 6 MB, more than the connection's buffers hold (4 MiB at most here).
    const body = tar(Object.fromEntries(Array.from({ length: 19000 }, (_, i) => [`not-a-package-${String(i).padStart(5, '0')}-${'x'.repeat(60)}.rpm`, 'not a package at all'])), { directory: false });
    const bodyFile = join(work, 'batch.tar');
    await (await import('node:fs/promises')).writeFile(bodyFile, body);
    // The client: python with a 4 KiB receive buffer, reading the answer slowly once its first bytes came.
    const client = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(('127.0.0.1', int(sys.argv[1])))
body = open(sys.argv[2], 'rb').read()
s.sendall(('POST ${PUSH} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer ' + sys.argv[3] + '\\r\\nContent-Type: application/x-tar\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(body)).encode() + body)
got = s.recv(4096)
print('first', flush=True)
time.sleep(0.5)
while True:
    c = s.recv(65536)
    if not c: break
    got += c
    time.sleep(0.002)
head, _, rest = got.partition(b'\\r\\n\\r\\n')
length = int([l.split(b':')[1] for l in head.split(b'\\r\\n') if l.lower().startswith(b'content-length')][0])
print("status", head.split(b' ')[1].decode(), 'length', length, 'got', len(rest), flush=True)
`, new URL(w.url).port, bodyFile, w.token], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    client.stdout.on('data', (d) => (out += d));
    const clientDone = new Promise((r) => client.once('exit', r));
    for (let i = 0; i < 6000 && !out.includes('first'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(out, /first/, 'the answer began');
    w.process.kill('SIGTERM');
    await clientDone;
    const m = /status (\d+) length (\d+) got (\d+)/.exec(out);
    assert.ok(m, out);
    assert.equal(m[1], '422', out);
    assert.ok(Number(m[2]) > 5_000_000, `a large answer (${m[2]} bytes)`);
    assert.equal(m[3], m[2], 'the whole answer arrived');
    assert.equal(await exited(w), 0, w.output());
  } finally {
    await w.stop();
    await rm(work, { recursive: true, force: true });
  }
});

test('HTTPS: a connection that never finishes its TLS handshake does not hold the stop', { timeout: 60_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'wharf-stop-tls-'));
  const cert = join(work, 'cert.pem');
  const key = join(work, 'key.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  const w = await startWharf({ args: ['--tls-cert', cert, '--tls-key', key] });
  try {
    // A TCP connection that sends nothing (no ClientHello): Node keeps it for its handshake timeout, two minutes.
    const silent = connect(Number(new URL(w.url).port), '127.0.0.1');
    silent.on('error', () => {});
    await new Promise((r) => silent.once('connect', r));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    w.process.kill('SIGTERM');
    assert.equal(await exited(w), 0, w.output());
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(seconds < 10, `stopped after ${seconds.toFixed(1)} s (the timeout is 30 s, the handshake timeout 120 s)`);
    silent.destroy();
  } finally {
    await w.stop();
    await rm(work, { recursive: true, force: true });
  }
});

test('during the stop, an upload refused at once is still read to its end, so its client gets the answer (no reset)', { timeout: 60_000 }, async () => {
  const w = await startWharf({ env: { WHARF_SHUTDOWN_DELAY: '30' } });
  try {
    // Python's http.client (what requests and urllib3 build on) sending 500 kB slowly to a repository that does not
    // exist: the 404 comes before the body is sent, and the client reads it only after its last write.
    const upload = () =>
      promisify(execFile)('python3', ['-c', `
import http.client, sys, time
def body():
    for o in range(0, 500000, 16384):
        yield b'\\0' * min(16384, 500000 - o)
        time.sleep(0.01)
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))
try:
    c.request('POST', '/api/v1/repos/acme/none/distributions/el/9/packages', body=body(), headers={'Authorization': 'Bearer ' + sys.argv[2], 'Content-Length': '500000', 'Content-Type': 'application/octet-stream'})
    print(c.getresponse().status)
except OSError as e:
    print(type(e).__name__)
`, new URL(w.url).port, w.token]).then((r) => r.stdout.trim());
    assert.equal(await upload(), '404', 'before the stop');
    w.process.kill('SIGTERM');
    await logged(w, /stopping: finishing the requests in flight/);
    assert.equal(await upload(), '404', 'during the stop');
  } finally {
    w.process.kill('SIGTERM'); // the second: no need to wait out the delay
    await w.stop();
  }
});

test('a server that was closed, with its App, is garbage collected (no timer of Node\'s keeps it)', { timeout: 60_000 }, async () => {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { loadConfig } = await import('../../src/config.ts');
  const { createApp } = await import('../../src/app.ts');
  const { createLogger } = await import('../../src/log.ts');
  const { startServer } = await import('../../src/server.ts');
  const refs: WeakRef<object>[] = [];
  for (let i = 0; i < 8; i++) {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-gc-'));
    const app = await createApp(loadConfig({ data: dir, listen: '127.0.0.1:0', 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {}), { log: createLogger('silent') });
    const running = await startServer(app);
    assert.equal((await fetch(`${running.url}/healthz`, { headers: { Connection: 'close' } })).status, 200);
    refs.push(new WeakRef(running.server));
    if (i % 2 === 0) await running.close();
    else await running.drain({ delayMs: 0, timeoutMs: 1000 });
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
  for (let k = 0; k < 20 && refs.filter((r) => r.deref() !== undefined).length > 2; k++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  const alive = refs.filter((r) => r.deref() !== undefined).length;
  // (The last one or two may still be referenced from this test's own frames.)
  assert.ok(alive <= 2, `${alive} of ${refs.length} closed servers are still reachable (${refs.map((r) => (r.deref() ? "alive" : "freed")).join(", ")})`);
});
