// An isolated apt installation in a temporary directory: its own sources, lists, cache, dpkg database and install
// root, read through APT_CONFIG so that none of the host's /etc/apt configuration (hooks, keyrings, auth) applies
// and nothing on the host changes. Shared by the apt end-to-end tests.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface AptRootFiles {
  readonly dir: string;
  /** the APT_CONFIG file */
  readonly conf: string;
  /** environment for apt-get/apt-cache run against this root */
  readonly env: Record<string, string>;
}

export async function prepareAptRoot(dir: string, opts: { arch: string; extraConf?: readonly string[] }): Promise<AptRootFiles> {
  for (const d of [
    'etc/apt/sources.list.d',
    'etc/apt/preferences.d',
    'etc/apt/apt.conf.d',
    'etc/apt/auth.conf.d',
    'etc/apt/trusted.gpg.d',
    'var/lib/apt/lists/partial',
    'var/cache/apt/archives/partial',
    'var/lib/dpkg/info',
    'var/lib/dpkg/updates',
    'var/log/apt',
  ]) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await writeFile(join(dir, 'var/lib/dpkg/status'), '');
  const conf = join(dir, 'etc/apt/apt.conf');
  await writeFile(
    conf,
    [
      `Dir "${dir}/";`,
      `Dir::State::status "${dir}/var/lib/dpkg/status";`,
      `Dir::Etc::trusted "/dev/null";`,
      `Dir::Etc::trustedparts "${dir}/etc/apt/trusted.gpg.d";`,
      `Dir::Etc::netrc "${dir}/etc/apt/auth.conf";`,
      `Dir::Etc::netrcparts "${dir}/etc/apt/auth.conf.d";`,
      `Dir::Log "${dir}/var/log/apt";`,
      `Debug::NoLocking "1";`,
      `APT::Architecture "${opts.arch}";`,
      `APT::Architectures { "${opts.arch}"; };`,
      `Acquire::Languages "none";`,
      `APT::Sandbox::User "root";`,
      `DPkg::Options { "--root=${dir}"; "--force-script-chrootless"; "--force-not-root"; "--log=${dir}/dpkg.log"; };`,
      ...(opts.extraConf ?? []),
      '',
    ].join('\n'),
  );
  return { dir, conf, env: { APT_CONFIG: conf, DEBIAN_FRONTEND: 'noninteractive' } };
}
