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

test('request rate limits: token buckets with ten seconds of burst, 0 disables', async () => {
  const { RateLimiter } = await import('./auth.ts');
  const off = new RateLimiter(0);
  for (let i = 0; i < 1000; i++) assert.equal(off.take('x', 0), 0);
  const l = new RateLimiter(2); // 2/s, burst 20
  for (let i = 0; i < 20; i++) assert.equal(l.take('a', 1000), 0, `burst request ${i}`);
  assert.ok(l.take('a', 1000) >= 1, 'the 21st request in the same instant waits');
  assert.equal(l.take('b', 1000), 0, 'other keys have their own bucket');
  assert.equal(l.take('a', 1600), 0, 'refilled at 2 per second');
});
