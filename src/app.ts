// Composition root: builds every service from the frozen config. The HTTP server, the CLI and tests all start here.
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from './config.ts';
import { openDatabase, type Db } from './db/database.ts';
import { FsBlobStore } from './storage/fs-blob-store.ts';
import { S3BlobStore } from './storage/s3-blob-store.ts';
import type { BlobStore } from './storage/blob-store.ts';
import { createLogger, type Logger } from './log.ts';
import { RepositoryService } from './services/repositories.ts';
import { AptPublisher } from './services/apt-publisher.ts';
import { AptPackageService } from './services/apt-packages.ts';
import { RpmPackageService } from './services/rpm-packages.ts';
import { RpmPublisher } from './services/rpm-publisher.ts';
import { PackageService } from './services/packages.ts';
import { UploadTracker } from './services/upload-tracker.ts';
import { UrlSigner } from './services/url-signer.ts';
import { createCluster, type Bus, type FailureLimiter, type RequestLimiter } from './services/cluster/index.ts';
import { sql } from 'kysely';
import { createHash } from 'node:crypto';
import { capabilities } from './db/capabilities.ts';
import { AuditLog } from './services/audit.ts';
import { Metrics } from './metrics.ts';
import { MetadataCache } from './serve/metadata-cache.ts';
import { KeyService } from './services/keys.ts';
import { TokenService } from './services/tokens.ts';
import { JwtIssuer } from './services/jwt-issuer.ts';
import { TrustedPublishing } from './services/oidc/trusted-publishing.ts';
import { Locks } from './services/locks.ts';
import { WriteBatcher } from './services/write-batcher.ts';
import type { PublishResult } from './services/publish-queue.ts';
import { Reconciler } from './services/reconcile.ts';

export interface App {
  readonly config: Config;
  readonly log: Logger;
  readonly db: Db;
  readonly store: BlobStore;
  readonly repos: RepositoryService;
  readonly packages: PackageService;
  readonly apt: AptPackageService;
  readonly rpm: RpmPackageService;
  readonly publisher: AptPublisher;
  readonly rpmPublisher: RpmPublisher;
  readonly keys: KeyService;
  readonly tokens: TokenService;
  readonly urlSigner: UrlSigner;
  readonly authFailures: FailureLimiter;
  readonly rateLimits: { readonly perIp: RequestLimiter; readonly perToken: RequestLimiter };
  /** messages between the nodes sharing the database: cache invalidation */
  readonly bus: Bus;
  /** publish locks across nodes */
  readonly locks: Locks;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly metadataCache: MetadataCache;
  /** Wharf's own JWTs: signing, the published key set, local verification */
  readonly jwt: JwtIssuer;
  /** trusted publishers, OIDC issuers and the CI token exchange; available once the public URL is known */
  oidc(): TrustedPublishing;
  /** The externally visible base URL, once the server knows it (--url or the listening address). */
  setPublicUrl(url: string): void;
  /** the audience CI tokens must name */
  oidcAudience(): string;
  /** the admin token, when this start created it */
  readonly createdAdminToken?: string;
  close(): Promise<void>;
}

