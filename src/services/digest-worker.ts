// Digests of large in-memory documents computed on a worker thread. An RPM publish must hash every uncompressed
// metadata document whole (repomd.xml's open-checksum covers a header that holds the package count, so no prefix can
// be kept): at 100,000 packages primary.xml is over 150 MB, and hashing it on the main thread would stall every
// request the process is serving for a tenth of a second. The documents' sealed chunks live in SharedArrayBuffers,
// so handing them to the worker copies nothing; and they are kept (keep()), sent to each worker once: a digest
// names them by number, so a message for a document of thousands of chunks stays a few kilobytes.
//
// A prefix digest (prefix(), then finish() with the rest) lets a publisher hash most of the next document ahead of
// time: the worker keeps the hash state of the prefix and finishes a copy of it when the rest is known.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { deferred, holdingLoop, type Deferred } from './async.ts';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
// Parts kept by number (views of shared memory), and hash states of document prefixes, kept for a later 'finish'
// (which consumes its state) or until dropped.
const kept = new Map();
const prefixes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'keep') {
    for (let i = 0; i < m.keys.length; i++) kept.set(m.keys[i], m.parts[i]);
    return;
  }
  if (m.op === 'release') {
    for (const k of m.keys) kept.delete(k);
    return;
  }
  if (m.op === 'drop') {
    prefixes.delete(m.key);
    return;
  }
  try {
    let h;
    if (m.op === 'finish') {
      h = prefixes.get(m.key);
      prefixes.delete(m.key);
      if (h === undefined) throw new Error('no prefix ' + m.key);
    } else h = createHash(m.algorithm);
    for (const p of m.parts) {
      const bytes = typeof p === 'number' ? kept.get(p) : p;
      if (bytes === undefined) throw new Error('no part ' + p);
      h.update(bytes);
    }
    if (m.op === 'prefix') {
      prefixes.set(m.key, h);
      // Bounded: the oldest go first (finishing one that is gone falls back to hashing the whole).
      if (prefixes.size > 1024) prefixes.delete(prefixes.keys().next().value);
      parentPort.postMessage({ id: m.id, hex: '' });
    } else parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`;

/** Bytes to hash: the bytes themselves, or the number of a part kept on the workers (DigestWorker.keep). */
export type Part = Uint8Array | number;

/** Bytes that a worker can read without a copy: a view of a SharedArrayBuffer (others are copied when posted). */
export function sharedCopy(bytes: Uint8Array): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  view.set(bytes);
  return view;
}

/** One worker thread and the digests it owes. */
class Lane {
  #worker: Worker | undefined;
  readonly #kept: ReadonlyMap<number, Uint8Array>;
  /** bumped whenever a worker starts: prefixes held by an earlier worker are gone */
  generation = 0;
  readonly pending = new Map<number, Deferred<string>>();

  constructor(kept: ReadonlyMap<number, Uint8Array>) {
    this.#kept = kept;
  }

  post(message: { id: number; op: 'digest' | 'prefix' | 'finish'; algorithm: string; parts: readonly Part[]; key?: number }, d: Deferred<string>): void {
    const worker = this.#start();
    this.pending.set(message.id, d);
    if (this.pending.size === 1) worker.ref(); // keeps the process up while a digest is owed, not longer
    worker.postMessage(message);
  }

  /** Sends kept parts (a worker not started yet gets every kept part when it starts). */
  keep(keys: number[], parts: Uint8Array[]): void {
    this.#worker?.postMessage({ op: 'keep', keys, parts });
  }

  release(keys: number[]): void {
    this.#worker?.postMessage({ op: 'release', keys });
  }

  drop(key: number, generation: number): void {
    if (this.#worker && generation === this.generation) this.#worker.postMessage({ op: 'drop', key });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(SOURCE, { eval: true });
    this.generation++;
    worker.unref();
    if (this.#kept.size > 0) worker.postMessage({ op: 'keep', keys: [...this.#kept.keys()], parts: [...this.#kept.values()] });
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
    if (w) await holdingLoop(() => w.terminate());
  }
}

/** The hash state of a prefix, held by one worker until finished or dropped. */
export interface DigestPrefix {
  readonly lane: Lane;
  readonly generation: number;
  readonly key: number;
  readonly algorithm: 'sha256' | 'sha512';
}

/** Worker threads (two, or one on a single CPU) that compute digests; each request goes to the less busy one. */
export class DigestWorker {
  readonly #kept = new Map<number, Uint8Array>();
  readonly #lanes = Array.from({ length: Math.min(2, availableParallelism()) }, () => new Lane(this.#kept));
  #next = 0;
  /** finish() calls answered from their prefix (the others hashed the whole) */
  finishedFromPrefix = 0;

  #lane(): Lane {
    return this.#lanes.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  /**
   * Keeps bytes (a view of a SharedArrayBuffer, see sharedCopy) on the workers until released; digests then name
   * them by the returned numbers instead of sending them again.
   */
  keep(parts: readonly Uint8Array[]): number[] {
    const keys = parts.map((p) => {
      const k = this.#next++;
      this.#kept.set(k, p);
      return k;
    });
    if (keys.length > 0) for (const l of this.#lanes) l.keep(keys, [...parts]);
    return keys;
  }

  /** Lets the workers forget kept parts. */
  release(keys: readonly number[]): void {
    if (keys.length === 0) return;
    for (const k of keys) this.#kept.delete(k);
    for (const l of this.#lanes) l.release([...keys]);
  }

  /** The hex digest of the concatenation of `parts` (views of SharedArrayBuffers are not copied). */
  digest(algorithm: 'sha256' | 'sha512', parts: readonly Part[]): Promise<string> {
    const d = deferred<string>();
    this.#lane().post({ id: this.#next++, op: 'digest', algorithm, parts }, d);
    return d.promise;
  }

  /**
   * Starts hashing `parts` as the beginning of a later digest, in the background: finish() completes it with the
   * rest, drop() discards it. A prefix is used once.
   */
  prefix(algorithm: 'sha256' | 'sha512', parts: readonly Part[]): DigestPrefix {
    const lane = this.#lane();
    const d = deferred<string>();
    d.promise.catch(() => {}); // a failed prefix shows when it is finished
    const key = this.#next++;
    lane.post({ id: key, op: 'prefix', algorithm, parts, key }, d);
    return { lane, generation: lane.generation, key, algorithm };
  }

  /**
   * The digest of the prefix's bytes followed by `rest`. When the prefix is gone (its worker ended, or it was used),
   * the digest of `whole` (the prefix's bytes and the rest) is computed instead: the answer is the same.
   */
  async finish(prefix: DigestPrefix, rest: readonly Part[], whole: readonly Part[]): Promise<string> {
    if (prefix.generation === prefix.lane.generation) {
      const d = deferred<string>();
      prefix.lane.post({ id: this.#next++, op: 'finish', algorithm: prefix.algorithm, parts: rest, key: prefix.key }, d);
      try {
        const hex = await d.promise;
        this.finishedFromPrefix++;
        return hex;
      } catch {
        // gone with its worker: computed whole below
      }
    }
    return this.digest(prefix.algorithm, whole);
  }

  /** Discards a prefix that will not be finished. */
  drop(prefix: DigestPrefix): void {
    prefix.lane.drop(prefix.key, prefix.generation);
  }

  /** Stops the workers (digests still owed are rejected). */
  async close(): Promise<void> {
    await Promise.all(this.#lanes.map((l) => l.close()));
  }
}
