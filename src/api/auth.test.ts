import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { AuthFailureLimiter, clientIp, isLoopback, isSecure } from './auth.ts';
import { loadConfig } from '../config.ts';

const req = (headers: Record<string, string>, remoteAddress: string) => ({ headers, socket: { remoteAddress } }) as unknown as IncomingMessage;

test('failed authentications are limited per address in a sliding minute', () => {
  const l = new AuthFailureLimiter(3);
  const t = 1_000_000;
  for (let i = 0; i < 3; i++) {
    assert.equal(l.retryAfter('10.0.0.1', t + i), 0);
    l.fail('10.0.0.1', t + i);
  }
  assert.ok(l.retryAfter('10.0.0.1', t + 10) > 0, 'over the limit');
  assert.ok(l.retryAfter('10.0.0.1', t + 10) <= 60);
  assert.equal(l.retryAfter('10.0.0.2', t + 10), 0, 'other addresses are not affected');
  assert.equal(l.retryAfter('10.0.0.1', t + 60_003), 0, 'the window slides');
});

test('transport security and client address honour --trust-proxy only when set', () => {
  const plain = loadConfig({}, {});
  const proxied = loadConfig({ 'trust-proxy': true }, {});
  const r = req({ 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7, 10.0.0.1' }, '10.0.0.1');
  assert.equal(isSecure(r, plain), false, 'forwarded headers are ignored without --trust-proxy');
  assert.equal(clientIp(r, plain), '10.0.0.1');
  assert.equal(isSecure(r, proxied), true);
  assert.equal(clientIp(r, proxied), '203.0.113.7');
  assert.equal(isSecure(req({ 'x-forwarded-proto': 'http' }, '10.0.0.1'), proxied), false);
});

test('loopback addresses', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopback(a), a);
  for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '192.168.1.1', undefined]) assert.ok(!isLoopback(a), String(a));
});
