// Names that become URL path segments and storage keys. One safe character set everywhere, so a name can never
// smuggle a path separator, a dot-segment or a character that needs escaping into a URL or a file name.
import { WharfError } from './errors.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** Top-level URL segments used by the server itself. */
const RESERVED_ORGS = new Set(['api', 'healthz', 'readyz', 'favicon.ico', 'robots.txt']);
/** Names under /ORG/REPO/ that are files of the repository itself. */
const RESERVED_OS = new Set(['gpgkey', 'install', 'packages', 'pool', 'dists']);

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

export interface DistRef {
  readonly os: string;
  readonly dist: string;
}

export function validateDistRef(os: string, dist: string): DistRef {
  const ok = (v: string, reserved?: Set<string>) =>
    typeof v === 'string' && NAME.test(v) && !v.includes('..') && !reserved?.has(v.toLowerCase());
  if (!ok(os, RESERVED_OS) || !ok(dist)) throw new WharfError('INVALID_DISTRIBUTION', [`${String(os).slice(0, 64)}/${String(dist).slice(0, 64)}`]);
  return { os, dist };
}
