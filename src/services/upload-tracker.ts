// Uploads in flight per distribution. A publish waits (at most MAX_GATHER_MS) while uploads into its distribution
// are still arriving, so that a burst of pushes becomes one metadata generation instead of one each. A lone push
// never waits: its own upload is finished when it asks for the publish.

export class UploadTracker {
  static readonly MAX_GATHER_MS = 1000;
  readonly #inFlight = new Map<string, number>();
  readonly #waiters = new Map<string, Set<() => void>>();

  /** Announces an upload into distribution `label` (ORG/REPO/OS/DIST); returns the function that ends it (idempotent). */
  begin(label: string): () => void {
    this.#inFlight.set(label, (this.#inFlight.get(label) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const n = (this.#inFlight.get(label) ?? 1) - 1;
      if (n > 0) {
        this.#inFlight.set(label, n);
        return;
      }
      this.#inFlight.delete(label);
      const waiters = this.#waiters.get(label);
      this.#waiters.delete(label);
      for (const w of waiters ?? []) w();
    };
  }

  /** Resolves when no upload into `label` is in flight, or after MAX_GATHER_MS. */
  quiet(label: string): Promise<void> {
    if (!this.#inFlight.get(label)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let set = this.#waiters.get(label);
      if (!set) this.#waiters.set(label, (set = new Set()));
      const waiters = set;
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, UploadTracker.MAX_GATHER_MS);
      waiters.add(done);
    });
  }
}
