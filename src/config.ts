// Configuration is read once at start from (in increasing precedence) built-in defaults, a JSON config file,
// environment variables and command-line flags; validated; frozen; and passed to whatever needs it.
// No other module reads process.env.
// Through process.getBuiltinModule: the CLI loads this module on every call, and the ESM facades cost milliseconds.
const { readFileSync } = process.getBuiltinModule('node:fs') as typeof import('node:fs');
const { resolve, isAbsolute, normalize } = process.getBuiltinModule('node:path') as typeof import('node:path');
import { WharfError } from './errors.ts';
import { s3OptionsFromEnv, type S3StoreOptions } from './storage/s3/options.ts';
import { OPTIONS, OPTION_NAMES, OPTION_FLAGS, type OptionName } from './config-options.ts';
import { rpmBaseArch } from './formats/rpm/arch.ts';

export { OPTION_NAMES, OPTION_FLAGS, type OptionName };

/** Where blobs live: the data directory (default) or an S3-compatible bucket. */
export type StorageConfig = { readonly kind: 'fs' } | { readonly kind: 's3'; readonly url: string; readonly s3: Readonly<S3StoreOptions> };

export interface Config {
  /** host:port to listen on */
  readonly listen: { readonly host: string; readonly port: number };
  /** data directory: SQLite database, blobs, keys */
  readonly dataDir: string;
  /** postgres://… to keep state in PostgreSQL; undefined = SQLite in the data directory */
  readonly databaseUrl?: string;
  /** externally visible base URL without trailing slash; undefined = the address the server listens on */
  readonly publicUrl?: string;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /**
   * The master key: every piece of key material in the database (OpenPGP signing keys, the URL-signing secret, the
   * JWT signing keys) is encrypted under it, so every node that shares the database needs the same one.
   * undefined = generate one into DATA/signing-passphrase (one node only).
   */
  readonly masterKey?: string;
  /** blob storage: the data directory or an S3-compatible bucket */
  readonly storage: StorageConfig;
  /** public repositories' immutable files (packages, by-hash indexes) answer 302 to this base URL (a CDN over the bucket) */
  readonly publicBaseUrl?: string;
  /** redis://… shared by every node: rate-limit counters, single-use CI token ids, cache invalidation */
  readonly redisUrl?: string;
  /** admin token to create on first start (otherwise random) */
  readonly adminToken?: string;
  readonly maxUploadBytes: number;
  /** largest RPM main header data store accepted (rpm's own limit is 256 MiB) */
  readonly maxRpmHeaderBytes: number;
  /**
   * directories (absolute, as given) whose package files a server admin may import in place (`wharf import`); empty:
   * import is off
   */
  readonly importRoots: readonly string[];
  /** how long superseded index files (by-hash) and yanked pool files stay downloadable */
  readonly retentionSeconds: number;
  /** architectures every APT distribution lists, besides those of its packages */
  readonly defaultArchitectures: readonly string[];
  /** architecture directories every RPM distribution has (noarch packages appear in each) */
  readonly defaultRpmArchitectures: readonly string[];
  /** behind a TLS-terminating proxy: trust X-Forwarded-Proto and X-Forwarded-For */
  readonly trustProxy: boolean;
  /** failed authentications allowed per client IP per minute before 429 */
  readonly authFailuresPerMinute: number;
  /** requests per second allowed per client IP and per token (bursts of 10 s worth); 0 = no limit */
  readonly rateLimitPerIp: number;
  readonly rateLimitPerToken: number;
  /** behind nginx: hand package files to it with X-Accel-Redirect to this internal location prefix (e.g. /_wharf_files) */
  readonly accelRedirect?: string;
  /** how long a signed download URL for a private package stays valid */
  readonly signedUrlSeconds: number;
  /** lifetime of the Wharf token minted for a trusted publisher (at most an hour) */
  readonly publishTokenSeconds: number;
  /** the `aud` CI tokens must carry for trusted publishing; undefined = the public URL */
  readonly oidcAudience?: string;
  /**
   * On SIGTERM: seconds the node keeps taking requests while /readyz answers 503 (so a load balancer stops sending
   * it new ones), then seconds it waits for the requests in flight to finish before it closes their connections.
   */
  readonly shutdownDelaySeconds: number;
  readonly shutdownTimeoutSeconds: number;
  /** fsync files before they become visible (disable only for throwaway benchmarks) */
  readonly fsync: boolean;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

function fail(msg: string): never {
  throw new WharfError('CONFIG_INVALID', [msg]);
}

/**
 * Builds the configuration. `flags` are parsed command-line values keyed by flag name (including `config`);
 * `env` is the process environment.
 */
export function loadConfig(flags: Record<string, string | boolean | undefined>, env: Record<string, string | undefined>): Config {
  const configFile = (flags.config as string | undefined) ?? env.WHARF_CONFIG;
  let file: Record<string, unknown> = {};
  if (configFile) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (e) {
      fail(`cannot read config file ${configFile}: ${(e as Error).message}`);
    }
    try {
      file = JSON.parse(text);
    } catch (e) {
      fail(`config file ${configFile} is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) fail(`config file ${configFile} must hold a JSON object`);
    for (const key of Object.keys(file)) {
      if (!(key in OPTIONS)) fail(`unknown option "${key}" in ${configFile}; known options: ${OPTION_NAMES.join(', ')}`);
    }
  }
  const raw = (name: OptionName): string => {
    const o = OPTIONS[name];
    const fromFlag = flags[o.flag];
    if (typeof fromFlag === 'string') return fromFlag;
    if (fromFlag === true) return 'true';
    const fromEnv = env[o.env];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const fromFile = file[name];
    if (fromFile !== undefined) {
      if (Array.isArray(fromFile)) return fromFile.join(',');
      if (typeof fromFile === 'object' && fromFile !== null) fail(`option "${name}" must be a string, number or boolean`);
      return String(fromFile);
    }
    return o.default;
  };

  const listen = parseListen(raw('listen'));
  const dataDir = resolve(raw('data'));
  const url = raw('url');
  const tlsCert = raw('tlsCert');
  const tlsKey = raw('tlsKey');
  if (Boolean(tlsCert) !== Boolean(tlsKey)) fail('--tls-cert and --tls-key must be given together');
  const publicUrl = url ? url.replace(/\/+$/, '') : undefined;
  if (publicUrl) {
    try {
      const u = new URL(publicUrl);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`--url must be an http or https URL, got ${publicUrl}`);
      if (u.search || u.hash) fail(`--url must not have a query or fragment: ${publicUrl}`);
    } catch (e) {
      if (e instanceof WharfError) throw e;
      fail(`--url is not a valid URL: ${publicUrl}`);
    }
  }
  const arches = raw('defaultArchitectures').split(',').map((s) => s.trim()).filter(Boolean);
  for (const a of arches) if (!/^[a-z0-9][a-z0-9-]*$/.test(a) || a === 'all') fail(`invalid architecture "${a}" in defaultArchitectures`);
  // Directories are named by dnf's $basearch: i686 means the i386 directory.
  const rpmArches = [...new Set(raw('defaultRpmArchitectures').split(',').map((s) => s.trim()).filter(Boolean).map(rpmBaseArch))];
  for (const a of rpmArches) {
    if (!/^[A-Za-z0-9_]+$/.test(a) || ['noarch', 'src', 'nosrc', 'SRPMS'].includes(a)) fail(`invalid architecture "${a}" in defaultRpmArchitectures`);
  }
  const importRoots = raw('importRoots').split(',').map((s) => s.trim()).filter(Boolean);
  for (const r of importRoots) {
    if (!isAbsolute(r)) fail(`importRoots must be absolute directories, got "${r.slice(0, 200)}"`);
    if (normalize(r) === '/') fail('importRoots must not include / (name the directories packages are imported from)');
  }
  // TRACE=1 turns on detailed trace logging whatever the configured level.
  if (Number(raw('publishTokenSeconds')) > 3600) fail(`publishTokenSeconds must be at most 3600 (an hour), got ${raw('publishTokenSeconds')}`);
  const level = env.TRACE === '1' ? 'trace' : raw('logLevel');
  if (!['trace', 'debug', 'info', 'warn', 'error', 'silent'].includes(level)) fail(`logLevel must be trace, debug, info, warn, error or silent, got "${level}"`);

  const masterKey = readMasterKey(raw('masterKey'), raw('masterKeyFile'), raw('signingPassphrase'));
  const publicBaseUrl = raw('publicBaseUrl') ? httpUrl('publicBaseUrl', raw('publicBaseUrl')) : undefined;
  const storageConfig = storage(raw('storage'), env);
  // Several nodes share a PostgreSQL database: each would otherwise generate its own key beside its data and could not
  // read the key material the first one stored.
  if (raw('databaseUrl') && !masterKey) {
    fail('with WHARF_DATABASE_URL every node needs the same master key: set WHARF_MASTER_KEY or WHARF_MASTER_KEY_FILE (generate one with: openssl rand -base64 32)');
  }
  if (storageConfig.kind === 's3' && raw('accelRedirect')) fail('accelRedirect hands files to nginx from the data directory: it cannot be used with S3 storage');
  if (storageConfig.kind === 's3' && Number(raw('signedUrlSeconds')) > 7 * 24 * 3600) {
    fail(`signedUrlSeconds must be at most 604800 (7 days, the longest an S3 presigned URL lives) with S3 storage, got ${raw('signedUrlSeconds')}`);
  }
  if (publicBaseUrl?.startsWith('http:') && publicUrl?.startsWith('https:')) {
    fail('publicBaseUrl must be https:// when the public URL is: apt refuses to follow a redirect from https to http');
  }

  const config: Config = {
    listen,
    dataDir,
    ...(raw('databaseUrl') ? { databaseUrl: databaseUrl(raw('databaseUrl')) } : {}),
    storage: storageConfig,
    ...(publicBaseUrl ? { publicBaseUrl } : {}),
    ...(raw('redisUrl') ? { redisUrl: redisUrl(raw('redisUrl')) } : {}),
    ...(masterKey ? { masterKey } : {}),
    ...(publicUrl ? { publicUrl } : {}),
    ...(tlsCert ? { tls: { certFile: resolve(tlsCert), keyFile: resolve(tlsKey) } } : {}),
    ...(raw('adminToken') ? { adminToken: raw('adminToken') } : {}),
    maxUploadBytes: positiveInt('maxUploadBytes', raw('maxUploadBytes')),
    maxRpmHeaderBytes: Math.min(positiveInt('maxRpmHeaderBytes', raw('maxRpmHeaderBytes')), 0x0fffffff),
    importRoots: Object.freeze(importRoots.map((r) => normalize(r).replace(/(.)\/+$/, '$1'))),
    retentionSeconds: positiveInt('retentionSeconds', raw('retentionSeconds'), true),
    defaultArchitectures: Object.freeze(arches),
    defaultRpmArchitectures: Object.freeze(rpmArches),
    signedUrlSeconds: positiveInt('signedUrlSeconds', raw('signedUrlSeconds')),
    ...(raw('accelRedirect') ? { accelRedirect: accelPrefix(raw('accelRedirect')) } : {}),
    publishTokenSeconds: positiveInt('publishTokenSeconds', raw('publishTokenSeconds')),
    ...(raw('oidcAudience') ? { oidcAudience: audience(raw('oidcAudience')) } : {}),
    trustProxy: bool('trustProxy', raw('trustProxy')),
    authFailuresPerMinute: positiveInt('authFailuresPerMinute', raw('authFailuresPerMinute')),
    rateLimitPerIp: positiveInt('rateLimitPerIp', raw('rateLimitPerIp'), true),
    rateLimitPerToken: positiveInt('rateLimitPerToken', raw('rateLimitPerToken'), true),
    shutdownDelaySeconds: boundedInt('shutdownDelay', raw('shutdownDelay'), 3600),
    shutdownTimeoutSeconds: boundedInt('shutdownTimeout', raw('shutdownTimeout'), 24 * 3600),
    fsync: bool('fsync', raw('fsync')),
    logLevel: level as Config['logLevel'],
  };
  return deepFreeze(config);
}

function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(v);
  if (!m) fail(`--listen must be HOST:PORT (for example 127.0.0.1:8080 or [::1]:8080), got "${v}"`);
  const port = Number(m[3]);
  if (port > 65535) fail(`--listen port must be 0-65535, got ${port}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function accelPrefix(v: string): string {
  if (!/^\/[A-Za-z0-9._\/-]*[A-Za-z0-9._-]$/.test(v) || v.includes('..')) fail(`accelRedirect must be an absolute location path such as /_wharf_files, got "${v}"`);
  return v;
}

function databaseUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    fail('WHARF_DATABASE_URL is not a URL: use postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') fail(`WHARF_DATABASE_URL must start with postgres:// (SQLite needs no setting), got ${u.protocol}//`);
  if (!u.pathname || u.pathname === '/') fail('WHARF_DATABASE_URL must name the database: postgres://USER@HOST/DATABASE');
  return v;
}

function readMasterKey(value: string, file: string, legacy: string): string | undefined {
  if (value && file) fail('give the master key once: --master-key (WHARF_MASTER_KEY) or --master-key-file (WHARF_MASTER_KEY_FILE), not both');
  let key = value;
  if (file) {
    try {
      key = readFileSync(file, 'utf8').trim();
    } catch (e) {
      fail(`cannot read the master key file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!key) fail(`the master key file ${file} is empty`);
  }
  if (key && legacy && key !== legacy) fail('the master key and signingPassphrase (its older name) differ: give only the master key');
  // The value never appears in a message. (The older passphrase option keeps accepting what it always accepted.)
  if (key && key.length < 16) fail(`the master key must be at least 16 characters (got ${key.length}); generate one with: openssl rand -base64 32`);
  return key || legacy || undefined;
}

function storage(v: string, env: Record<string, string | undefined>): StorageConfig {
  if (!v || v === 'fs' || v === 'file') return { kind: 'fs' };
  if (!v.startsWith('s3://')) fail(`storage must be s3://BUCKET[/PREFIX] (or empty for the data directory), got "${v.slice(0, 80)}"`);
  let s3: S3StoreOptions;
  try {
    s3 = s3OptionsFromEnv({ ...env, WHARF_STORAGE: v });
  } catch (e) {
    fail((e as Error).message);
  }
  return { kind: 's3', url: v, s3 };
}

function httpUrl(name: string, v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    fail(`${name} is not a valid URL: ${v}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`${name} must be an http or https URL, got ${v}`);
  if (u.search || u.hash || u.username || u.password) fail(`${name} must not have a query, fragment or credentials: ${u.origin}${u.pathname}`);
  return v.replace(/\/+$/, '');
}

function redisUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    fail('WHARF_REDIS_URL is not a URL: use redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss:// for TLS');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') fail(`WHARF_REDIS_URL must start with redis:// or rediss://, got ${u.protocol}//`);
  return v;
}

function audience(v: string): string {
  if (v.length > 256 || !/^[\x21-\x7e]+$/.test(v)) fail(`oidcAudience must be 1-256 printable characters without spaces, got "${v.slice(0, 80)}"`);
  return v;
}

function positiveInt(name: string, v: string, allowZero = false): number {
  if (!/^\d+$/.test(v)) fail(`${name} must be a whole number, got "${v}"`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || (!allowZero && n === 0)) fail(`${name} must be a positive whole number, got "${v}"`);
  return n;
}

function boundedInt(name: string, v: string, max: number): number {
  const n = positiveInt(name, v, true);
  if (n > max) fail(`${name} must be at most ${max}, got "${v}"`);
  return n;
}

function bool(name: string, v: string): boolean {
  if (/^(true|1|yes|on)$/i.test(v)) return true;
  if (/^(false|0|no|off)$/i.test(v)) return false;
  fail(`${name} must be true or false, got "${v}"`);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export function describeOptions(): { name: string; env: string; flag: string; doc: string; default: string }[] {
  return OPTION_NAMES.map((n) => ({ name: n, ...OPTIONS[n] }));
}
