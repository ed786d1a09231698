// Group commit for publishing: one publish runs at a time per distribution, and every request that arrives while it
// runs is served by the next one. Shared by the APT and RPM publishers.
//
// Across nodes: a publish runs under the distribution's 'publish' lock (src/services/locks.ts, a PostgreSQL advisory
// lock), so two nodes never write one distribution's metadata at once. Every stored or removed package bumps the
// distribution's `changes` in the transaction that writes it, and the push learns the value it got (its target); a
// publish records the `changes` it read before reading rows. A request is satisfied by any publish, on any node,
// whose recorded value reaches its target:
// - when a node finishes a publish it tells the others (the cluster bus, `published()`), and their waiting pushes
//   that the publish covered are answered at once, without taking the lock;
// - a node that gets the lock first checks the database, and publishes only for requests still not covered.
// So the pushes that arrive at three nodes while one of them publishes become one more generation, not three.
import { deferred, type Deferred } from './async.ts';
import type { UploadTracker } from './upload-tracker.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../db/database.ts';
import type { Locks } from './locks.ts';

export interface PublishResult {
  generation: number;
  date: number;
  /** the distribution's `changes` the publish included (every change up to it is live) */
  changes: number;
}

export interface PublishRequestOptions {
  /** ORG/REPO/OS/DIST: the publish first waits (briefly) for uploads into the same distribution still arriving */
  label?: string;
  /**
   * The change this request is for was committed with a bump of the distribution's `changes`: a publish that already
   * includes it (by this node or another) satisfies the request. Without it, the request always publishes.
   */
  coalesce?: boolean;
  /**
   * With coalesce: the `changes` value the change got. A publish that included it satisfies the request. Without a
   * target, only a publish that included every committed change does (an identical re-push: its row is older).
   */
  target?: number;
}

interface Waiter {
  d: Deferred<PublishResult>;
  coalesce: boolean;
  target: number | undefined;
  done: boolean;
}

interface Queue {
  running: boolean;
  waiting: Waiter[];
  /** the batch being served (waiting for the lock or publishing) */
  batch: Waiter[];
}

/** Work the housekeeping after a publish leaves for once the publish lock is released (or nothing). */
export type AfterRelease = (() => Promise<void>) | undefined | void;

export class PublishQueue {
  readonly #publish: (distributionId: number) => Promise<PublishResult>;
  readonly #afterPublish: ((distributionId: number, idle: boolean) => Promise<AfterRelease>) | undefined;
  readonly #uploads: UploadTracker;
  readonly #log: Logger;
  readonly #db: Db;
  readonly #locks: Locks;
  readonly #queues = new Map<number, Queue>();
  /** requests answered by a publish that another run (here or on another node) had already made (metrics, tests) */
  coalesced = 0;

  readonly #observe: ((seconds: number) => void) | undefined;
  readonly #onFailure: ((distributionId: number) => void) | undefined;
  readonly #onPublished: ((distributionId: number, result: PublishResult) => void) | undefined;

