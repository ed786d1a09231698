// Importing package files that already lie on the server (`wharf import`, POST .../distributions/OS/DIST/import):
// the way to bring an existing tree of thousands of packages (a createrepo_c or reprepro directory, a build farm's
// output) into a distribution without sending it over HTTP. Only directories under the configured import roots can
// be read, and only by a server admin.
//
// The files are read where they lie, on worker threads (one per core: digests, checks and index entries, see
// import-worker.ts); the main thread stores what they hand back, in chunks, as a batch push does, and one publish
// lists them all. A file is copied into the tree, or with `link` hard-linked (no bytes copied: the file must then
// never be modified in place, only replaced).
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { lstat, readdir, realpath } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative, sep } from 'node:path';
import { WharfError } from '../errors.ts';
import type { FileIdentity } from '../storage/blob-store.ts';
import type { RpmReadLimits } from '../formats/rpm/header.ts';
import type { FileDigests } from '../formats/digests.ts';
import type { PackageKind } from './upload.ts';
import { holdingLoop } from './async.ts';

/** What the workers are told about the files of one import. */
export interface ImportCheckRequest {
  /** the import roots, resolved: an opened file must lie inside one */
  readonly roots: readonly string[];
  readonly dist: string;
  readonly maxBytes: number;
  readonly rpmLimits: RpmReadLimits;
  /** RPMs are re-signed (on the main thread): the worker only reads and hashes them */
  readonly resign: boolean;
  /** hand the bytes of small files back (they are copied from memory; RPMs to re-sign always are) */
  readonly keepBytes: boolean;
}

/** What a worker found in one file. */
export interface ImportChecked {
  kind: PackageKind;
  sha256: string;
  size: number;
  /** the file as checked: a link is made only to this very file, unchanged */
  identity: FileIdentity;
  /** owned by this server's user and not writable by group or others: it may be linked */
  linkable: boolean;
  /** the whole file, when small and asked for */
  bytes?: Uint8Array;
  /** Debian packages: every digest their index gives */
  digests?: FileDigests;
  /** absent for an RPM to be re-signed (checked on the main thread) */
  filename?: string;
  identityText?: string;
  /** the file's key relative to the OS directory */
  relKey?: string;
  /** the row's columns the file determines */
  fields?: Record<string, string | number>;
}

export type ImportWorkerResult = ImportChecked | { error: { code: string; message: string; status: number } };

/** Most files one import takes, and most directories it searches (a larger tree is imported a part at a time). */
export const MAX_IMPORT_FILES = 200_000;
export const MAX_IMPORT_DIRECTORIES = 50_000;

/** The file name endings an import picks up. */
const PACKAGE_FILE = /\.(rpm|deb)$/;

/**
 * The package files (names ending .rpm or .deb) in `dir`, sorted, after checking that `dir` lies inside one of
 * `roots` (both resolved, so neither `..` nor a symbolic link leads out of them). Subdirectories are searched when
 * `recursive` (not those whose names start with a dot, nor through symbolic links).
 */
export async function listImportFiles(
  roots: readonly string[],
  dir: string,
  recursive: boolean,
  limits: { files: number; directories: number } = { files: MAX_IMPORT_FILES, directories: MAX_IMPORT_DIRECTORIES },
): Promise<{ dir: string; files: string[]; roots: string[] }> {
  if (roots.length === 0) throw new WharfError('IMPORT_DISABLED');
  if (typeof dir !== 'string' || dir.length === 0 || dir.length > 4096 || dir.includes('\0')) throw new WharfError('IMPORT_PATH_INVALID', [JSON.stringify(String(dir).slice(0, 200)), 'give the absolute path of a directory on the server']);
  if (!dir.startsWith('/')) throw new WharfError('IMPORT_PATH_INVALID', [JSON.stringify(dir.slice(0, 200)), 'the path must be absolute (the directory as the server sees it)']);
  const shown = JSON.stringify(dir.slice(0, 200));
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    // Said the same way whether it is missing or only outside the roots would be a probe of the server's files.
    throw new WharfError('IMPORT_PATH_NOT_ALLOWED', [shown, roots.join(', ')]);
  }
  // Resolved now (a root may be a symbolic link); one that resolves to / would allow every file, and allows none.
  const realRoots = (await Promise.all(roots.map((r) => realpath(r).catch(() => undefined)))).filter((r): r is string => r !== undefined && r !== sep);
  if (!realRoots.some((r) => real === r || real.startsWith(r + sep))) {
    throw new WharfError('IMPORT_PATH_NOT_ALLOWED', [shown, roots.join(', ')]);
  }
  if (!(await lstat(real)).isDirectory()) throw new WharfError('IMPORT_PATH_INVALID', [shown, 'not a directory']);
  const files: string[] = [];
  let directories = 0;
  const walk = async (d: string): Promise<void> => {
    if (++directories > limits.directories) throw new WharfError('IMPORT_PATH_INVALID', [shown, `it holds more than ${limits.directories} directories: import its subdirectories one at a time`]);
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (recursive && !e.name.startsWith('.')) await walk(p);
      } else if (PACKAGE_FILE.test(e.name)) {
        // Symbolic links and other non-files are listed too: the workers report them as not imported.
        files.push(p);
        if (files.length > limits.files) throw new WharfError('IMPORT_TOO_MANY_FILES', [limits.files]);
      }
    }
  };
  await walk(real);
  if (files.length === 0) throw new WharfError('IMPORT_PATH_INVALID', [shown, `it holds no .rpm or .deb files${recursive ? '' : ' (its subdirectories were not searched)'}`]);
  files.sort();
  return { dir: real, files, roots: realRoots };
}

