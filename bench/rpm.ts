// The RPM part of `npm run bench` (`--only rpm`): Wharf (real server process) against createrepo_c on the same N
// synthetic .rpm files.
//
// Targets (from the issue): cold publish of N no slower than `createrepo_c --no-database` (the same outputs: primary,
// filelists, other .xml.gz and repomd.xml); one more push until the new signed repomd.xml is live >= 20x faster than
// adding the file and running `createrepo_c --update`. createrepo_c does not sign: gpg --detach-sign of repomd.xml
// is timed separately (Wharf also re-signs every package, which createrepo_c does not do at all).
import { mkdirSync, readdirSync, rmSync, writeFileSync, linkSync, copyFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { ensureRpms, rpmMeta } from './rpmgen.ts';
import { rpmFormatFloor, fmtFloorSteps } from './format-floor.ts';
import { discard, log, run, which, median, peakRss, resetPeakRss, cpuSeconds, settle, fmtSeconds, fmtBytes, quiesceDisk, storageFloor } from './util.ts';
import { startWharf, createRepo, cliPush, cliImport, httpPush, publishCount, get, type Target, type WharfServer } from './wharf.ts';
import type { GpgKey } from './references.ts';
import { summariseProfile, type ProfileSummary } from './profile.ts';
import { readRpm } from '../src/formats/rpm/header.ts';
import { rpmPackageMetadata } from '../src/formats/rpm/package.ts';
import { signRpm } from '../src/formats/rpm/sign.ts';
import { bufferSource } from '../src/formats/byte-source.ts';

export const RPM_TARGET: Target = { org: 'bench', repo: 'rpm', os: 'el', dist: '9' };

export interface RpmBenchOptions {
  n: number;
  repeat: number;
  concurrency: number[];
  fsync: string | undefined;
  /** cold publishes with the CLI (the median counts) */
  coldRuns?: number;
  profile: boolean;
  skipCreaterepo: boolean;
  skipCli: boolean;
  /** no cold runs of `wharf import` */
  skipImport?: boolean;
  /** create the repository with --no-package-signing (isolates the cost of re-signing every package) */
  noPackageSigning: boolean;
  /** cache of generated rpms */
  cache: string;
  /** scratch directory (removed at the end) */
  work: string;
  out: string;
  key: () => Promise<GpgKey>;
  wharfVersion: string;
}

/** Installs createrepo_c and rpm (rpmkeys, rpm2cpio) when missing. Needs root. */
export async function ensureRpmTools(): Promise<void> {
  const missing = [['createrepo_c', 'createrepo-c'], ['rpm', 'rpm'], ['rpmkeys', 'rpm'], ['rpm2cpio', 'rpm2cpio'], ['gpg', 'gnupg']].filter(([c]) => !which(c!));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map(([, p]) => p!))];
  if (process.getuid?.() !== 0) throw new Error(`missing ${pkgs.join(', ')}; install them (apt-get install -y ${pkgs.join(' ')}) or run as root`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`installing ${pkgs.join(' ')}: apt-get install -y ${pkgs.join(' ')}`);
  const r = await run('apt-get', ['install', '-y', ...pkgs], { env, allowFail: true });
  if (r.code !== 0) {
    await run('apt-get', ['update'], { env });
    await run('apt-get', ['install', '-y', ...pkgs], { env });
  }
}

