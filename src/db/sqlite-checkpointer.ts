// WAL checkpoints on a worker thread. SQLite's automatic checkpoint runs inside the commit that takes the WAL past
// 1,000 pages: that commit copies the pages into the database file on the thread that committed, which for Wharf is
// the one thread that also answers every request. A batch of 10,000 RPMs writes 25 MB of rows; half of the time its
// commits took went to those checkpoints. Here the server's connection does not checkpoint by itself; shortly after it
// writes, a second connection on a worker thread runs a PASSIVE checkpoint (it never waits for, nor blocks, readers
// or the writer). If the worker fails, the connection checkpoints by itself again.
//
// A WAL starts over from its beginning only when a write begins after every frame was copied. Under a steady stream
// of commits the worker never catches up to that moment, so the connection keeps SQLite's own checkpoint as a safety
// net at a higher mark (SAFETY_NET_PAGES): reached, the committing connection copies what the worker has not yet
// copied (little) and the WAL starts over.
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.path);
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const r = checkpoint.get();
    parentPort.postMessage({ id: m, log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ id: m, error: String((e && e.message) || e) });
  }
});
`;

/** How long after a write the checkpoint runs (writes in between share it). */
const DELAY_MS = 100;

/** The connection's own automatic checkpoint, above SQLite's 1,000 pages: 32 MiB of 8 KiB pages. */
export const SAFETY_NET_PAGES = 4000;

export class SqliteCheckpointer {
  readonly #path: string;
  readonly #fallback: (e: unknown) => void;
  #worker: Worker | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = 0;
  #dirty = false;
  #failed = false;
  #closed = false;
  #nextId = 0;
  #idle: (() => void)[] = [];
  /** checkpoints run (tests) */
  completed = 0;

  /** `fallback` is called once if checkpoints cannot run here: the connection must checkpoint by itself again. */
  constructor(path: string, fallback: (e: unknown) => void) {
    this.#path = path;
    this.#fallback = fallback;
  }

  /** A write was committed: a checkpoint follows shortly. */
  wrote(): void {
    if (this.#failed || this.#closed) return;
    this.#dirty = true;
    if (!this.#timer && this.#running === 0) {
      this.#timer = setTimeout(() => this.#run(), DELAY_MS);
      this.#timer.unref();
    }
  }

  #run(): void {
    this.#timer = undefined;
    if (this.#failed || this.#closed || !this.#dirty) return this.#settle();
    this.#dirty = false;
    try {
      this.#worker ??= this.#start();
    } catch (e) {
      return this.#fail(e);
    }
    this.#running++;
    this.#worker.ref();
    this.#worker.postMessage(++this.#nextId);
  }

  #start(): Worker {
    const w = new Worker(SOURCE, { eval: true, workerData: { path: this.#path } });
    w.unref();
    w.on('message', (m: { error?: string }) => {
      this.#running--;
      w.unref();
      if (m.error !== undefined) return this.#fail(new Error(m.error));
      this.completed++;
      // Writes during the checkpoint: another one after them.
      if (this.#dirty) this.wrote();
      else this.#settle();
    });
    w.on('error', (e) => this.#fail(e));
    w.on('exit', () => {
      if (this.#worker === w) this.#worker = undefined;
      if (this.#running > 0) this.#fail(new Error('the checkpoint worker exited'));
    });
    return w;
  }

  #fail(e: unknown): void {
    this.#running = 0;
    if (!this.#failed) {
      this.#failed = true;
      this.#fallback(e);
    }
    this.#settle();
  }

  #settle(): void {
    if (this.#running > 0 || this.#timer) return;
    for (const f of this.#idle.splice(0)) f();
  }

  /** Resolves once no checkpoint is running or due (tests). */
  idle(): Promise<void> {
    if (this.#running === 0 && !this.#timer) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Stops the worker after the checkpoint it runs, if any (the connection closing then checkpoints the rest). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dirty = false;
    await this.idle();
    const w = this.#worker;
    this.#worker = undefined;
    if (!w) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    // Kept alive until it has closed its connection: a process with nothing else to do waits for it.
    w.ref();
    w.postMessage('close');
    await exited;
  }
}
