// Debian version strings: parsing and comparison exactly as dpkg does (lib/dpkg/parsehelp.c parseversion,
// lib/dpkg/version.c verrevcmp / dpkg_version_compare).
import { WharfError } from '../../errors.ts';

export interface DebVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

const INT_MAX = 2147483647;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function bad(v: string, why: string): WharfError {
  return new WharfError('DEB_BAD_FIELD', [`version "${v}": ${why}`]);
}

/**
 * Parses `[epoch:]upstream[-revision]`. Follows dpkg's rules: the epoch is the text before the first ':' and must be
 * a decimal number <= INT_MAX; the revision is the text after the last '-' and must not be empty when the '-' is there;
 * the upstream version must start with a digit and use only [A-Za-z0-9.+~:-] (':' and '-' are only possible when an
 * epoch / a revision is present); the revision uses only [A-Za-z0-9.+~]. Whitespace is rejected anywhere (dpkg trims
 * leading/trailing blanks; control field values are already trimmed).
 */
export function parseDebVersion(v: string): DebVersion {
  if (typeof v !== 'string' || v.length === 0) throw bad(String(v), 'version string is empty');
  if (/\s/.test(v)) throw bad(v, 'version string has embedded spaces');
  let rest = v;
  let epoch = 0;
  const colon = v.indexOf(':');
  if (colon >= 0) {
    const e = v.slice(0, colon);
    if (e.length === 0) throw bad(v, 'epoch in version is empty');
    if (!/^[0-9]+$/.test(e)) throw bad(v, 'epoch in version is not number');
    const n = Number(e);
    if (n > INT_MAX) throw bad(v, 'epoch in version is too big');
    epoch = n;
    rest = v.slice(colon + 1);
    if (rest.length === 0) throw bad(v, 'nothing after colon in version number');
  }
  let upstream = rest;
  let revision = '';
  const hyphen = rest.lastIndexOf('-');
  if (hyphen >= 0) {
    upstream = rest.slice(0, hyphen);
    revision = rest.slice(hyphen + 1);
    if (revision.length === 0) throw bad(v, 'revision number is empty');
  }
  if (upstream.length === 0) throw bad(v, 'version number is empty');
  if (!isDigit(upstream.charCodeAt(0))) throw bad(v, 'version number does not start with digit');
  for (let i = 1; i < upstream.length; i++) {
    const c = upstream.charCodeAt(i);
    if (!isDigit(c) && !isAlpha(c) && !'.-+~:'.includes(upstream[i]!)) throw bad(v, 'invalid character in version number');
  }
  for (let i = 0; i < revision.length; i++) {
    const c = revision.charCodeAt(i);
    if (!isDigit(c) && !isAlpha(c) && !'.+~'.includes(revision[i]!)) throw bad(v, 'invalid character in revision number');
  }
  return { epoch, upstream, revision };
}

/** True when `v` is a valid Debian version. */
export function isValidDebVersion(v: string): boolean {
  try {
    parseDebVersion(v);
    return true;
  } catch {
    return false;
  }
}

function order(s: string, i: number): number {
  if (i >= s.length) return 0;
  const c = s.charCodeAt(i);
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 0x7e) return -1; // '~'
  return c + 256;
}

/** dpkg's verrevcmp on one part (upstream or revision). Returns <0, 0 or >0. */
export function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = order(a, i);
      const bc = order(b, j);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 0x30) i++;
    while (b.charCodeAt(j) === 0x30) j++;
    while (i < a.length && j < b.length && isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a.charCodeAt(i))) return 1;
    if (j < b.length && isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** Compares two parsed versions: -1, 0 or 1. */
export function compareParsedDebVersions(a: DebVersion, b: DebVersion): number {
  if (a.epoch !== b.epoch) return a.epoch > b.epoch ? 1 : -1;
  const r = verrevcmp(a.upstream, b.upstream) || verrevcmp(a.revision, b.revision);
  return Math.sign(r);
}

/** Compares two Debian versions like `dpkg --compare-versions`: -1, 0 or 1. Throws DEB_BAD_FIELD on invalid input. */
export function compareDebVersions(a: string, b: string): number {
  return compareParsedDebVersions(parseDebVersion(a), parseDebVersion(b));
}
