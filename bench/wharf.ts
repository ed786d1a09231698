// Drives a real Wharf server process for the benchmark: start, push with the CLI or a plain HTTP client, verify.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request, Agent } from 'node:http';
import { createHash } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, run } from './util.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Node 24 from node_modules (the system node may be older). */
export const NODE = process.execPath;
// What users run (npx wharf): the launcher enables Node's compile cache.
const MAIN = join(ROOT, 'bin/wharf.js');

export const TARGET = { org: 'bench', repo: 'apt', os: 'debian', dist: 'bench' };
export const TARGET_PATH = `${TARGET.org}/${TARGET.repo}/${TARGET.os}/${TARGET.dist}`;

/** Where packages are pushed: ORG/REPO and the distribution (OS/DIST). The APT benchmark uses TARGET. */
export interface Target {
  org: string;
  repo: string;
  os: string;
  dist: string;
}

const targetPath = (t: Target) => `${t.org}/${t.repo}/${t.os}/${t.dist}`;

export interface WharfServer {
  url: string;
  token: string;
  pid: number;
  dataDir: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `keep`: start on the data directory as it is (a restart), instead of an empty one. */
export async function startWharf(dataDir: string, opts: { extraNodeArgs?: string[]; env?: Record<string, string>; keep?: boolean } = {}): Promise<WharfServer> {
  if (!opts.keep) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true });
  }
  const child = spawn(NODE, [...(opts.extraNodeArgs ?? []), MAIN, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir], {
    cwd: ROOT,
    env: { ...process.env, WHARF_LOG_LEVEL: 'warn', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (stderr.length > 20000) stderr = stderr.slice(-10000);
  });
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`wharf did not start within 60 s:\n${out}\n${stderr}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /Wharf listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`wharf exited with ${code} before listening:\n${out}\n${stderr}`));
    });
  });
  child.stdout!.resume();
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  return {
    url,
    token,
    pid: child.pid!,
    dataDir,
    child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(t);
      if (child.exitCode && child.exitCode !== 0 && stderr) log(`wharf stderr: ${stderr.slice(-2000)}`);
    },
  };
}

function cliEnv(s: WharfServer): NodeJS.ProcessEnv {
  return { ...process.env, WHARF_URL: s.url, WHARF_TOKEN: s.token };
}

export async function createRepo(s: WharfServer, target: Target = TARGET, extraArgs: string[] = []): Promise<void> {
  await run(NODE, [MAIN, 'repo', 'create', `${target.org}/${target.repo}`, ...extraArgs], { env: cliEnv(s), cwd: ROOT });
}

/** How many times distributions were published so far (the highest generation; group commit merges pushes). */
export function publishCount(dataDir: string): number {
  const db = new DatabaseSync(join(dataDir, 'wharf.db'), { readOnly: true });
  try {
    const row = db.prepare('SELECT max(generation) AS g FROM distributions').get() as { g: number | null } | undefined;
    return Number(row?.g ?? 0);
  } catch {
    return NaN;
  } finally {
    db.close();
  }
}

/** Longest argument list given to one CLI invocation (bytes); bigger lists are pushed in consecutive batches. */
const MAX_ARGS_BYTES = 1_000_000;

/**
 * Pushes files with the real CLI (`wharf push ... --jobs N`), from the files' directory with relative names so one
 * invocation can take 10,000 files. Returns the wall time of the whole push (all batches).
 */
export async function cliPush(s: WharfServer, files: readonly string[], jobs: number, target: Target = TARGET): Promise<{ seconds: number; batches: number }> {
  const dir = dirname(files[0]!);
  const names = files.map((f) => {
    if (dirname(f) !== dir) throw new Error('cliPush: files must share one directory');
    return basename(f);
  });
  const batches: string[][] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const n of names) {
    if (bytes + n.length + 1 > MAX_ARGS_BYTES && cur.length) {
      batches.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(n);
    bytes += n.length + 1;
  }
  if (cur.length) batches.push(cur);
  const t0 = performance.now();
  for (const b of batches) {
    const r = await run(NODE, [MAIN, 'push', targetPath(target), ...b, '--jobs', String(jobs), '--json'], { env: cliEnv(s), cwd: dir, allowFail: true });
    if (r.code !== 0) throw new Error(`wharf push failed (exit ${r.code}): ${r.stderr.slice(-2000)} ${r.stdout.slice(0, 2000)}`);
  }
  return { seconds: (performance.now() - t0) / 1000, batches: batches.length };
}

/**
 * Imports the package files of `dir` (on this machine, under the server's import roots) with the real CLI
 * (`wharf import TARGET DIR [--link]`): no upload, the server reads them in place.
 */
export async function cliImport(s: WharfServer, dir: string, link: boolean, target: Target = TARGET): Promise<{ seconds: number }> {
  const t0 = performance.now();
  const r = await run(NODE, [MAIN, 'import', targetPath(target), dir, ...(link ? ['--link'] : []), '--json'], { env: cliEnv(s), cwd: ROOT, allowFail: true });
  const seconds = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`wharf import failed (exit ${r.code}): ${r.stderr.slice(-2000)} ${r.stdout.slice(0, 2000)}`);
  return { seconds };
}

/**
 * Pushes files over HTTP with `concurrency` requests in flight (keep-alive).
 * once metadata including the package is live, like the CLI. Files are read inside the timed region.
 */
export async function httpPush(s: WharfServer, files: readonly string[], concurrency: number, target: Target = TARGET): Promise<{ seconds: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const u = new URL(`/api/v1/repos/${target.org}/${target.repo}/distributions/${target.os}/${target.dist}/packages`, s.url);
  const push = (body: Buffer) =>
    new Promise<void>((res, rej) => {
      const req = request(
        u,
        { method: 'POST', agent, headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/octet-stream', 'Content-Length': body.length } },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => ((r.statusCode ?? 500) < 300 ? res() : rej(new Error(`HTTP ${r.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 500)}`))));
          r.on('error', rej);
        },
      );
      req.on('error', rej);
      req.end(body);
    });
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++]!;
      await push(await readFile(f));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  return { seconds };
}

export async function get(url: string): Promise<Buffer> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

/**
 * Checks the published tree: InRelease is signed, names the sha256 of binary-amd64/Packages, and that Packages holds
 * `expectCount` stanzas including every name in `mustContain`.
 */
export async function verifyPublished(s: WharfServer, expectCount: number, mustContain: readonly string[]): Promise<void> {
  const base = `${s.url}/${TARGET.org}/${TARGET.repo}/${TARGET.os}/dists/${TARGET.dist}`;
  const inRelease = (await get(`${base}/InRelease`)).toString();
  if (!inRelease.startsWith('-----BEGIN PGP SIGNED MESSAGE-----')) throw new Error('InRelease is not clearsigned');
  const packages = await get(`${base}/main/binary-amd64/Packages`);
  const sha = createHash('sha256').update(packages).digest('hex');
  const sha256Section = inRelease.split(/^SHA256:$/m)[1] ?? '';
  if (!new RegExp(`^ ${sha}\\s+${packages.length}\\s+main/binary-amd64/Packages$`, 'm').test(sha256Section)) {
    throw new Error(`InRelease does not list the served Packages (sha256 ${sha}, ${packages.length} bytes)`);
  }
  const text = packages.toString();
  const count = (text.match(/^Package: /gm) ?? []).length;
  if (count !== expectCount) throw new Error(`Packages (amd64) has ${count} stanzas, expected ${expectCount}`);
  for (const name of mustContain) {
    if (!text.includes(`\nPackage: ${name}\n`) && !text.startsWith(`Package: ${name}\n`)) throw new Error(`Packages does not list ${name}`);
  }
}
