// `npm run bench`: publishing benchmarks. A benchmark, not a test: it prints tables and writes JSON.
// - apt: Wharf (real server process, real CLI) against aptly and apt-ftparchive on the same N synthetic .deb files.
// - rpm: Wharf (real server process, HTTP client and CLI) against createrepo_c on the same N synthetic .rpm files
//   (bench/rpm.ts; targets there).
// - serve: requests per second of the real Wharf server against a bare Node `http` server (fixed 2 KB body), with wrk
//   (bench/serve.ts; targets there).
// - cluster: 1,000 packages pushed by 32 parallel clients over 3 nodes on PostgreSQL + S3 (s3rver) + Redis into one
//   distribution (bench/cluster.ts; target there). Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379
//   (as test/helpers/cluster.ts: WHARF_TEST_DATABASE_URL, WHARF_TEST_REDIS_URL).
// All four run by default, in that order; `--only apt`, `--only rpm`, `--only serve` or `--only cluster` runs one.
//
//   npm run bench [-- --only apt|rpm|serve --n 10000 --repeat 5 --cold-runs 3 --jobs 8 --concurrency 64 --skip-aptly --skip-ftparchive
//                     --skip-http --skip-createrepo --skip-cli --skip-import --no-package-signing --profile
//                     --wrk-duration 10 --wrk-threads 2 --wrk-connections 64 --wrk-warmup 2 --wrk-rounds 3
//                     --deb-profile tiny|typical --deb-compression xz|gzip
//                     --cluster-n 1000 --cluster-clients 32 --cluster-nodes 3 --cluster-runs 3 --cluster-format deb[,rpm]
//                     --cluster-s3 child|in-process --cluster-log-level warn|info]
//   env: BENCH_N, BENCH_DEB_PROFILE (tiny or typical: what the generated .deb files hold, bench/debgen.ts), BENCH_DEB_COMPRESSION (xz, the default, as dpkg-deb writes; or gzip), BENCH_REPEAT, BENCH_JOBS, BENCH_CONCURRENCY (comma list), BENCH_DIR (cache of debs, default
//   /tmp/wharf-bench-N), BENCH_RPM_DIR (cache of rpms, default /tmp/wharf-bench-rpm-N), BENCH_OUT (JSON path of the
//   APT results), BENCH_RPM_OUT (JSON path of the RPM results), BENCH_PROFILE=1, BENCH_FSYNC=true|false (WHARF_FSYNC
//   for the server), BENCH_WRK_DURATION, BENCH_WRK_THREADS, BENCH_WRK_CONNECTIONS, BENCH_WRK_WARMUP (seconds, 0 = none),
//   BENCH_WRK_ROUNDS (interleaved rounds of bare, (a), (b); the median round per scenario counts),
//   BENCH_SERVE_OUT (JSON path of the serving results), BENCH_CLUSTER_N, BENCH_CLUSTER_CLIENTS, BENCH_CLUSTER_NODES,
//   BENCH_CLUSTER_RUNS, BENCH_CLUSTER_FORMAT, BENCH_CLUSTER_S3, BENCH_CLUSTER_MODE (wait, async or both: pushes answered when live and/or when stored), BENCH_CLUSTER_S3_DIR (where s3rver keeps objects; default /dev/shm, "tmp" for the temporary directory), BENCH_CLUSTER_LOG_LEVEL (info adds the time per publish phase from the nodes' logs), BENCH_CLUSTER_OUT (JSON path of the scale-out results)
//
// cluster: --profile adds one run per format with the nodes under --cpu-prof (not counted) and summarises the profiles.
//
// serve: --profile profiles both Wharf scenarios; without it only those that miss their target are profiled.
//
// RPM --skip-cli: no +1 pushes with the CLI (HTTP only); --skip-import: no cold runs of `wharf import` (the same files
// read in place by the server, hard-linked and copied); --no-package-signing: the RPM repository is created with
// --no-package-signing (shows what re-signing every package costs). --skip-http and --skip-cli-cold apply to the APT part.
//
// Targets (from the issue): (b) one more package until signed metadata is live >= 20x faster than aptly's repo add +
// publish update; (a) cold publish of N no slower than apt-ftparchive (Packages, .gz, .xz, Release, signatures) and
// >= 4x faster than aptly's repo add + publish.
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { ensureDebs, debMeta, type DebCompression, type DebProfile } from './debgen.ts';
import { discard, log, run, median, peakRss, resetPeakRss, cpuSeconds, settle, fmtSeconds, fmtBytes, quiesceDisk, storageFloor } from './util.ts';
import { startWharf, createRepo, cliPush, cliImport, httpPush, verifyPublished, publishCount, type WharfServer } from './wharf.ts';
import { ensureTools, ensureGpgKey, benchAptly, benchFtparchive, type AptlyResults, type FtparchiveResults } from './references.ts';
import { summariseProfile, type ProfileSummary } from './profile.ts';
import { benchRpm } from './rpm.ts';
import { benchServe } from './serve.ts';
import { benchCluster, type ClusterFormat } from './cluster.ts';
import { debFormatFloor, fmtFloorSteps } from './format-floor.ts';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    n: { type: 'string' },
    repeat: { type: 'string' },
    jobs: { type: 'string' },
    concurrency: { type: 'string' },
    'skip-aptly': { type: 'boolean' },
    'skip-ftparchive': { type: 'boolean' },
    'skip-http': { type: 'boolean' },
    'skip-cli-cold': { type: 'boolean' },
    'cold-runs': { type: 'string' },
    'skip-createrepo': { type: 'boolean' },
    'skip-cli': { type: 'boolean' },
    'skip-import': { type: 'boolean' },
    only: { type: 'string' },
    'no-package-signing': { type: 'boolean' },
    profile: { type: 'boolean' },
    fsync: { type: 'string' },
    out: { type: 'string' },
    'wrk-duration': { type: 'string' },
    'wrk-threads': { type: 'string' },
    'wrk-connections': { type: 'string' },
    'wrk-warmup': { type: 'string' },
    'wrk-rounds': { type: 'string' },
    'cluster-n': { type: 'string' },
    'cluster-clients': { type: 'string' },
    'cluster-nodes': { type: 'string' },
    'cluster-runs': { type: 'string' },
    'cluster-format': { type: 'string' },
    'cluster-s3': { type: 'string' },
    'cluster-s3-dir': { type: 'string' },
    'cluster-mode': { type: 'string' },
    'cluster-log-level': { type: 'string' },
    'deb-profile': { type: 'string' },
    'deb-compression': { type: 'string' },
  },
});
const env = process.env;
const int = (v: string | undefined, d: number, name: string) => {
  const n = Number(v ?? d);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number, got ${v}`);
  return n;
};
const N = int(values.n ?? env.BENCH_N, 10_000, '--n');
const REPEAT = int(values.repeat ?? env.BENCH_REPEAT, 5, '--repeat');
const JOBS = int(values.jobs ?? env.BENCH_JOBS, 8, '--jobs');
const CONCURRENCY = (values.concurrency ?? env.BENCH_CONCURRENCY ?? '64').split(',').map((c) => int(c.trim(), 64, '--concurrency'));
/** cold publishes with the CLI per benchmark (the median counts) */
const COLD_RUNS = Math.max(1, Number(values['cold-runs'] ?? env.BENCH_COLD_RUNS ?? 3));
const FSYNC = values.fsync ?? env.BENCH_FSYNC; // passed to the server as WHARF_FSYNC; unset = Wharf's default (true)
const PROFILE = values.profile === true || env.BENCH_PROFILE === '1';
// What the generated .deb files hold (bench/debgen.ts): 'tiny' (the default: one file, ~700 bytes) or 'typical'.
const DEB_PROFILE = (values['deb-profile'] ?? env.BENCH_DEB_PROFILE ?? 'tiny') as DebProfile;
if (DEB_PROFILE !== 'typical' && DEB_PROFILE !== 'tiny') throw new Error(`--deb-profile must be typical or tiny, got ${DEB_PROFILE}`);
// xz members by default, as dpkg-deb builds packages (and as the issue's reference figures were measured: with them
// aptly's repo add takes ~20 s and its publish ~22 s at 10,000 packages); gzip members for comparison.
const DEB_COMPRESSION = (values['deb-compression'] ?? env.BENCH_DEB_COMPRESSION ?? 'xz') as DebCompression;
if (DEB_COMPRESSION !== 'gzip' && DEB_COMPRESSION !== 'xz') throw new Error(`--deb-compression must be xz or gzip, got ${DEB_COMPRESSION}`);
const CACHE = env.BENCH_DIR ?? join(tmpdir(), `wharf-bench-${DEB_PROFILE === 'tiny' ? '' : `${DEB_PROFILE}-`}${DEB_COMPRESSION}-${N}`);
const WORK = join(tmpdir(), `wharf-bench-work-${process.pid}`);
const ONLY = values.only ?? env.BENCH_ONLY;
if (ONLY !== undefined && ONLY !== 'apt' && ONLY !== 'rpm' && ONLY !== 'serve' && ONLY !== 'cluster') throw new Error(`--only must be apt, rpm, serve or cluster, got ${ONLY}`);
const RPM_CACHE = env.BENCH_RPM_DIR ?? join(tmpdir(), `wharf-bench-rpm-${N}`);
const RPM_WORK = join(tmpdir(), `wharf-bench-rpm-work-${process.pid}`);
const RPM_OUT = env.BENCH_RPM_OUT ?? join(tmpdir(), `wharf-bench-rpm-${N}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
const WRK_DURATION = int(values['wrk-duration'] ?? env.BENCH_WRK_DURATION, 10, '--wrk-duration');
const WRK_THREADS = int(values['wrk-threads'] ?? env.BENCH_WRK_THREADS, 2, '--wrk-threads');
const WRK_CONNECTIONS = int(values['wrk-connections'] ?? env.BENCH_WRK_CONNECTIONS, 64, '--wrk-connections');
const WRK_WARMUP = Number(values['wrk-warmup'] ?? env.BENCH_WRK_WARMUP ?? 2);
if (!Number.isInteger(WRK_WARMUP) || WRK_WARMUP < 0) throw new Error(`--wrk-warmup must be a whole number of seconds, got ${WRK_WARMUP}`);
const WRK_ROUNDS = int(values['wrk-rounds'] ?? env.BENCH_WRK_ROUNDS, 3, '--wrk-rounds');
const SERVE_WORK = join(tmpdir(), `wharf-bench-serve-work-${process.pid}`);
const SERVE_OUT = env.BENCH_SERVE_OUT ?? join(tmpdir(), `wharf-bench-serve-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
const CLUSTER_N = int(values['cluster-n'] ?? env.BENCH_CLUSTER_N, 1000, '--cluster-n');
const CLUSTER_CLIENTS = int(values['cluster-clients'] ?? env.BENCH_CLUSTER_CLIENTS, 32, '--cluster-clients');
const CLUSTER_NODES = int(values['cluster-nodes'] ?? env.BENCH_CLUSTER_NODES, 3, '--cluster-nodes');
const CLUSTER_RUNS = int(values['cluster-runs'] ?? env.BENCH_CLUSTER_RUNS, 3, '--cluster-runs');
const CLUSTER_FORMATS = (values['cluster-format'] ?? env.BENCH_CLUSTER_FORMAT ?? 'deb').split(',').map((f) => f.trim());
for (const f of CLUSTER_FORMATS) if (f !== 'deb' && f !== 'rpm') throw new Error(`--cluster-format must be deb, rpm or deb,rpm, got ${f}`);
const CLUSTER_S3 = (values['cluster-s3'] ?? env.BENCH_CLUSTER_S3 ?? 'child') as 'child' | 'in-process';
if (CLUSTER_S3 !== 'child' && CLUSTER_S3 !== 'in-process') throw new Error(`--cluster-s3 must be child or in-process, got ${CLUSTER_S3}`);
// How the cluster clients push: wait (answered once live), async (Prefer: respond-async), or both (the default).
const CLUSTER_MODE = values['cluster-mode'] ?? env.BENCH_CLUSTER_MODE ?? 'both';
if (!['wait', 'async', 'both'].includes(CLUSTER_MODE)) throw new Error(`--cluster-mode must be wait, async or both, got ${CLUSTER_MODE}`);
const CLUSTER_MODES: ('wait' | 'async')[] = CLUSTER_MODE === 'both' ? ['wait', 'async'] : [CLUSTER_MODE as 'wait' | 'async'];
// s3rver's objects: in memory (tmpfs) unless told otherwise ("" or "tmp": the system's temporary directory, on disk).
const CLUSTER_S3_DIR_OPT = values['cluster-s3-dir'] ?? env.BENCH_CLUSTER_S3_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : '');
const CLUSTER_S3_DIR = CLUSTER_S3_DIR_OPT === '' || CLUSTER_S3_DIR_OPT === 'tmp' ? undefined : CLUSTER_S3_DIR_OPT;
const CLUSTER_OUT = env.BENCH_CLUSTER_OUT ?? join(tmpdir(), `wharf-bench-cluster-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
const OUT = values.out ?? env.BENCH_OUT ?? join(tmpdir(), `wharf-bench-apt-${N}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);

interface WharfRun {
  client: string;
  coldSeconds: number;
  coldServerCpuSeconds: number;
  /** how many times the distribution was published during the cold run (group commit merges concurrent pushes) */
  coldPublishes: number;
  coldPeakRss: number;
  startupPeakRss: number;
  updates?: number[];
  updateMedian?: number;
  /** the same over one plain HTTP request (no CLI process start) */
  httpUpdates?: number[];
  httpUpdateMedian?: number;
  updatePeakRss?: number;
  peakRss: number;
  /** every cold run of this client when it was repeated (--cold-runs); coldSeconds is then their median */
  coldRuns?: number[];
}

async function wharfColdRun(name: string, dataDir: string, push: (s: WharfServer) => Promise<number>, withUpdates: string[], extraNodeArgs: string[] = [], httpUpdateFiles: string[] = []): Promise<WharfRun> {
  // The generated packages' directory is an import root: `wharf import` reads them in place.
  const s = await startWharf(dataDir, { extraNodeArgs, env: { WHARF_IMPORT_ROOTS: join(CACHE, 'pool'), ...(FSYNC === undefined ? {} : { WHARF_FSYNC: FSYNC }) } });
  try {
    await createRepo(s);
    const startupPeakRss = peakRss(s.pid);
    const canReset = resetPeakRss(s.pid);
    const cpu0 = cpuSeconds(s.pid);
    log(`wharf (${name}): cold publish of ${N} packages`);
    quiesceDisk();
    const coldSeconds = await push(s);
    const coldServerCpuSeconds = cpuSeconds(s.pid) - cpu0;
    const coldPeakRss = peakRss(s.pid);
    const coldPublishes = publishCount(dataDir);
    await verifyPublished(s, N, [debMeta(1).name, debMeta(N).name]);
    log(`wharf (${name}): cold publish ${coldSeconds.toFixed(2)} s, server CPU ${coldServerCpuSeconds.toFixed(1)} s, peak RSS ${fmtBytes(coldPeakRss)}${canReset ? '' : ' (peak not resettable: includes start)'}`);
    const r: WharfRun = { client: name, coldSeconds, coldPublishes, coldServerCpuSeconds, coldPeakRss, startupPeakRss, peakRss: Math.max(startupPeakRss, coldPeakRss) };
    if (withUpdates.length) {
      resetPeakRss(s.pid);
      const updates: number[] = [];
      for (const [k, file] of withUpdates.entries()) {
        await settle(s.pid);
        const t = (await cliPush(s, [file], 1)).seconds;
        updates.push(t);
        await verifyPublished(s, N + k + 1, [debMeta(N + k + 1).name]);
        log(`wharf (${name}): push 1 more (${N + k + 1} packages) ${fmtSeconds(t)}`);
      }
      r.updates = updates;
      r.updateMedian = median(updates);
      const httpUpdates: number[] = [];
      for (const [k, file] of httpUpdateFiles.entries()) {
        await settle(s.pid);
        const t = (await httpPush(s, [file], 1)).seconds;
        httpUpdates.push(t);
        const count = N + withUpdates.length + k + 1;
        await verifyPublished(s, count, [debMeta(N + REPEAT + k + 1).name]);
        log(`wharf (${name}): HTTP push 1 more (${count} packages) ${fmtSeconds(t)}`);
      }
      r.httpUpdates = httpUpdates;
      r.httpUpdateMedian = median(httpUpdates);
      r.updatePeakRss = peakRss(s.pid);
      r.peakRss = Math.max(r.peakRss, r.updatePeakRss);
    }
    return r;
  } finally {
    await s.stop();
    discard(dataDir);
  }
}

async function main(): Promise<void> {
  if (ONLY === undefined || ONLY === 'apt') await mainApt();
  if (ONLY === undefined || ONLY === 'rpm') {
    const wharfVersion = (await run('git', ['rev-parse', '--short', 'HEAD'], { allowFail: true })).stdout.trim();
    const report = await benchRpm({
      n: N,
      repeat: REPEAT,
      concurrency: CONCURRENCY,
      fsync: FSYNC,
      profile: PROFILE,
      skipCreaterepo: values['skip-createrepo'] === true,
      skipCli: values['skip-cli'] === true,
      skipImport: values['skip-import'] === true,
      coldRuns: COLD_RUNS,
      noPackageSigning: values['no-package-signing'] === true,
      cache: RPM_CACHE,
      work: RPM_WORK,
      out: RPM_OUT,
      key: () => ensureGpgKey(join(tmpdir(), 'wharf-bench-gnupg')),
      wharfVersion,
    });
    process.stdout.write(report);
  }
  if (ONLY === undefined || ONLY === 'serve') {
    const wharfVersion = (await run('git', ['rev-parse', '--short', 'HEAD'], { allowFail: true })).stdout.trim();
    const report = await benchServe({
      duration: WRK_DURATION,
      threads: WRK_THREADS,
      connections: WRK_CONNECTIONS,
      warmup: WRK_WARMUP,
      rounds: WRK_ROUNDS,
      profile: PROFILE,
      work: SERVE_WORK,
      profileDir: tmpdir(),
      out: SERVE_OUT,
      wharfVersion,
    });
    process.stdout.write(report);
  }
  if (ONLY === undefined || ONLY === 'cluster') {
    const wharfVersion = (await run('git', ['rev-parse', '--short', 'HEAD'], { allowFail: true })).stdout.trim();
    const report = await benchCluster({
      n: CLUSTER_N,
      clients: CLUSTER_CLIENTS,
      nodes: CLUSTER_NODES,
      runs: CLUSTER_RUNS,
      formats: CLUSTER_FORMATS as ClusterFormat[],
      s3: CLUSTER_S3,
      s3Dir: CLUSTER_S3_DIR,
      profile: PROFILE,
      profileDir: tmpdir(),
      logLevel: values['cluster-log-level'] ?? env.BENCH_CLUSTER_LOG_LEVEL ?? 'warn',
      modes: CLUSTER_MODES,
      out: CLUSTER_OUT,
      wharfVersion,
    });
    process.stdout.write(report);
  }
}

async function mainApt(): Promise<void> {
  const started = performance.now();
  log(`N=${N}, repeat=${REPEAT}, CLI --jobs ${JOBS}, HTTP concurrency ${CONCURRENCY.join(',')}, server fsync ${FSYNC ?? 'default'}; ${cpus().length} CPUs, ${fmtBytes(totalmem())} RAM, load average ${loadavg()[0]!.toFixed(1)}`);
  await ensureTools();
  const debs = await ensureDebs(CACHE, N, 2 * REPEAT, log, DEB_PROFILE, DEB_COMPRESSION);
  // Validate a few generated packages with dpkg-deb.
  for (const f of [debs.pool[0]!, debs.pool[Math.min(9, N - 1)]!, debs.extra[0]!]) {
    const info = (await run('dpkg-deb', ['--info', f])).stdout;
    const contents = (await run('dpkg-deb', ['-c', f])).stdout;
    if (!/Package: bench-pkg-/.test(info) || !/README|copyright/.test(contents)) throw new Error(`dpkg-deb does not read ${f} as expected`);
  }
  log('dpkg-deb reads the generated packages');
  mkdirSync(WORK, { recursive: true });
  const key = await ensureGpgKey(join(tmpdir(), 'wharf-bench-gnupg'));
  const wharfVersion = (await run('git', ['rev-parse', '--short', 'HEAD'], { allowFail: true })).stdout.trim();

  // Wharf with the real CLI: cold publish, then one more package at a time (CLI, then one HTTP request).
  // --skip-cli-cold: the cold publish uses the HTTP client only, and the +1 pushes run on that server.
  const skipCliCold = values['skip-cli-cold'] === true;
  const updateArgs: [string[], string[], string[]] = [debs.extra.slice(0, REPEAT), [], debs.extra.slice(REPEAT, 2 * REPEAT)];
  const runs: WharfRun[] = [];
  if (!skipCliCold) {
    const first = await wharfColdRun(`CLI --jobs ${JOBS}`, join(WORK, 'wharf-cli'), async (s) => (await cliPush(s, debs.pool, JOBS)).seconds, ...updateArgs);
    // The cold publish creates thousands of files and directories, and on a VM the file system's speed drifts from
    // one minute to the next: the median of several runs counts.
    const colds = [first.coldSeconds];
    for (let k = 1; k < COLD_RUNS; k++) {
      colds.push((await wharfColdRun(`CLI --jobs ${JOBS} (cold run ${k + 1})`, join(WORK, `wharf-cli-${k + 1}`), async (s) => (await cliPush(s, debs.pool, JOBS)).seconds, [], [], [])).coldSeconds);
    }
    if (colds.length > 1) Object.assign(first, { coldRuns: colds, coldSeconds: median(colds) });
    runs.push(first);
  }
  // The same files imported where they lie (`wharf import --link`, no upload), as apt-ftparchive indexes them and
  // aptly adds them from a directory.
  if (!values['skip-import']) {
    const importRun = (k: number) => wharfColdRun(`CLI import --link${k > 1 ? ` (cold run ${k})` : ''}`, join(WORK, `wharf-import-${k}`), async (s) => (await cliImport(s, join(CACHE, 'pool'), true)).seconds, [], [], []);
    const first = await importRun(1);
    const colds = [first.coldSeconds];
    for (let k = 2; k <= COLD_RUNS; k++) colds.push((await importRun(k)).coldSeconds);
    if (colds.length > 1) Object.assign(first, { coldRuns: colds, coldSeconds: median(colds) });
    runs.push(first);
  }
  // Wharf with a plain HTTP client and more requests in flight (does the CLI limit the cold publish?).
  if (!values['skip-http'] || skipCliCold) {
    for (const [i, c] of CONCURRENCY.entries()) {
      const upd: [string[], string[], string[]] = skipCliCold && i === 0 ? updateArgs : [[], [], []];
      runs.push(await wharfColdRun(`HTTP x${c}`, join(WORK, `wharf-http-${c}`), async (s) => (await httpPush(s, debs.pool, c)).seconds, ...upd));
    }
  }
  const cli = runs.find((r) => r.updates) ?? runs[0]!;
  const http = runs.filter((r) => r !== cli);
  let profile: ProfileSummary | undefined;
  let profileFile: string | undefined;
  if (PROFILE) {
    const dir = join(tmpdir(), `wharf-bench-profile-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const prof = await wharfColdRun(`CLI --jobs ${JOBS}, --cpu-prof`, join(WORK, 'wharf-prof'), async (s) => (await cliPush(s, debs.pool, JOBS)).seconds, [], [
      '--cpu-prof',
      `--cpu-prof-dir=${dir}`,
    ]);
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length) {
      profileFile = join(dir, files[0]!);
      profile = summariseProfile(profileFile);
      log(`profile (${fmtSeconds(prof.coldSeconds)} under the profiler) written to ${profileFile}`);
    }
  }

  let aptly: AptlyResults | undefined;
  if (!values['skip-aptly']) aptly = await benchAptly(join(WORK, 'aptly'), join(CACHE, 'pool'), debs.extra, REPEAT, key);
  let ftp: FtparchiveResults | undefined;
  if (!values['skip-ftparchive']) {
    log('apt-ftparchive: packages + gzip + xz + release + sign');
    ftp = await benchFtparchive(join(WORK, 'ftparchive'), CACHE, key);
  }
  log(`storage floor: reading the ${N} packages and writing them into a pool, nothing else`);
  const floor = await storageFloor(debs.pool, WORK);
  log(`storage floor ${fmtSeconds(floor.seconds)} (one at a time ${fmtSeconds(floor.sequential)}, 16 at a time ${fmtSeconds(floor.concurrent)})`);
  log(`format floor: Wharf's .deb checks, digests and Packages stanza on the ${N} packages, in memory, one thread`);
  const formatFloor = await debFormatFloor(debs.pool);
  log(`format floor ${fmtSeconds(formatFloor.seconds)} (${fmtFloorSteps(formatFloor)})`);
  rmSync(WORK, { recursive: true, force: true });

  // ---- report ----
  type Row = [string, string, string, string, string];
  const rows: Row[] = [];
  const ratio = (ref: number | undefined, w: number) => (ref === undefined ? '-' : `${(ref / w).toFixed(2)}x`);
  const target = (ref: number | undefined, w: number, need: number) => (ref === undefined ? '-' : ref / w >= need ? 'yes' : 'NO');
  const best = runs.reduce((a, b) => (b.coldSeconds < a.coldSeconds ? b : a));
  const coldRows = runs;
  const targets: Record<string, { wharf: number; reference: number | undefined; ratio: number | undefined; need: number; met: boolean | undefined }> = {};
  const addTarget = (id: string, w: number, ref: number | undefined, need: number) => {
    targets[id] = { wharf: w, reference: ref, ratio: ref === undefined ? undefined : ref / w, need, met: ref === undefined ? undefined : ref / w >= need };
  };
  if (ftp) {
    for (const r of coldRows) rows.push([`(a) cold publish ${N} [${r.client}] vs apt-ftparchive (>= 1x)`, fmtSeconds(r.coldSeconds), fmtSeconds(ftp.total), ratio(ftp.total, r.coldSeconds), target(ftp.total, r.coldSeconds, 1)]);
    addTarget('cold_vs_ftparchive', cli.coldSeconds, ftp.total, 1);
  }
  if (aptly) {
    const ref = aptly.add + aptly.publish;
    for (const r of coldRows) rows.push([`(a) cold publish ${N} [${r.client}] vs aptly add + publish (>= 4x)`, fmtSeconds(r.coldSeconds), fmtSeconds(ref), ratio(ref, r.coldSeconds), target(ref, r.coldSeconds, 4)]);
    const refSc = aptly.add + aptly.publishSkipContents;
    rows.push([`    (info) vs aptly add + publish -skip-contents`, fmtSeconds(cli.coldSeconds), fmtSeconds(refSc), ratio(refSc, cli.coldSeconds), '']);
    // Storing the packages by itself on this machine (aptly stores them too): a 4x target needs it below 1/4 of aptly.
    rows.push([`    (info) floor: read the ${N} files and write them into a pool, nothing else (no parsing, hashing, database, metadata)`, fmtSeconds(floor.seconds), fmtSeconds(ref), ratio(ref, floor.seconds), '']);
    rows.push([`    (info) floor: Wharf's format code alone (parse, digests, stanza; in memory, one thread)`, fmtSeconds(formatFloor.seconds), fmtSeconds(ref), ratio(ref, formatFloor.seconds), '']);
    rows.push([`    (info) both floors`, fmtSeconds(floor.seconds + formatFloor.seconds), fmtSeconds(ref), ratio(ref, floor.seconds + formatFloor.seconds), '']);
    addTarget('cold_vs_aptly', cli.coldSeconds, ref, 4);
  }
  if (aptly && cli.updateMedian !== undefined) {
    rows.push([`(b) +1 package with the CLI, until signed metadata live (median of ${REPEAT}) vs aptly add + publish update (>= 20x)`, fmtSeconds(cli.updateMedian), fmtSeconds(aptly.updateMedian), ratio(aptly.updateMedian, cli.updateMedian), target(aptly.updateMedian, cli.updateMedian, 20)]);
    rows.push([`    (info) vs aptly add + publish update -skip-contents`, fmtSeconds(cli.updateMedian), fmtSeconds(aptly.updateSkipContentsMedian), ratio(aptly.updateSkipContentsMedian, cli.updateMedian), '']);
    addTarget('update_vs_aptly', cli.updateMedian, aptly.updateMedian, 20);
    if (cli.httpUpdateMedian !== undefined) {
      rows.push([`(b) +1 package over one HTTP request (no CLI start) vs aptly add + publish update (>= 20x)`, fmtSeconds(cli.httpUpdateMedian), fmtSeconds(aptly.updateMedian), ratio(aptly.updateMedian, cli.httpUpdateMedian), target(aptly.updateMedian, cli.httpUpdateMedian, 20)]);
      addTarget('update_http_vs_aptly', cli.httpUpdateMedian, aptly.updateMedian, 20);
    }
  } else if (cli.updateMedian !== undefined) rows.push([`(b) +1 package, signed metadata live (median of ${REPEAT})`, fmtSeconds(cli.updateMedian), '-', '-', '-']);

  const header: Row = ['operation', 'Wharf', 'reference', 'ratio (ref/Wharf)', 'target met'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: Row) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out: string[] = [];
  out.push('', `APT publishing benchmark: N=${N} packages (${DEB_PROFILE}, ${DEB_COMPRESSION === 'xz' ? 'xz members as dpkg-deb writes' : 'gzip members'}), ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg()[0]!.toFixed(1)}, Wharf ${wharfVersion || '?'}, server fsync ${FSYNC ?? 'default'}${aptly ? `, ${aptly.version.split('\n')[0]}` : ''}`, '');
  out.push(line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), '');
  out.push('Details:');
  for (const r of coldRows) {
    out.push(`  Wharf ${r.client}: cold ${fmtSeconds(r.coldSeconds)}${r.coldRuns ? ` (median of ${r.coldRuns.map(fmtSeconds).join(', ')}; publishes, CPU and RSS of the first)` : ''} (${(N / r.coldSeconds).toFixed(0)} pkg/s, ${r.coldPublishes} publishes, server CPU ${r.coldServerCpuSeconds.toFixed(1)} s); peak RSS: start ${fmtBytes(r.startupPeakRss)}, cold publish ${fmtBytes(r.coldPeakRss)}${r.updatePeakRss ? `, +1 pushes ${fmtBytes(r.updatePeakRss)}` : ''}`);
    if (r.updates) out.push(`    +1 pushes (CLI): ${r.updates.map(fmtSeconds).join(', ')}`);
    if (r.httpUpdates) out.push(`    +1 pushes (HTTP): ${r.httpUpdates.map(fmtSeconds).join(', ')}`);
  }
  out.push(`  Wharf peak RSS (server process, VmHWM): ${fmtBytes(Math.max(...coldRows.map((r) => r.peakRss)))}`);
  if (aptly) {
    out.push(`  aptly: repo add ${fmtSeconds(aptly.add)}, publish ${fmtSeconds(aptly.publish)} (-skip-contents ${fmtSeconds(aptly.publishSkipContents)})`);
    out.push(`    add 1 + publish update: ${aptly.update.map((u) => `${fmtSeconds(u.add)}+${fmtSeconds(u.publish)}`).join(', ')}`);
    out.push(`    -skip-contents: ${aptly.updateSkipContents.map((u) => `${fmtSeconds(u.add)}+${fmtSeconds(u.publish)}`).join(', ')}`);
  }
  if (ftp) out.push(`  apt-ftparchive: packages ${fmtSeconds(ftp.packages)}, gzip -9 ${fmtSeconds(ftp.gzip)}, xz ${fmtSeconds(ftp.xz)}, release ${fmtSeconds(ftp.release)}, gpg sign ${fmtSeconds(ftp.sign)}; total ${fmtSeconds(ftp.total)}`);
  if (profile) {
    out.push(`  CPU profile of the server during a cold publish (${profile.totalSeconds.toFixed(1)} s sampled; ${profileFile}):`);
    out.push('    self time:');
    for (const p of profile.self.slice(0, 15)) out.push(`      ${p.pct.toFixed(1).padStart(5)}%  ${p.seconds.toFixed(2).padStart(7)} s  ${p.fn}`);
    out.push('    inclusive (src/ frames):');
    for (const p of profile.inclusive.slice(0, 15)) out.push(`      ${p.pct.toFixed(1).padStart(5)}%  ${p.seconds.toFixed(2).padStart(7)} s  ${p.fn}`);
  }
  out.push(`  best Wharf cold publish: ${best.client}, ${fmtSeconds(best.coldSeconds)}; benchmark took ${fmtSeconds((performance.now() - started) / 1000)}`);
  const results = {
    benchmark: 'apt-publish',
    date: new Date().toISOString(),
    n: N,
    repeat: REPEAT,
    fsync: FSYNC ?? 'default',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, totalMemory: totalmem() },
    wharf: { version: wharfVersion, cli, http },
    aptly,
    storageFloor: floor,
    formatFloor,
    apt_ftparchive: ftp,
    targets,
    profile: profile ? { file: profileFile, ...profile } : undefined,
  };
  writeFileSync(OUT, JSON.stringify(results, null, 2) + '\n');
  out.push(`  results (JSON): ${OUT}`, '');
  process.stdout.write(out.join('\n'));
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
  rmSync(WORK, { recursive: true, force: true });
  rmSync(RPM_WORK, { recursive: true, force: true });
  rmSync(SERVE_WORK, { recursive: true, force: true });
  process.exitCode = 1;
});
