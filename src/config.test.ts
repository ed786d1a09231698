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

test("RPM architecture directories are named by dnf's $basearch: i686 and i586 both mean i386", () => {
  assert.deepEqual(loadConfig({}, {}).defaultRpmArchitectures, ['x86_64', 'aarch64']);
  assert.deepEqual(loadConfig({}, { WHARF_DEFAULT_RPM_ARCHITECTURES: 'x86_64,i686,i586,armv7hl' }).defaultRpmArchitectures, ['x86_64', 'i386', 'armhfp']);
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

test('scale-out settings: master key, S3 storage, public base URL, Redis', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  const keyFile = join(dir, 'master-key');
  await writeFile(keyFile, 'k'.repeat(44) + '\n');
  assert.equal(loadConfig({}, { WHARF_MASTER_KEY_FILE: keyFile }).masterKey, 'k'.repeat(44));
  assert.equal(loadConfig({ 'master-key': 'm'.repeat(16) }, {}).masterKey, 'm'.repeat(16));
  // The older name keeps working, with its old rules.
  assert.equal(loadConfig({ 'signing-passphrase': 'short' }, {}).masterKey, 'short');
  invalid(() => loadConfig({ 'master-key': 'too-short' }, {}), /at least 16 characters/);
  invalid(() => loadConfig({ 'master-key': 'm'.repeat(16), 'master-key-file': keyFile }, {}), /not both/);
  invalid(() => loadConfig({ 'master-key': 'm'.repeat(16), 'signing-passphrase': 'other' }, {}), /differ/);
  invalid(() => loadConfig({ 'master-key-file': join(dir, 'missing') }, {}), /cannot read the master key file/);
  // The key never appears in an error message.
  assert.throws(() => loadConfig({ 'master-key': 'secret-but-short' .slice(0, 12) }, {}), (e: Error) => !e.message.includes('secret-but-'));
  invalid(() => loadConfig({ 'database-url': 'postgres://u@h/db' }, {}), /same master key/);
  assert.equal(loadConfig({ 'database-url': 'postgres://u@h/db', 'master-key': 'm'.repeat(32) }, {}).databaseUrl, 'postgres://u@h/db');

  assert.deepEqual(loadConfig({}, {}).storage, { kind: 'fs' });
  const aws = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI', WHARF_S3_ENDPOINT: 'http://127.0.0.1:9000', WHARF_S3_FORCE_PATH_STYLE: 'true' };
  const s3 = loadConfig({}, { ...aws, WHARF_STORAGE: 's3://pkgs/wharf' }).storage;
  assert.equal(s3.kind, 's3');
  if (s3.kind === 's3') {
    assert.equal(s3.s3.bucket, 'pkgs');
    assert.equal(s3.s3.prefix, 'wharf/');
    assert.equal(s3.s3.forcePathStyle, true);
  }
  invalid(() => loadConfig({ storage: 's3://pkgs' }, {}), /AWS_ACCESS_KEY_ID/);
  invalid(() => loadConfig({ storage: 'gs://pkgs' }, aws), /s3:\/\/BUCKET/);
  invalid(() => loadConfig({ storage: 's3://pkgs', 'accel-redirect': '/_files' }, aws), /accelRedirect/);
  invalid(() => loadConfig({ storage: 's3://pkgs', 'signed-url-seconds': '700000' }, aws), /7 days/);
  // The secret never appears in a message.
  assert.throws(() => loadConfig({ storage: 's3://pkgs', 'accel-redirect': '/_files' }, aws), (e: Error) => !e.message.includes('wJalrXUtnFEMI'));

  assert.equal(loadConfig({ 'public-base-url': 'https://cdn.example/pkgs/' }, {}).publicBaseUrl, 'https://cdn.example/pkgs');
  invalid(() => loadConfig({ 'public-base-url': 'http://cdn.example', url: 'https://wharf.example' }, {}), /https/);
  invalid(() => loadConfig({ 'public-base-url': 'https://u:p@cdn.example' }, {}), /credentials/);
  assert.equal(loadConfig({ 'redis-url': 'rediss://:pw@redis.example:6380/2' }, {}).redisUrl, 'rediss://:pw@redis.example:6380/2');
  invalid(() => loadConfig({ 'redis-url': 'http://redis' }, {}), /redis:\/\//);
});

test('shutdown delay and timeout: whole seconds, bounded, 0 and 30 by default', () => {
  const d = loadConfig({}, {});
  assert.equal(d.shutdownDelaySeconds, 0);
  assert.equal(d.shutdownTimeoutSeconds, 30);
  const c = loadConfig({ 'shutdown-timeout': '120' }, { WHARF_SHUTDOWN_DELAY: '15' });
  assert.equal(c.shutdownDelaySeconds, 15);
  assert.equal(c.shutdownTimeoutSeconds, 120);
  assert.equal(loadConfig({}, { WHARF_SHUTDOWN_TIMEOUT: '0' }).shutdownTimeoutSeconds, 0, '0: cut off at once');
  invalid(() => loadConfig({}, { WHARF_SHUTDOWN_TIMEOUT: '-1' }), /shutdownTimeout must be a whole number/);
  invalid(() => loadConfig({}, { WHARF_SHUTDOWN_DELAY: '2.5' }), /shutdownDelay must be a whole number/);
  invalid(() => loadConfig({}, { WHARF_SHUTDOWN_DELAY: '3601' }), /shutdownDelay must be at most 3600/);
});