/** rpm, rpmkeys and rpm2cpio read the generated packages; Wharf's own reader and signer accept them. */
async function validate(files: readonly string[]): Promise<void> {
  for (const f of files) {
    const info = (await run('rpm', ['-qpi', f])).stdout;
    const list = (await run('rpm', ['-qpl', f])).stdout;
    if (!/^Name\s*: bench-rpm-/m.test(info) || !/\/README$/m.test(list)) throw new Error(`rpm -qpi/-qpl do not read ${f} as expected:\n${info}\n${list}`);
    const sig = await run('rpmkeys', ['--checksig', f], { allowFail: true });
    if (sig.code !== 0 || !/digests OK/.test(sig.stdout)) throw new Error(`rpmkeys --checksig ${f}: ${sig.stdout}${sig.stderr}`);
    const cpio = (await run('sh', ['-c', 'rpm2cpio "$1" | head -c 6', 'sh', f])).stdout;
    if (cpio !== '070701') throw new Error(`rpm2cpio ${f} does not start with a newc cpio header: ${JSON.stringify(cpio)}`);
    const bytes = readFileSync(f);
    const meta = rpmPackageMetadata(await readRpm(bufferSource(bytes)));
    if (`${meta.name}-${meta.version}-${meta.release}.${meta.arch}.rpm` !== basename(f)) throw new Error(`readRpm: ${f} reads as ${meta.name} ${meta.arch}`);
    // signRpm checks the header digests before it asks for a signature: reaching the signer means they match.
    const reached = new Error('reached the signer');
    const err = await signRpm(bytes, async () => { throw reached; }, 'rsa').then(() => undefined, (e: unknown) => e);
    if (err !== reached) throw new Error(`signRpm refuses ${f}: ${(err as Error)?.message ?? 'no error'}`);
  }
}

interface PrimaryInfo {
  count: number;
  text: string;
}

/** The primary.xml a repomd.xml points to (checked against its checksum). */
function primaryFrom(repomd: string, fetchHref: (href: string) => Promise<Buffer> | Buffer): Promise<PrimaryInfo> {
  const m = /<data type="primary">([\s\S]*?)<\/data>/.exec(repomd);
  if (!m) throw new Error('repomd.xml has no primary data');
  const href = /<location href="([^"]+)"/.exec(m[1]!)?.[1];
  const checksum = /<checksum type="sha256">([0-9a-f]+)<\/checksum>/.exec(m[1]!)?.[1];
  if (!href || !checksum) throw new Error('repomd.xml: primary without location or sha256 checksum');
  return Promise.resolve(fetchHref(href)).then((gz) => {
    const sha = createHash('sha256').update(gz).digest('hex');
    if (sha !== checksum) throw new Error(`primary.xml.gz sha256 ${sha} does not match repomd.xml (${checksum})`);
    const text = gunzipSync(gz).toString('utf8');
    const count = (text.match(/<package type="rpm">/g) ?? []).length;
    const declared = Number(/<metadata [^>]*packages="(\d+)"/.exec(text)?.[1]);
    if (declared !== count) throw new Error(`primary.xml declares ${declared} packages and lists ${count}`);
    return { count, text };
  });
}

/** repomd.xml (x86_64) is signed, and its primary lists `expectCount` packages including every name in `mustContain`. */
async function verifyRpmPublished(s: WharfServer, expectCount: number, mustContain: readonly string[]): Promise<void> {
  const base = `${s.url}/${RPM_TARGET.org}/${RPM_TARGET.repo}/${RPM_TARGET.os}/${RPM_TARGET.dist}/x86_64`;
  const repomd = (await get(`${base}/repodata/repomd.xml`)).toString();
  const asc = (await get(`${base}/repodata/repomd.xml.asc`)).toString();
  if (!asc.startsWith('-----BEGIN PGP SIGNATURE-----')) throw new Error('repomd.xml.asc is not an armored signature');
  const p = await primaryFrom(repomd, (href) => get(`${base}/${href}`));
  if (p.count !== expectCount) throw new Error(`primary.xml (x86_64) lists ${p.count} packages, expected ${expectCount}`);
  for (const name of mustContain) if (!p.text.includes(`<name>${name}</name>`)) throw new Error(`primary.xml does not list ${name}`);
}

interface WharfRpmRun {
  client: string;
  coldSeconds: number;
  coldServerCpuSeconds: number;
  coldPublishes: number;
  coldPeakRss: number;
  startupPeakRss: number;
  updates?: number[];
  updateMedian?: number;
  httpUpdates?: number[];
  httpUpdateMedian?: number;
  updatePeakRss?: number;
  peakRss: number;
  /** every cold run when repeated (coldRuns option); coldSeconds is then their median */
  coldRuns?: number[];
  /**
   * each cold run with a createrepo_c --no-database run on the same files just before it: on a VM whose speed drifts
   * by half from minute to minute, the ratio of a pair is steadier than that of two medians taken minutes apart
   */
  pairs?: { createrepo: number; wharf: number; ratio: number }[];
  /**
   * one more package pushed over HTTP right after a restart of the server (nothing in memory: its publish builds the
   * documents of every package from the database), until its signed repomd.xml is live
   */
  afterRestart?: number;
}

