// S3-compatible blob store (AWS S3, GCS XML API with HMAC keys, MinIO, Ceph RGW, Cloudflare R2). See docs/storage-s3.md.
//
// Key 'dists/bookworm/InRelease' is the object <prefix>dists/bookworm/InRelease in the bucket. Requests are signed
// with AWS Signature V4 (./s3/sigv4.ts, node:crypto only) and sent with node:http(s) over keep-alive agents.
//
// Atomicity: a PUT, a CompleteMultipartUpload and a CopyObject each make the whole object visible at once, so
// readers see the old object or the new one. Bodies of unknown length are buffered one part at a time (partSize,
// 8 MiB by default): a body that fits sends one PUT, a longer one a multipart upload whose parts are sent as they
// fill; the upload is aborted if the body throws. putFile streams the file from disk with its known length (one PUT
// below multipartThreshold, 64 MiB by default, else a multipart upload with parts read straight from the file).
// Nothing holds a whole blob in memory, except get(), which is asked for exactly that.
//
// ETag: every write stores a random token as object metadata (x-amz-meta-wharf-version); the blob's ETag is
// "<token>". A rewrite with identical bytes still gets a new ETag (S3's own MD5 ETag would not change), and a copy
// shares its source's ETag like the filesystem store's hard link does. Objects written by other tools fall back to
// S3's ETag. mtime is S3's Last-Modified, in whole seconds (the precision HEAD reports).
//
// Like the filesystem, the store refuses a key that is a "directory" of other blobs or lies below a blob (S3 would
// accept both): before each write it HEADs the key's parents and lists one key under "<key>/" (checkKeyConflicts,
// on by default; the check is not atomic with the write). flush() and 'deferred' sync are no-ops: every S3 write is
// durable when it returns.

import * as http from 'node:http';
import * as https from 'node:https';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { WharfError } from '../errors.ts';
import {
  bodyChunks,
  validateKey,
  validatePrefix,
  validateRange,
  type BlobBody,
  type BlobListEntry,
  type BlobStat,
  type BlobStore,
  type WriteOptions,
} from './blob-store.ts';
import { EMPTY_SHA256, UNSIGNED_PAYLOAD, encodePath, canonicalQuery, presignQuery, sha256Hex, signHeaders, type Credentials } from './s3/sigv4.ts';
import { xmlBlocks, xmlEscape, xmlText } from './s3/xml.ts';

const MiB = 1024 * 1024;
const MIN_PART = 5 * MiB;
const MAX_PARTS = 10_000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
const VERSION_HEADER = 'x-amz-meta-wharf-version';
const MAX_PRESIGNED = 10_000;

export { parseS3Location, s3OptionsFromEnv, type S3Location, type S3StoreOptions } from './s3/options.ts';
import { normaliseEndpoint, parseS3Location, type S3StoreOptions } from './s3/options.ts';

/** An S3 request that failed: names the operation, the key and S3's error code, never credentials. */
export class S3RequestError extends Error {
  readonly operation: string;
  readonly key: string;
  readonly status: number;
  readonly s3Code: string;
  constructor(operation: string, key: string, status: number, s3Code: string, detail: string) {
    super(`S3 ${operation} of "${key}" failed: ${status} ${s3Code}${detail ? ` (${detail})` : ''}`);
    this.name = 'S3RequestError';
    this.operation = operation;
    this.key = key;
    this.status = status;
    this.s3Code = s3Code;
  }
}

type Body = undefined | Uint8Array | { stream: () => Readable; length: number };

interface Req {
  op: string;
  /** The blob key, for error messages ('' for bucket-level requests). */
  key: string;
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** Object key within the bucket (already prefixed); undefined addresses the bucket itself. */
  object?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Body;
}

async function readBody(res: http.IncomingMessage, limit = 1 * MiB): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.destroy();
      throw new Error('S3 response body too large');
    }
    parts.push(c);
  }
  return Buffer.concat(parts).toString('utf8');
}

function drain(res: http.IncomingMessage): void {
  res.resume();
}

const RETRY_STATUS = new Set([500, 502, 503, 504]);

