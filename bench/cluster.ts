// The scale-out part of `npm run bench` (`--only cluster`; issue 6): N packages (default 1,000) pushed by C parallel
// clients (default 32) spread round-robin over 3 Wharf nodes (directly to each node's URL) sharing PostgreSQL, an
// S3-API server (s3rver, in a child process of its own by default) and Redis — test/helpers/cluster.ts — into ONE
// distribution (acme/fleet/debian/bookworm; el/9 for --cluster-format rpm).
//
// Target (from the issue): >= 200 packages per second, zero lost. Timed from the first request to the last 201; a
// push answers only once the metadata containing it is live, so the last 201 means everything is published.
// Reported per run: packages/s, push latency p50/p95/max, metadata generations (distributions.generation), failed
// pushes, and the zero-lost check (the Packages / primary.xml.gz of every node lists all N names, and
// distributions.published_changes == changes == N). Where the time goes: CPU seconds per process group (nodes,
// PostgreSQL, Redis, s3rver, the client) and of the whole machine, the nodes' wharf_publish_duration_seconds, S3
// requests by method, and pg_stat_activity sampled every 100 ms (who waits on what).
//
// Everything shares one machine: the nodes, PostgreSQL, Redis, s3rver (a Node S3 emulator writing files) and the
// client. s3rver keeps its objects in /dev/shm by default (--cluster-s3-dir): on disk its cost per request varied
// 2-4x from run to run with the file system's state (the emulator's own files, nothing a real S3 service would charge
// to this machine), and that noise swamped what the nodes do. The generated packages are built in memory before the clock starts.
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'node:http';
import { buildDebBytes, debMeta } from './debgen.ts';
import { buildRpmBytes, rpmMeta } from './rpmgen.ts';
import { log, median, fmtSeconds } from './util.ts';
import { summariseProfile, type ProfileSummary } from './profile.ts';
import { startCluster, type Cluster } from '../test/helpers/cluster.ts';

export type ClusterFormat = 'deb' | 'rpm';

export interface ClusterBenchOptions {
  n: number;
  clients: number;
  nodes: number;
  runs: number;
  formats: ClusterFormat[];
  s3: 'child' | 'in-process';
  /** where s3rver (in its child process) keeps the objects; undefined: the system's temporary directory */
  s3Dir: string | undefined;
  /** run the nodes under --cpu-prof (one extra run per format, not counted) */
  profile: boolean;
  profileDir: string;
  /** WHARF_LOG_LEVEL of the nodes; at info the nodes' "published" lines give the time per publish phase */
  logLevel: string;
  /**
   * how clients push: 'wait' (the default push: answered once the metadata lists the package; timed to the last
   * answer) and/or 'async' (Prefer: respond-async: answered 202 once stored; timed until the signed metadata lists
   * every package)
   */
  modes: PushMode[];
  out: string;
  wharfVersion: string;
}

const TARGET_PKG_PER_S = 200;
/** one generated package, its bytes copied into an ArrayBuffer of its own (a fetch body) */
type Pkg = { name: string; bytes: Uint8Array<ArrayBuffer> };
const REPO = 'acme/fleet';
const DIST: Record<ClusterFormat, { os: string; dist: string }> = { deb: { os: 'debian', dist: 'bookworm' }, rpm: { os: 'el', dist: '9' } };

interface CpuSnapshot {
  nodes: number;
  postgres: number;
  redis: number;
  s3: number;
  client: number;
  /** the whole machine (all CPUs, busy jiffies) */
  machine: number;
}

export type PushMode = 'wait' | 'async';