async function wharfRun(
  o: RpmBenchOptions,
  name: string,
  dataDir: string,
  concurrency: number,
  cliUpdates: string[],
  httpUpdates: string[],
  pool: string[],
  extraNodeArgs: string[] = [],
  coldPush?: (s: WharfServer) => Promise<{ seconds: number }>,
  /** a package to push after restarting the server (see WharfRpmRun.afterRestart) */
  afterRestart?: string,
): Promise<WharfRpmRun> {
  const N = o.n;
  // The generated packages' directory is an import root: `wharf import` reads them in place.
  const env: Record<string, string> = { WHARF_IMPORT_ROOTS: dirname(pool[0]!), ...(o.fsync === undefined ? {} : { WHARF_FSYNC: o.fsync }) };
  const s = await startWharf(dataDir, { extraNodeArgs, env });
  try {
    await createRepo(s, RPM_TARGET, o.noPackageSigning ? ['--no-package-signing'] : []);
    const startupPeakRss = peakRss(s.pid);
    const canReset = resetPeakRss(s.pid);
    const cpu0 = cpuSeconds(s.pid);
    log(`wharf rpm (${name}): cold publish of ${N} packages`);
    quiesceDisk();
    const coldSeconds = (await (coldPush ? coldPush(s) : httpPush(s, pool, concurrency, RPM_TARGET))).seconds;
    const coldServerCpuSeconds = cpuSeconds(s.pid) - cpu0;
    const coldPeakRss = peakRss(s.pid);
    const coldPublishes = publishCount(dataDir);
    await verifyRpmPublished(s, N, [rpmMeta(1).name, rpmMeta(N).name]);
    log(`wharf rpm (${name}): cold publish ${coldSeconds.toFixed(2)} s, ${coldPublishes} publishes, server CPU ${coldServerCpuSeconds.toFixed(1)} s, peak RSS ${fmtBytes(coldPeakRss)}${canReset ? '' : ' (peak not resettable: includes start)'}`);
    const r: WharfRpmRun = { client: name, coldSeconds, coldServerCpuSeconds, coldPublishes, coldPeakRss, startupPeakRss, peakRss: Math.max(startupPeakRss, coldPeakRss) };
    if (cliUpdates.length || httpUpdates.length) {
      resetPeakRss(s.pid);
      let count = N;
      const one = async (how: string, file: string, push: () => Promise<{ seconds: number }>) => {
        await settle(s.pid);
        const t = (await push()).seconds;
        count++;
        await verifyRpmPublished(s, count, [basename(file).replace(/-[^-]+-[^-]+\.[^.]+\.rpm$/, '')]);
        log(`wharf rpm (${name}): ${how} push 1 more (${count} packages) ${fmtSeconds(t)}`);
        return t;
      };
      if (cliUpdates.length) {
        r.updates = [];
        for (const f of cliUpdates) r.updates.push(await one('CLI', f, () => cliPush(s, [f], 1, RPM_TARGET)));
        r.updateMedian = median(r.updates);
      }
      if (httpUpdates.length) {
        r.httpUpdates = [];
        for (const f of httpUpdates) r.httpUpdates.push(await one('HTTP', f, () => httpPush(s, [f], 1, RPM_TARGET)));
        r.httpUpdateMedian = median(r.httpUpdates);
      }
      r.updatePeakRss = peakRss(s.pid);
      r.peakRss = Math.max(r.peakRss, r.updatePeakRss);
    }
    if (afterRestart) {
      await s.stop();
      const again = await startWharf(dataDir, { extraNodeArgs, env, keep: true });
      try {
        await settle(again.pid);
        r.afterRestart = (await httpPush(again, [afterRestart], 1, RPM_TARGET)).seconds;
        await verifyRpmPublished(again, N + (r.updates?.length ?? 0) + (r.httpUpdates?.length ?? 0) + 1, [basename(afterRestart).replace(/-[^-]+-[^-]+\.[^.]+\.rpm$/, '')]);
        log(`wharf rpm (${name}): restarted, then 1 more over HTTP (every document rebuilt from the database) ${fmtSeconds(r.afterRestart)}`);
      } finally {
        await again.stop();
      }
    }
    return r;
  } finally {
    await s.stop();
    discard(dataDir);
  }
}

