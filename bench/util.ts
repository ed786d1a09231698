// Small process and timing helpers for the benchmarks.
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join as joinPath } from 'node:path';
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises';

export function log(s: string): void {
  process.stderr.write(`[bench] ${s}\n`);
}

export interface RunResult {
  stdout: string;
  stderr: string;
  seconds: number;
}

/**
 * Runs a command to completion and returns its output and wall time; throws (with stderr) on a non-zero exit.
 * `stdoutFile` sends stdout to a file instead of memory (shell-style redirection without a shell).
 */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdoutFile?: string; input?: string; allowFail?: boolean } = {},
): Promise<RunResult & { code: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const so: SpawnOptions = { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] };
    if (opts.cwd) so.cwd = opts.cwd;
    if (opts.env) so.env = opts.env;
    const child = spawn(cmd, args as string[], so);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    if (opts.stdoutFile) child.stdout!.pipe(createWriteStream(opts.stdoutFile));
    else child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {}); // EPIPE if the command exits without reading: its exit status tells
      child.stdin!.end(opts.input);
    }
    child.on('error', reject);
    child.on('close', (code) => {
      const r = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), seconds: (performance.now() - t0) / 1000, code: code ?? -1 };
      if (code !== 0 && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.slice(0, 6).join(' ')}${args.length > 6 ? ' ...' : ''} exited with ${code}:\n${r.stderr.slice(-3000)}${r.stdout.slice(-1000)}`));
      } else resolve(r);
    });
  });
}

export function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Peak resident set size (VmHWM) of a process, in bytes. */
export function peakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Current resident set size (VmRSS), in bytes. */
export function currentRss(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Resets VmHWM to the current RSS (Linux: write 5 to clear_refs), so a later peak covers only what follows. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Total CPU time (user + system, seconds) a process has used so far, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  if (!existsSync(`/proc/${pid}/stat`)) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after the command: state(0) ... utime(11) stime(12)
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * Waits until process `pid` has used no CPU for `quietMs` (at most `maxMs`), then `quietMs` more for the benchmark's
 * own leftovers. A timed step of a few tens of milliseconds (one more package) then starts on a settled machine, not
 * while the server still does the previous step's background work (garbage collection, checksums hashed ahead) and
 * the harness still digests its verification of it: on 2 cores that overlap alone moved the CLI figure by 10-15 ms.
 */
/**
 * Waits until the kernel has written every dirty page to disk (sync(1)). Called before each timed cold run, of
 * Wharf and of the reference tools alike: the writeback of the previous run's tens of thousands of files otherwise
 * lands in the middle of the next one and slows whichever tool happens to run then (seen here: the same cold
 * publish taking 3.7 s or 9 s from one minute to the next).
 */
export function quiesceDisk(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
}

export async function settle(pid: number, quietMs = 100, maxMs = 3000): Promise<void> {
  const start = performance.now();
  let last = cpuSeconds(pid);
  let quietSince = performance.now();
  while (performance.now() - start < maxMs) {
    await new Promise((r) => setTimeout(r, 20));
    const now = cpuSeconds(pid);
    if (now !== last) {
      last = now;
      quietSince = performance.now();
    } else if (performance.now() - quietSince >= quietMs) break;
  }
  await new Promise((r) => setTimeout(r, quietMs));
}

export function fmtSeconds(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '-';
  return s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}

export function fmtBytes(b: number): string {
  return `${(b / 1024 / 1024).toFixed(0)} MiB`;
}

/**
 * Removes a benchmark's working tree without deleting it now: it is renamed into a trash directory that is deleted
 * when the benchmark ends. On this machine's ext4 (no journal, online discard), creating thousands of files right
 * after deleting thousands took twice as long (APT cold publish 4.2 s -> 7.0 s), which would charge one run for the
 * previous run's cleanup.
 */
export function discard(path: string): void {
  if (!existsSync(path)) return;
  const trash = joinPath(tmpdir(), `wharf-bench-trash-${process.pid}`);
  if (!trashRegistered) {
    trashRegistered = true;
    process.on('exit', () => rmSync(trash, { recursive: true, force: true }));
  }
  mkdirSync(trash, { recursive: true });
  try {
    renameSync(path, joinPath(trash, `${Date.now()}-${Math.random().toString(36).slice(2)}`));
  } catch {
    rmSync(path, { recursive: true, force: true }); // another filesystem: delete it now
  }
}
let trashRegistered = false;

/**
 * The least any design that stores packages as files must spend on N packages: read each file and write it into a
 * pool layout (a directory per package, a temporary name renamed into place), with no parsing, hashing, database or
 * metadata at all. Run both one file at a time (synchronous calls) and 16 at a time through the thread pool (as
 * Wharf's batch import writes); the faster counts. Printed next to the reference tools, it shows how much of a cold
 * publish is the machine's file system rather than anyone's code: createrepo_c reads the files in place and stores
 * nothing, so on a VM whose file creation is slow this floor alone can exceed its whole run.
 */
export async function storageFloor(files: readonly string[], work: string): Promise<{ seconds: number; sequential: number; concurrent: number }> {
  const poolPath = (root: string, f: string) => {
    const name = basename(f);
    return { dir: joinPath(root, name.slice(0, 1), name.slice(0, 16)), name };
  };
  const seq = joinPath(work, 'floor-sequential');
  rmSync(seq, { recursive: true, force: true });
  quiesceDisk();
  let t0 = performance.now();
  for (const [i, f] of files.entries()) {
    const bytes = readFileSync(f);
    const { dir, name } = poolPath(seq, f);
    mkdirSync(dir, { recursive: true });
    writeFileSync(joinPath(dir, `.tmp-${i}`), bytes, { flag: 'wx' });
    renameSync(joinPath(dir, `.tmp-${i}`), joinPath(dir, name));
  }
  const sequential = (performance.now() - t0) / 1000;
  rmSync(seq, { recursive: true, force: true });
  const conc = joinPath(work, 'floor-concurrent');
  rmSync(conc, { recursive: true, force: true });
  quiesceDisk();
  t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < files.length; i = next++) {
        const bytes = await readFile(files[i]!);
        const { dir, name } = poolPath(conc, files[i]!);
        await mkdir(dir, { recursive: true });
        await writeFile(joinPath(dir, `.tmp-${i}`), bytes, { flag: 'wx' });
        await rename(joinPath(dir, `.tmp-${i}`), joinPath(dir, name));
      }
    }),
  );
  const concurrent = (performance.now() - t0) / 1000;
  rmSync(conc, { recursive: true, force: true });
  return { seconds: Math.min(sequential, concurrent), sequential, concurrent };
}
