// Names that become URL path segments and storage keys. One safe character set everywhere, so a name can never
// smuggle a path separator, a dot-segment or a character that needs escaping into a URL or a file name.
import { WharfError } from './errors.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** Top-level URL segments used by the server itself. */
const RESERVED_ORGS = new Set(['api', 'healthz', 'readyz', 'favicon.ico', 'robots.txt']);
/** Names under /ORG/REPO/ that are files of the repository itself. */
const RESERVED_OS = new Set(['gpgkey', 'package-gpgkey', 'install', 'packages', 'pool', 'dists']);

function check(kind: string, value: string, reserved?: Set<string>): string {
  if (typeof value !== 'string' || !NAME.test(value) || value.includes('..') || reserved?.has(value.toLowerCase())) {
    throw new WharfError('INVALID_NAME', [kind, String(value).slice(0, 100)]);
  }
  return value;
}

export const validateOrgName = (v: string): string => check('organisation name', v, RESERVED_ORGS);
export const validateRepoName = (v: string): string => check('repository name', v);

export interface RepoRef {
  readonly org: string;
  readonly repo: string;
}

/** Parses "ORG/REPO". */
export function parseRepoRef(s: string): RepoRef {
  const parts = String(s).split('/');
  if (parts.length !== 2) throw new WharfError('BAD_REQUEST', [`expected ORG/REPO, got "${String(s).slice(0, 100)}"`]);
  return { org: validateOrgName(parts[0]!), repo: validateRepoName(parts[1]!) };
}

/** OS names that are RPM distributions; the others are Debian ones (an unknown OS takes the kind of its first push). */
const RPM_OS = new Set(['el', 'rhel', 'centos', 'rocky', 'almalinux', 'ol', 'fedora', 'amzn', 'opensuse', 'sles', 'suse', 'rpm_any']);
const DEB_OS = new Set(['debian', 'ubuntu', 'any', 'raspbian', 'linuxmint', 'elementaryos', 'pop', 'devuan']);

export function distributionKindOf(os: string): 'deb' | 'rpm' | undefined {
  const o = os.toLowerCase();
  return RPM_OS.has(o) ? 'rpm' : DEB_OS.has(o) ? 'deb' : undefined;
}

export interface DistRef {
  readonly os: string;
  readonly dist: string;
}

export function validateDistRef(os: string, dist: string): DistRef {
  const ok = (v: string, reserved?: Set<string>) =>
    typeof v === 'string' && NAME.test(v) && !v.includes('..') && !reserved?.has(v.toLowerCase());
  // DIST.repo is the .repo file of an RPM distribution, beside its directory.
  if (!ok(os, RESERVED_OS) || !ok(dist) || dist.toLowerCase().endsWith('.repo')) throw new WharfError('INVALID_DISTRIBUTION', [`${String(os).slice(0, 64)}/${String(dist).slice(0, 64)}`]);
  return { os, dist };
}
