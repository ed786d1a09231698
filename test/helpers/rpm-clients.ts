// Shared pieces of the dnf and zypper end-to-end tests: running a client with a private environment, killing the
// gpg-agents that dnf's librepo leaves behind, and snapshots of host paths the tests promise not to change.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Run {
  code: number;
  out: string; // stdout + stderr
}

/**
 * Runs a command with standard input closed (a client that asks a question gets EOF, i.e. "no", instead of hanging);
 * never throws on a non-zero exit, only when the program is missing. Killed after `timeoutMs`.
 */
export function run(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), out });
    });
  });
}

/** A one-line summary of a command and its output, for assertion messages. */
export function show(what: string, r: Run): string {
  return `${what} (exit ${r.code}):\n${r.out}`;
}

/** Kills the gpg-agent of every GnuPG home directory found under `dir` (dnf's per-repository pubring dirs). */
export async function killAgents(dir: string): Promise<void> {
  const homes: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 6 || !existsSync(d)) return;
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    if (entries.includes('pubring.kbx') || entries.includes('pubring.gpg')) homes.push(d);
    for (const e of entries) {
      const p = join(d, e);
      try {
        if (statSync(p).isDirectory() && !statSync(p).isSymbolicLink()) walk(p, depth + 1);
      } catch {
        /* gone */
      }
    }
  };
  walk(dir, 0);
  for (const h of homes) await run('gpgconf', ['--homedir', h, '--kill', 'all']).catch(() => undefined);
}

/**
 * Fingerprints host paths (file contents, directory listings; missing paths too) so a test can check that nothing
 * outside its temporary directory was changed.
 */
export function snapshot(paths: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (p: string, depth: number) => {
    if (!existsSync(p)) {
      out.set(p, 'missing');
      return;
    }
    const st = statSync(p);
    if (st.isDirectory()) {
      const entries = readdirSync(p).sort();
      out.set(p, `dir:${entries.join(',')}`);
      if (depth < 3) for (const e of entries) visit(join(p, e), depth + 1);
    } else if (st.isFile()) {
      out.set(p, `file:${st.size}:${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
    }
  };
  for (const p of paths) visit(p, 0);
  return out;
}

export function diffSnapshots(before: Map<string, string>, after: Map<string, string>): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((k) => before.get(k) !== after.get(k)).map((k) => `${k}: ${before.get(k) ?? 'absent'} -> ${after.get(k) ?? 'absent'}`);
}

/** Host paths dnf, zypper and rpm would write to if they were not kept inside their roots. */
export const HOST_PATHS = [
  '/etc/yum.repos.d',
  '/etc/dnf',
  '/etc/zypp',
  '/etc/pki/rpm-gpg',
  '/var/lib/rpm',
  '/var/lib/dnf',
  '/var/cache/dnf',
  '/var/log/dnf.log',
  '/var/log/dnf.rpm.log',
  '/var/log/dnf.librepo.log',
  '/var/log/hawkey.log',
  '/var/lib/zypp',
  '/var/cache/zypp',
  '/var/log/zypp',
  '/var/log/zypper.log',
  '/run/zypp.pid',
  '/var/run/zypp.pid',
];

/**
 * libzypp's hard-coded curl cookie jar, /var/lib/YaST2/cookies, which it writes whatever the --root: saved before a
 * zypper test and put back exactly afterwards, so the host is left as it was.
 */
export class ZyppCookieJar {
  static readonly DIR = '/var/lib/YaST2';
  static readonly FILE = '/var/lib/YaST2/cookies';
  readonly #dirExisted: boolean;
  readonly #saved: Buffer | undefined;

  private constructor(dirExisted: boolean, saved: Buffer | undefined) {
    this.#dirExisted = dirExisted;
    this.#saved = saved;
  }

  static save(): ZyppCookieJar {
    return new ZyppCookieJar(existsSync(ZyppCookieJar.DIR), existsSync(ZyppCookieJar.FILE) ? readFileSync(ZyppCookieJar.FILE) : undefined);
  }

  restore(): void {
    if (this.#saved !== undefined) writeFileSync(ZyppCookieJar.FILE, this.#saved, { mode: 0o600 });
    else rmSync(ZyppCookieJar.FILE, { force: true });
    if (!this.#dirExisted && existsSync(ZyppCookieJar.DIR) && readdirSync(ZyppCookieJar.DIR).length === 0) rmdirSync(ZyppCookieJar.DIR);
  }

  /** True when the jar and its directory are exactly as saved. */
  unchanged(): boolean {
    const now = existsSync(ZyppCookieJar.FILE) ? readFileSync(ZyppCookieJar.FILE) : undefined;
    const same = now === undefined ? this.#saved === undefined : this.#saved !== undefined && now.equals(this.#saved);
    return same && existsSync(ZyppCookieJar.DIR) === this.#dirExisted;
  }
}
