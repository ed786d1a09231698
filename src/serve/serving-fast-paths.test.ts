// The per-request fast paths of serving give the same answers as the general ones: request metrics with rendered
// label keys, the signed URL shared within a second, and the metadata cache's synchronous look-ups and shared loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metrics, routeClass } from '../metrics.ts';
import { UrlSigner } from '../services/url-signer.ts';
import { FsBlobStore } from '../storage/fs-blob-store.ts';
import { MetadataCache } from './metadata-cache.ts';

test('Metrics.request renders exactly what requests.inc and requestDuration.observe render', () => {
  const fast = new Metrics();
  const slow = new Metrics();
  const seen: [string, string, number, number][] = [
    ['/o/r/debian/dists/d/InRelease', 'GET', 200, 0.0004],
    ['/o/r/debian/pool/main/p/p_1_amd64.deb', 'GET', 302, 0.002],
    ['/o/r/debian/pool/main/p/p_1_amd64.deb', 'HEAD', 401, 0.03],
    ['/api/v1/repos', 'POST', 201, 0.7],
    ['/o/r/el/9/x86_64/repodata/' + 'a'.repeat(64) + '-primary.xml.gz', 'GET', 200, 12],
    ['/o/r/debian/dists/d/InRelease', 'GET', 200, 0.2],
    ['/metrics', 'GET', 200, 0.001],
  ];
  for (const [path, method, status, seconds] of seen) {
    fast.request(routeClass(path), method, status, seconds);
    const route = routeClass(path);
    slow.requests.inc({ route, method, status: String(status) });
    slow.requestDuration.observe({ route }, seconds);
  }
  fast.redirects.inc();
  slow.redirects.inc({});
  assert.equal(fast.render(), slow.render());
  assert.match(fast.render(), /^wharf_http_requests_total\{method="GET",route="metadata",status="200"\} 2$/m);
  assert.match(fast.render(), /^wharf_signed_url_redirects_total 1$/m);
});

test('routeClass', () => {
  assert.equal(routeClass('/o/r/debian/pool/x.deb'), 'package');
  assert.equal(routeClass('/o/r/el/9/x86_64/Packages/x.rpm'), 'package');
  assert.equal(routeClass('/o/r/debian/dists/d/main/binary-amd64/by-hash/SHA256/ab'), 'metadata-immutable');
  assert.equal(routeClass(`/o/r/el/9/x86_64/repodata/${'0'.repeat(64)}-primary.xml.gz`), 'metadata-immutable');
  assert.equal(routeClass('/o/r/el/9/x86_64/repodata/repomd.xml'), 'metadata');
  assert.equal(routeClass('/api/v1/repos'), 'api');
  assert.equal(routeClass('/healthz'), 'healthz');
});

test('UrlSigner: the requests of one second share a URL; it verifies, and the next second signs anew', () => {
  const s = new UrlSigner([Buffer.alloc(32, 7)], 300);
  const t = 1_700_000_000_000;
  const a = s.sign('GET', '/o/r/p.deb', t);
  assert.equal(s.sign('GET', '/o/r/p.deb', t + 999), a);
  assert.notEqual(s.sign('GET', '/o/r/q.deb', t), a);
  const fresh = new UrlSigner([Buffer.alloc(32, 7)], 300);
  assert.equal(fresh.sign('GET', '/o/r/p.deb', t), a, 'the shared URL is the one a fresh signer computes');
  const b = s.sign('GET', '/o/r/p.deb', t + 1000);
  assert.notEqual(b, a);
  assert.match(b, new RegExp(`expires=${Math.floor(t / 1000) + 301}&`));
  const q = new URLSearchParams(b.slice(b.indexOf('?') + 1));
  assert.ok(s.verify('GET', '/o/r/p.deb', q.get('expires'), q.get('signature'), t + 1000));
  assert.ok(!s.verify('GET', '/o/r/p.deb', q.get('expires'), q.get('signature'), t + 302_000), 'expired');
  assert.ok(!new UrlSigner([Buffer.alloc(32, 8)], 300).verify('GET', '/o/r/p.deb', q.get('expires'), q.get('signature'), t + 1000));
});

test('MetadataCache: peek answers from memory, concurrent misses share one load, a write invalidates', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-mc-'));
  try {
    const store = new FsBlobStore(dir, { fsync: false });
    await store.put('public/o/r/InRelease', 'one');
    let stats = 0;
    const realStat = store.stat.bind(store);
    store.stat = (key: string) => {
      stats++;
      return realStat(key);
    };
    const cache = new MetadataCache(store);
    assert.equal(cache.peek('public/o/r/InRelease'), undefined);
    assert.equal(cache.peekStat('public/o/r/InRelease'), false);
    const got = await Promise.all([1, 2, 3, 4].map(() => cache.get('public/o/r/InRelease')));
    assert.equal(stats, 1, 'one load for four concurrent misses');
    for (const g of got) assert.equal(typeof g === 'object' && Buffer.from(g.body).toString(), 'one');
    const hit = cache.peek('public/o/r/InRelease');
    assert.ok(hit && typeof hit === 'object');
    assert.equal(hit.lastModified, hit.stat.mtime.toUTCString());
    await Promise.all([cache.stat('public/o/r/p.deb'), cache.stat('public/o/r/p.deb')]);
    assert.equal(stats, 2);
    assert.equal(cache.peekStat('public/o/r/p.deb'), undefined, 'absence is remembered');
    await store.put('public/o/r/InRelease', 'two');
    assert.equal(cache.peek('public/o/r/InRelease'), undefined, 'a write to the store invalidates');
    assert.equal(cache.peekStat('public/o/r/p.deb'), false);
    const again = await cache.get('public/o/r/InRelease');
    assert.equal(typeof again === 'object' && Buffer.from(again.body).toString(), 'two');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