export interface ClusterRun {
  format: ClusterFormat;
  mode: PushMode;
  seconds: number;
  pkgPerSecond: number;
  latency: { p50: number; p95: number; max: number };
  /**
   * Each push split at its row's created_at (stamped by the node once the package is in S3, before the row commits):
   * ingest = request start -> created_at (upload, staging, checks, ingest lock, S3 PUT), publish wait = created_at ->
   * the 201 (commit, then waiting for a generation that includes it). p50 / p95 in seconds.
   */
  split?: { ingestP50: number; ingestP95: number; waitP50: number; waitP95: number };
  generations: number;
  changes: number;
  publishedChanges: number;
  failed: number;
  failures: string[];
  /** names missing from each node's final index (zero lost: all empty) */
  missingPerNode: number[];
  zeroLost: boolean;
  cpu: CpuSnapshot;
  publish: { count: number; seconds: number; perNode: { count: number; seconds: number }[] };
  s3Requests: Record<string, { count: number; bytes: number }>;
  /** pg_stat_activity samples on the cluster database: connections by state / wait event, summed over samples */
  pgWaits: Record<string, number>;
  pgSamples: number;
  loadBefore: number;
  /** milliseconds per phase of a publish, from the nodes' "published" log lines (log level info only) */
  publishPhases?: Record<string, PhaseStats>;
}

interface PhaseStats {
  mean: number;
  p50: number;
  p90: number;
  max: number;
}

function procStat(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

function pidsNamed(name: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === name) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / 100;
}

/** CPU seconds so far per group; postgres/redis by process name (connections that ended meanwhile are lost). */
function cpuSnapshot(c: Cluster, perPid: Map<number, number>): CpuSnapshot {
  const sum = (pids: number[]) => pids.reduce((a, p) => a + procStat(p), 0);
  const pg = pidsNamed('postgres');
  for (const p of pg) perPid.set(p, procStat(p));
  const self = process.cpuUsage();
  const clientSeconds = (self.user + self.system) / 1e6;
  const s3 = c.s3Pid === process.pid ? 0 : procStat(c.s3Pid);
  return {
    nodes: sum(c.nodes.map((n) => n!.process.pid!)),
    postgres: sum(pg),
    redis: sum(pidsNamed('redis-server')),
    s3,
    client: clientSeconds, // includes s3rver when it runs in-process
    machine: machineBusy(),
  };
}

