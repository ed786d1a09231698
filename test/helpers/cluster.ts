// Several real `wharf serve` processes sharing one PostgreSQL database (a fresh one per cluster), one S3-API server
// (the s3rver harness, in the test process) and Redis, behind a small round-robin load balancer whose URL is every
// node's public URL — the multi-node deployment of docs/deployment.md on one machine.
// Needs PostgreSQL on 127.0.0.1:5432 (trust; WHARF_TEST_DATABASE_URL names another) and Redis on 127.0.0.1:6379
// (WHARF_TEST_REDIS_URL).
// `s3: 'child'` runs the S3-API server in a child process of its own instead (the benchmarks: the client process is
// then not also the storage server); its request log is read with `s3Requests()`.
import { createServer, request, type Server } from 'node:http';
import { fork } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { startWharf, type WharfInstance } from './wharf.ts';
import { startS3ForWharf, type S3ForWharf } from './s3.ts';
import type { LoggedRequest, TestS3Server } from '../../src/storage/s3/s3rver-harness.ts';
import { S3BlobStore } from '../../src/storage/s3-blob-store.ts';

export const PG_SERVER = process.env.WHARF_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.WHARF_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

export interface Cluster {
  readonly nodes: (WharfInstance | undefined)[];
  /** the load balancer: every node's WHARF_PUBLIC_URL */
  readonly url: string;
  readonly token: string;
  readonly s3: S3ForWharf;
  /** the process running the S3-API server (this one unless `s3: 'child'`) */
  readonly s3Pid: number;
  /** the S3 server's request log so far (works in both modes) */
  s3Requests(): Promise<LoggedRequest[]>;
  /** the cluster's database (for assertions on its state and locks) */
  readonly db: pg.Client;
  readonly databaseUrl: string;
  /** starts node `i` (again), with application_name wharf-node-i on its database connections */
  startNode(i: number): Promise<WharfInstance>;
  /** the node's base URL; throws when it is not running */
  node(i: number): WharfInstance;
  close(): Promise<void>;
}

/**
 * The s3rver harness in a child process, talking over IPC. `server.requests` and `server.fail` are not available across
 * the process boundary (reading or setting them throws): use `requests()`.
 */
async function startS3ChildForWharf(bucket: string, dir?: string): Promise<S3ForWharf & { pid: number; requests(): Promise<LoggedRequest[]> }> {
  const harness = pathToFileURL(new URL('../../src/storage/s3/s3rver-harness.ts', import.meta.url).pathname).href;
  const script = `
    import { startTestS3Server } from ${JSON.stringify(harness)};
    const s = await startTestS3Server();
    process.on('message', async (m) => {
      try {
        let result;
        if (m.op === 'createBucket') await s.createBucket(m.arg);
        else if (m.op === 'leftovers') result = await s.leftovers(m.arg);
        else if (m.op === 'requests') result = s.requests;
        else if (m.op === 'close') await s.close();
        process.send({ id: m.id, result });
        if (m.op === 'close') process.disconnect();
      } catch (e) {
        process.send({ id: m.id, error: String(e?.stack ?? e) });
      }
    });
    process.send({ ready: { endpoint: s.endpoint, accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } });
  `;
  // WHARF_S3RVER_PROF=DIR: the child writes a CPU profile of s3rver into DIR (to see what the emulator costs).
  const child = fork('-', [], { execArgv: [...(process.env.WHARF_S3RVER_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.WHARF_S3RVER_PROF] : []), '--input-type=module', '--eval', script], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: dir ? { ...process.env, TMPDIR: dir } : process.env });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  const ready = new Promise<{ endpoint: string; accessKeyId: string; secretAccessKey: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the S3 child process exited with ${code} before it was ready`)));
    child.on('message', (m: { ready?: { endpoint: string; accessKeyId: string; secretAccessKey: string }; id?: number; result?: unknown; error?: string }) => {
      if (m.ready) return resolve(m.ready);
      const p = pending.get(m.id!);
      pending.delete(m.id!);
      if (m.error !== undefined) p?.reject(new Error(m.error));
      else p?.resolve(m.result);
    });
  });
  const call = <T>(op: string, arg?: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, op, arg });
    });
  let info: { endpoint: string; accessKeyId: string; secretAccessKey: string };
  try {
    info = await ready;
    await call('createBucket', bucket);
  } catch (e) {
    child.kill();
    throw e;
  }
  const notHere = (what: string) => () => {
    throw new Error(`s3: 'child': server.${what} is not available across processes (use cluster.s3Requests())`);
  };
  const server: TestS3Server = {
    endpoint: info.endpoint,
    accessKeyId: info.accessKeyId,
    secretAccessKey: info.secretAccessKey,
    get requests(): LoggedRequest[] {
      return notHere('requests')();
    },
    get fail() {
      return undefined;
    },
    set fail(_f) {
      notHere('fail')();
    },
    createBucket: (name) => call('createBucket', name),
    leftovers: (b) => call('leftovers', b),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      await call('close').catch(() => child.kill());
      await exited;
    },
  };
  const store = new S3BlobStore({ bucket, prefix: '', endpoint: info.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey });
  let closed = false;
  return {
    server,
    bucket,
    env: {
      WHARF_STORAGE: `s3://${bucket}`,
      WHARF_S3_ENDPOINT: info.endpoint,
      WHARF_S3_REGION: 'us-east-1',
      WHARF_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: info.accessKeyId,
      AWS_SECRET_ACCESS_KEY: info.secretAccessKey,
      AWS_SESSION_TOKEN: '',
      AWS_REGION: '',
      AWS_DEFAULT_REGION: '',
    },
    store,
    pid: child.pid!,
    requests: () => call<LoggedRequest[]>('requests'),
    async close() {
      if (closed) return;
      closed = true;
      store.close();
      await server.close();
    },
  };
}

