// The cluster bus on PostgreSQL LISTEN/NOTIFY, for clusters without Redis. LISTEN belongs to a session, so the bus
// holds one dedicated connection (not one of the pool's, which the pool may close or hand to a query); when it drops,
// the bus reconnects with capped backoff and listens again. Messages sent meanwhile are lost, which the bus contract
// allows (every cache a message invalidates is also bounded in time).
//
// The channel is named after the schema the database works in ('wharf_' + a hash of current_schema()), so Wharf
// instances sharing one database in separate schemas (tests, several installations) never see each other's messages.
// This node's subscribers get its own messages directly, at once, even while the listening connection is down; the
// copy that comes back through PostgreSQL is recognised by the node id and skipped.
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { sql } from 'kysely';
import { postgresConnectionConfig, type Db } from '../../db/database.ts';
import type { Logger } from '../../log.ts';
import { LocalBus, type Bus, type BusTopic } from './bus.ts';

/** NOTIFY refuses payloads of 8000 bytes or more. */
const MAX_NOTIFY_BYTES = 7_999;
const MAX_BACKOFF_MS = 5_000;
const PING_EVERY_MS = 30_000;
const PING_TIMEOUT_MS = 10_000;
const LOG_EVERY_MS = 30_000;

/** The application_name of the listening connection (pg_stat_activity shows it): 'wharf-bus-' + the node id. */
export const PG_BUS_APPLICATION_PREFIX = 'wharf-bus-';

export class PgBus implements Bus {
  readonly kind = 'postgres';
  /** random per instance: tells this node's messages apart when PostgreSQL delivers them back */
  readonly nodeId: string;
  /** the NOTIFY channel, specific to the database schema */
  readonly channel: string;
  readonly #db: Db;
  readonly #log: Logger;
  readonly #config: pg.ClientConfig;
  readonly #local = new LocalBus();
  #client: pg.Client | undefined;
  #closed = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #lastWarn = 0;

  /** Opens the listening connection (same settings as `db`'s pool) and starts listening. `db` must be PostgreSQL. */
  static async open(db: Db, log: Logger): Promise<PgBus> {
    const config = postgresConnectionConfig(db);
    if (!config) throw new Error('PgBus needs a PostgreSQL database opened by openDatabase');
    const nodeId = randomBytes(8).toString('hex');
    const clientConfig: pg.ClientConfig = { ...config, application_name: PG_BUS_APPLICATION_PREFIX + nodeId, keepAlive: true };
    const probe = new pg.Client(clientConfig);
    probe.on('error', () => {}); // a failure surfaces through the awaited calls below
    let schema: string | null | undefined;
    try {
      await probe.connect();
      schema = (await probe.query<{ s: string | null }>('select current_schema() as s')).rows[0]?.s;
    } finally {
      await probe.end().catch(() => {});
    }
    if (!schema) throw new Error('PgBus: the database connection has no current schema');
    const channel = 'wharf_' + createHash('sha256').update(schema).digest('hex').slice(0, 16);
    const bus = new PgBus(db, log, clientConfig, channel, nodeId);
    await bus.#connect();
    bus.#pingTimer = setInterval(() => bus.#ping(), PING_EVERY_MS).unref();
    return bus;
  }

  /** Use PgBus.open(). */
  constructor(db: Db, log: Logger, config: pg.ClientConfig, channel: string, nodeId: string) {
    this.#db = db;
    this.#log = log;
    this.#config = config;
    this.channel = channel;
    this.nodeId = nodeId;
  }

  publish(topic: BusTopic, payload = ''): void {
    if (this.#closed) return;
    this.#local.publish(topic, payload);
    const message = JSON.stringify({ t: topic, p: payload, n: this.nodeId });
    if (Buffer.byteLength(message) > MAX_NOTIFY_BYTES) {
      this.#log.error({ topic, bytes: Buffer.byteLength(message) }, 'cluster bus: message too long for NOTIFY, delivered on this node only');
      return;
    }
    sql`select pg_notify(${this.channel}, ${message})`.execute(this.#db).catch((e: unknown) => this.#warn(e, 'cluster bus: NOTIFY failed (the message reached this node only)'));
  }

  subscribe(topic: BusTopic, handler: (payload: string) => void): () => void {
    return this.#local.subscribe(topic, (payload) => {
      try {
        handler(payload);
      } catch (e) {
        this.#log.error({ topic, err: e instanceof Error ? e.message : String(e) }, 'cluster bus: a subscriber failed');
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    const client = this.#client;
    this.#client = undefined;
    await this.#local.close();
    if (client) await client.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config);
    // Until it listens, a failure surfaces through the awaited calls below; after, through these events, once.
    let live = false;
    const onLost = (e?: Error) => {
      if (!live) return;
      live = false;
      this.#lost(client, e);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (m) => {
      if (m.channel === this.channel && m.payload !== undefined) this.#receive(m.payload);
    });
    try {
      await client.connect();
      await client.query(`listen "${this.channel}"`);
    } catch (e) {
      await client.end().catch(() => {});
      throw e;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    live = true;
    this.#client = client;
    if (this.#attempt > 0) this.#log.info({ channel: this.channel }, 'cluster bus: listening again on PostgreSQL');
    this.#attempt = 0;
  }

  #lost(client: pg.Client, e: Error | undefined): void {
    client.end().catch(() => {});
    if (this.#closed || this.#client !== client) return;
    this.#client = undefined;
    this.#warn(e ?? new Error('connection ended'), 'cluster bus: PostgreSQL listening connection lost, reconnecting');
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer) return;
    const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.#attempt, 6)) + Math.floor(Math.random() * 100);
    this.#attempt++;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#closed) return;
      this.#connect().catch((e: unknown) => {
        this.#warn(e, 'cluster bus: PostgreSQL reconnection failed, retrying');
        this.#scheduleReconnect();
      });
    }, delay).unref();
  }

  // A connection that died without a word (a firewall dropping it) shows up only when used: ask it something now and
  // then, and replace it when it does not answer.
  #ping(): void {
    const client = this.#client;
    if (!client) return;
    const timer = setTimeout(() => client.emit('error', new Error(`no answer to a ping within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS).unref();
    client.query('select 1').then(
      () => clearTimeout(timer),
      () => clearTimeout(timer), // the 'error'/'end' handlers take it from here
    );
  }

  #receive(raw: string): void {
    let m: { t?: unknown; p?: unknown; n?: unknown };
    try {
      m = JSON.parse(raw);
    } catch {
      return;
    }
    if (m.n === this.nodeId || typeof m.t !== 'string' || typeof m.p !== 'string') return;
    this.#local.publish(m.t as BusTopic, m.p);
  }

  #warn(e: unknown, msg: string): void {
    const now = Date.now();
    if (now - this.#lastWarn < LOG_EVERY_MS) return;
    this.#lastWarn = now;
    this.#log.warn({ channel: this.channel, err: e instanceof Error ? e.message : String(e) }, msg);
  }
}
