// Test harness: a real S3-API server from the npm registry (@20minutes/s3rver, the maintained fork of s3rver) on
// 127.0.0.1:0 with a temporary directory, for s3-blob-store.test.ts. Not used in production.
//
// s3rver checks SigV4 signatures (header and presigned query, including expiry) against the key pairs registered
// here. Two gaps of s3rver are closed here so that the suite tests the client and not the fake:
// - its filesystem store writes objects in place (a reader can see a half-written object, a concurrent writer can mix
//   two versions, and a GET stream being read sees the file truncated under it), where real S3 PUTs are atomic.
//   AtomicStore stages content outside the bucket tree and commits it (rename + metadata) under one lock that reads
//   also take, so each object version is whole and its metadata matches;
// - it does not implement AbortMultipartUpload (DELETE ?uploadId=…): the front handler below removes the upload's
//   parts itself (its signature is not checked);
// - its continuation tokens use DES, which OpenSSL 3 refuses (see the crypto patch below);
// - it lists keys in directory-walk order, where S3 lists them in UTF-8 byte order (which continuation tokens rely
//   on): listObjects is replaced by a sorted one.
// The front handler also logs requests and can inject failures. S3RVER_DEBUG=1 shows s3rver's own log.

import { createRequire } from 'node:module';
import * as http from 'node:http';
import { createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomBytes, createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';

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
  putMetadata(bucket: string, key: string, metadata: unknown, md5?: string): Promise<void>;
  getObject(bucket: string, key: string, options: unknown): Promise<unknown>;
  listObjects(bucket: string, options: unknown): Promise<unknown>;
  deleteObject(bucket: string, key: string): Promise<void>;
  putBucket(bucket: string): Promise<unknown>;
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

const S3rver = require('@20minutes/s3rver') as S3rverCtor;
const FilesystemStore = require('@20minutes/s3rver/lib/stores/filesystem.js') as FsStoreCtor;
const S3Object = require('@20minutes/s3rver/lib/models/object.js') as new (bucket: string, key: string, content: null, metadata: unknown) => unknown;
const { DUMMY_ACCOUNT } = require('@20minutes/s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } };

interface ObjectIn {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: unknown;
}

/** One async mutex for every commit and read of the store (tests only: simple beats fast). */
class Lock {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn, fn);
    this.#tail = p.catch(() => {});
    return p;
  }
}

function makeAtomicStore(root: string, staging: string): FsStoreBase {
  class AtomicStore extends FilesystemStore {
    readonly lock = new Lock();

    async writeStaged(content: Readable | Buffer): Promise<{ tmp: string; size: number; md5: string }> {
      const tmp = join(staging, randomBytes(12).toString('hex'));
      const md5 = createHash('md5');
      let size = 0;
      try {
        await pipeline(
          Buffer.isBuffer(content) ? Readable.from([content]) : content,
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              md5.update(chunk);
              size += chunk.length;
              cb(null, chunk);
            },
          }),
          createWriteStream(tmp),
        );
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
      return { tmp, size, md5: md5.digest('hex') };
    }

    async putObject(object: ObjectIn) {
      const { tmp, size, md5 } = await this.writeStaged(object.content);
      return this.lock.run(async () => {
        const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
        await fsp.mkdir(dirname(objectPath), { recursive: true });
        await fsp.rename(tmp, objectPath);
        await this.putMetadata(object.bucket, object.key, object.metadata, md5);
        return { size, md5 };
      });
    }

    async copyObject(srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacementMetadata: unknown) {
      return this.lock.run(async () => {
        const src = this.getResourcePath(srcBucket, srcKey, 'object');
        const dest = this.getResourcePath(destBucket, destKey, 'object');
        if (src !== dest) {
          await fsp.mkdir(dirname(dest), { recursive: true });
          const tmp = join(staging, randomBytes(12).toString('hex'));
          await fsp.copyFile(src, tmp);
          await fsp.rename(tmp, dest);
        }
        if (replacementMetadata) await this.putMetadata(destBucket, destKey, replacementMetadata);
        else if (src !== dest) {
          for (const r of ['metadata.json', 'object.md5']) {
            await fsp.copyFile(this.getResourcePath(srcBucket, srcKey, r), this.getResourcePath(destBucket, destKey, r));
          }
        }
        return this.getMetadata(destBucket, destKey);
      });
    }

    getObject(bucket: string, key: string, options: unknown) {
      return this.lock.run(async () => {
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
      return this.lock.run(async () => {
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
    deleteObject(bucket: string, key: string) {
      return this.lock.run(() => super.deleteObject(bucket, key));
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