export interface CreaterepoResults {
  version: string;
  /** createrepo_c --no-database on N files (primary, filelists, other .xml.gz, repomd.xml) */
  coldNoDatabase: number;
  /** createrepo_c (the same plus the three sqlite databases) */
  cold: number;
  /** gpg --detach-sign --armor of repomd.xml after the cold run */
  coldSign: number;
  /** per repetition: one more file, createrepo_c --update, then gpg --detach-sign of repomd.xml */
  update: { update: number; sign: number; total: number }[];
  updateMedian: number;
  updateSignMedian: number;
  updateTotalMedian: number;
}

function linkOrCopy(src: string, dst: string): void {
  try {
    linkSync(src, dst);
  } catch {
    copyFileSync(src, dst);
  }
}

/** One createrepo_c --no-database run over `pool` (a directory of N packages), its metadata written under `work`. */
async function createrepoNoDatabase(work: string, pool: string, n: number): Promise<number> {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  quiesceDisk();
  const seconds = (await run('createrepo_c', ['--no-database', '--outputdir', work, pool])).seconds;
  const repomd = readFileSync(join(work, 'repodata', 'repomd.xml'), 'utf8');
  const p = await primaryFrom(repomd, (href) => readFileSync(join(work, href)));
  if (p.count !== n) throw new Error(`createrepo_c: primary.xml lists ${p.count} packages, expected ${n}`);
  discard(work);
  return seconds;
}

async function benchCreaterepo(work: string, pool: readonly string[], extras: readonly string[], repeat: number, key: GpgKey): Promise<CreaterepoResults> {
  rmSync(work, { recursive: true, force: true });
  const dir = join(work, 'repo');
  mkdirSync(dir, { recursive: true });
  for (const f of pool) linkOrCopy(f, join(dir, basename(f)));
  const version = (await run('createrepo_c', ['--version'])).stdout.trim();
  const repodata = join(dir, 'repodata');
  const check = async (expect: number) => {
    const repomd = readFileSync(join(repodata, 'repomd.xml'), 'utf8');
    const p = await primaryFrom(repomd, (href) => readFileSync(join(dir, href)));
    if (p.count !== expect) throw new Error(`createrepo_c: primary.xml lists ${p.count} packages, expected ${expect}`);
  };
  log(`createrepo_c --no-database: ${pool.length} files`);
  quiesceDisk();
  const coldNoDatabase = (await run('createrepo_c', ['--no-database', dir])).seconds;
  await check(pool.length);
  discard(repodata);
  log(`createrepo_c --no-database ${fmtSeconds(coldNoDatabase)}; createrepo_c (with sqlite)`);
  quiesceDisk();
  const cold = (await run('createrepo_c', [dir])).seconds;
  await check(pool.length);
  const gpg = ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', '--local-user', key.fingerprint, '--digest-algo', 'SHA512', '--armor', '--detach-sign'];
  const signRepomd = async () => (await run('gpg', [...gpg, '-o', join(repodata, 'repomd.xml.asc'), join(repodata, 'repomd.xml')], { env: key.env })).seconds;
  const coldSign = await signRepomd();
  log(`createrepo_c ${fmtSeconds(cold)}, gpg sign ${fmtSeconds(coldSign)}; add 1 + createrepo_c --update x${repeat}`);
  const update: CreaterepoResults['update'] = [];
  for (let k = 0; k < repeat; k++) {
    linkOrCopy(extras[k]!, join(dir, basename(extras[k]!)));
    const u = (await run('createrepo_c', ['--update', dir])).seconds;
    const sg = await signRepomd();
    await check(pool.length + k + 1);
    update.push({ update: u, sign: sg, total: u + sg });
    log(`createrepo_c --update (${pool.length + k + 1} packages) ${fmtSeconds(u)} + gpg sign ${fmtSeconds(sg)}`);
  }
  discard(work);
  return {
    version,
    coldNoDatabase,
    cold,
    coldSign,
    update,
    updateMedian: median(update.map((u) => u.update)),
    updateSignMedian: median(update.map((u) => u.sign)),
    updateTotalMedian: median(update.map((u) => u.total)),
  };
}

