// The cluster bus on Redis pub/sub. Messages go out on the shared client; a second connection, opened here, listens
// (a subscribed Redis connection can do nothing else) on one channel, PREFIX + 'bus', and ioredis subscribes it again
// by itself after a reconnect. Messages sent while it is down are lost, which the bus contract allows.
// This node's subscribers get its own messages directly, at once, even while Redis is unreachable; the copy that comes
// back through Redis is recognised by the node id and skipped.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../log.ts';
import { LocalBus, type Bus, type BusTopic } from './bus.ts';
import { closeRedis, subscriberConnection, type RedisClient } from './redis.ts';

const LOG_EVERY_MS = 30_000;

/** CLIENT SETNAME of the subscribed connection (CLIENT LIST shows it): 'wharf-bus-' + the node id. */
export const REDIS_BUS_CONNECTION_PREFIX = 'wharf-bus-';

export interface RedisBusOptions {
  /** prefix of the channel name (default 'wharf:'): nodes with the same prefix form one cluster */
  prefix?: string;
}

export class RedisBus implements Bus {
  readonly kind = 'redis';
  /** random per instance: tells this node's messages apart when Redis delivers them back */
  readonly nodeId: string;
  readonly channel: string;
  readonly #client: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #log: Logger;
  readonly #local = new LocalBus();
  #closed = false;
  #lastWarn = 0;

  /**
   * Opens the subscribed connection (same server and settings as `client`) and subscribes. Publishes on `client`,
   * which stays the caller's: close() ends only the connection opened here.
   */
  static async open(client: RedisClient, log: Logger, options: RedisBusOptions = {}): Promise<RedisBus> {
    const nodeId = randomBytes(8).toString('hex');
    const channel = (options.prefix ?? 'wharf:') + 'bus';
    const subscriber = await subscriberConnection(client, log, REDIS_BUS_CONNECTION_PREFIX + nodeId);
    const bus = new RedisBus(client, subscriber, log, channel, nodeId);
    subscriber.on('message', (ch: string, raw: string) => {
      if (ch === channel) bus.#receive(raw);
    });
    try {
      await subscriber.subscribe(channel);
    } catch (e) {
      await closeRedis(subscriber);
      throw e;
    }
    return bus;
  }

  /** Use RedisBus.open(). */
  constructor(client: RedisClient, subscriber: RedisClient, log: Logger, channel: string, nodeId: string) {
    this.#client = client;
    this.#subscriber = subscriber;
    this.#log = log;
    this.channel = channel;
    this.nodeId = nodeId;
  }

  publish(topic: BusTopic, payload = ''): void {
    if (this.#closed) return;
    this.#local.publish(topic, payload);
    const message = JSON.stringify({ t: topic, p: payload, n: this.nodeId });
    this.#client.publish(this.channel, message).catch((e: unknown) => this.#warn(e));
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
    if (this.#closed) return;
    this.#closed = true;
    await this.#local.close();
    await closeRedis(this.#subscriber);
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

  #warn(e: unknown): void {
    const now = Date.now();
    if (now - this.#lastWarn < LOG_EVERY_MS) return;
    this.#lastWarn = now;
    this.#log.warn({ channel: this.channel, err: e instanceof Error ? e.message : String(e) }, 'cluster bus: PUBLISH failed (the message reached this node only)');
  }
}