/** The name a file's result carries: its path relative to the imported directory. */
export function importName(dir: string, file: string): string {
  return file.startsWith(`${dir}/`) ? file.slice(dir.length + 1) : relative(dir, file);
}

/**
 * A local file's bytes for put(), checked as they are read: if they do not hash to what the worker checked, the put
 * fails (and leaves nothing behind) instead of storing something else under the checked name.
 */
export async function* verifiedFile(path: string, sha256: string, size: number): AsyncGenerator<Uint8Array> {
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    n += (chunk as Buffer).byteLength;
    yield chunk as Buffer;
  }
  if (n !== size || h.digest('hex') !== sha256) throw new WharfError('IMPORT_FILE_CHANGED', [path.slice(-200)]);
}

/** Files a worker is given at once, and tasks it holds at once. */
const FILES_PER_TASK = 32;
const TASKS_PER_WORKER = 2;

/**
 * The import worker threads: started with the first import, one per core, and stopped after a while without work
 * (they hold no state between files).
 */
export class ImportWorkers {
  readonly #size: number;
  #workers: Worker[] = [];
  #queue: Task[] = [];
  /** per worker, its tasks by id */
  readonly #running = new Map<Worker, Map<number, Task>>();
  #timer: NodeJS.Timeout | undefined;
  #nextId = 0;
  #closed = false;
  /** how long unused workers are kept */
  static idleMs = 10_000;

  constructor(size = Math.max(1, Math.min(availableParallelism(), 8))) {
    this.#size = size;
  }

  /** Checks `paths` (any number): results in the same order. */
  async check(paths: readonly string[], req: ImportCheckRequest): Promise<ImportWorkerResult[]> {
    if (this.#closed) throw new Error('the import workers are stopped');
    const parts: Promise<ImportWorkerResult[]>[] = [];
    for (let i = 0; i < paths.length; i += FILES_PER_TASK) {
      parts.push(new Promise((resolve, reject) => this.#queue.push({ paths: paths.slice(i, i + FILES_PER_TASK), req, resolve, reject })));
    }
    this.#pump();
    return (await Promise.all(parts)).flat();
  }

  /**
   * Starts the workers ahead of the first check (an import calls it before listing its directory: a worker takes
   * about a tenth of a second to load its modules); they stop again after `idleMs` without work.
   */
  warm(): void {
    if (this.#closed) return;
    while (this.#workers.length < this.#size) this.#start();
    this.#pump();
  }

  #load(w: Worker): number {
    return this.#running.get(w)?.size ?? 0;
  }

  #pump(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#closed) return;
    while (this.#queue.length > 0) {
      // Each worker holds its next task while it works on one: it never waits for this thread to hand it more.
      let w: Worker | undefined = this.#workers.find((x) => this.#load(x) === 0);
      if (!w && this.#workers.length < this.#size) w = this.#start();
      w ??= this.#workers.find((x) => this.#load(x) < TASKS_PER_WORKER);
      if (!w) return;
      const task = this.#queue.shift()!;
      const id = ++this.#nextId;
      this.#running.get(w)!.set(id, task);
      // Paths as one string (no path holds a NUL): a message of 32 strings costs this thread more to send.
      w.postMessage({ id, paths: task.paths.join('\0'), req: task.req });
    }
    if (this.#workers.every((x) => this.#load(x) === 0) && this.#workers.length > 0) {
      this.#timer = setTimeout(() => void this.#stopWorkers(), ImportWorkers.idleMs);
      this.#timer.unref();
    }
  }

  #start(): Worker {
    // Through the compile cache, as the process's own modules (bin/wharf.js): type-stripped once, not per worker.
    const entry = JSON.stringify(new URL('./import-worker.ts', import.meta.url).href);
    const w = new Worker(`require('node:module').enableCompileCache?.(); import(${entry});`, { eval: true });
    w.unref();
    this.#running.set(w, new Map());
    w.on('message', (m: { id: number; results: ImportWorkerResult[] }) => {
      const tasks = this.#running.get(w);
      const task = tasks?.get(m.id);
      tasks?.delete(m.id);
      task?.resolve(m.results);
      this.#pump();
    });
    const gone = (e: unknown) => {
      const tasks = this.#running.get(w);
      this.#running.delete(w);
      this.#workers = this.#workers.filter((x) => x !== w);
      for (const task of tasks?.values() ?? []) task.reject(e instanceof Error ? e : new Error(`an import worker stopped (${String(e)})`));
      this.#pump();
    };
    w.on('error', gone);
    w.on('exit', (code) => gone(new Error(`an import worker exited with code ${code}`)));
    this.#workers.push(w);
    return w;
  }

  async #stopWorkers(): Promise<void> {
    const ws = this.#workers;
    this.#workers = [];
    await holdingLoop(() => Promise.all(ws.map((w) => w.terminate())));
  }

  /** Stops the workers for good: queued and running tasks fail. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const task of this.#queue.splice(0)) task.reject(new Error('the import workers are stopped'));
    await this.#stopWorkers();
  }
}

interface Task {
  paths: string[];
  req: ImportCheckRequest;
  resolve: (r: ImportWorkerResult[]) => void;
  reject: (e: unknown) => void;
}