/** Runs the RPM benchmark and returns the report (text) after writing the JSON results to `o.out`. */
export async function benchRpm(o: RpmBenchOptions): Promise<string> {
  const started = performance.now();
  const { n: N, repeat: REPEAT } = o;
  log(`RPM: N=${N}, repeat=${REPEAT},${o.noPackageSigning ? ' packages NOT re-signed (--no-package-signing),' : ''} HTTP concurrency ${o.concurrency.join(',')}, server fsync ${o.fsync ?? 'default'}; ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}`);
  await ensureRpmTools();
  const rpms = ensureRpms(o.cache, N, 2 * REPEAT, log);
  await validate([rpms.pool[0]!, rpms.pool[Math.min(9, N - 1)]!, rpms.extra[0]!]);
  log('rpm, rpmkeys --checksig, rpm2cpio, readRpm and signRpm read the generated packages');
  mkdirSync(o.work, { recursive: true });

  // Cold publish over HTTP at each concurrency; the first run then takes one more package at a time (CLI, then HTTP).
  const runs: WharfRpmRun[] = [];
  for (const [i, c] of o.concurrency.entries()) {
    const cliUpd = i === 0 && !o.skipCli ? rpms.extra.slice(0, REPEAT) : [];
    const httpUpd = i === 0 ? rpms.extra.slice(REPEAT, 2 * REPEAT) : [];
    runs.push(await wharfRun(o, `HTTP x${c}`, join(o.work, `wharf-rpm-${c}`), c, cliUpd, httpUpd, rpms.pool));
  }
  // The CLI with several files sends batches (tar archives of up to 1000 packages, one publish each).
  if (!o.skipCli) {
    const cliRun = (k: number) => wharfRun(o, k === 1 ? 'CLI batches' : `CLI batches (cold run ${k})`, join(o.work, `wharf-rpm-cli-${k}`), 0, [], [], rpms.pool, [], (s) => cliPush(s, rpms.pool, 8, RPM_TARGET));
    const first = await cliRun(1);
    // Thousands of files created: on a VM the file system's speed drifts from minute to minute, the median counts.
    const colds = [first.coldSeconds];
    for (let k = 2; k <= (o.coldRuns ?? 1); k++) colds.push((await cliRun(k)).coldSeconds);
    if (colds.length > 1) Object.assign(first, { coldRuns: colds, coldSeconds: median(colds) });
    runs.push(first);
  }
  // The same files imported where they lie (`wharf import`, no upload), as createrepo_c indexes them: hard-linked
  // into the tree (--link), and copied (the default).
  if (!o.skipImport) {
    const pool = dirname(rpms.pool[0]!);
    for (const link of [true, false]) {
      const name = link ? 'CLI import --link' : 'CLI import (copy)';
      // The first --link run then restarts the server and pushes one more package (documents rebuilt from the rows).
      const importRun = (k: number) => wharfRun(o, k === 1 ? name : `${name} (cold run ${k})`, join(o.work, `wharf-rpm-import-${link}-${k}`), 0, [], [], rpms.pool, [], (s) => cliImport(s, pool, link, RPM_TARGET), link && k === 1 ? rpms.extra[0] : undefined);
      // With --link (the target's comparison), each run is paired with a createrepo_c run right before it.
      const paired = link && !o.skipCreaterepo;
      const pairs: NonNullable<WharfRpmRun['pairs']> = [];
      const pairedRun = async (k: number) => {
        const ref = paired ? await createrepoNoDatabase(join(o.work, `createrepo-pair-${k}`), pool, rpms.pool.length) : undefined;
        const r = await importRun(k);
        if (ref !== undefined) {
          pairs.push({ createrepo: ref, wharf: r.coldSeconds, ratio: ref / r.coldSeconds });
          log(`paired: createrepo_c --no-database ${fmtSeconds(ref)}, wharf import --link ${fmtSeconds(r.coldSeconds)}: ${(ref / r.coldSeconds).toFixed(2)}x`);
        }
        return r;
      };
      const first = await pairedRun(1);
      const colds = [first.coldSeconds];
      for (let k = 2; k <= (link ? (o.coldRuns ?? 1) : 1); k++) colds.push((await pairedRun(k)).coldSeconds);
      if (colds.length > 1) Object.assign(first, { coldRuns: colds, coldSeconds: median(colds) });
      if (pairs.length > 0) first.pairs = pairs;
      runs.push(first);
    }
  }
  const main = runs[0]!;
  let profile: ProfileSummary | undefined;
  let profileFile: string | undefined;
  if (o.profile) {
    const dir = join(o.work, '..', `wharf-bench-rpm-profile-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    // The profile follows the client the target is judged on: CLI batches unless --skip-cli.
    const c = o.concurrency[0]!;
    const flags = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
    const prof = o.skipCli
      ? await wharfRun(o, `HTTP x${c}, --cpu-prof`, join(o.work, 'wharf-rpm-prof'), c, [], [], rpms.pool, flags)
      : await wharfRun(o, 'CLI batches, --cpu-prof', join(o.work, 'wharf-rpm-prof'), 0, [], [], rpms.pool, flags, (s) => cliPush(s, rpms.pool, 8, RPM_TARGET));
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length) {
      profileFile = join(dir, files[0]!);
      profile = summariseProfile(profileFile);
      log(`profile (${fmtSeconds(prof.coldSeconds)} under the profiler) written to ${profileFile}`);
    }
  }

  let cr: CreaterepoResults | undefined;
  if (!o.skipCreaterepo) cr = await benchCreaterepo(join(o.work, 'createrepo'), rpms.pool, rpms.extra, REPEAT, await o.key());
  log(`storage floor: reading the ${N} packages and writing them into a pool, nothing else`);
  const floor = await storageFloor(rpms.pool, o.work);
  log(`storage floor ${fmtSeconds(floor.seconds)} (one at a time ${fmtSeconds(floor.sequential)}, 16 at a time ${fmtSeconds(floor.concurrent)})`);
  log(`format floor: Wharf's RPM checks, SHA-256 and XML fragments on the ${N} packages, in memory, one thread`);
  const formatFloor = await rpmFormatFloor(rpms.pool);
  log(`format floor ${fmtSeconds(formatFloor.seconds)} (${fmtFloorSteps(formatFloor)})`);
  rmSync(o.work, { recursive: true, force: true });

  // ---- report ----
  type Row = [string, string, string, string, string];
  const rows: Row[] = [];
  const ratio = (ref: number | undefined, w: number | undefined) => (ref === undefined || w === undefined ? '-' : `${(ref / w).toFixed(2)}x`);
  const target = (ref: number | undefined, w: number | undefined, need: number) => (ref === undefined || w === undefined ? '-' : ref / w >= need ? 'yes' : 'NO');
  const targets: Record<string, { wharf: number; reference: number | undefined; ratio: number | undefined; need: number; met: boolean | undefined }> = {};
  const addTarget = (id: string, w: number | undefined, ref: number | undefined, need: number) => {
    if (w === undefined) return;
    targets[id] = { wharf: w, reference: ref, ratio: ref === undefined ? undefined : ref / w, need, met: ref === undefined ? undefined : ref / w >= need };
  };
  const best = runs.reduce((a, b) => (b.coldSeconds < a.coldSeconds ? b : a));
  for (const r of runs) rows.push([`(a) cold publish ${N} [${r.client}] vs createrepo_c --no-database (>= 1x)`, fmtSeconds(r.coldSeconds), fmtSeconds(cr?.coldNoDatabase), ratio(cr?.coldNoDatabase, r.coldSeconds), target(cr?.coldNoDatabase, r.coldSeconds, 1)]);
  if (cr) {
    rows.push([`    (info) vs createrepo_c --no-database + gpg sign repomd.xml`, fmtSeconds(best.coldSeconds), fmtSeconds(cr.coldNoDatabase + cr.coldSign), ratio(cr.coldNoDatabase + cr.coldSign, best.coldSeconds), '']);
    rows.push([`    (info) vs createrepo_c (with sqlite databases)`, fmtSeconds(best.coldSeconds), fmtSeconds(cr.cold), ratio(cr.cold, best.coldSeconds), '']);
  }
  // What storing the packages costs by itself on this machine: when it is above 1/need of the reference, no design
  // that keeps each package as a file (the tree a CDN serves) can meet the target here.
  rows.push([`    (info) floor: read the ${N} files and write them into a pool, nothing else (no parsing, hashing, database, metadata)`, fmtSeconds(floor.seconds), fmtSeconds(cr?.coldNoDatabase), ratio(cr?.coldNoDatabase, floor.seconds), '']);
  rows.push([`    (info) floor: Wharf's format code alone (parse, SHA-256, XML; in memory, one thread)`, fmtSeconds(formatFloor.seconds), fmtSeconds(cr?.coldNoDatabase), ratio(cr?.coldNoDatabase, formatFloor.seconds), '']);
  rows.push([`    (info) both floors`, fmtSeconds(floor.seconds + formatFloor.seconds), fmtSeconds(cr?.coldNoDatabase), ratio(cr?.coldNoDatabase, floor.seconds + formatFloor.seconds), '']);
  addTarget('cold_vs_createrepo_no_database', best.coldSeconds, cr?.coldNoDatabase, 1);
  for (const r of runs) {
    if (!r.pairs) continue;
    const m = median(r.pairs.map((p) => p.ratio));
    rows.push([`(a) cold publish ${N} [${r.client}], each run paired with a createrepo_c --no-database run just before it: median ratio of ${r.pairs.length} pairs (>= 1x)`, fmtSeconds(median(r.pairs.map((p) => p.wharf))), fmtSeconds(median(r.pairs.map((p) => p.createrepo))), `${m.toFixed(2)}x`, m >= 1 ? 'yes' : 'NO']);
    targets.cold_paired_vs_createrepo_no_database = { wharf: median(r.pairs.map((p) => p.wharf)), reference: median(r.pairs.map((p) => p.createrepo)), ratio: m, need: 1, met: m >= 1 };
  }
  if (main.httpUpdateMedian !== undefined) {
    rows.push([`(b) +1 package over one HTTP request, until signed repomd.xml live (median of ${REPEAT}) vs createrepo_c --update (>= 20x)`, fmtSeconds(main.httpUpdateMedian), fmtSeconds(cr?.updateMedian), ratio(cr?.updateMedian, main.httpUpdateMedian), target(cr?.updateMedian, main.httpUpdateMedian, 20)]);
    if (cr) rows.push([`    (info) vs createrepo_c --update + gpg sign repomd.xml`, fmtSeconds(main.httpUpdateMedian), fmtSeconds(cr.updateTotalMedian), ratio(cr.updateTotalMedian, main.httpUpdateMedian), '']);
    addTarget('update_http_vs_createrepo_update', main.httpUpdateMedian, cr?.updateMedian, 20);
  }
  for (const r of runs) {
    if (r.afterRestart === undefined) continue;
    rows.push([`    (info) +1 package over HTTP right after a restart (nothing cached: all ${N + 1} packages' documents from the database) vs createrepo_c --no-database`, fmtSeconds(r.afterRestart), fmtSeconds(cr?.coldNoDatabase), ratio(cr?.coldNoDatabase, r.afterRestart), '']);
    rows.push([`    (info) the same vs createrepo_c --update`, fmtSeconds(r.afterRestart), fmtSeconds(cr?.updateMedian), ratio(cr?.updateMedian, r.afterRestart), '']);
  }
  if (main.updateMedian !== undefined) {
    rows.push([`(b) +1 package with the CLI (median of ${REPEAT}) vs createrepo_c --update (>= 20x)`, fmtSeconds(main.updateMedian), fmtSeconds(cr?.updateMedian), ratio(cr?.updateMedian, main.updateMedian), target(cr?.updateMedian, main.updateMedian, 20)]);
    addTarget('update_cli_vs_createrepo_update', main.updateMedian, cr?.updateMedian, 20);
  }

  const header: Row = ['operation', 'Wharf', 'reference', 'ratio (ref/Wharf)', 'target met'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: Row) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out: string[] = [];
  out.push('', `RPM publishing benchmark: N=${N} packages, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg()[0]!.toFixed(1)}, Wharf ${o.wharfVersion || '?'}, server fsync ${o.fsync ?? 'default'}${o.noPackageSigning ? ', repository --no-package-signing' : ''}${cr ? `, createrepo_c ${cr.version.split('\n')[0]}` : ''}`, '');
  out.push(line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), '');
  out.push('Details:');
  for (const r of runs) {
    out.push(`  Wharf ${r.client}: cold ${fmtSeconds(r.coldSeconds)}${r.coldRuns ? ` (median of ${r.coldRuns.map(fmtSeconds).join(', ')}; publishes, CPU and RSS of the first)` : ''} (${(N / r.coldSeconds).toFixed(0)} pkg/s, ${r.coldPublishes} publishes, server CPU ${r.coldServerCpuSeconds.toFixed(1)} s); peak RSS: start ${fmtBytes(r.startupPeakRss)}, cold publish ${fmtBytes(r.coldPeakRss)}${r.updatePeakRss ? `, +1 pushes ${fmtBytes(r.updatePeakRss)}` : ''}`);
    if (r.updates) out.push(`    +1 pushes (CLI): ${r.updates.map(fmtSeconds).join(', ')}`);
    if (r.httpUpdates) out.push(`    +1 pushes (HTTP): ${r.httpUpdates.map(fmtSeconds).join(', ')}`);
    if (r.pairs) out.push(`    pairs (createrepo_c --no-database / Wharf): ${r.pairs.map((p) => `${fmtSeconds(p.createrepo)}/${fmtSeconds(p.wharf)} = ${p.ratio.toFixed(2)}x`).join(', ')}`);
  }
  out.push(`  Wharf peak RSS (server process, VmHWM): ${fmtBytes(Math.max(...runs.map((r) => r.peakRss)))}`);
  if (cr) {
    out.push(`  createrepo_c: --no-database ${fmtSeconds(cr.coldNoDatabase)}, with sqlite ${fmtSeconds(cr.cold)}, gpg sign repomd.xml ${fmtSeconds(cr.coldSign)}`);
    out.push(`    add 1 + --update + gpg sign: ${cr.update.map((u) => `${fmtSeconds(u.update)}+${fmtSeconds(u.sign)}`).join(', ')}`);
  }
  if (profile) {
    out.push(`  CPU profile of the server during a cold publish (${profile.totalSeconds.toFixed(1)} s sampled; ${profileFile}):`);
    out.push('    self time:');
    for (const p of profile.self.slice(0, 15)) out.push(`      ${p.pct.toFixed(1).padStart(5)}%  ${p.seconds.toFixed(2).padStart(7)} s  ${p.fn}`);
    out.push('    inclusive (src/ frames):');
    for (const p of profile.inclusive.slice(0, 15)) out.push(`      ${p.pct.toFixed(1).padStart(5)}%  ${p.seconds.toFixed(2).padStart(7)} s  ${p.fn}`);
  }
  out.push(`  best Wharf cold publish: ${best.client}, ${fmtSeconds(best.coldSeconds)}; RPM benchmark took ${fmtSeconds((performance.now() - started) / 1000)}`);
  const results = {
    benchmark: 'rpm-publish',
    date: new Date().toISOString(),
    n: N,
    repeat: REPEAT,
    fsync: o.fsync ?? 'default',
    packageSigning: !o.noPackageSigning,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, totalMemory: totalmem() },
    wharf: { version: o.wharfVersion, runs },
    createrepo_c: cr,
    storageFloor: floor,
    formatFloor,
    targets,
    profile: profile ? { file: profileFile, ...profile } : undefined,
  };
  writeFileSync(o.out, JSON.stringify(results, null, 2) + '\n');
  out.push(`  results (JSON): ${o.out}`, '');
  return out.join('\n');
}
