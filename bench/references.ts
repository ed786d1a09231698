// The reference tools the benchmark compares against: aptly and apt-ftparchive, both signing with a throwaway gpg key
// (RSA 4096, like Wharf's metadata key) so that every side does the same work.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { discard, log, median, quiesceDisk, run, which } from './util.ts';

/** Installs aptly and apt-ftparchive (apt-utils) when missing. Needs root. */
export async function ensureTools(): Promise<void> {
  const missing = [['aptly', 'aptly'], ['apt-ftparchive', 'apt-utils'], ['dpkg-deb', 'dpkg'], ['gpg', 'gnupg'], ['xz', 'xz-utils']].filter(([c]) => !which(c!));
  if (missing.length === 0) return;
  const pkgs = missing.map(([, p]) => p!);
  if (process.getuid?.() !== 0) throw new Error(`missing ${pkgs.join(', ')}; install them (apt-get install -y ${pkgs.join(' ')}) or run as root`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`installing ${pkgs.join(' ')}: apt-get install -y ${pkgs.join(' ')}`);
  const r = await run('apt-get', ['install', '-y', ...pkgs], { env, allowFail: true });
  if (r.code !== 0) {
    log('apt-get install failed; running apt-get update and retrying');
    await run('apt-get', ['update'], { env });
    await run('apt-get', ['install', '-y', ...pkgs], { env });
  }
}

export interface GpgKey {
  home: string;
  fingerprint: string;
  env: NodeJS.ProcessEnv;
}

/** A passphrase-less RSA 4096 signing key in its own GNUPGHOME (kept across runs). */
export async function ensureGpgKey(home: string): Promise<GpgKey> {
  const env = { ...process.env, GNUPGHOME: home };
  const fprOf = async () => {
    const r = await run('gpg', ['--batch', '--with-colons', '--list-secret-keys'], { env, allowFail: true });
    return /^fpr:+([0-9A-F]{40}):/m.exec(r.stdout)?.[1];
  };
  if (existsSync(home)) {
    const f = await fprOf();
    if (f) return { home, fingerprint: f, env };
    rmSync(home, { recursive: true, force: true });
  }
  mkdirSync(home, { recursive: true, mode: 0o700 });
  log(`generating an RSA 4096 gpg key in ${home} for aptly and apt-ftparchive`);
  await run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'Wharf Bench <bench@example.org>', 'rsa4096', 'sign', 'never'], { env });
  const f = await fprOf();
  if (!f) throw new Error('gpg key generation failed');
  return { home, fingerprint: f, env };
}

export interface AptlyResults {
  version: string;
  add: number;
  publish: number;
  publishSkipContents: number;
  /** per repetition: repo add of one file + publish update */
  update: { add: number; publish: number; total: number }[];
  updateMedian: number;
  updateSkipContents: { add: number; publish: number; total: number }[];
  updateSkipContentsMedian: number;
}

