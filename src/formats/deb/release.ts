// The Release file of an APT distribution (what InRelease and Release.gpg sign).
import type { FileDigests } from '../digests.ts';

export interface IndexFileEntry extends FileDigests {
  /** path relative to the dists/DIST/ directory, e.g. main/binary-amd64/Packages.xz */
  readonly path: string;
}

export interface ReleaseInfo {
  readonly origin: string;
  readonly label: string;
  readonly suite: string;
  readonly codename: string;
  /** Seconds since the epoch. */
  readonly date: number;
  readonly architectures: readonly string[];
  readonly components: readonly string[];
  readonly description?: string;
  readonly files: readonly IndexFileEntry[];
}

const HASHES = [
  ['MD5Sum', 'md5'],
  ['SHA1', 'sha1'],
  ['SHA256', 'sha256'],
  ['SHA512', 'sha512'],
] as const;

/** RFC 1123 date in UTC, the form apt's StrToTime parses. */
export function releaseDate(seconds: number): string {
  return new Date(seconds * 1000).toUTCString().replace(/GMT$/, 'UTC');
}

function oneLine(name: string, v: string): string {
  if (/[\r\n]/.test(v) || v !== v.trim()) throw new Error(`Release field ${name} must be a single trimmed line`);
  return v;
}

export function renderRelease(r: ReleaseInfo): string {
  const lines = [
    `Origin: ${oneLine('Origin', r.origin)}`,
    `Label: ${oneLine('Label', r.label)}`,
    `Suite: ${oneLine('Suite', r.suite)}`,
    `Codename: ${oneLine('Codename', r.codename)}`,
    `Date: ${releaseDate(r.date)}`,
    `Architectures: ${r.architectures.join(' ')}`,
    `Components: ${r.components.join(' ')}`,
  ];
  if (r.description) lines.push(`Description: ${oneLine('Description', r.description)}`);
  lines.push('Acquire-By-Hash: yes');
  const files = [...r.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const [title, key] of HASHES) {
    lines.push(`${title}:`);
    for (const f of files) lines.push(` ${f[key]} ${String(f.size).padStart(16)} ${f.path}`);
  }
  return lines.join('\n') + '\n';
}
