// rpm's version comparison (rpmio/rpmvercmp.c rpmvercmp, lib/rpmver.c rpmverCmp), including `~` and `^`.
// Works on JS strings; only ASCII letters and digits form segments, everything else separates them, as in rpm.

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
const TILDE = 126;
const CARET = 94;

/** -1, 0 or 1 as `a` is older than, equal to or newer than `b`. */
export function rpmvercmp(a: string, b: string): -1 | 0 | 1 {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  const ca = (k: number) => (k < a.length ? a.charCodeAt(k) : 0);
  const cb = (k: number) => (k < b.length ? b.charCodeAt(k) : 0);
  while (i < a.length || j < b.length) {
    while (i < a.length && !isDigit(ca(i)) && !isAlpha(ca(i)) && ca(i) !== TILDE && ca(i) !== CARET) i++;
    while (j < b.length && !isDigit(cb(j)) && !isAlpha(cb(j)) && cb(j) !== TILDE && cb(j) !== CARET) j++;

    // `~` sorts before everything, even the end of the string
    if (ca(i) === TILDE || cb(j) === TILDE) {
      if (ca(i) !== TILDE) return 1;
      if (cb(j) !== TILDE) return -1;
      i++;
      j++;
      continue;
    }
    // `^` sorts after the end of the string but before anything else
    if (ca(i) === CARET || cb(j) === CARET) {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (ca(i) !== CARET) return 1;
      if (cb(j) !== CARET) return -1;
      i++;
      j++;
      continue;
    }
    if (!(i < a.length && j < b.length)) break;

    let ei = i;
    let ej = j;
    let isNum: boolean;
    if (isDigit(ca(i))) {
      while (ei < a.length && isDigit(ca(ei))) ei++;
      while (ej < b.length && isDigit(cb(ej))) ej++;
      isNum = true;
    } else {
      while (ei < a.length && isAlpha(ca(ei))) ei++;
      while (ej < b.length && isAlpha(cb(ej))) ej++;
      isNum = false;
    }
    if (ei === i) return -1; // cannot happen
    // numeric segments are newer than alpha ones
    if (ej === j) return isNum ? 1 : -1;

    let sa = a.slice(i, ei);
    let sb = b.slice(j, ej);
    if (isNum) {
      sa = sa.replace(/^0+/, '');
      sb = sb.replace(/^0+/, '');
      if (sa.length > sb.length) return 1;
      if (sb.length > sa.length) return -1;
    }
    if (sa !== sb) return sa < sb ? -1 : 1;
    i = ei;
    j = ej;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

export interface EVR {
  /** absent, '' and undefined mean 0 */
  readonly epoch?: string | number | null;
  readonly version: string;
  /** compared only when both sides have one (rpmverCmp) */
  readonly release?: string | null;
}

/** Compares epoch, version and release like rpm's rpmverCmp. */
export function compareEVR(x: EVR, y: EVR): -1 | 0 | 1 {
  const ex = x.epoch === undefined || x.epoch === null || x.epoch === '' ? '0' : String(x.epoch);
  const ey = y.epoch === undefined || y.epoch === null || y.epoch === '' ? '0' : String(y.epoch);
  let rc = rpmvercmp(ex, ey);
  if (rc) return rc;
  rc = rpmvercmp(x.version, y.version);
  if (rc) return rc;
  if (x.release !== undefined && x.release !== null && y.release !== undefined && y.release !== null) {
    rc = rpmvercmp(x.release, y.release);
  }
  return rc;
}
