// A real S3-API server (the s3rver harness of the storage tests) in the test process, with one bucket and the
// environment that points a `wharf serve` child process at it (path style), plus a store to look into the bucket.
import { startTestS3Server, type TestS3Server } from '../../src/storage/s3/s3rver-harness.ts';
import { S3BlobStore } from '../../src/storage/s3-blob-store.ts';

export interface S3ForWharf {
  readonly server: TestS3Server;
  readonly bucket: string;
  /** WHARF_STORAGE, WHARF_S3_* and AWS_* for startWharf({ env }) */
  readonly env: Record<string, string>;
  /** The same bucket seen by the test (list, open, presign), with Wharf's own client. */
  readonly store: S3BlobStore;
  close(): Promise<void>;
}

export async function startS3ForWharf(opts: { bucket?: string; prefix?: string } = {}): Promise<S3ForWharf> {
  const server = await startTestS3Server();
  const bucket = opts.bucket ?? 'wharf-e2e';
  await server.createBucket(bucket);
  const prefix = opts.prefix ?? '';
  const env = {
    WHARF_STORAGE: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
    WHARF_S3_ENDPOINT: server.endpoint,
    WHARF_S3_REGION: 'us-east-1',
    WHARF_S3_FORCE_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    // Whatever the developer's shell holds must not leak into the child.
    AWS_SESSION_TOKEN: '',
    AWS_REGION: '',
    AWS_DEFAULT_REGION: '',
  };
  const store = new S3BlobStore({
    bucket,
    prefix,
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
  });
  let closed = false;
  return {
    server,
    bucket,
    env,
    store,
    async close() {
      if (closed) return;
      closed = true;
      store.close();
      await server.close();
    },
  };
}

/** Every key in the store under `prefix`. */
export async function listKeys(store: S3BlobStore, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix)) out.push(e.key);
  return out;
}