export async function benchAptly(work: string, poolDir: string, extras: readonly string[], repeat: number, key: GpgKey): Promise<AptlyResults> {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = join(work, 'aptly.conf');
  writeFileSync(
    config,
    JSON.stringify(
      { rootDir: join(work, 'root'), architectures: [], gpgDisableSign: false, gpgDisableVerify: true, gpgProvider: 'gpg', skipContentsPublishing: false },
      null,
      2,
    ),
  );
  const aptly = (...args: string[]) => run('aptly', [`-config=${config}`, ...args], { env: key.env });
  const sign = [`-gpg-key=${key.fingerprint}`, '-batch'];
  const version = (await aptly('version')).stdout.trim();

  await aptly('repo', 'create', '-distribution=bench', '-component=main', 'bench');
  log(`aptly: repo add ${readdirSync(poolDir).length} files`);
  quiesceDisk();
  const add = (await aptly('repo', 'add', 'bench', poolDir)).seconds;
  log(`aptly: repo add ${add.toFixed(2)} s; publish repo`);
  const publish = (await aptly('publish', 'repo', '-distribution=bench', '-architectures=amd64,all', ...sign, 'bench')).seconds;
  log(`aptly: publish ${publish.toFixed(2)} s; add 1 + publish update x${repeat}`);
  const update: AptlyResults['update'] = [];
  for (let k = 0; k < repeat; k++) {
    const a = (await aptly('repo', 'add', 'bench', extras[k]!)).seconds;
    const p = (await aptly('publish', 'update', ...sign, 'bench')).seconds;
    update.push({ add: a, publish: p, total: a + p });
  }
  // The same without Contents indexes (Wharf does not write Contents-*).
  await aptly('publish', 'drop', 'bench');
  log('aptly: publish repo -skip-contents');
  quiesceDisk();
  const publishSkipContents = (await aptly('publish', 'repo', '-distribution=bench', '-architectures=amd64,all', '-skip-contents', ...sign, 'bench')).seconds;
  const updateSkipContents: AptlyResults['update'] = [];
  for (let k = repeat; k < 2 * repeat; k++) {
    const a = (await aptly('repo', 'add', 'bench', extras[k]!)).seconds;
    const p = (await aptly('publish', 'update', '-skip-contents', ...sign, 'bench')).seconds;
    updateSkipContents.push({ add: a, publish: p, total: a + p });
  }
  const inRelease = readFileSync(join(work, 'root/public/dists/bench/InRelease'), 'utf8');
  if (!inRelease.includes('main/binary-amd64/Packages.gz')) throw new Error('aptly did not publish binary-amd64 indexes');
  discard(work);
  return {
    version,
    add,
    publish,
    publishSkipContents,
    update,
    updateMedian: median(update.map((u) => u.total)),
    updateSkipContents,
    updateSkipContentsMedian: median(updateSkipContents.map((u) => u.total)),
  };
}

export interface FtparchiveResults {
  packages: number;
  gzip: number;
  xz: number;
  release: number;
  sign: number;
  total: number;
}

/**
 * apt-ftparchive over the same files: Packages, Packages.gz (gzip -9), Packages.xz (xz -6, its default), Release,
 * InRelease and Release.gpg. `debDir` must contain `pool/` (Filename fields are relative to it).
 */
export async function benchFtparchive(work: string, debDir: string, key: GpgKey): Promise<FtparchiveResults> {
  rmSync(work, { recursive: true, force: true });
  const bin = join(work, 'dists/bench/main/binary-amd64');
  mkdirSync(bin, { recursive: true });
  const packagesFile = join(bin, 'Packages');
  quiesceDisk();
  const packages = (await run('apt-ftparchive', ['packages', 'pool'], { cwd: debDir, stdoutFile: packagesFile })).seconds;
  const gzip = (await run('gzip', ['-9', '-k', '-n', packagesFile])).seconds;
  const xz = (await run('xz', ['-k', packagesFile])).seconds;
  const releaseTmp = join(work, 'Release.tmp');
  const release = (
    await run(
      'apt-ftparchive',
      ['-o', 'APT::FTPArchive::Release::Suite=bench', '-o', 'APT::FTPArchive::Release::Codename=bench', '-o', 'APT::FTPArchive::Release::Architectures=amd64', '-o', 'APT::FTPArchive::Release::Components=main', 'release', 'dists/bench'],
      { cwd: work, stdoutFile: releaseTmp },
    )
  ).seconds;
  const releaseFile = join(work, 'dists/bench/Release');
  renameSync(releaseTmp, releaseFile);
  const gpg = ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', '--local-user', key.fingerprint, '--digest-algo', 'SHA512'];
  const sign =
    (await run('gpg', [...gpg, '--clearsign', '-o', join(work, 'dists/bench/InRelease'), releaseFile], { env: key.env })).seconds +
    (await run('gpg', [...gpg, '--armor', '--detach-sign', '-o', join(work, 'dists/bench/Release.gpg'), releaseFile], { env: key.env })).seconds;
  const count = (readFileSync(packagesFile, 'utf8').match(/^Package: /gm) ?? []).length;
  log(`apt-ftparchive: ${count} stanzas`);
  discard(work);
  return { packages, gzip, xz, release, sign, total: packages + gzip + xz + release + sign };
}
