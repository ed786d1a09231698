import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, open as openFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobStoreConformance, pattern as conformancePattern } from './blob-store.conformance.ts';
import type { BlobStore } from './blob-store.ts';
import { S3BlobStore, S3RequestError, parseS3Location, s3OptionsFromEnv, type S3StoreOptions } from './s3-blob-store.ts';
import { presignQuery, signHeaders, EMPTY_SHA256 } from './s3/sigv4.ts';
import { startTestS3Server, type TestS3Server } from './s3/s3rver-harness.ts';

const MiB = 1024 * 1024;
let server: TestS3Server;
let bucketCounter = 0;

// One server for the whole file; each test gets its own bucket.
before(async () => {
  server = await startTestS3Server();
});
after(async () => {
  await server.close();
});

async function freshStore(extra: Partial<S3StoreOptions> = {}): Promise<{ store: S3BlobStore; bucket: string }> {
  const bucket = `wharf-t${++bucketCounter}`;
  await server.createBucket(bucket);
  const store = new S3BlobStore({
    bucket,
    prefix: '',
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    ...extra,
  });
  return { store, bucket };
}

for (const prefix of ['', 'tenant/wharf/']) {
  blobStoreConformance(`S3BlobStore on s3rver (path style, prefix ${JSON.stringify(prefix)})`, async () => {
    const { store, bucket } = await freshStore({ prefix });
    return {
      store,
      leftovers: () => server.leftovers(bucket),
      cleanup: async () => store.close(),
    };
  });
}

function pattern(seed: number, size: number): Buffer {
  const b = conformancePattern(seed, size);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

async function sha256Of(stream: NodeJS.ReadableStream): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { hex: h.digest('hex'), size };
}

