// The serving part of `npm run bench` (`--only serve`): requests per second of the real Wharf server against a bare
// Node `http` server (bench/bare-server.ts, a fixed 2 KB body) on the same machine, measured with wrk one at a time
// (wrk and the server share the CPUs), only against 127.0.0.1.
//
// Targets (from the issue): (a) an authorised request for a private package file, answered with its 302 to a signed
// URL, >= 60 % of the bare server's req/s; (b) a public metadata GET (dists/DIST/InRelease, 200) >= 70 %.
// When a target is missed (or with --profile) the scenario is run again on a server under --cpu-prof and the samples
// taken during the measured wrk run are summarised per request.
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { buildDebBytes, debMeta } from './debgen.ts';
import { log, run, which, cpuSeconds, fmtBytes } from './util.ts';
import { startWharf, httpPush, NODE, ROOT, type Target, type WharfServer } from './wharf.ts';
import { summariseProfile, type ProfileSummary } from './profile.ts';

export const PUBLIC_TARGET: Target = { org: 'bench', repo: 'public', os: 'debian', dist: 'bookworm' };
export const PRIVATE_TARGET: Target = { org: 'bench', repo: 'private', os: 'debian', dist: 'bookworm' };

export interface ServeBenchOptions {
  /** wrk -d, seconds */
  duration: number;
  /** wrk -t */
  threads: number;
  /** wrk -c */
  connections: number;
  /** un-measured wrk run before each measured one (JIT warm-up), seconds; 0 = none */
  warmup: number;
  /** rounds of (bare, (a), (b)), interleaved; each scenario reports its median round (by req/s) */
  rounds: number;
  /** profile every Wharf scenario, not only those that miss their target */
  profile: boolean;
  work: string;
  /** where the .cpuprofile files are kept */
  profileDir: string;
  out: string;
  wharfVersion: string;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  non2xx3xx: number;
  socketErrors: string | undefined;
  /** CPU seconds the server process used during the measured run */
  serverCpuSeconds: number;
  /** server CPU per request, microseconds */
  serverCpuUsPerRequest: number;
  /** CLOCK_MONOTONIC microseconds around the measured run (to cut a CPU profile to it) */
  window: { fromUs: number; toUs: number };
}

interface Scenario {
  id: 'bare' | 'private_302' | 'public_inrelease';
  label: string;
  url: string;
  headers: string[];
  bodyBytes: number;
  result?: WrkResult;
  rounds: WrkResult[];
}

/** Installs wrk (Debian package) when missing. Needs root. */
export async function ensureWrk(): Promise<void> {
  if (which('wrk')) return;
  if (process.getuid?.() !== 0) throw new Error('missing wrk; install it (apt-get install -y wrk) or run as root');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log('installing wrk: apt-get install -y wrk');
  const r = await run('apt-get', ['install', '-y', 'wrk'], { env, allowFail: true });
  if (r.code !== 0) {
    log('apt-get update, then apt-get install -y wrk');
    await run('apt-get', ['update'], { env });
    await run('apt-get', ['install', '-y', 'wrk'], { env });
  }
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function parseLatency(text: string, pct: string): number {
  const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
}

export function parseWrk(text: string): Omit<WrkResult, 'serverCpuSeconds' | 'serverCpuUsPerRequest' | 'window'> {
  const reqs = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)/m.exec(text);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  if (!reqs || !rps) throw new Error(`cannot read wrk output:\n${text}`);
  return {
    requests: Number(reqs[1]),
    seconds: (Number(reqs[2]) * UNIT_MS[reqs[3]!]!) / 1000,
    rps: Number(rps[1]),
    p50Ms: parseLatency(text, '50'),
    p75Ms: parseLatency(text, '75'),
    p90Ms: parseLatency(text, '90'),
    p99Ms: parseLatency(text, '99'),
    non2xx3xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0),
    socketErrors: /Socket errors: (.*)/.exec(text)?.[1],
  };
}

const monoUs = () => Number(process.hrtime.bigint() / 1000n);

