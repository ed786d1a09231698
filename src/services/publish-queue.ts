// Group commit for publishing: one publish runs at a time per distribution, and every request that arrives while it
// runs is served by the next one. Shared by the APT and RPM publishers.
//
// Across nodes: a publish runs under the distribution's 'publish' lock (src/services/locks.ts, a PostgreSQL advisory
// lock), so two nodes never write one distribution's metadata at once. Requests made after a push or a yank (whose
// transaction bumped the distribution's `changes`) ask to coalesce: once the lock is held, if the last publish — by
// any node — already included every committed change (`published_changes = changes`), there is nothing to do. So the
// pushes that arrive at three nodes while one of them publishes become one more generation, not one per node.
import { deferred, type Deferred } from './async.ts';
import type { UploadTracker } from './upload-tracker.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../db/database.ts';
import type { Locks } from './locks.ts';

export interface PublishResult {
  generation: number;
  date: number;
}

export interface PublishRequestOptions {
  /** ORG/REPO/OS/DIST: the publish first waits (briefly) for uploads into the same distribution still arriving */
  label?: string;
  /**
   * The change this request is for was committed with a bump of the distribution's `changes`: a publish that already
   * includes it (by this node or another) satisfies the request. Without it, the request always publishes.
   */
  coalesce?: boolean;
}

interface Waiter {
  d: Deferred<PublishResult>;
  coalesce: boolean;
}

export class PublishQueue {
  readonly #publish: (distributionId: number) => Promise<PublishResult>;
  readonly #uploads: UploadTracker;
  readonly #log: Logger;
  readonly #db: Db;
  readonly #locks: Locks;
  readonly #queues = new Map<number, { running: boolean; waiting: Waiter[] }>();
  /** publishes skipped because another publish already included every change (metrics, tests) */
  coalesced = 0;

  readonly #observe: ((seconds: number) => void) | undefined;
  readonly #onFailure: ((distributionId: number) => void) | undefined;
  readonly #onPublished: ((distributionId: number) => void) | undefined;

  constructor(opts: {
    db: Db;
    locks: Locks;
    publish: (distributionId: number) => Promise<PublishResult>;
    uploads: UploadTracker;
    log: Logger;
    /** called with the duration of each publish (metrics) */
    observe?: (seconds: number) => void;
    /** called when a publish fails: a publisher drops in-memory state that may have moved ahead of what was written */
    onFailure?: (distributionId: number) => void;
    /** called after new metadata went live (other nodes drop their cached copies) */
    onPublished?: (distributionId: number) => void;
  }) {
    this.#db = opts.db;
    this.#locks = opts.locks;
    this.#publish = opts.publish;
    this.#uploads = opts.uploads;
    this.#log = opts.log;
    this.#observe = opts.observe;
    this.#onFailure = opts.onFailure;
    this.#onPublished = opts.onPublished;
  }

  /**
   * Resolves once metadata that includes every change committed before this call is live. `label` (ORG/REPO/OS/DIST)
   * lets the publish wait for uploads into the same distribution that are still arriving.
   */
  request(distributionId: number, opts: PublishRequestOptions = {}): Promise<PublishResult> {
    let q = this.#queues.get(distributionId);
    if (!q) {
      q = { running: false, waiting: [] };
      this.#queues.set(distributionId, q);
    }
    const d = deferred<PublishResult>();
    q.waiting.push({ d, coalesce: opts.coalesce === true });
    if (!q.running) void this.#drain(distributionId, q, opts.label);
    return d.promise;
  }

  async #drain(id: number, q: { running: boolean; waiting: Waiter[] }, label: string | undefined): Promise<void> {
    q.running = true;
    try {
      while (q.waiting.length > 0) {
        if (label) await this.#uploads.quiet(label);
        const batch = q.waiting.splice(0);
        try {
          const r = await this.#locks.run('publish', id, async () => {
            if (batch.every((w) => w.coalesce)) {
              const current = await this.#current(id);
              if (current) {
                this.coalesced++;
                return current;
              }
            }
            const started = performance.now();
            const r = await this.#publish(id);
            this.#observe?.((performance.now() - started) / 1000);
            this.#onPublished?.(id);
            return r;
          });
          for (const w of batch) w.d.resolve(r);
        } catch (e) {
          this.#onFailure?.(id);
          this.#log.error({ err: e, distributionId: id }, 'publish failed');
          for (const w of batch) w.d.reject(e);
        }
      }
    } finally {
      q.running = false;
      this.#queues.delete(id);
    }
  }

  /** The last publish's result when it already includes every committed change, else undefined. */
  async #current(id: number): Promise<PublishResult | undefined> {
    const row = await this.#db
      .selectFrom('distributions')
      .select(['generation', 'published_at', 'changes', 'published_changes'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row || row.published_at === null || Number(row.changes) !== Number(row.published_changes)) return undefined;
    return { generation: row.generation, date: Math.floor(Number(row.published_at) / 1000) };
  }
}
