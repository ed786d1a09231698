// Hard links for the filesystem store, made on a worker thread in batches. An import links thousands of files; on the
// main thread their system calls would cost a third of a second per 10,000 files while that thread also runs the
// database. Calls made in one turn of the event loop go to the worker as one message; the worker runs them one after
// another and answers once.
//
// Where the key is free (every file of a new import), a link is made straight onto it and checked there: two system
// calls. Where a file is already there, the new one is linked under a hidden name, checked, and renamed over it, as
// put replaces a blob: three, and a rename costs more than the other two together (ext4 here: 34 µs against 17 µs
// per file).
//
// The worker is plain JavaScript (evaluated, nothing to load or compile), shared by every store of the process,
// started on first use and kept out of the way while idle (unref'd).
import { Worker } from 'node:worker_threads';
import type { FileIdentity } from './blob-store.ts';

/** One link: `src` linked as `tmp` (in `dir`, created when missing), checked against `expect`, renamed to `dest`. */
export interface LinkJob {
  readonly src: string;
  readonly dir: string;
  readonly tmp: string;
  readonly dest: string;
  readonly expect?: FileIdentity;
}

/** What a link came to; an error carries the system call's code and message. */
export type LinkOutcome = 'linked' | 'changed' | 'unsupported' | { code?: string; message: string };

// The hidden name never survives a failure. A file that is not the one expected is never left under the key: linked
// straight onto a free key, it is there only until the check removes it, and no index names the key before the link
// is answered (the caller holds the key's ingest lock, so no other write of the key runs meanwhile).
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { linkSync, lstatSync, mkdirSync, renameSync, rmSync, unlinkSync } = require('node:fs');
const UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP']);
const matches = (st, x) => st.dev === x.dev && st.ino === x.ino && st.size === x.size && st.mtimeMs === x.mtimeMs;
function one(j) {
  // Straight onto the key when it is free.
  try {
    linkSync(j.src, j.dest);
  } catch (e) {
    if (UNSUPPORTED.has(e.code)) return 'unsupported';
    // EEXIST: a file is there, replaced below; ENOENT: no directory yet (made below), or the file itself gone.
    if (e.code !== 'EEXIST' && e.code !== 'ENOENT') throw e;
    return replace(j);
  }
  if (j.expect && !matches(lstatSync(j.dest), j.expect)) {
    unlinkSync(j.dest);
    return 'changed';
  }
  return 'linked';
}
function replace(j) {
  for (let attempt = 0; ; attempt++) {
    try {
      linkSync(j.src, j.tmp);
      break;
    } catch (e) {
      if (UNSUPPORTED.has(e.code)) return 'unsupported';
      if (e.code !== 'ENOENT' || attempt >= 10) throw e;
      lstatSync(j.src); // the file itself gone: that error is the answer
      mkdirSync(j.dir, { recursive: true }); // else no parent yet (or pruned by a concurrent delete)
    }
  }
  try {
    if (j.expect && !matches(lstatSync(j.tmp), j.expect)) {
      rmSync(j.tmp, { force: true });
      return 'changed';
    }
    renameSync(j.tmp, j.dest);
    // rename(2) of a name onto another link of the same file (the key already held it, or the file is its own key:
    // an import root that holds the store) does nothing: the hidden name is left, and goes now.
    rmSync(j.tmp, { force: true });
    return 'linked';
  } catch (e) {
    rmSync(j.tmp, { force: true });
    throw e;
  }
}
// A batch is flat (structured clone of a thousand small objects costs the main thread more than the links): four
// paths a job (src, dir, tmp, dest) in one string, separated by NUL (which no path holds), and four numbers (dev, ino, size, mtimeMs; NaN dev when nothing is expected).
parentPort.on('message', ({ id, joined, ids }) => {
  const paths = joined.split('\0');
  const out = [];
  for (let k = 0; k < paths.length / 4; k++) {
    const j = { src: paths[4 * k], dir: paths[4 * k + 1], tmp: paths[4 * k + 2], dest: paths[4 * k + 3] };
    if (!Number.isNaN(ids[4 * k])) j.expect = { dev: ids[4 * k], ino: ids[4 * k + 1], size: ids[4 * k + 2], mtimeMs: ids[4 * k + 3] };
    try {
      out.push(one(j));
    } catch (e) {
      out.push({ code: e && e.code, message: String(e && e.message || e) });
    }
  }
  parentPort.postMessage({ id, out });
});
`;

interface Pending {
  readonly job: LinkJob;
  readonly resolve: (o: LinkOutcome) => void;
  readonly reject: (e: unknown) => void;
}

let worker: Worker | undefined;
let nextId = 0;
const inFlight = new Map<number, Pending[]>();
let queue: Pending[] = [];

function start(): Worker {
  if (worker) return worker;
  const w = new Worker(SOURCE, { eval: true });
  w.on('message', ({ id, out }: { id: number; out: LinkOutcome[] }) => {
    const batch = inFlight.get(id);
    inFlight.delete(id);
    if (inFlight.size === 0) w.unref();
    batch?.forEach((p, i) => p.resolve(out[i] ?? { message: 'the link worker gave no answer' }));
  });
  const gone = (e: unknown) => {
    if (worker !== w) return;
    worker = undefined;
    const err = e instanceof Error ? e : new Error(`the link worker stopped (${String(e)})`);
    for (const batch of inFlight.values()) for (const p of batch) p.reject(err);
    inFlight.clear();
  };
  w.on('error', gone);
  w.on('exit', (code) => gone(new Error(`the link worker exited with code ${code}`)));
  worker = w;
  return w;
}

function flush(): void {
  const batch = queue;
  queue = [];
  if (batch.length === 0) return;
  let w: Worker;
  try {
    w = start();
  } catch (e) {
    for (const p of batch) p.reject(e);
    return;
  }
  const id = ++nextId;
  inFlight.set(id, batch);
  w.ref();
  const paths: string[] = new Array(batch.length * 4);
  const ids = new Float64Array(batch.length * 4);
  batch.forEach(({ job: j }, k) => {
    paths[4 * k] = j.src;
    paths[4 * k + 1] = j.dir;
    paths[4 * k + 2] = j.tmp;
    paths[4 * k + 3] = j.dest;
    const x = j.expect;
    ids.set(x ? [x.dev, x.ino, x.size, x.mtimeMs] : [NaN, 0, 0, 0], 4 * k);
  });
  w.postMessage({ id, joined: paths.join('\0'), ids }, [ids.buffer]);
}

/** Links `job` on the worker, together with every other link asked for in this turn of the event loop. */
export function linkOnWorker(job: LinkJob): Promise<LinkOutcome> {
  return new Promise((resolve, reject) => {
    queue.push({ job, resolve, reject });
    if (queue.length === 1) setImmediate(flush);
  });
}