async function wrk(o: ServeBenchOptions, s: Scenario, pid: number, seconds: number): Promise<WrkResult> {
  const u = new URL(s.url);
  if (u.hostname !== '127.0.0.1') throw new Error(`wrk only against 127.0.0.1, not ${u.hostname}`);
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${seconds}s`, '--latency', ...s.headers.flatMap((h) => ['-H', h]), s.url];
  const cpu0 = cpuSeconds(pid);
  const fromUs = monoUs();
  const r = await run('wrk', args);
  const toUs = monoUs();
  const serverCpuSeconds = cpuSeconds(pid) - cpu0;
  const w = parseWrk(r.stdout);
  if (w.non2xx3xx > 0 || w.requests === 0) throw new Error(`wrk ${s.label}: ${w.non2xx3xx} of ${w.requests} responses were not 2xx/3xx:\n${r.stdout}`);
  return { ...w, serverCpuSeconds, serverCpuUsPerRequest: (serverCpuSeconds * 1e6) / w.requests, window: { fromUs, toUs } };
}

/** wrk -d warmup (not measured), then the measured run. */
async function measure(o: ServeBenchOptions, s: Scenario, pid: number): Promise<WrkResult> {
  if (o.warmup > 0) await wrk(o, s, pid, o.warmup);
  const r = await wrk(o, s, pid, o.duration);
  log(`${s.label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, server CPU ${r.serverCpuUsPerRequest.toFixed(0)} us/request`);
  return r;
}

interface BareServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startBare(): Promise<BareServer> {
  const child = spawn(NODE, [join(ROOT, 'bench/bare-server.ts'), '127.0.0.1:0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    const timer = setTimeout(() => rej(new Error(`bare server did not start within 30 s: ${out}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /bare listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`bare server exited with ${code}: ${out}`));
    });
  });
  child.stdout!.resume();
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  return {
    url,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function api(s: WharfServer, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(new URL(path, s.url), {
    method,
    headers: { Authorization: `Bearer ${s.token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** The pool path (Filename:) of the only package in a distribution's binary-amd64/Packages, waiting until it is published. */
async function poolPath(s: WharfServer, t: Target, headers: Record<string, string>): Promise<string> {
  const url = new URL(`/${t.org}/${t.repo}/${t.os}/dists/${t.dist}/main/binary-amd64/Packages`, s.url);
  const until = Date.now() + 30_000;
  for (;;) {
    const r = await fetch(url, { headers });
    const text = r.ok ? await r.text() : '';
    const m = /^Filename: (\S+)$/m.exec(text);
    if (m) return m[1]!;
    if (Date.now() > until) throw new Error(`GET ${url}: HTTP ${r.status}, no Filename: in ${JSON.stringify(text.slice(0, 300))}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

interface WharfSetup {
  server: WharfServer;
  privateUrl: string;
  authorization: string;
  inReleaseUrl: string;
  inReleaseBytes: number;
  locationExample: string;
  debBytes: number;
}

/** Starts Wharf (WHARF_LOG_LEVEL=warn) with a public and a private repository holding one .deb each, and checks both answers. */
async function setupWharf(o: ServeBenchOptions, dataDir: string, extraNodeArgs: string[] = []): Promise<WharfSetup> {
  const server = await startWharf(dataDir, { extraNodeArgs, env: { WHARF_LOG_LEVEL: 'warn' } });
  try {
    mkdirSync(o.work, { recursive: true });
    const pubDeb = join(o.work, debMeta(1).filename);
    const privDeb = join(o.work, debMeta(2).filename);
    writeFileSync(pubDeb, buildDebBytes(debMeta(1)));
    const privBytes = buildDebBytes(debMeta(2));
    writeFileSync(privDeb, privBytes);
    await api(server, 'POST', '/api/v1/repos', { name: `${PUBLIC_TARGET.org}/${PUBLIC_TARGET.repo}` });
    const priv = await api(server, 'POST', '/api/v1/repos', { name: `${PRIVATE_TARGET.org}/${PRIVATE_TARGET.repo}`, private: true });
    const dt = priv.deploy_token as { username?: string; token?: string } | undefined;
    if (!dt?.username || !dt.token) throw new Error(`POST /api/v1/repos (private) returned no deploy_token.username/.token: ${JSON.stringify(priv).slice(0, 500)}`);
    await httpPush(server, [pubDeb], 1, PUBLIC_TARGET);
    await httpPush(server, [privDeb], 1, PRIVATE_TARGET);
    const authorization = `Basic ${Buffer.from(`${dt.username}:${dt.token}`).toString('base64')}`;

    // (a) the private package file: 302 to a signed URL, which serves the package.
    const filename = await poolPath(server, PRIVATE_TARGET, { Authorization: authorization });
    const privateUrl = new URL(`/${PRIVATE_TARGET.org}/${PRIVATE_TARGET.repo}/${PRIVATE_TARGET.os}/${filename}`, server.url).href;
    const r = await fetch(privateUrl, { headers: { Authorization: authorization }, redirect: 'manual' });
    const location = r.headers.get('location') ?? '';
    await r.arrayBuffer();
    if (r.status !== 302 || !location.includes('signature=')) throw new Error(`GET ${privateUrl}: expected 302 with a signed Location, got ${r.status} ${location}`);
    const anon = await fetch(privateUrl, { redirect: 'manual' });
    await anon.arrayBuffer();
    if (anon.status !== 401) throw new Error(`GET ${privateUrl} without credentials: expected 401, got ${anon.status}`);
    const signed = await fetch(new URL(location, server.url));
    const got = Buffer.from(await signed.arrayBuffer());
    if (signed.status !== 200 || !got.equals(privBytes)) throw new Error(`GET ${location}: HTTP ${signed.status}, ${got.length} bytes, expected the pushed ${privBytes.length}-byte package`);

    // (b) the public InRelease.
    await poolPath(server, PUBLIC_TARGET, {});
    const inReleaseUrl = new URL(`/${PUBLIC_TARGET.org}/${PUBLIC_TARGET.repo}/${PUBLIC_TARGET.os}/dists/${PUBLIC_TARGET.dist}/InRelease`, server.url).href;
    const ir = await fetch(inReleaseUrl);
    const irText = await ir.text();
    if (ir.status !== 200 || !irText.startsWith('-----BEGIN PGP SIGNED MESSAGE-----')) throw new Error(`GET ${inReleaseUrl}: HTTP ${ir.status}, not a clearsigned InRelease`);
    log(`wharf: ${privateUrl} -> 302 (signed Location), ${inReleaseUrl} -> 200 (${irText.length} bytes)`);
    return { server, privateUrl, authorization, inReleaseUrl, inReleaseBytes: Buffer.byteLength(irText), locationExample: location, debBytes: privBytes.length };
  } catch (e) {
    await server.stop();
    throw e;
  }
}

interface ProfileRun {
  scenario: Scenario['id'];
  file: string;
  rps: number;
  requests: number;
  summary: ProfileSummary;
}

/** The scenario again on a server under --cpu-prof; the samples of the measured wrk run, per request. */
async function profileScenario(o: ServeBenchOptions, id: Scenario['id']): Promise<ProfileRun | undefined> {
  const dir = join(o.work, `profile-${id}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const w = await setupWharf(o, join(o.work, `wharf-prof-${id}`), ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  let r: WrkResult;
  try {
    r = await measure(o, scenarioOf(id, w), w.server.pid);
  } finally {
    await w.server.stop();
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) {
    log(`profile of ${id}: no .cpuprofile written in ${dir}`);
    return undefined;
  }
  mkdirSync(o.profileDir, { recursive: true });
  const file = join(o.profileDir, `wharf-bench-serve-${id}-${process.pid}.cpuprofile`);
  copyFileSync(join(dir, files[0]!), file);
  const summary = summariseProfile(file, 30, (k) => k.includes('src/') || k.includes('node_modules/') || k.includes('node:'), r.window);
  return { scenario: id, file, rps: r.rps, requests: r.requests, summary };
}

function scenarioOf(id: Scenario['id'], w: WharfSetup): Scenario {
  if (id === 'private_302') return { id, label: '(a) Wharf private package, authorised -> 302', url: w.privateUrl, headers: [`Authorization: ${w.authorization}`], bodyBytes: 0, rounds: [] };
  return { id: 'public_inrelease', label: '(b) Wharf public InRelease -> 200', url: w.inReleaseUrl, headers: [], bodyBytes: w.inReleaseBytes, rounds: [] };
}

export async function benchServe(o: ServeBenchOptions): Promise<string> {
  const started = performance.now();
  log(`serve: wrk -t${o.threads} -c${o.connections} -d${o.duration}s (after a ${o.warmup} s warm-up each), ${o.rounds} round(s), one server at a time; ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}`);
  await ensureWrk();
  const wrkVersion = (await run('wrk', ['--version'], { allowFail: true })).stdout.split('\n')[0]!.trim();
  rmSync(o.work, { recursive: true, force: true });
  mkdirSync(o.work, { recursive: true });

  // The reference: a bare Node http server with a fixed 2 KB body.
  const bare = await startBare();
  const bareScenario: Scenario = { id: 'bare', label: 'bare Node http, fixed 2 KB body', url: `${bare.url}/`, headers: [], bodyBytes: 2048, rounds: [] };
  let w: WharfSetup;
  try {
    w = await setupWharf(o, join(o.work, 'wharf'));
  } catch (e) {
    await bare.stop();
    throw e;
  }
  // Both servers stay up (the idle one costs nothing); wrk drives one at a time, interleaved round by round so a
  // noisy neighbour hits all three alike.
  const wharfScenarios = [scenarioOf('private_302', w), scenarioOf('public_inrelease', w)];
  try {
    for (let i = 0; i < o.rounds; i++) {
      if (o.rounds > 1) log(`serve: round ${i + 1} of ${o.rounds}`);
      bareScenario.rounds.push(await measure(o, bareScenario, bare.pid));
      for (const s of wharfScenarios) s.rounds.push(await measure(o, s, w.server.pid));
    }
  } finally {
    await w.server.stop();
    await bare.stop();
  }
  for (const s of [bareScenario, ...wharfScenarios]) s.result = [...s.rounds].sort((a, b) => a.rps - b.rps)[(s.rounds.length - 1) >> 1]!;

  const need: Record<string, number> = { private_302: 0.6, public_inrelease: 0.7 };
  const base = bareScenario.result!;
  const targets: Record<string, { rps: number; bare_rps: number; ratio: number; need: number; met: boolean }> = {};
  for (const s of wharfScenarios) {
    const ratio = s.result!.rps / base.rps;
    targets[s.id] = { rps: s.result!.rps, bare_rps: base.rps, ratio, need: need[s.id]!, met: ratio >= need[s.id]! };
  }

  const profiles: ProfileRun[] = [];
  for (const s of wharfScenarios) {
    if (!o.profile && targets[s.id]!.met) continue;
    log(`profiling ${s.label} (--cpu-prof, the same wrk run)`);
    const p = await profileScenario(o, s.id as Scenario['id']);
    if (p) profiles.push(p);
  }
  rmSync(o.work, { recursive: true, force: true });

  // ---- report ----
  type Row = [string, string, string, string, string, string, string, string];
  const header: Row = ['server / request', 'body', 'req/s', 'p50', 'p99', 'server CPU/req', '% of bare', 'target met'];
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  const rows: Row[] = [bareScenario, ...wharfScenarios].map((s) => {
    const r = s.result!;
    const t = targets[s.id];
    return [
      s.label,
      `${s.bodyBytes} B`,
      r.rps.toFixed(0),
      ms(r.p50Ms),
      ms(r.p99Ms),
      `${r.serverCpuUsPerRequest.toFixed(0)} us`,
      t ? `${(100 * t.ratio).toFixed(1)} %` : '100 %',
      t ? `${t.met ? 'yes' : 'NO'} (>= ${(100 * t.need).toFixed(0)} %)` : '',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: Row) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out: string[] = [];
  out.push('', `Serving benchmark: ${wrkVersion}, -t${o.threads} -c${o.connections} -d${o.duration}s (${o.warmup} s warm-up each), ${o.rounds} round(s) interleaved, median, 127.0.0.1, one server loaded at a time; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${fmtBytes(totalmem())} RAM, load average ${loadavg()[0]!.toFixed(1)}, Wharf ${o.wharfVersion || '?'}, WHARF_LOG_LEVEL=warn`, '');
  out.push(line(header), widths.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line), '');
  out.push('Details:');
  for (const s of [bareScenario, ...wharfScenarios]) {
    const r = s.result!;
    out.push(`  ${s.label}: GET ${s.url}${s.headers.length ? ` (${s.headers.map((h) => h.split(':')[0]).join(', ')})` : ''}`);
    if (s.rounds.length > 1) out.push(`    req/s per round: ${s.rounds.map((x) => x.rps.toFixed(0)).join(', ')} (median round below)`);
    out.push(`    ${r.requests} requests in ${r.seconds.toFixed(2)} s; latency p50 ${ms(r.p50Ms)}, p75 ${ms(r.p75Ms)}, p90 ${ms(r.p90Ms)}, p99 ${ms(r.p99Ms)}; server CPU ${r.serverCpuSeconds.toFixed(2)} s${r.socketErrors ? `; socket errors: ${r.socketErrors}` : ''}`);
  }
  out.push(`  (a) answers 302, Location e.g. ${w.locationExample.replace(/signature=[^&]+/, 'signature=...')}`);
  for (const p of profiles) {
    const sum = p.summary;
    const perReq = (sec: number) => `${((sec * 1e6) / p.requests).toFixed(1).padStart(6)} us/req`;
    const busy = sum.totalSeconds - sum.idleSeconds;
    out.push('', `  CPU profile of ${p.scenario} under --cpu-prof (${p.rps.toFixed(0)} req/s while profiled; ${p.requests} requests; ${busy.toFixed(2)} s busy of ${sum.totalSeconds.toFixed(2)} s sampled = ${((busy * 1e6) / p.requests).toFixed(1)} us CPU/request on the main thread; ${p.file}):`);
    out.push('    self time by file:');
    for (const x of sum.byFile.slice(0, 15)) out.push(`      ${x.pct.toFixed(1).padStart(5)}%  ${perReq(x.seconds)}  ${x.fn}`);
    out.push('    self time by function:');
    for (const x of sum.self.slice(0, 25)) out.push(`      ${x.pct.toFixed(1).padStart(5)}%  ${perReq(x.seconds)}  ${x.fn}`);
    out.push('    inclusive (src/, node_modules/, node: frames):');
    for (const x of sum.inclusive.slice(0, 30)) out.push(`      ${x.pct.toFixed(1).padStart(5)}%  ${perReq(x.seconds)}  ${x.fn}`);
  }
  out.push(`  serving benchmark took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const results = {
    benchmark: 'serve',
    date: new Date().toISOString(),
    wrk: { version: wrkVersion, threads: o.threads, connections: o.connections, duration: o.duration, warmup: o.warmup },
    machine: { cpus: cpus().length, model: cpus()[0]?.model, totalMemory: totalmem() },
    wharf: { version: o.wharfVersion },
    scenarios: [bareScenario, ...wharfScenarios].map((s) => ({ id: s.id, label: s.label, url: s.url, body_bytes: s.bodyBytes, ...s.result, rounds: s.rounds })),
    targets,
    profiles: profiles.map((p) => ({ scenario: p.scenario, file: p.file, rps: p.rps, requests: p.requests, ...p.summary })),
  };
  writeFileSync(o.out, JSON.stringify(results, null, 2) + '\n');
  out.push(`  results (JSON): ${o.out}`, '');
  return out.join('\n');
}
