// Test harness: a real S3-API server from the npm registry (@20minutes/s3rver, the maintained fork of s3rver) on
// 127.0.0.1:0 with a temporary directory, for s3-blob-store.test.ts. Not used in production.
//
// s3rver checks SigV4 signatures (header and presigned query, including expiry) against the key pairs registered
// here. Two gaps of s3rver are closed here so that the suite tests the client and not the fake:
// - its filesystem store writes objects in place (a reader can see a half-written object, a concurrent writer can mix
//   two versions, and a GET stream being read sees the file truncated under it), where real S3 PUTs are atomic.
//   AtomicStore stages content outside the bucket tree and commits it (rename + metadata) under its object's lock
//   (reads take it too; a listing takes a gate alone), so each object version is whole and its metadata matches;
// - it does not implement AbortMultipartUpload (DELETE ?uploadId=…): the front handler below removes the upload's
//   parts itself (its signature is not checked);
// - its continuation tokens use DES, which OpenSSL 3 refuses (see the crypto patch below);
// - it lists keys in directory-walk order, where S3 lists them in UTF-8 byte order (which continuation tokens rely
//   on): listObjects is replaced by a sorted one.
// Also, bucket lookups and bucket configuration (which s3rver reads from disk on every request) and SigV4 signing keys
// are remembered.
// The front handler also logs requests and can inject failures. S3RVER_DEBUG=1 shows s3rver's own log.