/**
 * `s3Dir`: where the s3rver child keeps its objects (a temporary directory in it), for s3: 'child'; default the
 * system's temporary directory.
 */
export async function startCluster(opts: { nodes?: number; env?: Record<string, string>; s3?: 'in-process' | 'child'; s3Dir?: string } = {}): Promise<Cluster> {
  const count = opts.nodes ?? 3;
  const dbName = `wharf_cluster_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_SERVER });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const databaseUrl = Object.assign(new URL(PG_SERVER), { pathname: `/${dbName}` }).href;
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const s3Child = opts.s3 === 'child' ? await startS3ChildForWharf('wharf-cluster', opts.s3Dir) : undefined;
  const s3: S3ForWharf = s3Child ?? (await startS3ForWharf({ bucket: 'wharf-cluster' }));

  const nodes: (WharfInstance | undefined)[] = new Array(count).fill(undefined);
  let rr = 0;
  const lb: Server = createServer((req, res) => {
    const live = nodes.filter((n): n is WharfInstance => n !== undefined && n.process.exitCode === null && n.process.signalCode === null);
    if (live.length === 0) {
      res.writeHead(503).end('no node');
      return;
    }
    const target = new URL(live[rr++ % live.length]!.url);
    const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => lb.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(lb.address() as AddressInfo).port}`;
  const token = `wharf_admin_${randomBytes(24).toString('hex')}`;
  const env = {
    ...s3.env,
    WHARF_REDIS_URL: REDIS_URL,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_ADMIN_TOKEN: token,
    WHARF_PUBLIC_URL: url,
    WHARF_FSYNC: 'false',
    ...opts.env,
  };

  const startNode = async (i: number): Promise<WharfInstance> => {
    const nodeDb = new URL(databaseUrl);
    nodeDb.searchParams.set('application_name', `wharf-node-${i}`);
    const n = await startWharf({ env: { ...env, WHARF_DATABASE_URL: nodeDb.href } });
    nodes[i] = n;
    return n;
  };
  try {
    // All at once: migrations, the admin token and the key material are created once whatever the start order.
    await Promise.all(Array.from({ length: count }, (_, i) => startNode(i)));
  } catch (e) {
    await Promise.all(nodes.map((n) => n?.stop()));
    lb.close();
    await s3.close();
    await db.end();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    throw e;
  }
  return {
    nodes,
    url,
    token,
    s3,
    s3Pid: s3Child?.pid ?? process.pid,
    s3Requests: async () => (s3Child ? s3Child.requests() : [...s3.server.requests]),
    db,
    databaseUrl,
    startNode,
    node(i) {
      const n = nodes[i];
      if (!n) throw new Error(`node ${i} is not running`);
      return n;
    },
    async close() {
      await Promise.all(nodes.map((n) => n?.stop()));
      lb.closeAllConnections();
      lb.close();
      await s3.close();
      await db.end();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** The advisory lock key Wharf uses for a lock (src/services/locks.ts), as pg_locks shows it: classid, objid. */
export function advisoryLockIds(schema: string, space: string, name: string): { classid: number; objid: number } {
  const h = createHash('sha256').update(`wharf\0${schema}\0${space}\0${name}`).digest();
  return { classid: h.readUInt32BE(0), objid: h.readUInt32BE(4) };
}

/** The application_name of the connection holding the lock, or undefined. */
export async function lockHolder(db: pg.Client, ids: { classid: number; objid: number }): Promise<string | undefined> {
  const r = await db.query(
    `select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.granted and l.classid = $1::bigint::oid and l.objid = $2::bigint::oid and l.objsubid = 1 and l.database = (select oid from pg_database where datname = current_database())`,
    [ids.classid, ids.objid],
  );
  return r.rows[0]?.application_name;
}
