// Digests of large in-memory documents computed on a worker thread. An RPM publish must hash every uncompressed
// metadata document whole (repomd.xml's open-checksum covers a header that holds the package count, so no prefix can
// be kept): at 100,000 packages primary.xml is over 150 MB, and hashing it on the main thread would stall every
// request the process is serving for a tenth of a second. The documents' sealed chunks live in SharedArrayBuffers,
// so handing them to the worker copies nothing.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { deferred, type Deferred } from './async.ts';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, algorithm, parts }) => {
  try {
    const h = createHash(algorithm);
    for (const p of parts) h.update(p);
    parentPort.postMessage({ id, hex: h.digest('hex') });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message || e) });
  }
});
`;

/** Bytes that a worker can read without a copy: a view of a SharedArrayBuffer (others are copied when posted). */
export function sharedCopy(bytes: Uint8Array): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  view.set(bytes);
  return view;
}

/** One worker thread and the digests it owes. */
class Lane {
  #worker: Worker | undefined;
  readonly pending = new Map<number, Deferred<string>>();

  post(id: number, algorithm: string, parts: readonly Uint8Array[], d: Deferred<string>): void {
    const worker = this.#start();
    this.pending.set(id, d);
    if (this.pending.size === 1) worker.ref(); // keeps the process up while a digest is owed, not longer
    worker.postMessage({ id, algorithm, parts });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(SOURCE, { eval: true });
    worker.unref();
    worker.on('message', ({ id, hex, error }: { id: number; hex?: string; error?: string }) => {
      const d = this.pending.get(id);
      this.pending.delete(id);
      if (this.pending.size === 0) worker.unref();
      if (error !== undefined || hex === undefined) d?.reject(new Error(`digest worker: ${error ?? 'no result'}`));
      else d?.resolve(hex);
    });
    const fail = (e: unknown) => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const d of this.pending.values()) d.reject(e instanceof Error ? e : new Error(`digest worker ended: ${String(e)}`));
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`digest worker exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    if (w) await w.terminate();
  }
}

/** Worker threads (two, or one on a single CPU) that compute digests; each request goes to the less busy one. */
export class DigestWorker {
  readonly #lanes = Array.from({ length: Math.min(2, availableParallelism()) }, () => new Lane());
  #next = 0;

  /** The hex digest of the concatenation of `parts` (views of SharedArrayBuffers are not copied). */
  digest(algorithm: 'sha256' | 'sha512', parts: readonly Uint8Array[]): Promise<string> {
    const lane = this.#lanes.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const d = deferred<string>();
    lane.post(this.#next++, algorithm, parts, d);
    return d.promise;
  }

  /** Stops the workers (digests still owed are rejected). */
  async close(): Promise<void> {
    await Promise.all(this.#lanes.map((l) => l.close()));
  }
}
