// The cluster bus: nodes tell each other that something cached may have changed. Messages are hints that make the
// change visible at once; every cache they invalidate is also bounded in time on its own (at most a few seconds), so a
// lost message (a node restarting, the bus reconnecting) delays a change, never hides it. Implementations: LocalBus
// (one process: SQLite, or no shared engine), PostgreSQL LISTEN/NOTIFY, Redis pub/sub.

/** What changed. Payloads are short strings (ids), never secrets. */
export type BusTopic =
  /** a token was revoked, rotated or changed: drop the token cache (payload: token id or '') */
  | 'tokens'
  /** a repository was created, deleted or changed visibility (payload: 'ORG/REPO') */
  | 'repos'
  /** Wharf's own JWT signing keys changed: reload the key set */
  | 'jwt-keys'
  /** a distribution's metadata was published (payload: tree prefix of the distribution, e.g. 'public/o/r/debian') */
  | 'published'
  /** an address went over the failed-authentication limit on some node (payload: the address) */
  | 'auth-block';

export interface Bus {
  /** Sends to every node, this one included (handlers run asynchronously). Never throws; failures are logged. */
  publish(topic: BusTopic, payload?: string): void;
  /** Runs `handler` for each message on `topic`; returns the unsubscribe function. */
  subscribe(topic: BusTopic, handler: (payload: string) => void): () => void;
  /** 'local' | 'postgres' | 'redis' */
  readonly kind: string;
  close(): Promise<void>;
}

/** One process: messages go to this process's subscribers only. */
export class LocalBus implements Bus {
  readonly kind = 'local';
  readonly #handlers = new Map<BusTopic, Set<(payload: string) => void>>();

  publish(topic: BusTopic, payload = ''): void {
    const hs = this.#handlers.get(topic);
    if (!hs) return;
    for (const h of hs) queueMicrotask(() => h(payload));
  }

  subscribe(topic: BusTopic, handler: (payload: string) => void): () => void {
    let hs = this.#handlers.get(topic);
    if (!hs) this.#handlers.set(topic, (hs = new Set()));
    hs.add(handler);
    return () => hs.delete(handler);
  }

  async close(): Promise<void> {
    this.#handlers.clear();
  }
}
