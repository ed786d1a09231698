import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config.ts';
import { WharfError } from './errors.ts';

const invalid = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof WharfError && e.code === 'CONFIG_INVALID' && re.test(e.message));

test('defaults', () => {
  const c = loadConfig({}, {});
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8080 });
  assert.equal(c.publicUrl, undefined);
  assert.match(c.dataDir, /wharf-data$/);
  assert.equal(c.retentionSeconds, 3600);
  assert.deepEqual(c.defaultArchitectures, ['amd64', 'arm64']);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.listen));
});

test('flags beat environment, which beats the config file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  const file = join(dir, 'wharf.json');
  await writeFile(file, JSON.stringify({ listen: '0.0.0.0:1', url: 'https://file.example', retentionSeconds: 5, defaultArchitectures: ['riscv64'] }));
  const c = loadConfig({ config: file, listen: '[::1]:9000' }, { WHARF_PUBLIC_URL: 'https://env.example/' });
  assert.deepEqual(c.listen, { host: '::1', port: 9000 });
  assert.equal(c.publicUrl, 'https://env.example');
  assert.equal(c.retentionSeconds, 5);
  assert.deepEqual(c.defaultArchitectures, ['riscv64']);
});

test('invalid values are refused with a message naming the option', async () => {
  invalid(() => loadConfig({ listen: 'nope' }, {}), /--listen/);
  invalid(() => loadConfig({ listen: '1.2.3.4:70000' }, {}), /port/);
  invalid(() => loadConfig({}, { WHARF_MAX_UPLOAD_BYTES: '12abc' }), /maxUploadBytes/);
  invalid(() => loadConfig({ url: 'ftp://x' }, {}), /--url/);
  invalid(() => loadConfig({ 'tls-cert': 'a.pem' }, {}), /tls-key/);
  invalid(() => loadConfig({ 'log-level': 'loud' }, {}), /logLevel/);
  invalid(() => loadConfig({ 'default-architectures': 'amd64,all' }, {}), /architecture/);
  invalid(() => loadConfig({ fsync: 'maybe' }, {}), /fsync/);
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  await writeFile(join(dir, 'bad.json'), '{"lisen": "x"}');
  invalid(() => loadConfig({ config: join(dir, 'bad.json') }, {}), /unknown option "lisen"/);
  await writeFile(join(dir, 'broken.json'), '{');
  invalid(() => loadConfig({ config: join(dir, 'broken.json') }, {}), /not valid JSON/);
  invalid(() => loadConfig({ config: join(dir, 'missing.json') }, {}), /cannot read/);
});