import { createRequire } from 'node:module';
import * as http from 'node:http';
import { copyFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomBytes, createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import type { Readable } from 'node:stream';

const require = createRequire(import.meta.url);

interface S3rverApp {
  callback(): (req: http.IncomingMessage, res: http.ServerResponse) => void;
  store: unknown;
  context: { store: unknown };
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverApp;
interface FsStoreBase {
  rootDirectory: string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getMetadata(bucket: string, key: string): Promise<Record<string, unknown>>;
  putMetadata(bucket: string, key: string, metadata: Record<string, unknown>, md5?: string): Promise<void>;
  getObject(bucket: string, key: string, options: unknown): Promise<unknown>;
  listObjects(bucket: string, options: unknown): Promise<unknown>;
  deleteObject(bucket: string, key: string): Promise<void>;
  putBucket(bucket: string): Promise<unknown>;
  getBucket(bucket: string): Promise<unknown>;
  deleteBucket(bucket: string): Promise<unknown>;
  getSubresource(bucket: string, key: string | undefined, type: string): Promise<unknown>;
  putSubresource(bucket: string, key: string | undefined, resource: { type: string }): Promise<void>;
  deleteSubresource(bucket: string, key: string | undefined, type: string): Promise<void>;
}
type FsStoreCtor = new (root: string) => FsStoreBase;

// s3rver seals ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 (Node >= 17) refuses, so every
// truncated listing fails with ERR_OSSL_EVP_UNSUPPORTED. The token is opaque to clients: for the 'des' algorithm only
// (which would otherwise throw), the cipher becomes the identity. This patches the test process's node:crypto.
const cryptoCjs = require('node:crypto') as typeof import('node:crypto');
const realCipheriv = cryptoCjs.createCipheriv;
const realDecipheriv = cryptoCjs.createDecipheriv;
const identityCipher = () => ({ update: (d: string | Buffer, enc?: BufferEncoding) => (typeof d === 'string' ? Buffer.from(d, enc) : Buffer.from(d)), final: () => Buffer.alloc(0) });
(cryptoCjs as { createCipheriv: unknown }).createCipheriv = (alg: string, ...rest: unknown[]) =>
  alg === 'des' ? identityCipher() : (realCipheriv as (...a: unknown[]) => unknown)(alg, ...rest);
(cryptoCjs as { createDecipheriv: unknown }).createDecipheriv = (alg: string, ...rest: unknown[]) =>
  alg === 'des' ? identityCipher() : (realDecipheriv as (...a: unknown[]) => unknown)(alg, ...rest);

// s3rver derives the SigV4 signing key (four HMACs) on every request; like the AWS SDKs, the harness keeps the keys
// it derived (one per secret, day, region and service).
const sigv4 = require('@20minutes/s3rver/lib/signature/v4.js') as { getSigningKey: (secret: string, date: string, region: string, service: string) => Buffer };
const deriveSigningKey = sigv4.getSigningKey;
const signingKeys = new Map<string, Buffer>();
sigv4.getSigningKey = (secret, date, region, service) => {
  const k = JSON.stringify([secret, date, region, service]);
  let key = signingKeys.get(k);
  if (!key) {
    if (signingKeys.size >= 64) signingKeys.clear();
    key = deriveSigningKey(secret, date, region, service);
    signingKeys.set(k, key);
  }
  return key;
};

const S3rver = require('@20minutes/s3rver') as S3rverCtor;
const FilesystemStore = require('@20minutes/s3rver/lib/stores/filesystem.js') as FsStoreCtor;
const S3Object = require('@20minutes/s3rver/lib/models/object.js') as (new (bucket: string, key: string, content: null, metadata: unknown) => unknown) & { ALLOWED_METADATA: string[] };
/** the metadata s3rver keeps with an object (besides x-amz-meta-*) */
const ALLOWED_METADATA: readonly string[] = S3Object.ALLOWED_METADATA;
/** A staged file's name: unique within the process (the staging directory is the harness's own). */
let staged = 0;
const stagingTag = randomBytes(6).toString('hex');
const stagingName = () => `${stagingTag}-${(staged++).toString(36)}`;

/** objects up to this size are staged from memory with one synchronous write (writeStaged) */
const STAGE_IN_MEMORY = 16 * 1024 * 1024;
const { DUMMY_ACCOUNT } = require('@20minutes/s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } };

interface ObjectIn {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: unknown;
}

/**
 * Locks of the store: one per object (a commit and a read of one object never overlap, so each version is whole and
 * its metadata matches), and a gate that a listing takes alone (it sees no commit half done). Objects that differ go
 * at once, as on S3: one global lock made every request wait for all the others, so a benchmark measured the queue.
 */
class StoreLocks {
  readonly #keys = new Map<string, Promise<unknown>>();
  #shared = 0;
  #exclusive = false;
  readonly #queue: { exclusive: boolean; grant: () => void }[] = [];

  /** Runs `fn` holding the locks of `keys` (taken in sorted order) and the gate shared. */
  async run<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    await this.#enter(false);
    try {
      return await this.#withKeys([...new Set(keys)].sort(), fn);
    } finally {
      this.#leave(false);
    }
  }

  /** Runs `fn` alone: no object lock is held meanwhile. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.#enter(true);
    try {
      return await fn();
    } finally {
      this.#leave(true);
    }
  }

  async #withKeys<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const [key, ...rest] = keys;
    if (key === undefined) return fn();
    const prev = this.#keys.get(key) ?? Promise.resolve();
    const mine = prev.then(() => this.#withKeys(rest, fn));
    const tail = mine.catch(() => {});
    this.#keys.set(key, tail);
    void tail.then(() => {
      if (this.#keys.get(key) === tail) this.#keys.delete(key);
    });
    return mine;
  }

  #enter(exclusive: boolean): Promise<void> {
    if (this.#queue.length === 0 && !this.#exclusive && (!exclusive || this.#shared === 0)) {
      this.#take(exclusive);
      return Promise.resolve();
    }
    return new Promise<void>((grant) => this.#queue.push({ exclusive, grant }));
  }

  #take(exclusive: boolean): void {
    if (exclusive) this.#exclusive = true;
    else this.#shared++;
  }

  #leave(exclusive: boolean): void {
    if (exclusive) this.#exclusive = false;
    else this.#shared--;
    // First come, first served: shared holders enter together, an exclusive one once the gate is empty.
    while (this.#queue.length > 0 && !this.#exclusive) {
      const next = this.#queue[0]!;
      if (next.exclusive && this.#shared > 0) break;
      this.#queue.shift();
      this.#take(next.exclusive);
      next.grant();
    }
  }
}

function makeAtomicStore(root: string, staging: string): FsStoreBase {
  class AtomicStore extends FilesystemStore {
    readonly locks = new StoreLocks();
    // s3rver looks up the bucket (a stat) and its website configuration (a file read) on every request: remembered
    // here, and forgotten whenever the harness or a request changes a bucket or its configuration.
    readonly #buckets = new Map<string, Promise<unknown>>();
    readonly #bucketConfig = new Map<string, Promise<unknown>>();

    getBucket(bucket: string): Promise<unknown> {
      let b = this.#buckets.get(bucket);
      if (!b) {
        b = super.getBucket(bucket);
        this.#buckets.set(bucket, b);
        b.then((v) => v ?? this.#buckets.delete(bucket), () => this.#buckets.delete(bucket));
      }
      return b;
    }

    async putBucket(bucket: string): Promise<unknown> {
      this.#buckets.delete(bucket);
      return super.putBucket(bucket);
    }

    async deleteBucket(bucket: string): Promise<unknown> {
      this.#buckets.delete(bucket);
      for (const k of this.#bucketConfig.keys()) if (k.startsWith(`${bucket}\0`)) this.#bucketConfig.delete(k);
      try {
        return await super.deleteBucket(bucket);
      } finally {
        this.#buckets.delete(bucket);
      }
    }

    getSubresource(bucket: string, key: string | undefined, type: string): Promise<unknown> {
      if (key !== undefined) return super.getSubresource(bucket, key, type);
      const k = `${bucket}\0${type}`;
      let c = this.#bucketConfig.get(k);
      if (!c) {
        c = super.getSubresource(bucket, key, type);
        this.#bucketConfig.set(k, c);
        c.catch(() => this.#bucketConfig.delete(k));
      }
      return c;
    }

    async putSubresource(bucket: string, key: string | undefined, resource: { type: string }): Promise<void> {
      try {
        await super.putSubresource(bucket, key, resource);
      } finally {
        if (key === undefined) this.#bucketConfig.delete(`${bucket}\0${resource.type}`);
      }
    }

    async deleteSubresource(bucket: string, key: string | undefined, type: string): Promise<void> {
      try {
        await super.deleteSubresource(bucket, key, type);
      } finally {
        if (key === undefined) this.#bucketConfig.delete(`${bucket}\0${type}`);
      }
    }

    /**
     * Stages an object's content. The harness shares the machine with what it serves (the benchmark runs s3rver next
     * to the nodes), so it stays cheap: content up to STAGE_IN_MEMORY is gathered and written with one synchronous
     * call (tmpfs or page cache: microseconds), where a stream's open, writes and close each woke a thread-pool
     * thread. Larger content streams to the file.
     */
    async writeStaged(content: Readable | Buffer): Promise<{ tmp: string; size: number; md5: string }> {
      const tmp = join(staging, stagingName());
      const md5 = createHash('md5');
      let size = 0;
      if (Buffer.isBuffer(content)) {
        md5.update(content);
        writeFileSync(tmp, content);
        return { tmp, size: content.length, md5: md5.digest('hex') };
      }
      let chunks: Buffer[] = [];
      let fh: fsp.FileHandle | undefined;
      try {
        for await (const chunk of content as AsyncIterable<Buffer>) {
          md5.update(chunk);
          size += chunk.length;
          if (!fh) {
            chunks.push(chunk);
            if (size <= STAGE_IN_MEMORY) continue;
            fh = await fsp.open(tmp, 'w');
            for (const c of chunks) await fh.write(c);
            chunks = [];
          } else {
            await fh.write(chunk);
          }
        }
        if (fh) await fh.close();
        else writeFileSync(tmp, Buffer.concat(chunks));
      } catch (e) {
        await fh?.close().catch(() => {});
        rmSync(tmp, { force: true });
        throw e;
      }
      return { tmp, size, md5: md5.digest('hex') };
    }

    /** s3rver's putMetadata, with synchronous writes (see writeStaged). */
    async putMetadata(bucket: string, key: string, metadata: Record<string, unknown>, md5?: string): Promise<void> {
      const json: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(metadata ?? {})) if (ALLOWED_METADATA.includes(k) || k.startsWith('x-amz-meta-')) json[k] = v;
      if (md5) writeFileSync(this.getResourcePath(bucket, key, 'object.md5'), md5);
      writeFileSync(this.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
    }

    async putObject(object: ObjectIn) {
      const { tmp, size, md5 } = await this.writeStaged(object.content);
      return this.locks.run([`${object.bucket}/${object.key}`], async () => {
        const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
        mkdirSync(dirname(objectPath), { recursive: true });
        renameSync(tmp, objectPath);
        await this.putMetadata(object.bucket, object.key, object.metadata as Record<string, unknown>, md5);
        return { size, md5 };
      });
    }

    async copyObject(srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacementMetadata: unknown) {
      return this.locks.run([`${srcBucket}/${srcKey}`, `${destBucket}/${destKey}`], async () => {
        const src = this.getResourcePath(srcBucket, srcKey, 'object');
        const dest = this.getResourcePath(destBucket, destKey, 'object');
        if (src !== dest) {
          mkdirSync(dirname(dest), { recursive: true });
          const tmp = join(staging, stagingName());
          copyFileSync(src, tmp);
          renameSync(tmp, dest);
        }
        if (replacementMetadata) await this.putMetadata(destBucket, destKey, replacementMetadata as Record<string, unknown>);
        else if (src !== dest) {
          for (const r of ['metadata.json', 'object.md5']) copyFileSync(this.getResourcePath(srcBucket, srcKey, r), this.getResourcePath(destBucket, destKey, r));
        }
        return this.getMetadata(destBucket, destKey);
      });
    }

    getObject(bucket: string, key: string, options: unknown) {
      return this.locks.run([`${bucket}/${key}`], async () => {
        try {
          return await super.getObject(bucket, key, options);
        } catch (e) {
          // s3rver appends '._S3rver_object' to the last key segment: a 255-byte segment is too long to exist.
          if ((e as NodeJS.ErrnoException).code === 'ENAMETOOLONG') return null;
          throw e;
        }
      });
    }

    /** s3rver lists in directory-walk order; S3 lists keys in UTF-8 byte order, which paging relies on. */
    listObjects(bucket: string, options: { delimiter?: string; startAfter?: string; prefix?: string; maxKeys?: number }) {
      return this.locks.exclusive(async () => {
        const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
        const bucketPath = join(this.rootDirectory, bucket);
        const suffix = '._S3rver_object';
        const keys: string[] = [];
        for (const e of await fsp.readdir(bucketPath, { recursive: true, withFileTypes: true })) {
          if (!e.isFile() || !e.name.endsWith(suffix)) continue;
          const rel = join(e.parentPath, e.name).slice(bucketPath.length + 1);
          if (rel.startsWith('._S3rver_uploads')) continue;
          keys.push(rel.slice(0, -suffix.length));
        }
        keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        const common = new Set<string>();
        const objects: unknown[] = [];
        let isTruncated = false;
        for (const key of keys) {
          if (!key.startsWith(prefix) || (startAfter && Buffer.compare(Buffer.from(key), Buffer.from(startAfter)) <= 0)) continue;
          const idx = delimiter ? key.slice(prefix.length).indexOf(delimiter) : -1;
          if (idx !== -1) {
            common.add(key.slice(0, prefix.length + idx + 1));
            continue;
          }
          if (objects.length >= maxKeys) {
            isTruncated = true;
            break;
          }
          objects.push(new S3Object(bucket, key, null, await this.getMetadata(bucket, key)));
        }
        return { objects, commonPrefixes: [...common].sort(), isTruncated };
      });
    }
    async deleteObject(bucket: string, key: string) {
      // s3rver's own delete also prunes the emptied directories, which would race with a write into one of them:
      // the files go under the object's lock, the pruning under the gate alone.
      await this.locks.run([`${bucket}/${key}`], () =>
        Promise.all(
          (['object', 'object.md5', 'metadata.json'] as const).map((r) =>
            fsp.unlink(this.getResourcePath(bucket, key, r)).catch((e: NodeJS.ErrnoException) => {
              if (e.code !== 'ENOENT') throw e;
            }),
          ),
        ),
      );
      await this.locks.exclusive(async () => {
        const parts = key.split('/').slice(0, -1);
        for (; parts.length > 0; parts.pop()) {
          const dir = join(this.rootDirectory, bucket, ...parts);
          const entries = await fsp.readdir(dir).catch(() => undefined);
          if (!entries || entries.length > 0) break;
          await fsp.rm(dir, { recursive: true, force: true });
        }
      });
    }
  }
  return new AtomicStore(root);
}

export interface LoggedRequest {
  method: string;
  url: string;
  contentLength: number;
}

export interface TestS3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  requests: LoggedRequest[];
  /** Answer matching requests with this status (an S3 error body) instead of passing them on. */
  fail: ((req: http.IncomingMessage) => number | undefined) | undefined;
  createBucket(name: string): Promise<void>;
  /** Multipart uploads in progress (neither completed nor aborted) and staged writes, of one bucket. */
  leftovers(bucket: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function startTestS3Server(): Promise<TestS3Server> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'wharf-s3rver-'));
  const root = join(dir, 'buckets');
  const staging = join(dir, 'staging');
  await fsp.mkdir(root);
  await fsp.mkdir(staging);
  const accessKeyId = 'AKIAWHARFTEST' + randomBytes(4).toString('hex').toUpperCase();
  const secretAccessKey = 'wharf-secret/' + randomBytes(16).toString('base64url');
  DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
  const app = new S3rver({ silent: !process.env.S3RVER_DEBUG, directory: root, vhostBuckets: false, serviceEndpoint: 'wharf.test' });
  const store = makeAtomicStore(root, staging);
  app.store = app.context.store = store;
  const handle = app.callback();
  const server: TestS3Server = {
    endpoint: '',
    accessKeyId,
    secretAccessKey,
    requests: [],
    fail: undefined,
    async createBucket(name) {
      await store.putBucket(name);
    },
    async leftovers(bucket) {
      const uploads = store.getResourcePath(bucket, undefined, 'uploads');
      const out: string[] = [];
      for (const d of [uploads, staging]) {
        try {
          out.push(...(await fsp.readdir(d)).map((n) => `${d}/${n}`));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
      return out;
    },
    close: () => new Promise<void>((resolve) => httpServer.close(() => resolve())).then(() => fsp.rm(dir, { recursive: true, force: true })),
  };
  const httpServer = http.createServer((req, res) => {
    server.requests.push({ method: req.method ?? '', url: req.url ?? '', contentLength: Number(req.headers['content-length'] ?? 0) });
    const injected = server.fail?.(req);
    if (injected) {
      req.resume();
      res.writeHead(injected, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InjectedFailure</Code><Message>injected by the test</Message></Error>`);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
      // AbortMultipartUpload, which s3rver lacks.
      const bucket = decodeURIComponent(url.pathname.split('/')[1] ?? '');
      const id = url.searchParams.get('uploadId') ?? '';
      req.resume();
      if (!/^[0-9a-f]+$/.test(id)) {
        res.writeHead(404).end();
        return;
      }
      fsp.rm(join(store.getResourcePath(bucket, undefined, 'uploads'), id), { recursive: true, force: true }).then(
        () => res.writeHead(204).end(),
        () => res.writeHead(500).end(),
      );
      return;
    }
    handle(req, res);
  });
  httpServer.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as { port: number };
  server.endpoint = `http://127.0.0.1:${port}`;
  return server;
}