export async function createApp(config: Config, opts: { log?: Logger } = {}): Promise<App> {
  const log = opts.log ?? createLogger(config.logLevel);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const db = await openDatabase(config.databaseUrl ?? join(config.dataDir, 'wharf.db'));
  const store = openStore(config);
  const locks = new Locks(db);
  // What this node shares with the others (a bus for cache invalidation, shared limits, the jti store), chosen by
  // what is configured: Redis, else PostgreSQL, else this process alone.
  const cluster = await createCluster({
    db,
    log,
    authFailuresPerMinute: config.authFailuresPerMinute,
    rateLimitPerIp: config.rateLimitPerIp,
    rateLimitPerToken: config.rateLimitPerToken,
    redisPrefix: `wharf:${await installationId(db, config)}:`,
    ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
  });
  const bus = cluster.bus;
  const repos = new RepositoryService(db);
  const keys = new KeyService(db, config, log, locks);
  const tokens = new TokenService(db);
  const uploads = new UploadTracker();
  const metadataCache = new MetadataCache(store);
  // Other nodes drop cached metadata and answer their waiting pushes this publish covered.
  const onPublished = (id: number, r: PublishResult) => bus.publish('published', `${id}:${r.generation}:${r.date}:${r.changes}`);
  const metrics = new Metrics();
  const publisher = new AptPublisher({ db, store, config, signingKey: () => keys.metadataKey(), log, uploads, locks, metrics, onPublished });
  // On PostgreSQL a commit waits for its WAL to reach the disk: concurrent pushes share commits. SQLite (WAL,
  // synchronous=NORMAL) commits without a disk flush: sharing would only make pushes wait for each other.
  const writes = new WriteBatcher(db, { enabled: capabilities(db).dialect === 'postgres' });
  const apt = new AptPackageService({ db, store, config, repos, publisher, locks, writes });
  const rpmPublisher = new RpmPublisher({ db, store, config, metadataKey: () => keys.metadataKey(), packageKey: (repoId) => keys.packageKey(repoId), log, uploads, locks, metrics, onPublished });
  const rpm = new RpmPackageService({ db, store, config, repos, keys, publisher: rpmPublisher, locks, writes });
  const packages = new PackageService({ db, config, repos, apt, rpm, uploads });
  // One-time set-up, under a lock every node sharing the database takes: the first node to start creates the admin
  // token and the key material, the others find them (no duplicate keys from two nodes starting at once).
  const jwt = new JwtIssuer({ db, keys, log, locks });
  const { createdAdminToken, urlSecrets } = await locks.run('bootstrap', 'start', async () => {
    const createdAdminToken = await tokens.bootstrapAdmin(config.dataDir, config.adminToken);
    // Create (or load) the signing key at start, so the first push does not pay for key generation.
    await keys.metadataKey();
    const urlSecrets = await keys.urlSigningSecrets();
    await jwt.init();
    return { createdAdminToken, urlSecrets };
  });
  const urlSigner = new UrlSigner(urlSecrets, config.signedUrlSeconds);
  // A change on one node reaches the others' caches at once; each cache also expires on its own within seconds.
  tokens.onChange = () => bus.publish('tokens');
  repos.onChange = (name) => bus.publish('repos', name);
  jwt.onChange = () => bus.publish('jwt-keys');
  bus.subscribe('tokens', () => tokens.invalidate());
  bus.subscribe('repos', (name) => repos.invalidate(name || undefined));
  bus.subscribe('jwt-keys', () => void jwt.reload().catch((err) => log.warn({ err }, 'reloading the JWT key set failed')));
  bus.subscribe('published', (payload) => {
    metadataCache.invalidate();
    const [id, generation, date, changes] = payload.split(':').map(Number);
    if ([id, generation, date, changes].every((n) => Number.isSafeInteger(n))) {
      const r = { generation: generation!, date: date!, changes: changes! };
      publisher.published(id!, r);
      rpmPublisher.published(id!, r);
    }
  });
  if (config.publicUrl) jwt.setIssuer(config.publicUrl);
  let publicUrl = config.publicUrl;
  let oidc: TrustedPublishing | undefined;
  const oidcAudience = () => {
    const aud = config.oidcAudience ?? publicUrl;
    if (!aud) throw new Error('the public URL is not known yet');
    return aud;
  };
  // Distributions whose stored packages are not all in their signed metadata (a node died between the two) are
  // published again: at start, and by a periodic check that catches a dead node's leftovers while this one runs.
  const reconciler = new Reconciler({ db, log, publish: (kind, id, o) => (kind === 'rpm' ? rpmPublisher.request(id, o) : publisher.request(id, o)) });
  await reconciler.runOnce({ atStart: true });
  reconciler.start();
  // Temporary files a crash left behind (in the store, and upload scratch files), swept in the background.
  void sweepLeftovers(config, store, log);
  return {
    config,
    log,
    db,
    store,
    repos,
    packages,
    apt,
    rpm,
    publisher,
    rpmPublisher,
    keys,
    tokens,
    urlSigner,
    authFailures: cluster.authFailures,
    rateLimits: cluster.rateLimits,
    bus,
    locks,
    audit: new AuditLog(db),
    metrics,
    metadataCache,
    jwt,
    oidc: () => (oidc ??= new TrustedPublishing({ db, audience: oidcAudience(), log, ...(cluster.jti ? { jti: cluster.jti } : {}) })),
    setPublicUrl(url: string) {
      publicUrl ??= url;
      jwt.setIssuer(publicUrl);
    },
    oidcAudience,
    ...(createdAdminToken ? { createdAdminToken } : {}),
    close: async () => {
      await reconciler.stop();
      jwt.close();
      await packages.close();
      await publisher.close();
      await rpmPublisher.close();
      await cluster.close();
      await locks.close();
      if (store instanceof S3BlobStore) store.close();
      await db.destroy();
    },
  };
}

/** The blob store the config names: the data directory (default) or an S3-compatible bucket. */
export function openStore(config: Config): BlobStore {
  if (config.storage.kind === 's3') {
    // Wharf writes only keys it built from validated names, whose segments never collide with a file: the per-write
    // "directory" checks (a HEAD per parent and a LIST) would only slow every publish down.
    return new S3BlobStore({ ...config.storage.s3, checkKeyConflicts: false });
  }
  return new FsBlobStore(join(config.dataDir, 'storage'), { fsync: config.fsync });
}

/**
 * A short id of this installation (the database it keeps its state in), so that several Wharf installations can
 * share one Redis without seeing each other's keys and messages.
 */
async function installationId(db: Db, config: Config): Promise<string> {
  let name = config.dataDir;
  if (capabilities(db).dialect === 'postgres') {
    const r = await sql<{ d: string; s: string }>`select current_database() as d, current_schema() as s`.execute(db);
    name = `postgres:${r.rows[0]?.d}/${r.rows[0]?.s}`;
  }
  return createHash('sha256').update(name).digest('hex').slice(0, 12);
}

/** Age past which a temporary file is a crash's leftover: no write or upload in progress stays open that long. */
const LEFTOVER_AGE_MS = 24 * 3600 * 1000;

async function sweepLeftovers(config: Config, store: BlobStore, log: Logger): Promise<void> {
  try {
    let removed = store instanceof FsBlobStore ? await store.sweepTemporaryFiles(LEFTOVER_AGE_MS) : 0;
    const scratch = join(config.dataDir, 'tmp');
    for (const name of await readdir(scratch).catch(() => [] as string[])) {
      const path = join(scratch, name);
      const st = await lstat(path).catch(() => undefined);
      if (st?.isFile() && st.mtimeMs < Date.now() - LEFTOVER_AGE_MS) {
        await rm(path, { force: true });
        removed++;
      }
    }
    if (removed > 0) log.info({ removed }, 'removed temporary files left by an earlier crash');
  } catch (err) {
    log.warn({ err }, 'sweeping temporary files failed');
  }
}