/** Trims a response to `limit` bytes after skipping `skip` (servers that send more than the requested range). */
function slice(skip: number, limit: number): Transform {
  let pos = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const start = Math.max(0, skip - pos);
      const end = Math.min(chunk.length, skip + limit - pos);
      pos += chunk.length;
      cb(null, end > start ? chunk.subarray(start, end) : undefined);
    },
  });
}

function emptyStream(): NodeJS.ReadableStream {
  return Readable.from([], { objectMode: false });
}

function seconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  readonly #creds: Credentials;
  readonly #endpoint: URL;
  readonly #pathStyle: boolean;
  readonly #agent: http.Agent;
  readonly #multipartThreshold: number;
  readonly #partSize: number;
  readonly #partConcurrency: number;
  readonly #pageSize: number;
  readonly #copyPartThreshold: number;
  readonly #conflictChecks: boolean;
  readonly #maxAttempts: number;
  readonly #timeoutMs: number;
  readonly #now: () => Date;
  #generation = 0;
  /** The URL last presigned per expiry and key, with the second it was signed in. */
  readonly #presigned = new Map<string, { second: number; url: string }>();

  constructor(options: S3StoreOptions) {
    if (!options.accessKeyId || !options.secretAccessKey) throw new Error('S3 storage needs an access key id and a secret access key');
    const loc = parseS3Location(`s3://${options.bucket}/${options.prefix ?? ''}`);
    this.bucket = loc.bucket;
    this.prefix = loc.prefix;
    this.region = options.region || 'us-east-1';
    this.#creds = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
    if (options.sessionToken) this.#creds.sessionToken = options.sessionToken;
    this.#endpoint = normaliseEndpoint(options.endpoint ?? `https://s3.${this.region}.amazonaws.com`);
    // Virtual-hosted names with dots break TLS wildcard certificates: those buckets always use path style.
    this.#pathStyle = options.forcePathStyle ?? this.bucket.includes('.');
    const isHttps = this.#endpoint.protocol === 'https:';
    this.#agent = options.agent ?? (isHttps ? new https.Agent({ keepAlive: true, maxSockets: 64 }) : new http.Agent({ keepAlive: true, maxSockets: 64 }));
    this.#partSize = Math.max(MIN_PART, options.partSize ?? 8 * MiB);
    this.#multipartThreshold = Math.max(this.#partSize, options.multipartThreshold ?? 64 * MiB);
    this.#partConcurrency = Math.max(1, options.partConcurrency ?? 4);
    this.#pageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.#copyPartThreshold = Math.max(MIN_PART, options.copyPartThreshold ?? 5 * 1024 * MiB);
    this.#conflictChecks = options.checkKeyConflicts ?? true;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 4);
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    this.#now = options.now ?? (() => new Date());
  }

  get generation(): number {
    return this.#generation;
  }

  /** Closes idle keep-alive sockets (the store stays usable). */
  close(): void {
    this.#agent.destroy();
  }

  // ---- addressing and transport ----

  #address(object: string | undefined): { host: string; path: string } {
    const host = this.#endpoint.host;
    if (this.#pathStyle) return { host, path: encodePath(`/${this.bucket}${object === undefined ? '' : '/' + object}`) };
    return { host: `${this.bucket}.${host}`, path: encodePath(`/${object ?? ''}`) };
  }

  /** Sends a request; retries network errors and 5xx answers while the body can be replayed. Never checks the status. */
  async #send(req: Req): Promise<http.IncomingMessage> {
    const { host, path } = this.#address(req.object);
    const query = req.query ?? {};
    const qs = canonicalQuery(query);
    const body = req.body;
    const payloadHash = body === undefined ? EMPTY_SHA256 : body instanceof Uint8Array ? sha256Hex(body) : UNSIGNED_PAYLOAD;
    const length = body === undefined ? 0 : body instanceof Uint8Array ? body.byteLength : body.length;
    const mod = this.#endpoint.protocol === 'https:' ? https : http;
    const hostname = (this.#pathStyle ? this.#endpoint.hostname : `${this.bucket}.${this.#endpoint.hostname}`).replace(/^\[|\]$/g, '');
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = signHeaders(this.#creds, {
        method: req.method,
        host,
        path,
        query,
        headers: req.headers ?? {},
        payloadHash,
        region: this.region,
        now: this.#now(),
      });
      if (req.method === 'PUT' || req.method === 'POST' || length > 0) headers['content-length'] = String(length);
      try {
        const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
          const r = mod.request({
            method: req.method,
            hostname,
            port: this.#endpoint.port || undefined,
            path: qs ? `${path}?${qs}` : path,
            headers,
            agent: this.#agent,
            timeout: this.#timeoutMs,
          });
          r.on('response', resolve);
          r.on('error', reject);
          r.on('timeout', () => r.destroy(new Error(`no answer from S3 in ${this.#timeoutMs} ms`)));
          if (body === undefined) r.end();
          else if (body instanceof Uint8Array) r.end(body);
          else {
            const s = body.stream();
            s.on('error', (e) => r.destroy(e));
            s.pipe(r);
          }
        });
        if (RETRY_STATUS.has(res.statusCode ?? 0) && attempt < this.#maxAttempts) {
          drain(res);
          await sleep(50 * 2 ** attempt);
          continue;
        }
        return res;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EISDIR' || attempt >= this.#maxAttempts) throw this.#networkError(req, e);
        await sleep(50 * 2 ** attempt);
      }
    }
  }

  #networkError(req: Req, e: unknown): Error {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' || err.code === 'EISDIR') return err; // a local file (putFile), not the network
    return new S3RequestError(req.op, req.key, 0, err.code ?? 'NetworkError', this.#scrub(err.message ?? String(e)));
  }

  #scrub(s: string): string {
    let out = s;
    for (const secret of [this.#creds.secretAccessKey, this.#creds.sessionToken, this.#creds.accessKeyId]) {
      if (secret) out = out.split(secret).join('[redacted]');
    }
    return out.replace(/X-Amz-[A-Za-z-]+=[^&\s"]*/g, 'X-Amz-…').slice(0, 300);
  }

  /** Reads an error response and builds the error (the response is consumed). */
  async #fail(req: Req, res: http.IncomingMessage): Promise<S3RequestError> {
    const status = res.statusCode ?? 0;
    let text = '';
    try {
      text = req.method === 'HEAD' ? '' : await readBody(res, 64 * 1024);
    } catch {
      // keep the status alone
    }
    return this.#errorFrom(req, status, text);
  }

  #errorFrom(req: Req, status: number, text: string): S3RequestError {
    const code = xmlText(text, 'Code') ?? (status === 404 ? 'NotFound' : status === 403 ? 'AccessDenied' : `HTTP${status}`);
    const message = xmlText(text, 'Message') ?? '';
    return new S3RequestError(req.op, req.key, status, code, this.#scrub(message));
  }

  /** Sends a request that must answer 2xx; returns the body text (S3 may report errors in a 200 body: checked). */
  async #call(req: Req): Promise<{ res: http.IncomingMessage; text: string }> {
    const res = await this.#send(req);
    if ((res.statusCode ?? 0) >= 300) throw await this.#fail(req, res);
    const text = req.method === 'HEAD' ? '' : await readBody(res);
    if (/^\s*(<\?xml[^>]*\?>\s*)?<Error>/.test(text)) throw this.#errorFrom(req, res.statusCode ?? 200, text);
    return { res, text };
  }

  #object(key: string): string {
    return this.prefix + key;
  }

  // ---- metadata ----

  #statOf(headers: http.IncomingHttpHeaders): BlobStat {
    const version = headers[VERSION_HEADER];
    const s3etag = String(headers.etag ?? '').replace(/"/g, '');
    const lm = headers['last-modified'];
    return {
      size: Number(headers['content-length'] ?? 0),
      mtime: seconds(lm ? new Date(lm) : this.#now()),
      etag: typeof version === 'string' && /^[0-9a-f]{8,64}$/.test(version) ? `"${version}"` : `"s3-${s3etag.replace(/[^0-9A-Za-z-]/g, '')}"`,
    };
  }

  async #head(key: string, op = 'stat'): Promise<BlobStat | undefined> {
    const req: Req = { op, key, method: 'HEAD', object: this.#object(key) };
    const res = await this.#send(req);
    drain(res);
    if (res.statusCode === 404) return undefined;
    if ((res.statusCode ?? 0) >= 300) throw await this.#fail(req, res);
    return this.#statOf(res.headers);
  }

  async stat(key: string): Promise<BlobStat | undefined> {
    validateKey(key);
    return this.#head(key);
  }

  /** Like the filesystem: a key can't be a blob and a "directory" of blobs at once. */
  async #checkConflicts(key: string, op: string): Promise<void> {
    if (!this.#conflictChecks) return;
    const parents: string[] = [];
    for (let i = key.indexOf('/'); i > 0; i = key.indexOf('/', i + 1)) parents.push(key.slice(0, i));
    const [children, ...parentStats] = await Promise.all([
      this.#listPage(`${key}/`, 1, undefined, op, key),
      ...parents.map((p) => this.#head(p, op)),
    ]);
    if (parentStats.some(Boolean)) throw new WharfError('STORAGE_BAD_KEY', [key, 'a parent path is a blob']);
    if (children.entries.length > 0) throw new WharfError('STORAGE_BAD_KEY', [key, 'the key is a directory of other blobs']);
  }

  /** The stat of what we just wrote: HEAD, unless a concurrent writer has replaced it already. */
  async #statAfterWrite(key: string, version: string, size: number): Promise<BlobStat> {
    const st = await this.#head(key, 'stat');
    if (st && st.etag === `"${version}"`) return st;
    return { size, mtime: seconds(st?.mtime ?? this.#now()), etag: `"${version}"` };
  }

  // ---- reads ----

  async get(key: string): Promise<Uint8Array | undefined> {
    const s = await this.open(key);
    if (!s) return undefined;
    const parts: Buffer[] = [];
    for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
    const buf = Buffer.concat(parts);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  async open(key: string, range?: { start: number; end: number }): Promise<NodeJS.ReadableStream | undefined> {
    validateKey(key);
    if (range) validateRange(range);
    if (range && range.start === range.end) return this.#emptyRange(key, range.start);
    const req: Req = { op: 'get', key, method: 'GET', object: this.#object(key) };
    if (range) req.headers = { range: `bytes=${range.start}-${range.end - 1}` };
    const res = await this.#send(req);
    const status = res.statusCode ?? 0;
    if (status === 404) {
      drain(res);
      return undefined;
    }
    if (status === 416 && range) {
      drain(res);
      return this.#emptyRange(key, range.start);
    }
    if (status !== 200 && status !== 206) throw await this.#fail(req, res);
    if (!range) return res;
    // Some servers ignore Range (200) or send more than asked: cut the body to exactly the requested bytes.
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)/.exec(String(res.headers['content-range'] ?? ''));
    const total = cr && cr[3] !== '*' ? Number(cr[3]) : status === 200 ? Number(res.headers['content-length']) : undefined;
    if (total !== undefined && range.start > total) {
      drain(res);
      throw new WharfError('RANGE_NOT_SATISFIABLE');
    }
    const skip = status === 206 ? range.start - Number(cr?.[1] ?? range.start) : range.start;
    const want = Math.min(range.end, total ?? range.end) - range.start;
    const sent = status === 206 && cr ? Number(cr[2]) - Number(cr[1]) + 1 : Number(res.headers['content-length'] ?? NaN);
    if (skip === 0 && sent === want) return res;
    if (skip < 0) {
      drain(res);
      throw new S3RequestError('get', key, status, 'InvalidRange', 'the server answered a different range');
    }
    const out = slice(skip, want);
    res.on('error', (e) => out.destroy(e));
    return res.pipe(out);
  }

  async #emptyRange(key: string, start: number): Promise<NodeJS.ReadableStream | undefined> {
    const st = await this.#head(key, 'get');
    if (!st) return undefined;
    if (start > st.size) throw new WharfError('RANGE_NOT_SATISFIABLE');
    return emptyStream();
  }

  // ---- writes ----

  async put(key: string, body: BlobBody, options: WriteOptions = {}): Promise<BlobStat> {
    validateKey(key);
    await this.#checkConflicts(key, 'put');
    const version = randomBytes(16).toString('hex');
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let total = 0;
    let upload: Multipart | undefined;
    try {
      for await (const chunk of bodyChunks(body)) {
        if (chunk.byteLength === 0) continue;
        pending.push(Buffer.from(chunk)); // a copy: callers may reuse their buffer for the next chunk
        pendingBytes += chunk.byteLength;
        total += chunk.byteLength;
        // Parts of exactly partSize (R2 wants all but the last of one size), sent as soon as one is full.
        while (pendingBytes >= this.#partSize) {
          upload ??= await this.#startMultipart(key, version);
          const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
          const rest = all.subarray(this.#partSize);
          pending = rest.length > 0 ? [Buffer.from(rest)] : [];
          pendingBytes = rest.length;
          await this.#uploadPart(upload, upload.parts.length + 1, all.subarray(0, this.#partSize));
        }
      }
      if (!upload) {
        await this.#call({ op: 'put', key, method: 'PUT', object: this.#object(key), headers: this.#putHeaders(version), body: Buffer.concat(pending, pendingBytes) });
      } else {
        if (pendingBytes > 0) await this.#uploadPart(upload, upload.parts.length + 1, Buffer.concat(pending, pendingBytes));
        pending = [];
        await this.#completeMultipart(upload);
      }
    } catch (e) {
      if (upload) await this.#abortMultipart(upload);
      throw e;
    }
    this.#generation++;
    if (options.exactStat === false) return { size: total, mtime: seconds(this.#now()), etag: `"${version}"` };
    return this.#statAfterWrite(key, version, total);
  }

  #putHeaders(version: string): Record<string, string> {
    return { 'content-type': 'application/octet-stream', [VERSION_HEADER]: version };
  }

  async putFile(key: string, localPath: string, options: WriteOptions = {}): Promise<BlobStat> {
    validateKey(key);
    const st = await fsp.stat(localPath); // rejects (ENOENT) before anything is sent
    if (!st.isFile()) throw new Error(`putFile: "${localPath}" is not a file`);
    await this.#checkConflicts(key, 'put');
    const size = st.size;
    const version = randomBytes(16).toString('hex');
    const fileRange = (start: number, length: number): Body =>
      length === 0 ? new Uint8Array(0) : { length, stream: () => createReadStream(localPath, { start, end: start + length - 1 }) };
    if (size < this.#multipartThreshold) {
      await this.#call({ op: 'put', key, method: 'PUT', object: this.#object(key), headers: this.#putHeaders(version), body: fileRange(0, size) });
    } else {
      const partSize = Math.max(this.#partSize, Math.ceil(size / MAX_PARTS));
      const count = Math.ceil(size / partSize);
      const upload = await this.#startMultipart(key, version);
      try {
        let next = 1;
        const worker = async () => {
          while (next <= count) {
            const n = next++;
            const start = (n - 1) * partSize;
            await this.#uploadPart(upload, n, fileRange(start, Math.min(partSize, size - start)));
          }
        };
        await Promise.all(Array.from({ length: Math.min(this.#partConcurrency, count) }, worker));
        await this.#completeMultipart(upload);
      } catch (e) {
        await this.#abortMultipart(upload);
        throw e;
      }
    }
    this.#generation++;
    await fsp.rm(localPath, { force: true });
    if (options.exactStat === false) return { size, mtime: seconds(this.#now()), etag: `"${version}"` };
    return this.#statAfterWrite(key, version, size);
  }

  async copy(from: string, to: string, _options: WriteOptions = {}): Promise<void> {
    validateKey(from);
    validateKey(to);
    const source = `/${this.bucket}/${encodePath(this.#object(from))}`;
    const copyObject = () =>
      this.#call({
        op: 'copy',
        key: to,
        method: 'PUT',
        object: this.#object(to),
        headers: { 'x-amz-copy-source': source, 'x-amz-metadata-directive': 'COPY' },
        body: new Uint8Array(0),
      });
    try {
      if (from === to) {
        if (!(await this.#head(from, 'copy'))) throw new WharfError('NOT_FOUND', [`Blob "${from}"`]);
        return;
      }
      await this.#checkConflicts(to, 'copy');
      // Without a HEAD first (a copy is on the publish path): CopyObject says NoSuchKey for a missing source and
      // refuses a source above its 5 GiB limit, which then takes the multipart copy.
      const src = this.#copyPartThreshold < 5 * 1024 * MiB ? await this.#head(from, 'copy') : undefined;
      if (src === undefined || src.size <= this.#copyPartThreshold) {
        try {
          await copyObject();
        } catch (e) {
          if (!(e instanceof S3RequestError && (e.s3Code === 'EntityTooLarge' || e.s3Code === 'InvalidRequest'))) throw e;
          const big = await this.#head(from, 'copy');
          if (!big) throw new WharfError('NOT_FOUND', [`Blob "${from}"`]);
          await this.#copyMultipart(from, to, source, big);
        }
      } else {
        await this.#copyMultipart(from, to, source, src);
      }
    } catch (e) {
      if (e instanceof S3RequestError && (e.s3Code === 'NoSuchKey' || e.status === 404)) throw new WharfError('NOT_FOUND', [`Blob "${from}"`]);
      throw e;
    }
    this.#generation++;
  }

  async #copyMultipart(from: string, to: string, source: string, src: BlobStat): Promise<void> {
    // The copy keeps the source's version token, like CopyObject with the COPY directive does.
    const version = /^"([0-9a-f]{8,64})"$/.exec(src.etag)?.[1] ?? randomBytes(16).toString('hex');
    const partSize = Math.max(512 * MiB, this.#partSize, Math.ceil(src.size / MAX_PARTS));
    const upload = await this.#startMultipart(to, version);
    try {
      for (let start = 0, n = 1; start < src.size; start += partSize, n++) {
        const end = Math.min(src.size, start + partSize) - 1;
        const req: Req = {
          op: 'copy',
          key: to,
          method: 'PUT',
          object: this.#object(to),
          query: { partNumber: String(n), uploadId: upload.uploadId },
          headers: { 'x-amz-copy-source': source, 'x-amz-copy-source-range': `bytes=${start}-${end}` },
          body: new Uint8Array(0),
        };
        const { text } = await this.#call(req);
        const etag = xmlText(text, 'ETag');
        if (!etag) throw new S3RequestError('copy', from, 200, 'MissingETag', 'UploadPartCopy answered without an ETag');
        upload.parts[n - 1] = etag;
      }
      await this.#completeMultipart(upload);
    } catch (e) {
      await this.#abortMultipart(upload);
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      const req: Req = { op: 'delete', key, method: 'DELETE', object: this.#object(key) };
      const res = await this.#send(req);
      if (res.statusCode === 404) {
        drain(res); // absent (S3 answers 204 anyway; some servers say 404)
        return;
      }
      if ((res.statusCode ?? 0) >= 300) throw await this.#fail(req, res);
      drain(res);
    } finally {
      this.#generation++;
    }
  }

  async flush(): Promise<void> {
    // Every S3 write is durable when it returns.
  }

  // ---- multipart ----

  async #startMultipart(key: string, version: string): Promise<Multipart> {
    const { text } = await this.#call({
      op: 'put (start multipart upload)',
      key,
      method: 'POST',
      object: this.#object(key),
      query: { uploads: '' },
      headers: this.#putHeaders(version),
      body: new Uint8Array(0),
    });
    const uploadId = xmlText(text, 'UploadId');
    if (!uploadId) throw new S3RequestError('put (start multipart upload)', key, 200, 'MissingUploadId', 'no UploadId in the answer');
    return { key, uploadId, parts: [] };
  }

  async #uploadPart(upload: Multipart, n: number, body: Body): Promise<void> {
    const { res } = await this.#call({
      op: `put (part ${n})`,
      key: upload.key,
      method: 'PUT',
      object: this.#object(upload.key),
      query: { partNumber: String(n), uploadId: upload.uploadId },
      body,
    });
    const etag = res.headers.etag;
    if (!etag) throw new S3RequestError(`put (part ${n})`, upload.key, res.statusCode ?? 200, 'MissingETag', 'UploadPart answered without an ETag');
    upload.parts[n - 1] = etag;
  }

  async #completeMultipart(upload: Multipart): Promise<void> {
    const xml =
      '<CompleteMultipartUpload>' +
      upload.parts.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEscape(etag)}</ETag></Part>`).join('') +
      '</CompleteMultipartUpload>';
    await this.#call({
      op: 'put (complete multipart upload)',
      key: upload.key,
      method: 'POST',
      object: this.#object(upload.key),
      query: { uploadId: upload.uploadId },
      headers: { 'content-type': 'application/xml' },
      body: Buffer.from(xml),
    });
  }

  /** Best effort: a failed abort leaves parts that a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes. */
  async #abortMultipart(upload: Multipart): Promise<void> {
    try {
      const res = await this.#send({
        op: 'put (abort multipart upload)',
        key: upload.key,
        method: 'DELETE',
        object: this.#object(upload.key),
        query: { uploadId: upload.uploadId },
      });
      drain(res);
    } catch {
      // ignore: the original error is the one to report
    }
  }

  // ---- listing ----

  async #listPage(prefix: string, maxKeys: number, token: string | undefined, op: string, key: string) {
    const query: Record<string, string> = { 'list-type': '2', prefix: this.prefix + prefix, 'max-keys': String(maxKeys) };
    if (token) query['continuation-token'] = token;
    const { text } = await this.#call({ op, key, method: 'GET', query });
    const entries: BlobListEntry[] = [];
    for (const block of xmlBlocks(text, 'Contents')) {
      const full = xmlText(block, 'Key');
      if (full === undefined || !full.startsWith(this.prefix)) continue;
      entries.push({ key: full.slice(this.prefix.length), size: Number(xmlText(block, 'Size') ?? 0), mtime: seconds(new Date(xmlText(block, 'LastModified') ?? 0)) });
    }
    const truncated = xmlText(text, 'IsTruncated') === 'true';
    return { entries, next: truncated ? xmlText(text, 'NextContinuationToken') : undefined };
  }

  async *list(prefix: string): AsyncIterable<BlobListEntry> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.#listPage(prefix, this.#pageSize, token, 'list', prefix);
      for (const e of page.entries) {
        // Objects no key can name (folder markers 'x/', foreign '.tmp/…') are not blobs of this store.
        try {
          validateKey(e.key);
        } catch {
          continue;
        }
        yield e;
      }
      token = page.next;
    } while (token);
  }

  // ---- redirects ----

  /**
   * A presigned GET URL for `key`, valid for `expiresSeconds` (1 s to 7 days), for answering downloads with a 302.
   * Anyone holding it can read that one object until it expires. The object's existence is not checked.
   */
  presignedGetUrl(key: string, expiresSeconds: number): string {
    validateKey(key);
    if (!Number.isInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > MAX_PRESIGN_SECONDS) {
      throw new RangeError(`presigned URL expiry must be 1-${MAX_PRESIGN_SECONDS} seconds`);
    }
    // The URL depends only on the key, the expiry and the current second (X-Amz-Date): the downloads of one file in
    // one second share one signature (a presign costs ~35 µs, as much as the rest of the request).
    const now = this.#now();
    const second = Math.floor(now.getTime() / 1000);
    const id = `${expiresSeconds}\n${key}`;
    const hit = this.#presigned.get(id);
    if (hit !== undefined && hit.second === second) return hit.url;
    const { host, path } = this.#address(this.#object(key));
    const q = presignQuery(this.#creds, { method: 'GET', host, path, region: this.region, expiresSeconds, now });
    const url = `${this.#endpoint.protocol}//${host}${path}?${q}`;
    if (this.#presigned.size >= MAX_PRESIGNED) this.#presigned.clear();
    this.#presigned.set(id, { second, url });
    return url;
  }
}

interface Multipart {
  key: string;
  uploadId: string;
  /** ETag of part n at index n-1. */
  parts: string[];
}

