// Starts a real Wharf server process (the same `wharf serve` users run) on a free loopback port with a fresh data
// directory, and runs the real CLI against it.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'src/cli/main.ts');

export interface WharfInstance {
  readonly url: string;
  readonly token: string;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** Everything the server printed (stdout + stderr), for assertions on logs. */
  output(): string;
  /** Runs the CLI with WHARF_URL/WHARF_TOKEN set; never throws on a non-zero exit. */
  cli(args: string[], env?: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export async function startWharf(opts: { env?: Record<string, string>; args?: string[]; dataDir?: string } = {}): Promise<WharfInstance> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'wharf-test-')));
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...(opts.args ?? [])], {
    env: { ...process.env, WHARF_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`wharf did not start in 60 s:\n${out}`)), 60_000);
    const check = () => {
      const m = /Wharf listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`wharf exited with ${code} before listening:\n${out}`));
    });
  });
  // A node joining a shared database finds the admin token already created: the caller gives it (WHARF_ADMIN_TOKEN).
  const token = opts.env?.WHARF_ADMIN_TOKEN ?? (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
  return {
    url,
    token,
    dataDir,
    process: child,
    output: () => out,
    async cli(args, env = {}) {
      try {
        const r = await execFileP(process.execPath, [CLI, ...args], {
          env: { ...process.env, WHARF_URL: url, WHARF_TOKEN: token, ...env },
          maxBuffer: 64 * 1024 * 1024,
        });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
      }
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Builds a .deb with the real dpkg-deb. `control` is the DEBIAN/control text; `files` maps paths to contents. */
export async function buildDeb(
  dir: string,
  control: string,
  files: Record<string, string> = {},
  opts: { compression?: 'gzip' | 'xz' | 'zstd' | 'none' } = {},
): Promise<string> {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const name = /^Package: (.+)$/m.exec(control)![1]!;
  const version = /^Version: (.+)$/m.exec(control)![1]!.replace(/^\d+:/, '');
  const arch = /^Architecture: (.+)$/m.exec(control)![1]!;
  const root = await mkdtemp(join(dir, 'build-'));
  await mkdir(join(root, 'DEBIAN'), { recursive: true });
  await writeFile(join(root, 'DEBIAN/control'), control.endsWith('\n') ? control : control + '\n');
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(root, p, '..'), { recursive: true });
    await writeFile(join(root, p), content, { mode: 0o755 });
  }
  const out = join(dir, `${name}_${version}_${arch}.deb`);
  await execFileP('dpkg-deb', ['--root-owner-group', `-Z${opts.compression ?? 'xz'}`, '--build', root, out]);
  await rm(root, { recursive: true, force: true });
  return out;
}
