// Address classification, the connect-time lookup guard and the https fetch (against the real test issuer).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { startOidcIssuer, type TestOidcIssuer } from '../../../test/helpers/oidc-issuer.ts';
import { AddressRefusedError, fetchJson, guardedLookup, isPrivateAddress, issuerTlsContext, parseIPv6 } from './net.ts';

test('isPrivateAddress: non-public IPv4 and IPv6, embedded IPv4 judged by its IPv4 part', () => {
  const cases: Array<[string, boolean]> = [
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['10.1.2.3', true],
    ['172.16.0.1', true],
    ['172.31.255.255', true],
    ['172.32.0.1', false],
    ['192.168.1.1', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['100.128.0.1', false],
    ['0.0.0.0', true],
    ['255.255.255.255', true],
    ['224.0.0.1', true],
    ['198.18.0.1', true],
    ['8.8.8.8', false],
    ['140.82.112.3', false],
    ['::1', true],
    ['::', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:7f00:1', true],
    ['::ffff:8.8.8.8', false],
    ['::127.0.0.1', true],
    ['fe80::1%eth0', true],
    ['fd00::1', true],
    ['fc00::1', true],
    ['fec0::1', true],
    ['2001:db8::1', true],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', true], // Teredo
    ['64:ff9b::a00:1', true], // NAT64 of 10.0.0.1
    ['64:ff9b::808:808', false], // NAT64 of 8.8.8.8
    ['2002:7f00:1::', true], // 6to4 of 127.0.0.1
    ['2002:808:808::1', false],
    ['ff02::1', true],
    ['2606:4700:4700::1111', false],
    ['2001:4860:4860::8888', false],
    ['not-an-ip', true],
  ];
  for (const [address, expected] of cases) assert.equal(isPrivateAddress(address), expected, address);
});

test('parseIPv6 expands :: and embedded dotted quads', () => {
  assert.deepEqual(parseIPv6('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(parseIPv6('1::'), [1, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(parseIPv6('::ffff:1.2.3.4'), [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]);
  assert.deepEqual(parseIPv6('1:2:3:4:5:6:7.8.9.10'), [1, 2, 3, 4, 5, 6, 0x708, 0x90a]);
  assert.deepEqual(parseIPv6('2001:db8::8:800:200c:417a'), [0x2001, 0xdb8, 0, 0, 8, 0x800, 0x200c, 0x417a]);
});

function lookupWith(allow: boolean, answers: LookupAddress[][], options: { all?: boolean; family?: number } = {}) {
  let call = 0;
  const lookup = guardedLookup(allow, (_host, cb) => cb(null, answers[Math.min(call++, answers.length - 1)]!));
  return () =>
    new Promise<{ err: Error | null; address: unknown; family?: number }>((resolve) =>
      lookup('issuer.example', { all: options.all ?? false, family: options.family ?? 0 }, (err, address, family) => resolve({ err, address, family })),
    );
}

test('guardedLookup refuses when any resolved address is non-public, at every connection (DNS rebinding)', async () => {
  const mixed = lookupWith(false, [[{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.1', family: 4 }]]);
  const r1 = await mixed();
  assert.ok(r1.err instanceof AddressRefusedError);
  assert.match(r1.err.message, /10\.0\.0\.1/);

  // First answer public, the second (a rebinding) loopback: each connection resolves and is checked again.
  const rebinding = lookupWith(false, [[{ address: '93.184.216.34', family: 4 }], [{ address: '127.0.0.1', family: 4 }]]);
  const ok = await rebinding();
  assert.equal(ok.err, null);
  assert.equal(ok.address, '93.184.216.34');
  assert.equal(ok.family, 4);
  const rebound = await rebinding();
  assert.ok(rebound.err instanceof AddressRefusedError);

  const allowed = await lookupWith(true, [[{ address: '10.0.0.1', family: 4 }]])();
  assert.equal(allowed.err, null);
  assert.equal(allowed.address, '10.0.0.1');

  // all: true (Node's happy eyeballs) gets the filtered list back.
  const all = await lookupWith(false, [[{ address: '2606:4700:4700::1111', family: 6 }, { address: '1.1.1.1', family: 4 }]], { all: true })();
  assert.equal(all.err, null);
  assert.deepEqual(all.address, [
    { address: '2606:4700:4700::1111', family: 6 },
    { address: '1.1.1.1', family: 4 },
  ]);
  const v4only = await lookupWith(false, [[{ address: '2606:4700:4700::1111', family: 6 }, { address: '1.1.1.1', family: 4 }]], { family: 4 })();
  assert.equal(v4only.address, '1.1.1.1');
});

describe('fetchJson against the HTTPS test issuer', () => {
  let issuer: TestOidcIssuer;
  before(async () => {
    issuer = await startOidcIssuer();
  });
  after(() => issuer.close());

  const opts = (allowPrivateNetwork: boolean, extra: string[] = []) => ({ allowPrivateNetwork, secureContext: issuerTlsContext(extra), timeoutMs: 5000, maxBytes: 1024 * 1024 });

  test('fetches with the extra CA, refuses loopback names and literals without the flag, verifies TLS', async () => {
    const doc = (await fetchJson(`${issuer.url}/.well-known/openid-configuration`, opts(true, [issuer.caPem]))) as { issuer: string };
    assert.equal(doc.issuer, issuer.url);
    // The IP literal is checked before connecting (no lookup runs for literals); the certificate also covers 127.0.0.1.
    await fetchJson(`https://127.0.0.1:${issuer.port}/.well-known/openid-configuration`, opts(true, [issuer.caPem]));
    const served = issuer.stats.requests;
    await assert.rejects(fetchJson(`https://127.0.0.1:${issuer.port}/.well-known/openid-configuration`, opts(false, [issuer.caPem])), AddressRefusedError);
    await assert.rejects(fetchJson(`${issuer.url}/.well-known/openid-configuration`, opts(false, [issuer.caPem])), /localhost resolves to .*non-public/);
    await assert.rejects(fetchJson(`https://[::1]:${issuer.port}/x`, opts(false, [issuer.caPem])), AddressRefusedError);
    assert.equal(issuer.stats.requests, served, 'nothing reached the server');
    // Without the test CA the certificate does not verify.
    await assert.rejects(fetchJson(`${issuer.url}/.well-known/openid-configuration`, opts(true)), /certificate/);
    await assert.rejects(fetchJson(`http://localhost:${issuer.port}/`, opts(true)), /not an https URL/);
  });

  test('size cap and HTTP errors', async () => {
    issuer.misbehave = { jwksPadding: 2 * 1024 * 1024 };
    await assert.rejects(fetchJson(`${issuer.url}/oauth/discovery/keys`, opts(true, [issuer.caPem])), /larger than 1048576 bytes/);
    issuer.misbehave = { status: 302 };
    await assert.rejects(fetchJson(`${issuer.url}/oauth/discovery/keys`, opts(true, [issuer.caPem])), /HTTP 302/);
    issuer.misbehave = {};
  });
});
