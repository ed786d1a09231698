// The table of configuration options (config-file key, environment variable, flag, default), without the code that
// validates them: the CLI parses its flags with it on every call and loads config.ts (and what it imports) only to
// start a server.
/** Every option: its config-file key, environment variable, flag, and how to parse it. */
export const OPTIONS = {
  listen: { env: 'WHARF_LISTEN', flag: 'listen', doc: 'HOST:PORT to listen on', default: '127.0.0.1:8080' },
  data: { env: 'WHARF_DATA', flag: 'data', doc: 'data directory', default: './wharf-data' },
  databaseUrl: { env: 'WHARF_DATABASE_URL', flag: 'database-url', doc: 'postgres://USER@HOST/DB (default: SQLite in the data directory)', default: '' },
  url: { env: 'WHARF_PUBLIC_URL', flag: 'url', doc: 'externally visible base URL', default: '' },
  tlsCert: { env: 'WHARF_TLS_CERT', flag: 'tls-cert', doc: 'PEM certificate file for HTTPS', default: '' },
  tlsKey: { env: 'WHARF_TLS_KEY', flag: 'tls-key', doc: 'PEM private key file for HTTPS', default: '' },
  masterKey: { env: 'WHARF_MASTER_KEY', flag: 'master-key', doc: 'key encrypting all key material in the database (same on every node)', default: '' },
  masterKeyFile: { env: 'WHARF_MASTER_KEY_FILE', flag: 'master-key-file', doc: 'file holding the master key', default: '' },
  signingPassphrase: { env: 'WHARF_SIGNING_PASSPHRASE', flag: 'signing-passphrase', doc: 'older name of the master key', default: '' },
  storage: { env: 'WHARF_STORAGE', flag: 'storage', doc: 's3://BUCKET[/PREFIX] (with WHARF_S3_* and AWS_* variables; default: the data directory)', default: '' },
  publicBaseUrl: { env: 'WHARF_PUBLIC_BASE_URL', flag: 'public-base-url', doc: 'CDN base URL serving the public tree (redirect target for package files)', default: '' },
  redisUrl: { env: 'WHARF_REDIS_URL', flag: 'redis-url', doc: 'redis://HOST:PORT shared by all nodes', default: '' },
  adminToken: { env: 'WHARF_ADMIN_TOKEN', flag: 'admin-token', doc: 'admin token created on first start', default: '' },
  maxUploadBytes: { env: 'WHARF_MAX_UPLOAD_BYTES', flag: 'max-upload-bytes', doc: 'largest accepted package', default: String(2 * 1024 ** 3) },
  maxRpmHeaderBytes: { env: 'WHARF_MAX_RPM_HEADER_BYTES', flag: 'max-rpm-header-bytes', doc: 'largest accepted RPM main header data (held in memory while a push is checked)', default: String(64 * 1024 ** 2) },
  importRoots: { env: 'WHARF_IMPORT_ROOTS', flag: 'import-roots', doc: 'comma-separated absolute directories on the server that `wharf import` may read packages from (default: none, import disabled)', default: '' },
  retentionSeconds: { env: 'WHARF_RETENTION_SECONDS', flag: 'retention-seconds', doc: 'grace period for superseded files', default: '3600' },
  defaultArchitectures: { env: 'WHARF_DEFAULT_ARCHITECTURES', flag: 'default-architectures', doc: 'comma-separated', default: 'amd64,arm64' },
  defaultRpmArchitectures: { env: 'WHARF_DEFAULT_RPM_ARCHITECTURES', flag: 'default-rpm-architectures', doc: 'comma-separated', default: 'x86_64,aarch64' },
  trustProxy: { env: 'WHARF_TRUST_PROXY', flag: 'trust-proxy', doc: 'true/false', default: 'false', bare: true },
  authFailuresPerMinute: { env: 'WHARF_AUTH_FAILURES_PER_MINUTE', flag: 'auth-failures-per-minute', doc: 'per client IP', default: '30' },
  rateLimitPerIp: { env: 'WHARF_RATE_LIMIT_PER_IP', flag: 'rate-limit-per-ip', doc: 'requests per second, 0 = off', default: '0' },
  rateLimitPerToken: { env: 'WHARF_RATE_LIMIT_PER_TOKEN', flag: 'rate-limit-per-token', doc: 'requests per second, 0 = off', default: '0' },
  accelRedirect: { env: 'WHARF_ACCEL_REDIRECT', flag: 'accel-redirect', doc: 'nginx internal location prefix for package files', default: '' },
  signedUrlSeconds: { env: 'WHARF_SIGNED_URL_SECONDS', flag: 'signed-url-seconds', doc: 'lifetime of signed download URLs', default: '300' },
  publishTokenSeconds: { env: 'WHARF_PUBLISH_TOKEN_SECONDS', flag: 'publish-token-seconds', doc: 'lifetime of tokens minted for trusted publishers (max 3600)', default: '900' },
  oidcAudience: { env: 'WHARF_OIDC_AUDIENCE', flag: 'oidc-audience', doc: 'audience of CI tokens for trusted publishing (default: the public URL)', default: '' },
  shutdownDelay: { env: 'WHARF_SHUTDOWN_DELAY', flag: 'shutdown-delay', doc: 'seconds a stopping node keeps serving, /readyz answering 503, so load balancers take it out first', default: '0' },
  shutdownTimeout: { env: 'WHARF_SHUTDOWN_TIMEOUT', flag: 'shutdown-timeout', doc: 'seconds a stopping node waits for requests in flight (uploads, pushes waiting for their publish) before it closes their connections', default: '30' },
  fsync: { env: 'WHARF_FSYNC', flag: 'fsync', doc: 'true/false', default: 'true' },
  logLevel: { env: 'WHARF_LOG_LEVEL', flag: 'log-level', doc: 'trace, debug, info, warn, error, silent (TRACE=1: trace)', default: 'info' },
} as const;

export type OptionName = keyof typeof OPTIONS;
export const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];
/** parseArgs options for every flag; `bare` options are switches (`--trust-proxy`). */
export const OPTION_FLAGS: Record<string, { type: 'string' | 'boolean' }> = Object.fromEntries(
  OPTION_NAMES.map((n) => [OPTIONS[n].flag, { type: 'bare' in OPTIONS[n] ? ('boolean' as const) : ('string' as const) }]),
);