/** Writes `count` chunks of pattern data to a file without holding more than one chunk; returns its hash. */
async function writePatternFile(path: string, chunk: number, count: number, tail: number): Promise<string> {
  const h = createHash('sha256');
  const fh = await openFile(path, 'w');
  try {
    for (let i = 0; i <= count; i++) {
      const b = pattern(7 + i, i === count ? tail : chunk);
      h.update(b);
      await fh.write(b);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

describe('S3BlobStore specifics (s3rver)', () => {
  test('putFile above the threshold uses a streamed multipart upload; content is byte for byte', { timeout: 120_000 }, async () => {
    const { store, bucket } = await freshStore({ multipartThreshold: 5 * MiB, partSize: 5 * MiB });
    const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-mp-'));
    try {
      const local = join(dir, 'big.deb');
      const size = 6 * 4 * MiB + 12_345; // 24 MiB + a bit: 5 parts of 5 MiB
      const expected = await writePatternFile(local, 4 * MiB, 6, 12_345);
      const from = server.requests.length;
      // The upload runs in a process of its own, so that its memory is the client's alone (the S3 server in this
      // process buffers parts, and the other tests allocate meanwhile): the peak of live heap + array buffers, sampled
      // after a full GC every 5 ms while it runs, must stay well below the file's size.
      const client = `
        import v8 from 'node:v8'; import vm from 'node:vm';
        import { S3BlobStore } from ${JSON.stringify(new URL('./s3-blob-store.ts', import.meta.url).href)};
        v8.setFlagsFromString('--expose-gc'); const gc = vm.runInNewContext('gc');
        const o = JSON.parse(process.env.S3_OPTS);
        const store = new S3BlobStore(o);
        gc();
        const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
        const base = used(); let peak = base;
        // Collected before each sample: what is measured is live memory, not read buffers awaiting collection.
        const timer = setInterval(() => { gc(); peak = Math.max(peak, used()); }, 5);
        const st = await store.putFile(process.env.KEY, process.env.FILE);
        clearInterval(timer); peak = Math.max(peak, used()); store.close();
        process.stdout.write(JSON.stringify({ size: st.size, growth: peak - base }));`;
      const opts = { bucket, prefix: '', endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, multipartThreshold: 5 * MiB, partSize: 5 * MiB };
      const { execFile } = await import('node:child_process');
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--input-type=module', '-e', client], { env: { ...process.env, S3_OPTS: JSON.stringify(opts), KEY: 'pool/main/b/big/big_1.0_amd64.deb', FILE: local } }, (e, stdout, stderr) =>
          e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout),
        ),
      );
      const { size: uploaded, growth } = JSON.parse(out) as { size: number; growth: number };
      assert.equal(uploaded, size);
      assert.ok(growth < 4 * MiB, `the client's memory grew by ${(growth / MiB).toFixed(1)} MiB while uploading ${(size / MiB).toFixed(1)} MiB`);
      const st = (await store.stat('pool/main/b/big/big_1.0_amd64.deb'))!;
      assert.equal(st.size, size);
      const reqs = server.requests.slice(from);
      assert.equal(reqs.filter((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.url)).length, 1, 'one multipart upload started');
      assert.equal(reqs.filter((r) => r.method === 'PUT' && /partNumber=/.test(r.url)).length, 5, 'five parts');
      assert.equal(reqs.filter((r) => r.method === 'POST' && /uploadId=/.test(r.url)).length, 1, 'completed once');
      await assert.rejects(access(local), 'the local file is consumed');
      const got = await sha256Of((await store.open('pool/main/b/big/big_1.0_amd64.deb'))!);
      assert.equal(got.size, size);
      assert.equal(got.hex, expected);
      assert.equal((await store.stat('pool/main/b/big/big_1.0_amd64.deb'))?.etag, st.etag);
      // a range across a part boundary
      const mid = await sha256Of((await store.open('pool/main/b/big/big_1.0_amd64.deb', { start: 5 * MiB - 10, end: 5 * MiB + 10 }))!);
      assert.equal(mid.size, 20);
      assert.deepEqual(await server.leftovers(bucket), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
      store.close();
    }
  });

  test('streamed put over one part goes multipart; a failing part aborts the upload and keeps the old blob', { timeout: 60_000 }, async () => {
    const { store, bucket } = await freshStore({ partSize: 5 * MiB });
    try {
      async function* body(n: number, failAt = -1) {
        for (let i = 0; i < n; i++) {
          if (i === failAt) throw new Error('client went away');
          yield pattern(40 + i, MiB);
        }
      }
      const from = server.requests.length;
      const st = await store.put('stream/blob', body(12));
      assert.equal(st.size, 12 * MiB);
      assert.equal(server.requests.slice(from).filter((r) => /partNumber=/.test(r.url)).length, 3);
      const expected = createHash('sha256');
      for (let i = 0; i < 12; i++) expected.update(pattern(40 + i, MiB));
      assert.equal((await sha256Of((await store.open('stream/blob'))!)).hex, expected.digest('hex'));

      // odd chunk sizes still give parts of exactly partSize, but the last
      async function* odd() {
        for (let i = 0; i < 4; i++) yield pattern(60 + i, 3 * MiB + 7);
      }
      const from2 = server.requests.length;
      await store.put('stream/odd', odd());
      const sizes = server.requests.slice(from2).filter((r) => /partNumber=/.test(r.url)).map((r) => r.contentLength);
      assert.deepEqual(sizes, [5 * MiB, 5 * MiB, 2 * MiB + 28]);
      assert.equal((await store.stat('stream/odd'))?.size, 12 * MiB + 28);

      // the body throws after two parts were sent: the upload is aborted, the old blob stays
      const aborts = () => server.requests.filter((r) => r.method === 'DELETE' && /uploadId=/.test(r.url)).length;
      const a0 = aborts();
      await assert.rejects(store.put('stream/blob', body(12, 11)), /client went away/);
      assert.equal(aborts(), a0 + 1);
      assert.equal((await store.stat('stream/blob'))?.etag, st.etag);

      // the server refuses a part (after retries): the upload is aborted, the error names operation, key and code
      server.fail = (req) => (req.method === 'PUT' && /partNumber=2/.test(req.url ?? '') ? 500 : undefined);
      try {
        await assert.rejects(store.put('stream/other', body(12)), (e: unknown) => {
          assert.ok(e instanceof S3RequestError);
          assert.match(e.message, /S3 put \(part 2\) of "stream\/other" failed: 500 InjectedFailure/);
          return true;
        });
      } finally {
        server.fail = undefined;
      }
      assert.equal(aborts(), a0 + 2);
      assert.equal(await store.stat('stream/other'), undefined);
      assert.deepEqual(await server.leftovers(bucket), []);
    } finally {
      store.close();
    }
  });

  test('list pages through ListObjectsV2 continuation tokens', async () => {
    const { store } = await freshStore({ listPageSize: 3, prefix: 'p' });
    try {
      const keys = Array.from({ length: 11 }, (_, i) => `dists/d${String(i).padStart(2, '0')}/Release`);
      await Promise.all(keys.map((k) => store.put(k, k)));
      await store.put('pool/x', 'x');
      const from = server.requests.length;
      const listed: string[] = [];
      for await (const e of store.list('dists/')) listed.push(e.key);
      assert.deepEqual(listed, keys);
      const pages = server.requests.slice(from).filter((r) => /list-type=2/.test(r.url));
      assert.equal(pages.length, 4);
      assert.ok(pages.slice(1).every((r) => /continuation-token=/.test(r.url)));
      assert.ok(pages.every((r) => /max-keys=3/.test(r.url)));
      const all: string[] = [];
      for await (const e of store.list('')) all.push(e.key);
      assert.deepEqual(all, [...keys, 'pool/x']);
    } finally {
      store.close();
    }
  });

  test('presigned GET URLs download with plain fetch; tampered or expired ones are refused', async () => {
    const { store } = await freshStore({ prefix: 'private' });
    try {
      await store.put('org/repo/pool/main/h/hello_1.0+b1_amd64.deb', 'deb bytes');
      const url = store.presignedGetUrl('org/repo/pool/main/h/hello_1.0+b1_amd64.deb', 300);
      const u = new URL(url);
      assert.equal(u.pathname, `/${store.bucket}/private/org/repo/pool/main/h/hello_1.0%2Bb1_amd64.deb`);
      assert.equal(u.searchParams.get('X-Amz-Expires'), '300');
      assert.equal(u.searchParams.get('X-Amz-SignedHeaders'), 'host');
      assert.doesNotMatch(url, new RegExp(server.secretAccessKey.replace(/[/+]/g, '.')));
      const ok = await fetch(url);
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), 'deb bytes');

      const badSig = new URL(url);
      const sig = badSig.searchParams.get('X-Amz-Signature')!;
      badSig.searchParams.set('X-Amz-Signature', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
      const r1 = await fetch(badSig);
      assert.equal(r1.status, 403);
      assert.match(await r1.text(), /SignatureDoesNotMatch/);

      const otherKey = url.replace('hello_1.0', 'hello_2.0');
      await store.put('org/repo/pool/main/h/hello_2.0+b1_amd64.deb', 'other');
      const r2 = await fetch(otherKey);
      assert.equal(r2.status, 403, 'a URL signed for one key does not open another');
      await r2.body?.cancel();

      const longer = new URL(url);
      longer.searchParams.set('X-Amz-Expires', '3600');
      const r3 = await fetch(longer);
      assert.equal(r3.status, 403, 'the expiry is signed');
      await r3.body?.cancel();

      // signed 10 minutes ago for 5 minutes: expired
      const past = new S3BlobStore({
        bucket: store.bucket,
        prefix: 'private',
        endpoint: server.endpoint,
        forcePathStyle: true,
        accessKeyId: server.accessKeyId,
        secretAccessKey: server.secretAccessKey,
        now: () => new Date(Date.now() - 600_000),
      });
      const r4 = await fetch(past.presignedGetUrl('org/repo/pool/main/h/hello_1.0+b1_amd64.deb', 300));
      assert.equal(r4.status, 403);
      assert.match(await r4.text(), /Request has expired/);

      assert.throws(() => store.presignedGetUrl('../x', 300), /Invalid storage key/);
      assert.throws(() => store.presignedGetUrl('x', 0), RangeError);
      assert.throws(() => store.presignedGetUrl('x', 8 * 24 * 3600), RangeError);
    } finally {
      store.close();
    }
  });

  test('errors name the operation, key and S3 code, never the credentials', async () => {
    const { store, bucket } = await freshStore();
    await store.put('k', 'v');
    store.close();
    const secrets = { accessKeyId: server.accessKeyId, secretAccessKey: 'WRONG-secret-' + 'x'.repeat(20), sessionToken: 'session-token-value-123' };
    const wrong = new S3BlobStore({ bucket, endpoint: server.endpoint, forcePathStyle: true, ...secrets });
    const unknown = new S3BlobStore({ bucket, endpoint: server.endpoint, forcePathStyle: true, accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'another-secret-value' });
    const nowhere = new S3BlobStore({ bucket, endpoint: 'http://127.0.0.1:9', forcePathStyle: true, maxAttempts: 1, ...secrets });
    const noBucket = new S3BlobStore({ bucket: 'no-such-bucket', endpoint: server.endpoint, forcePathStyle: true, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey });
    const checks: [() => Promise<unknown>, RegExp][] = [
      [() => wrong.put('a/b', 'x'), /S3 put of "a\/b" failed: 403 SignatureDoesNotMatch/],
      [() => wrong.get('k'), /S3 get of "k" failed: 403 SignatureDoesNotMatch/],
      [() => unknown.copy('k', 'k2'), /S3 copy of "k2" failed: 403 InvalidAccessKeyId/], // CopyObject answers with an error body
      [() => unknown.put('k2', 'v'), /S3 put of "k2" failed: 403 InvalidAccessKeyId/],
      [async () => { for await (const _ of wrong.list('')) void _; }, /S3 list of "" failed: 403 SignatureDoesNotMatch/],
      [() => nowhere.stat('k'), /S3 stat of "k" failed: 0 ECONNREFUSED/],
      [() => noBucket.put('k', 'v'), /failed: 404 NoSuchBucket/],
    ];
    for (const [p, re] of checks) {
      await assert.rejects(p(), (e: unknown) => {
        assert.ok(e instanceof S3RequestError, String(e));
        assert.match(e.message, re);
        for (const s of [secrets.secretAccessKey, secrets.sessionToken, secrets.accessKeyId, 'another-secret-value', 'AKIAUNKNOWNKEY000000', server.secretAccessKey]) {
          assert.ok(!e.message.includes(s), `error message leaks a credential: ${e.message}`);
          assert.ok(!(e.stack ?? '').includes(s), 'stack leaks a credential');
        }
        return true;
      });
    }
    for (const s of [wrong, unknown, nowhere, noBucket]) s.close();
  });

  test('etag: a copy shares its source\'s, a rewrite gets a new one; deferred sync and flush are no-ops', async () => {
    const { store } = await freshStore();
    try {
      const a = await store.put('a', 'same', { sync: 'deferred' });
      await store.copy('a', 'b', { sync: 'deferred' });
      assert.equal((await store.stat('b'))?.etag, a.etag);
      const a2 = await store.put('a', 'same');
      assert.notEqual(a2.etag, a.etag);
      assert.equal((await store.stat('b'))?.etag, a.etag);
      const g = store.generation;
      await store.flush();
      assert.equal(store.generation, g);
      assert.equal((store as BlobStore).localPath, undefined);
    } finally {
      store.close();
    }
  });

  test('large copies use UploadPartCopy', { timeout: 60_000 }, async () => {
    const { store, bucket } = await freshStore({ copyPartThreshold: 5 * MiB });
    try {
      const data = pattern(99, 6 * MiB + 3);
      const st = await store.put('src', data);
      const from = server.requests.length;
      await store.copy('src', 'dst');
      assert.ok(server.requests.slice(from).some((r) => /partNumber=1/.test(r.url)), 'copied by parts');
      const got = await store.get('dst');
      assert.ok(got && Buffer.compare(got, data) === 0);
      assert.equal((await store.stat('dst'))?.etag, st.etag);
      assert.deepEqual(await server.leftovers(bucket), []);
    } finally {
      store.close();
    }
  });
});

