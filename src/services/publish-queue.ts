// Group commit for publishing: one publish runs at a time per distribution, and every request that arrives while it
// runs is served by the next one. Shared by the APT and RPM publishers.
import { deferred, type Deferred } from './async.ts';
import type { UploadTracker } from './upload-tracker.ts';
import type { Logger } from '../log.ts';

export interface PublishResult {
  generation: number;
  date: number;
}

export class PublishQueue {
  readonly #publish: (distributionId: number) => Promise<PublishResult>;
  readonly #uploads: UploadTracker;
  readonly #log: Logger;
  readonly #queues = new Map<number, { running: boolean; waiting: Deferred<PublishResult>[] }>();

  readonly #observe: ((seconds: number) => void) | undefined;
  readonly #onFailure: ((distributionId: number) => void) | undefined;

  constructor(opts: {
    publish: (distributionId: number) => Promise<PublishResult>;
    uploads: UploadTracker;
    log: Logger;
    /** called with the duration of each publish (metrics) */
    observe?: (seconds: number) => void;
    /** called when a publish fails: a publisher drops in-memory state that may have moved ahead of what was written */
    onFailure?: (distributionId: number) => void;
  }) {
    this.#publish = opts.publish;
    this.#uploads = opts.uploads;
    this.#log = opts.log;
    this.#observe = opts.observe;
    this.#onFailure = opts.onFailure;
  }

  /**
   * Resolves once metadata that includes every change committed before this call is live. `label` (ORG/REPO/OS/DIST)
   * lets the publish wait for uploads into the same distribution that are still arriving.
   */
  request(distributionId: number, label?: string): Promise<PublishResult> {
    let q = this.#queues.get(distributionId);
    if (!q) {
      q = { running: false, waiting: [] };
      this.#queues.set(distributionId, q);
    }
    const d = deferred<PublishResult>();
    q.waiting.push(d);
    if (!q.running) void this.#drain(distributionId, q, label);
    return d.promise;
  }

  async #drain(id: number, q: { running: boolean; waiting: Deferred<PublishResult>[] }, label: string | undefined): Promise<void> {
    q.running = true;
    try {
      while (q.waiting.length > 0) {
        if (label) await this.#uploads.quiet(label);
        const batch = q.waiting.splice(0);
        try {
          const started = performance.now();
          const r = await this.#publish(id);
          this.#observe?.((performance.now() - started) / 1000);
          for (const d of batch) d.resolve(r);
        } catch (e) {
          this.#onFailure?.(id);
          this.#log.error({ err: e, distributionId: id }, 'publish failed');
          for (const d of batch) d.reject(e);
        }
      }
    } finally {
      q.running = false;
      this.#queues.delete(id);
    }
  }
}