  constructor(opts: {
    db: Db;
    locks: Locks;
    publish: (distributionId: number) => Promise<PublishResult>;
    /** runs after a publish has answered its requests, under the same lock (garbage collection) */
    afterPublish?: (distributionId: number, idle: boolean) => Promise<AfterRelease>;
    uploads: UploadTracker;
    log: Logger;
    /** called with the duration of each publish (metrics) */
    observe?: (seconds: number) => void;
    /** called when a publish fails: a publisher drops in-memory state that may have moved ahead of what was written */
    onFailure?: (distributionId: number) => void;
    /** called after new metadata went live (other nodes drop their cached copies and answer covered pushes) */
    onPublished?: (distributionId: number, result: PublishResult) => void;
  }) {
    this.#db = opts.db;
    this.#locks = opts.locks;
    this.#publish = opts.publish;
    this.#afterPublish = opts.afterPublish;
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
    // Stopping: what it would publish is left to the reconciler of the next start (or of another node).
    if (this.#closed) return Promise.reject(new Error('the publisher is closed (the server is stopping)'));
    let q = this.#queues.get(distributionId);
    if (!q) {
      q = { running: false, waiting: [], batch: [] };
      this.#queues.set(distributionId, q);
    }
    const d = deferred<PublishResult>();
    q.waiting.push({ d, coalesce: opts.coalesce === true, target: opts.coalesce ? opts.target : undefined, done: false });
    if (!q.running) {
      const drain = this.#drain(distributionId, q, opts.label).finally(() => this.#draining.delete(drain));
      this.#draining.add(drain);
    }
    return d.promise;
  }

  /** the queues being worked through (publishes and their housekeeping) */
  readonly #draining = new Set<Promise<void>>();

  /**
   * Resolves once no publish or housekeeping of this queue runs (those requested meanwhile included): close() of a
   * publisher waits for it before stopping what they use (workers, locks, the database).
   */
  async settled(): Promise<void> {
    while (this.#draining.size > 0) await Promise.allSettled([...this.#draining]);
  }

  #closed = false;

  /** Takes no more requests, and resolves once the publishes and housekeeping under way have ended. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.settled();
  }

  /**
   * A publish of `distributionId` went live somewhere (this node or another, through the cluster bus): answers the
   * waiting requests it covers.
   */
  published(distributionId: number, result: PublishResult): void {
    const q = this.#queues.get(distributionId);
    if (result.changes > (this.#known.get(distributionId) ?? -1)) {
      if (this.#known.size >= 10_000 && !this.#known.has(distributionId)) this.#known.clear(); // bounded, like every cache here
      this.#known.set(distributionId, result.changes);
    }
    if (!q) return;
    for (const w of [...q.batch, ...q.waiting]) {
      if (!w.done && w.coalesce && w.target !== undefined && w.target <= result.changes) {
        w.done = true;
        this.coalesced++;
        w.d.resolve(result);
      }
    }
    q.waiting = q.waiting.filter((w) => !w.done);
  }

  async #drain(id: number, q: Queue, label: string | undefined): Promise<void> {
    q.running = true;
    try {
      while (q.waiting.length > 0) {
        if (label) await this.#uploads.quiet(label);
        q.batch = q.waiting.splice(0).filter((w) => !w.done);
        if (q.batch.length === 0) continue;
        const batch = q.batch;
        const open = () => batch.filter((w) => !w.done);
        let afterRelease: AfterRelease;
        try {
          const r = await this.#locks.run('publish', id, async () => {
            // Answered meanwhile by another node's publish (the bus): nothing to do.
            if (open().length === 0) return undefined;
            // Whether a publish by another node already covers them. Not asked when this node has heard of the
            // last publish (the bus announces every one before its lock is released) and it covers none of them:
            // then they need a publish, and the query would only delay it. (A publish not heard of yet only makes
            // this one unnecessary, never wrong.)
            const known = this.#known.get(id);
            const surelyUncovered = known !== undefined && open().every((w) => w.target !== undefined && w.target > known);
            if (open().every((w) => w.coalesce) && !surelyUncovered) {
              const current = await this.#current(id);
              if (current) {
                for (const w of open()) {
                  if (w.target !== undefined ? w.target <= current.changes : current.changes === current.latest) {
                    w.done = true;
                    this.coalesced++;
                    w.d.resolve(current);
                  }
                }
                if (open().length === 0) return undefined;
              }
            }
            const started = performance.now();
            const r = await this.#publish(id);
            this.#observe?.((performance.now() - started) / 1000);
            this.#onPublished?.(id, r);
            // The new metadata is live: the waiting pushes are answered now, and the housekeeping (deleting files
            // retired long enough ago) runs after, still under the lock; its failure is not the publish's.
            for (const w of open()) {
              w.done = true;
              w.d.resolve(r);
            }
            // So are the pushes queued meanwhile whose changes it includes (committed before it read the rows).
            this.published(id, r);
            if (this.#afterPublish) {
              afterRelease = await this.#afterPublish(id, !q.waiting.some((w) => !w.done)).catch((e: unknown) => {
                this.#log.warn({ err: e, distributionId: id }, 'cleanup after a publish failed');
                return undefined;
              });
            }
            return r;
          });
          // What the housekeeping left for after the lock (work that takes other locks: see collectRetiredPackages).
          if (afterRelease) await afterRelease().catch((e: unknown) => this.#log.warn({ err: e, distributionId: id }, 'cleanup after a publish failed'));
          if (r) {
            for (const w of open()) {
              w.done = true;
              w.d.resolve(r);
            }
          }
        } catch (e) {
          this.#onFailure?.(id);
          this.#log.error({ err: e, distributionId: id }, 'publish failed');
          for (const w of open()) {
            w.done = true;
            w.d.reject(e);
          }
        }
        q.batch = [];
      }
    } finally {
      q.running = false;
      this.#queues.delete(id);
    }
  }

  /** per distribution, the highest `changes` a publish heard of on this node (its own or announced) included */
  readonly #known = new Map<number, number>();

  /** The last publish's result with the `changes` it included, and the latest committed `changes`; undefined before the first. */
  async #current(id: number): Promise<(PublishResult & { latest: number }) | undefined> {
    const row = await this.#db
      .selectFrom('distributions')
      .select(['generation', 'published_at', 'changes', 'published_changes'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row || row.published_at === null) return undefined;
    return {
      generation: row.generation,
      date: Math.floor(Number(row.published_at) / 1000),
      changes: Number(row.published_changes),
      latest: Number(row.changes),
    };
  }
}

/** Milliseconds per phase of a publish, for its log line: lap(name) closes the phase that ran since the last lap. */
export function phaseTimer(): { timings: Record<string, number>; lap(name: string): void } {
  const timings: Record<string, number> = {};
  let mark = performance.now();
  return {
    timings,
    lap(name: string) {
      const t = performance.now();
      timings[name] = Math.round(t - mark);
      mark = t;
    },
  };
}