function diffCpu(a: CpuSnapshot, b: CpuSnapshot, pgBefore: Map<number, number>, pgAfter: Map<number, number>): CpuSnapshot {
  // PostgreSQL: per backend, so backends started during the run count from zero.
  let pg = 0;
  for (const [pid, t] of pgAfter) pg += t - (pgBefore.get(pid) ?? 0);
  return { nodes: b.nodes - a.nodes, postgres: pg, redis: b.redis - a.redis, s3: b.s3 - a.s3, client: b.client - a.client, machine: b.machine - a.machine };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function publishMetrics(url: string, format: ClusterFormat): Promise<{ count: number; seconds: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const num = (name: string) => Number(new RegExp(`^${name}\\{format="${format}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { count: num('wharf_publish_duration_seconds_count'), seconds: num('wharf_publish_duration_seconds_sum') };
}

/** Names in the node's final index: main/binary-amd64/Packages (deb) or x86_64 primary.xml.gz via repomd.xml (rpm; noarch packages are listed there too). */
async function publishedNames(base: string, format: ClusterFormat): Promise<Set<string>> {
  const get = async (path: string) => {
    const r = await fetch(`${base}/${path}`, { redirect: 'follow' });
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
    return Buffer.from(await r.arrayBuffer());
  };
  if (format === 'deb') {
    const text = (await get(`${REPO}/debian/dists/bookworm/main/binary-amd64/Packages`)).toString();
    return new Set([...text.matchAll(/^Package: (\S+)$/gm)].map((m) => m[1]!));
  }
  const repomd = (await get(`${REPO}/el/9/x86_64/repodata/repomd.xml`)).toString();
  const href = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(repomd)?.[1];
  if (!href) throw new Error('repomd.xml names no primary');
  const primary = gunzipSync(await get(`${REPO}/el/9/x86_64/${href}`)).toString();
  return new Set([...primary.matchAll(/<name>([^<]+)<\/name>/g)].map((m) => m[1]!));
}

function buildPackages(format: ClusterFormat, n: number): Pkg[] {
  const t0 = performance.now();
  const out = Array.from({ length: n }, (_, k) => {
    if (format === 'deb') {
      const m = { ...debMeta(k + 1), standalone: true };
      return { name: m.name, bytes: new Uint8Array(buildDebBytes(m)) };
    }
    const m = { ...rpmMeta(k + 1), standalone: true };
    return { name: m.name, bytes: new Uint8Array(buildRpmBytes(m)) };
  });
  log(`cluster: built ${n} synthetic ${format} packages in memory in ${fmtSeconds((performance.now() - t0) / 1000)}`);
  return out;
}

async function oneRun(o: ClusterBenchOptions, format: ClusterFormat, mode: PushMode, pkgs: Pkg[], label: string, nodeEnv: Record<string, string> = {}): Promise<ClusterRun> {
  const loadBefore = loadavg()[0]!;
  const cluster = await startCluster({ nodes: o.nodes, s3: o.s3, ...(o.s3Dir ? { s3Dir: o.s3Dir } : {}), env: { WHARF_LOG_LEVEL: o.logLevel, ...nodeEnv } });
  try {
    const { os, dist } = DIST[format];
    const created = await fetch(`${cluster.node(0).url}/api/v1/repos`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cluster.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: REPO }),
    });
    if (created.status !== 201) throw new Error(`creating ${REPO}: ${created.status} ${await created.text()}`);
    const urls = Array.from({ length: o.nodes }, (_, i) => `${cluster.node(i).url}/api/v1/repos/${REPO}/distributions/${os}/${dist}/packages`);
    const metricsBefore = await Promise.all(Array.from({ length: o.nodes }, (_, i) => publishMetrics(cluster.node(i).url, format)));
    const s3Before = (await cluster.s3Requests()).length;

    // pg_stat_activity sampler (its own connection is cluster.db; its own row is excluded).
    const pgWaits: Record<string, number> = {};
    let pgSamples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await cluster.db.query(
          `select coalesce(wait_event_type, 'CPU/none') as t, coalesce(wait_event, '') as e, state from pg_stat_activity
            where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
        );
        pgSamples++;
        for (const row of r.rows as { t: string; e: string; state: string }[]) {
          const k = row.state === 'active' ? `active: ${row.t}${row.e ? `/${row.e}` : ''}` : `${row.state}${row.t === 'Client' ? '' : `: ${row.t}/${row.e}`}`;
          pgWaits[k] = (pgWaits[k] ?? 0) + 1;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const pgBefore = new Map<number, number>();
    const pgAfter = new Map<number, number>();
    const cpu0 = cpuSnapshot(cluster, pgBefore);
    const latencies: number[] = [];
    const sentAt = new Map<string, { sent: number; done: number }>();
    const failures: string[] = [];
    let next = 0;
    // node:http with keep-alive rather than fetch: the client shares the two cores with the nodes, and undici spent
    // about twice the CPU per push.
    const agent = new Agent({ keepAlive: true, maxSockets: o.clients });
    const t0 = performance.now();
    let tLast = t0;
    await Promise.all(
      Array.from({ length: o.clients }, async () => {
        for (let i = next++; i < pkgs.length; i = next++) {
          const s = performance.now();
          const sentWall = Date.now();
          try {
            const r = await post(agent, urls[i % o.nodes]!, { Authorization: `Bearer ${cluster.token}`, 'Content-Type': 'application/octet-stream', ...(mode === 'async' ? { Prefer: 'respond-async' } : {}) }, pkgs[i]!.bytes);
            const body = r.body;
            const e = performance.now();
            if (r.status !== (mode === 'async' ? 202 : 201)) failures.push(`${pkgs[i]!.name} via node ${i % o.nodes}: ${r.status} ${body.slice(0, 200)}`);
            else {
              latencies.push((e - s) / 1000);
              sentAt.set(pkgs[i]!.name, { sent: sentWall, done: sentWall + (e - s) });
              tLast = Math.max(tLast, e);
            }
          } catch (err) {
            failures.push(`${pkgs[i]!.name} via node ${i % o.nodes}: ${(err as Error).message}`);
          }
        }
      }),
    );
    agent.destroy();
    if (mode === 'async') {
      // Answered once stored: the clock runs until the signed metadata lists every package that was accepted.
      const accepted = latencies.length;
      for (const deadline = performance.now() + 120_000; performance.now() < deadline; ) {
        const q = await cluster.db.query('select published_changes from distributions where os = $1 and name = $2', [DIST[format].os, DIST[format].dist]);
        if (Number(q.rows[0]?.published_changes ?? 0) >= accepted) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      tLast = performance.now();
    }
    const seconds = (tLast - t0) / 1000;
    const cpu1 = cpuSnapshot(cluster, pgAfter);
    sampling = false;
    await sampler;

    const g = await cluster.db.query('select generation, changes, published_changes from distributions where os = $1 and name = $2', [os, dist]);
    const row = g.rows[0] ?? {};
    const missingPerNode: number[] = [];
    for (let i = 0; i < o.nodes; i++) {
      const names = await publishedNames(cluster.node(i).url, format);
      missingPerNode.push(pkgs.filter((p) => !names.has(p.name)).length);
    }
    const metricsAfter = await Promise.all(Array.from({ length: o.nodes }, (_, i) => publishMetrics(cluster.node(i).url, format)));
    const perNode = metricsAfter.map((m, i) => ({ count: m.count - metricsBefore[i]!.count, seconds: m.seconds - metricsBefore[i]!.seconds }));
    const s3Requests: Record<string, { count: number; bytes: number }> = {};
    for (const r of (await cluster.s3Requests()).slice(s3Before)) {
      const q = new URL(r.url, 'http://x').searchParams;
      const k = `${r.method}${q.has('uploadId') ? ' (multipart)' : q.has('list-type') ? ' (list)' : ''}`;
      const e = (s3Requests[k] ??= { count: 0, bytes: 0 });
      e.count++;
      e.bytes += r.contentLength;
    }
    const stamped = await cluster.db.query(`select name, created_at from ${format}_packages`);
    const ingestS: number[] = [];
    const waitS: number[] = [];
    for (const row of stamped.rows as { name: string; created_at: string }[]) {
      const t = sentAt.get(row.name);
      if (!t) continue;
      ingestS.push((Number(row.created_at) - t.sent) / 1000);
      waitS.push((t.done - Number(row.created_at)) / 1000);
    }
    const split = ingestS.length ? { ingestP50: percentile(ingestS, 50), ingestP95: percentile(ingestS, 95), waitP50: percentile(waitS, 50), waitP95: percentile(waitS, 95) } : undefined;
    let publishPhases: Record<string, PhaseStats> | undefined;
    const phaseValues: Record<string, number[]> = {};
    for (let i = 0; i < o.nodes; i++) {
      for (const l of cluster.node(i).output().split('\n')) {
        if (!l.includes('"published"')) continue;
        try {
          const j = JSON.parse(l) as { msg?: string; ms?: Record<string, number> };
          if (j.msg !== 'published' || !j.ms) continue;
          for (const [k, v] of Object.entries(j.ms)) (phaseValues[k] ??= []).push(v);
        } catch {
          // not a JSON log line
        }
      }
    }
    if (Object.keys(phaseValues).length) {
      publishPhases = Object.fromEntries(
        Object.entries(phaseValues).map(([k, v]) => [k, { mean: v.reduce((a, b) => a + b, 0) / v.length, p50: percentile(v, 50), p90: percentile(v, 90), max: Math.max(...v) }]),
      );
    }
    const changes = Number(row.changes ?? NaN);
    const publishedChanges = Number(row.published_changes ?? NaN);
    const run: ClusterRun = {
      format,
      mode,
      seconds,
      pkgPerSecond: latencies.length / seconds,
      latency: latencies.length ? { p50: percentile(latencies, 50), p95: percentile(latencies, 95), max: Math.max(...latencies) } : { p50: NaN, p95: NaN, max: NaN },
      generations: Number(row.generation ?? NaN),
      changes,
      publishedChanges,
      failed: failures.length,
      failures: failures.slice(0, 20),
      missingPerNode,
      zeroLost: failures.length === 0 && missingPerNode.every((m) => m === 0) && changes === pkgs.length && publishedChanges === pkgs.length,
      cpu: diffCpu(cpu0, cpu1, pgBefore, pgAfter),
      publish: { count: perNode.reduce((a, p) => a + p.count, 0), seconds: perNode.reduce((a, p) => a + p.seconds, 0), perNode },
      s3Requests,
      pgWaits,
      pgSamples,
      loadBefore,
      ...(publishPhases ? { publishPhases } : {}),
      ...(split ? { split } : {}),
    };
    log(
      `cluster ${label}: ${pkgs.length} ${format} in ${fmtSeconds(seconds)} = ${run.pkgPerSecond.toFixed(0)} pkg/s, p50 ${fmtSeconds(run.latency.p50)}, p95 ${fmtSeconds(run.latency.p95)}, ` +
        `${run.generations} generations, ${run.failed} failed, zero lost: ${run.zeroLost ? 'yes' : 'NO'} (changes ${changes}, published ${publishedChanges}, missing per node ${missingPerNode.join('/')}); ` +
        `CPU s: nodes ${run.cpu.nodes.toFixed(1)}, postgres ${run.cpu.postgres.toFixed(1)}, s3rver ${run.cpu.s3.toFixed(1)}, client ${run.cpu.client.toFixed(1)}, redis ${run.cpu.redis.toFixed(1)}, machine ${run.cpu.machine.toFixed(1)}`,
    );
    for (const f of run.failures.slice(0, 5)) log(`  failed: ${f}`);
    return run;
  } finally {
    await cluster.close();
  }
}

function profileSummaries(dir: string): { file: string; summary: ProfileSummary }[] {
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
  return files.map((f) => ({ file: join(dir, f), summary: summariseProfile(join(dir, f), 20, (k) => k.includes('src/') || k.includes('node_modules/')) }));
}

export async function benchCluster(o: ClusterBenchOptions): Promise<string> {
  const started = performance.now();
  log(`cluster: ${o.n} packages, ${o.clients} clients, ${o.nodes} nodes, ${o.runs} run(s) per format (${o.formats.join(', ')}), s3rver ${o.s3 === 'child' ? 'in a child process' : 'in the client process'}; ${cpus().length} CPUs`);
  const runs: ClusterRun[] = [];
  const profiles: { format: ClusterFormat; files: { file: string; summary: ProfileSummary }[]; run: ClusterRun }[] = [];
  for (const format of o.formats) {
    const pkgs = buildPackages(format, o.n);
    for (const mode of o.modes) for (let r = 1; r <= o.runs; r++) runs.push(await oneRun(o, format, mode, pkgs, `${format} ${mode} run ${r}/${o.runs}`));
    if (o.profile) {
      const dir = join(o.profileDir, `wharf-bench-cluster-profile-${process.pid}-${format}`);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const run = await oneRun(o, format, o.modes[0]!, pkgs, `${format} under --cpu-prof`, { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` });
      profiles.push({ format, files: profileSummaries(dir), run });
    }
  }

  // ---- report ----
  type Row = [string, string, string, string, string, string, string];
  const rows: Row[] = [];
  const targets: Record<string, { best: number; median: number; need: number; met: boolean; zeroLost: boolean }> = {};
  for (const format of o.formats) {
    for (const mode of o.modes) {
      const rs = runs.filter((r) => r.format === format && r.mode === mode);
      if (!rs.length) continue;
      const rates = rs.map((r) => r.pkgPerSecond);
      const best = Math.max(...rates);
      const med = median(rates);
      const allZeroLost = rs.every((r) => r.zeroLost);
      const met = med >= TARGET_PKG_PER_S && allZeroLost;
      targets[mode === 'wait' ? `cluster_${format}` : `cluster_${format}_async`] = { best, median: med, need: TARGET_PKG_PER_S, met, zeroLost: allZeroLost };
      const bestRun = rs.find((r) => r.pkgPerSecond === best)!;
      const medRun = [...rs].sort((a, b) => a.pkgPerSecond - b.pkgPerSecond)[(rs.length - 1) >> 1]!;
      const lat = (r: ClusterRun) => `${fmtSeconds(r.latency.p50)} / ${fmtSeconds(r.latency.p95)}`;
      const how = mode === 'wait' ? 'pushes answered when live' : 'pushes answered when stored (respond-async), timed until all live';
      rows.push([`${o.n} ${format} ${how}, ${o.clients} clients, ${o.nodes} nodes: median of ${rs.length}`, `${med.toFixed(0)} pkg/s`, lat(medRun), String(medRun.generations), String(rs.reduce((a, r) => a + r.failed, 0)), allZeroLost ? 'yes' : 'NO', met ? 'yes' : 'NO']);
      rows.push([`    best of ${rs.length}`, `${best.toFixed(0)} pkg/s`, lat(bestRun), String(bestRun.generations), String(bestRun.failed), bestRun.zeroLost ? 'yes' : 'NO', best >= TARGET_PKG_PER_S && bestRun.zeroLost ? 'yes' : 'NO']);
    }
  }
  const header: Row = [`operation (target >= ${TARGET_PKG_PER_S} pkg/s, zero lost)`, 'rate', 'p50 / p95 push', 'generations', 'failed', 'zero lost', 'target met'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: Row) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out: string[] = [];
  out.push(
    '',
    `Scale-out benchmark: ${o.n} packages pushed by ${o.clients} parallel clients round-robin over ${o.nodes} nodes (directly to each node) into one distribution, on PostgreSQL + S3 (s3rver) + Redis; ` +
      `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, load average ${loadavg()[0]!.toFixed(1)}, Wharf ${o.wharfVersion || '?'}, WHARF_LOG_LEVEL=${o.logLevel}, WHARF_FSYNC=false`,
    `One machine for everything: the ${o.nodes} nodes, PostgreSQL, Redis, s3rver (a Node S3 emulator writing files, ${o.s3 === 'child' ? `in a process of its own, its objects in ${o.s3Dir ?? 'the temporary directory'}` : 'in the client process'}) and the client. ` +
      'Pushes answered when live: timed from the first request to the last 201 (a push answers once metadata containing it is live). ' +
      'Answered when stored (Prefer: respond-async, 202): timed from the first request until the signed metadata lists every accepted package.',
    '',
  );
  out.push(line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), '');
  out.push('Details (per run):');
  for (const r of runs) {
    const c = r.cpu;
    const acc = c.nodes + c.postgres + c.redis + c.s3 + c.client;
    out.push(
      `  ${r.format} (${r.mode}): ${fmtSeconds(r.seconds)}, ${r.pkgPerSecond.toFixed(0)} pkg/s; push latency p50 ${fmtSeconds(r.latency.p50)}, p95 ${fmtSeconds(r.latency.p95)}, max ${fmtSeconds(r.latency.max)}; ${r.generations} generations ` +
        `(${r.publish.count} publishes by the nodes: ${r.publish.perNode.map((p) => p.count).join('/')}, mean ${fmtSeconds(r.publish.count ? r.publish.seconds / r.publish.count : NaN)}, ${fmtSeconds(r.publish.seconds)} in all); ` +
        `failed ${r.failed}; changes ${r.changes}, published ${r.publishedChanges}, missing per node ${r.missingPerNode.join('/')}; load average before ${r.loadBefore.toFixed(1)}`,
    );
    out.push(
      `    CPU seconds during the run (${(r.seconds * cpus().length).toFixed(1)} available): nodes ${c.nodes.toFixed(1)}, PostgreSQL ${c.postgres.toFixed(1)}, s3rver ${o.s3 === 'child' ? c.s3.toFixed(1) : '(in client)'}, ` +
        `client ${c.client.toFixed(1)}, Redis ${c.redis.toFixed(1)}; machine ${c.machine.toFixed(1)} (${(c.machine - acc).toFixed(1)} elsewhere)`,
    );
    out.push(`    S3 requests: ${Object.entries(r.s3Requests).sort((a, b) => b[1].count - a[1].count).map(([k, v]) => `${k} ${v.count}${v.bytes ? ` (${(v.bytes / 1024).toFixed(0)} KiB)` : ''}`).join(', ')}`);
    const waits = Object.entries(r.pgWaits).sort((a, b) => b[1] - a[1]).slice(0, 8);
    out.push(`    pg_stat_activity, mean connections per 100 ms sample (${r.pgSamples} samples): ${waits.map(([k, v]) => `${k} ${(v / Math.max(1, r.pgSamples)).toFixed(1)}`).join(', ')}`);
    if (r.split) {
      out.push(
        `    push = upload and check (request -> the row's created_at, stamped once the package is parsed) p50 ${fmtSeconds(r.split.ingestP50)}, p95 ${fmtSeconds(r.split.ingestP95)} + ` +
          `store (locks, S3 PUT, commit)${r.mode === 'wait' ? ' and wait for a generation' : ''} p50 ${fmtSeconds(r.split.waitP50)}, p95 ${fmtSeconds(r.split.waitP95)}; ${(r.changes / r.generations).toFixed(1)} packages per generation`,
      );
    }
    if (r.publishPhases) out.push(`    publish phases (ms from the nodes' logs: mean / p50 / p90 / max): ${Object.entries(r.publishPhases).map(([k, v]) => `${k} ${v.mean.toFixed(0)}/${v.p50.toFixed(0)}/${v.p90.toFixed(0)}/${v.max.toFixed(0)}`).join(', ')}`);
    for (const f of r.failures.slice(0, 5)) out.push(`    failed: ${f}`);
  }
  for (const p of profiles) {
    out.push('', `  CPU profiles of the ${p.format} nodes under --cpu-prof (${p.run.pkgPerSecond.toFixed(0)} pkg/s while profiled):`);
    for (const f of p.files) {
      const busy = f.summary.totalSeconds - f.summary.idleSeconds;
      out.push(`    ${f.file}: ${busy.toFixed(1)} s busy of ${f.summary.totalSeconds.toFixed(1)} s sampled; self time by file:`);
      for (const x of f.summary.byFile.slice(0, 10)) out.push(`      ${x.pct.toFixed(1).padStart(5)}%  ${x.seconds.toFixed(2).padStart(6)} s  ${x.fn}`);
      out.push('     self time by function:');
      for (const x of f.summary.self.slice(0, 12)) out.push(`      ${x.pct.toFixed(1).padStart(5)}%  ${x.seconds.toFixed(2).padStart(6)} s  ${x.fn}`);
    }
  }
  out.push(`  scale-out benchmark took ${fmtSeconds((performance.now() - started) / 1000)}`);
  const results = {
    benchmark: 'cluster-push',
    date: new Date().toISOString(),
    n: o.n,
    clients: o.clients,
    nodes: o.nodes,
    s3: o.s3,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, totalMemory: totalmem() },
    wharf: { version: o.wharfVersion },
    runs,
    targets,
    profiles: profiles.map((p) => ({ format: p.format, files: p.files.map((f) => f.file) })),
  };
  writeFileSync(o.out, JSON.stringify(results, null, 2) + '\n');
  out.push(`  results (JSON): ${o.out}`, '');
  return out.join('\n');
}

/** One POST over `agent` (keep-alive); resolves with the status and the body as text once the answer has ended. */
function post(agent: Agent, url: string, headers: Record<string, string>, body: Uint8Array): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'Content-Length': String(body.byteLength) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
