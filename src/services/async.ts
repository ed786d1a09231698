/** Small concurrency primitives shared by services. */

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A keyed async mutex: callers with the same key run one at a time, in arrival order. */
export class KeyedMutex<K> {
  readonly #tails = new Map<K, Promise<void>>();

  async run<T>(key: K, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /**
   * Runs `fn` holding every key of `keys` (duplicates allowed). The caller joins all the keys' queues at once,
   * synchronously, so callers of several keys are ordered by arrival on every key they share and never wait for each
   * other in a cycle.
   */
  async runAll<T>(keys: readonly K[], fn: () => Promise<T>): Promise<T> {
    const unique = [...new Set(keys)];
    if (unique.length === 1) return this.run(unique[0]!, fn);
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const prevs: Promise<void>[] = [];
    const tails: [K, Promise<void>][] = [];
    for (const key of unique) {
      const prev = this.#tails.get(key);
      if (prev) prevs.push(prev);
      const tail = (prev ?? Promise.resolve()).then(() => mine);
      this.#tails.set(key, tail);
      tails.push([key, tail]);
    }
    await Promise.all(prevs);
    try {
      return await fn();
    } finally {
      release();
      for (const [key, tail] of tails) if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/**
 * Runs `fn` over `items` with at most `limit` in flight, keeping result order. After a failure no further item is
 * started, and the call rejects (with the first error) only once the items already running have settled: nothing of
 * the work is still going on when the caller learns of the failure (and, say, releases locks or deletes inputs).
 */
/**
 * Runs `fn` with the event loop held open. A worker's terminate() settles on the worker's exit event, which a process
 * with nothing else to do does not wait for (the worker's own handle no longer counts once it is stopping): the
 * process would end with the promise unsettled, and whatever was to follow (closing the database) never happen.
 */
export async function holdingLoop<T>(fn: () => Promise<T>): Promise<T> {
  const hold = setInterval(() => {}, 1 << 30);
  try {
    return await fn();
  } finally {
    clearInterval(hold);
  }
}

/** At most `limit` of the functions given to run() at once; the others wait, in arrival order. */
export class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#free = limit;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        if (!failed) firstError = e;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw firstError;
  return out;
}