describe('S3 configuration and signing (no server)', () => {
  test('parseS3Location', () => {
    assert.deepEqual(parseS3Location('s3://bucket'), { bucket: 'bucket', prefix: '' });
    assert.deepEqual(parseS3Location('s3://bucket/'), { bucket: 'bucket', prefix: '' });
    assert.deepEqual(parseS3Location('s3://my.bucket-1/wharf/prod/'), { bucket: 'my.bucket-1', prefix: 'wharf/prod/' });
    for (const bad of ['bucket', 'http://bucket/x', 's3://', 's3://B', 's3://Bucket/x', 's3://b', 's3://bucket/a/../b', 's3://bucket/a//b', 's3://bucket/x?y', 's3://bucket/.tmp']) {
      assert.throws(() => parseS3Location(bad), /Invalid S3/, bad);
    }
  });

  test('s3OptionsFromEnv', () => {
    const env = {
      WHARF_STORAGE: 's3://pkgs/wharf',
      WHARF_S3_ENDPOINT: 'https://storage.googleapis.com',
      WHARF_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: 'GOOG1EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret-value',
      AWS_REGION: 'europe-west1',
    };
    assert.deepEqual(s3OptionsFromEnv(env), {
      bucket: 'pkgs',
      prefix: 'wharf/',
      endpoint: 'https://storage.googleapis.com',
      forcePathStyle: true,
      accessKeyId: 'GOOG1EXAMPLE',
      secretAccessKey: 'secret-value',
      region: 'europe-west1',
    });
    assert.equal(s3OptionsFromEnv({ ...env, WHARF_S3_REGION: 'auto' }).region, 'auto');
    assert.equal(s3OptionsFromEnv({ ...env, AWS_REGION: undefined }).region, 'us-east-1');
    assert.equal(s3OptionsFromEnv({ ...env, AWS_SESSION_TOKEN: 'tok' }).sessionToken, 'tok');
    assert.equal(s3OptionsFromEnv({ ...env, WHARF_S3_FORCE_PATH_STYLE: undefined }).forcePathStyle, undefined);
    assert.throws(() => s3OptionsFromEnv({ ...env, WHARF_S3_FORCE_PATH_STYLE: 'maybe' }), /WHARF_S3_FORCE_PATH_STYLE/);
    assert.throws(() => s3OptionsFromEnv({ ...env, WHARF_S3_ENDPOINT: 'ftp://x' }), /Invalid S3 endpoint/);
    assert.throws(() => s3OptionsFromEnv({ ...env, WHARF_S3_ENDPOINT: 'https://user:pw@host' }), (e: Error) => !e.message.includes('pw'));
    assert.throws(() => s3OptionsFromEnv({ ...env, AWS_SECRET_ACCESS_KEY: '' }), (e: Error) => /AWS_SECRET_ACCESS_KEY/.test(e.message) && !e.message.includes('GOOG1EXAMPLE'));
  });

  // AWS's published examples: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html and
  // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
  const awsCreds = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
  const awsDate = new Date('2013-05-24T00:00:00Z');

  test('presigned GET matches the AWS SigV4 example (virtual-hosted style)', () => {
    const store = new S3BlobStore({ bucket: 'examplebucket', prefix: '', endpoint: 'https://s3.amazonaws.com', region: 'us-east-1', ...awsCreds, now: () => awsDate });
    const url = store.presignedGetUrl('test.txt', 86400);
    assert.equal(
      url,
      'https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
    );
    store.close();
    // the same through the signer directly
    const q = presignQuery(awsCreds, { method: 'GET', host: 'examplebucket.s3.amazonaws.com', path: '/test.txt', region: 'us-east-1', expiresSeconds: 86400, now: awsDate });
    assert.match(q, /X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404$/);
  });

  test('header signing matches the AWS SigV4 GET Object example', () => {
    const h = signHeaders(awsCreds, {
      method: 'GET',
      host: 'examplebucket.s3.amazonaws.com',
      path: '/test.txt',
      headers: { range: 'bytes=0-9' },
      payloadHash: EMPTY_SHA256,
      region: 'us-east-1',
      now: awsDate,
    });
    assert.equal(
      h.authorization,
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
  });

  test('path style, dotted buckets and prefixes in presigned URLs', () => {
    const now = () => awsDate;
    const p = new S3BlobStore({ bucket: 'pkgs', prefix: 'a/b', endpoint: 'https://abc.r2.cloudflarestorage.com', region: 'auto', forcePathStyle: true, ...awsCreds, now });
    assert.match(p.presignedGetUrl('x y/z', 300), /^https:\/\/abc\.r2\.cloudflarestorage\.com\/pkgs\/a\/b\/x%20y\/z\?.*X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fauto%2Fs3%2Faws4_request/);
    const dotted = new S3BlobStore({ bucket: 'my.pkgs', endpoint: 'https://s3.eu-west-1.amazonaws.com', region: 'eu-west-1', ...awsCreds, now });
    assert.match(dotted.presignedGetUrl('k', 300), /^https:\/\/s3\.eu-west-1\.amazonaws\.com\/my\.pkgs\/k\?/);
    const withToken = new S3BlobStore({ bucket: 'pkgs', ...awsCreds, sessionToken: 'tok/en+=', now });
    assert.match(withToken.presignedGetUrl('k', 60), /^https:\/\/pkgs\.s3\.us-east-1\.amazonaws\.com\/k\?.*X-Amz-Security-Token=tok%2Fen%2B%3D/);
    for (const s of [p, dotted, withToken]) s.close();
  });
});
