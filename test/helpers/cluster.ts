// Several real `wharf serve` processes sharing one PostgreSQL database (a fresh one per cluster), one S3-API server
// (the s3rver harness, in the test process) and Redis, behind a small round-robin load balancer whose URL is every
// node's public URL — the multi-node deployment of docs/deployment.md on one machine.
// Needs PostgreSQL on 127.0.0.1:5432 (trust; WHARF_TEST_DATABASE_URL names another) and Redis on 127.0.0.1:6379
// (WHARF_TEST_REDIS_URL).
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { startWharf, type WharfInstance } from './wharf.ts';
import { startS3ForWharf, type S3ForWharf } from './s3.ts';

export const PG_SERVER = process.env.WHARF_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.WHARF_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

export interface Cluster {
  readonly nodes: (WharfInstance | undefined)[];
  /** the load balancer: every node's WHARF_PUBLIC_URL */
  readonly url: string;
  readonly token: string;
  readonly s3: S3ForWharf;
  /** the cluster's database (for assertions on its state and locks) */
  readonly db: pg.Client;
  readonly databaseUrl: string;
  /** starts node `i` (again), with application_name wharf-node-i on its database connections */
  startNode(i: number): Promise<WharfInstance>;
  /** the node's base URL; throws when it is not running */
  node(i: number): WharfInstance;
  close(): Promise<void>;
}

export async function startCluster(opts: { nodes?: number; env?: Record<string, string> } = {}): Promise<Cluster> {
  const count = opts.nodes ?? 3;
  const dbName = `wharf_cluster_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_SERVER });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const databaseUrl = Object.assign(new URL(PG_SERVER), { pathname: `/${dbName}` }).href;
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const s3 = await startS3ForWharf({ bucket: 'wharf-cluster' });

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
