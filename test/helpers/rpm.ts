// Builds real RPMs with rpmbuild from a generated spec in a throw-away _topdir (nothing under ~/rpmbuild, no ~/.rpmmacros
// read or written: HOME points into the temporary directory while rpmbuild runs).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface RpmSpec {
  name: string;
  version: string;
  release: string;
  arch: 'x86_64' | 'aarch64' | 'i686' | 'noarch';
  summary?: string;
  requires?: string[];
  provides?: string[];
  /** Absolute install path (e.g. /usr/bin/tool) -> content. Files under /usr/bin and /usr/sbin are executable. */
  files?: Record<string, string>;
  /** Also build the source RPM (returned as `srpm`). */
  source?: boolean;
}

export interface BuiltRpm {
  rpm: string;
  srpm?: string;
}

/** Runs rpmbuild -bb (and -bs when `source`) and moves the results into `dir`; returns their paths. */
export async function buildRpm(dir: string, spec: RpmSpec): Promise<BuiltRpm> {
  const top = await mkdtemp(join(dir, 'rpmbuild-'));
  for (const d of ['SPECS', 'SOURCES', 'BUILD', 'BUILDROOT', 'RPMS', 'SRPMS', 'home']) await mkdir(join(top, d), { recursive: true });
  const files = spec.files ?? { [`/usr/share/${spec.name}/README`]: `${spec.name} ${spec.version}-${spec.release}\n` };
  // The payload is written by %install from base64 (no Source files needed, so the SRPM carries only the spec).
  const install = Object.entries(files)
    .map(([p, content]) => {
      const mode = /\/s?bin\//.test(p) ? '0755' : '0644';
      return [
        `mkdir -p %{buildroot}$(dirname ${p})`,
        `echo '${Buffer.from(content).toString('base64')}' | base64 -d > %{buildroot}${p}`,
        `chmod ${mode} %{buildroot}${p}`,
      ].join('\n');
    })
    .join('\n');
  const text = [
    `Name: ${spec.name}`,
    `Version: ${spec.version}`,
    `Release: ${spec.release}`,
    `Summary: ${spec.summary ?? `The ${spec.name} test package`}`,
    'License: MIT',
    'URL: https://example.invalid/',
    // rpmbuild on x86_64 finds no compatible build architecture for BuildArch: i686; --target alone builds it.
    ...(spec.arch === 'i686' ? [] : [`BuildArch: ${spec.arch}`]),
    'AutoReqProv: no',
    ...(spec.requires ?? []).map((r) => `Requires: ${r}`),
    ...(spec.provides ?? []).map((r) => `Provides: ${r}`),
    '',
    '%description',
    `${spec.name} is a package built by the Wharf test suite.`,
    '',
    '%prep',
    '%build',
    '%install',
    install,
    '',
    '%files',
    ...Object.keys(files),
    '',
    '%changelog',
    `* Mon Jan 01 2024 Wharf Tests <tests@example.invalid> - ${spec.version}-${spec.release}`,
    '- Test build',
    '',
  ].join('\n');
  const specPath = join(top, 'SPECS', `${spec.name}.spec`);
  await writeFile(specPath, text);
  const args = [
    spec.source ? '-ba' : '-bb',
    '--define',
    `_topdir ${top}`,
    '--define',
    '_build_id_links none',
    '--define',
    '__os_install_post %{nil}',
    '--define',
    'debug_package %{nil}',
    '--define',
    '_binary_payload w9.gzdio',
    '--define',
    '_source_payload w9.gzdio',
    '--define',
    'source_date_epoch_from_changelog 1',
    '--define',
    'clamp_mtime_to_source_date_epoch 1',
    '--nodeps',
    '--target',
    spec.arch,
    specPath,
  ];
  try {
    await execFileP('rpmbuild', args, {
      env: { ...process.env, HOME: join(top, 'home'), LC_ALL: 'C.UTF-8', SOURCE_DATE_EPOCH: '1704067200' },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`rpmbuild failed for ${spec.name}: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}\n--- spec ---\n${text}`);
  }
  const base = `${spec.name}-${spec.version}-${spec.release}`;
  const out: BuiltRpm = { rpm: join(dir, `${base}.${spec.arch}.rpm`) };
  await rename(join(top, 'RPMS', spec.arch, `${base}.${spec.arch}.rpm`), out.rpm);
  if (spec.source) {
    const srpms = await readdir(join(top, 'SRPMS'));
    out.srpm = join(dir, srpms[0]!);
    await rename(join(top, 'SRPMS', srpms[0]!), out.srpm);
  }
  await rm(top, { recursive: true, force: true });
  return out;
}
