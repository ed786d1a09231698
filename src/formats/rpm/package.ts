// What createrepo_c (0.17.3, as packaged in Debian bookworm, built with legacy weak deps) records about a package,
// computed from the parsed headers. Follows src/parsehdr.c cr_package_from_header, src/misc.c cr_str_to_evr and
// cr_flag_to_str, src/xml_dump.c (control character check, Latin-1 fallback) and src/misc.h cr_is_primary.
import { WharfError } from '../../errors.ts';
import type { RpmFile, RpmHeader } from './header.ts';
import type { RpmChangelogEntry, RpmDependency, RpmFileEntry, RpmPackageMetadata } from './metadata.ts';
import { decodeRpmText } from './header.ts';
import { rpmvercmp } from './vercmp.ts';

export const TAG = {
  NAME: 1000, VERSION: 1001, RELEASE: 1002, EPOCH: 1003, SUMMARY: 1004, DESCRIPTION: 1005, BUILDTIME: 1006,
  BUILDHOST: 1007, SIZE: 1009, VENDOR: 1011, LICENSE: 1014, PACKAGER: 1015, GROUP: 1016, URL: 1020, ARCH: 1022,
  OLDFILENAMES: 1027, FILEMODES: 1030, FILEFLAGS: 1037, SOURCERPM: 1044, ARCHIVESIZE: 1046,
  PROVIDENAME: 1047, REQUIREFLAGS: 1048, REQUIRENAME: 1049, REQUIREVERSION: 1050,
  CONFLICTFLAGS: 1053, CONFLICTNAME: 1054, CONFLICTVERSION: 1055,
  CHANGELOGTIME: 1080, CHANGELOGNAME: 1081, CHANGELOGTEXT: 1082,
  OBSOLETENAME: 1090, SOURCEPACKAGE: 1106, PROVIDEFLAGS: 1112, PROVIDEVERSION: 1113, OBSOLETEFLAGS: 1114,
  OBSOLETEVERSION: 1115, DIRINDEXES: 1116, BASENAMES: 1117, DIRNAMES: 1118,
  OLDSUGGESTSNAME: 1156, OLDSUGGESTSVERSION: 1157, OLDSUGGESTSFLAGS: 1158,
  OLDENHANCESNAME: 1159, OLDENHANCESVERSION: 1160, OLDENHANCESFLAGS: 1161,
  LONGARCHIVESIZE: 271, LONGSIZE: 5009,
  RECOMMENDNAME: 5046, RECOMMENDVERSION: 5047, RECOMMENDFLAGS: 5048,
  SUGGESTNAME: 5049, SUGGESTVERSION: 5050, SUGGESTFLAGS: 5051,
  SUPPLEMENTNAME: 5052, SUPPLEMENTVERSION: 5053, SUPPLEMENTFLAGS: 5054,
  ENHANCENAME: 5055, ENHANCEVERSION: 5056, ENHANCEFLAGS: 5057,
} as const;

export const SIGTAG = { SIZE: 1000, MD5: 1004, PAYLOADSIZE: 1007, SHA1: 269, SHA256: 273, LONGARCHIVESIZE: 271 } as const;

export const RPMSENSE = {
  LESS: 1 << 1, GREATER: 1 << 2, EQUAL: 1 << 3,
  POSTTRANS: 1 << 5, PREREQ: 1 << 6, PRETRANS: 1 << 7, SCRIPT_PRE: 1 << 9, SCRIPT_POST: 1 << 10,
  MISSINGOK: 1 << 19, STRONG: 1 << 27,
} as const;

/**
 * Flags that make createrepo_c 0.17.3 write pre="1". (createrepo_c >= 1.1.1 adds PRETRANS and POSTTRANS; the
 * installed 0.17.3, which the repository must agree with, does not.)
 */
export const PRE_MASK = RPMSENSE.PREREQ | RPMSENSE.SCRIPT_PRE | RPMSENSE.SCRIPT_POST;
const RPMFILE_GHOST = 1 << 6;

export interface RpmPackageOptions {
  /** Newest changelog entries kept (createrepo_c --changelog-limit, default 10); -1 or Infinity keeps all. */
  changelogLimit?: number;
}

/** createrepo_c's cr_is_primary: the files primary.xml lists. */
export function isPrimaryFile(path: string): boolean {
  return path.startsWith('/etc/') || path === '/usr/lib/sendmail' || path.includes('bin/');
}

/** createrepo_c's cr_flag_to_str */
export function flagToString(flags: number): RpmDependency['flags'] {
  switch (flags & 0xf) {
    case 2: return 'LT';
    case 4: return 'GT';
    case 8: return 'EQ';
    case 10: return 'LE';
    case 12: return 'GE';
    default: return undefined;
  }
}

export interface SplitEVR {
  epoch?: string;
  version?: string;
  release?: string;
  /** a non-numeric epoch: createrepo_c skips such a dependency */
  badEpoch: boolean;
}

/** createrepo_c's cr_str_to_evr: `[E:]V[-R]`; epoch '0' when absent, release absent when empty. */
export function splitEVR(s: string | undefined): SplitEVR {
  if (!s) return { badEpoch: false };
  const out: SplitEVR = { badEpoch: false };
  const colon = s.indexOf(':');
  let rest: string;
  if (colon >= 0) {
    // strtol(string, &p, 10) must stop exactly at the colon
    const m = /^[ \t\n\v\f\r]*[+-]?[0-9]+/.exec(s);
    const stop = m ? m[0].length : 0;
    if (stop === colon) {
      if (colon > 0) out.epoch = s.slice(0, colon);
    } else {
      out.badEpoch = true;
    }
    rest = s.slice(colon + 1);
  } else {
    rest = s;
  }
  if (out.epoch === undefined && !out.badEpoch) out.epoch = '0';
  const dash = rest.indexOf('-');
  if (dash >= 0) {
    out.version = rest.slice(0, dash);
    const rel = rest.slice(dash + 1);
    if (rel) out.release = rel;
  } else {
    out.version = rest;
  }
  return out;
}

// Logic runs on "binary strings" (one char per byte, Latin-1 decoding) so comparisons behave like createrepo_c's
// byte comparisons (RpmHeader.binaryStrings); text() turns them into the XML text.

function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 && c !== 9 && c !== 10 && c !== 13) return true;
  }
  return false;
}

/** Checks for forbidden control characters (createrepo_c refuses the package) and decodes as createrepo_c does. */
function text(s: string, field: string | (() => string)): string {
  // Nearly every string is printable ASCII, which decodes to itself: one scan, no copies.
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x7f || (c < 32 && c !== 9 && c !== 10 && c !== 13)) break;
  }
  if (i === s.length) return s;
  if (hasControlChars(s)) {
    const c = [...s].find((ch) => hasControlChars(ch))!.charCodeAt(0);
    throw new WharfError('RPM_BAD_TEXT', [`${typeof field === 'string' ? field : field()} contains control character 0x${c.toString(16).padStart(2, '0')}`]);
  }
  return decodeRpmText(Buffer.from(s, 'latin1'));
}

function str(h: RpmHeader, tag: number): string | undefined {
  return h.binaryString(tag);
}

function strs(h: RpmHeader, tag: number): string[] | undefined {
  return h.binaryStrings(tag); // I18NSTRING: C locale only
}

function badHeader(msg: string): WharfError {
  return new WharfError('RPM_BAD_HEADER', [msg]);
}

interface RawDep {
  name: string;
  flags: number;
  version: string;
}

function rawDeps(h: RpmHeader, nameTag: number, flagsTag: number, versionTag: number): RawDep[] {
  const names = strs(h, nameTag);
  const flags = h.numbers(flagsTag);
  const versions = strs(h, versionTag);
  if (!names || !flags || !versions) return [];
  const n = Math.min(names.length, flags.length, versions.length);
  const out: RawDep[] = [];
  for (let i = 0; i < n; i++) out.push({ name: names[i]!, flags: flags[i]!, version: versions[i]! });
  return out;
}

interface BinDep {
  name: string;
  flags?: RpmDependency['flags'];
  epoch?: string;
  version?: string;
  release?: string;
  pre?: boolean;
}

function makeDep(d: RawDep): BinDep | undefined {
  const evr = splitEVR(d.version);
  if (d.version && evr.epoch === undefined) return undefined; // bad epoch: createrepo_c warns and skips it
  const flags = flagToString(d.flags);
  const dep: BinDep = { name: d.name };
  if (flags) dep.flags = flags;
  if (evr.epoch !== undefined) dep.epoch = evr.epoch;
  if (evr.version !== undefined) dep.version = evr.version;
  if (evr.release !== undefined) dep.release = evr.release;
  return dep;
}

/** createrepo_c's cr_compare_dependency for libc.so.6 requires: 0 same, 1 first bigger, 2 second bigger. */
function compareLibcDep(dep1: string, dep2: string): number {
  if (dep1 === dep2) return 0;
  let v1 = dep1.indexOf('(');
  let v2 = dep2.indexOf('(');
  if (v1 < 0 && v2 < 0) return 0;
  if (v1 < 0) return 2;
  if (v2 < 0) return 1;
  const e1 = dep1.indexOf(')', v1);
  const e2 = dep2.indexOf(')', v2);
  if (e1 < 0 && e2 < 0) return -1;
  if (e1 < 0) return 2;
  if (e2 < 0) return 1;
  v1++;
  v2++;
  if (v1 === e1 && v2 === e2) return 0;
  if (v1 === e1) return 2;
  if (v2 === e2) return 1;
  const digit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  while (v1 < dep1.length && !digit(dep1[v1])) v1++;
  while (v2 < dep2.length && !digit(dep2[v2])) v2++;
  if (v1 > e1 && v2 > e2) return 0;
  if (v1 > e1) return 2;
  if (v2 > e2) return 1;
  // g_strndup(ver, ver_e - ver): when the digits start past ')' the length would be negative; guarded above
  const r = rpmvercmp(dep1.slice(v1, e1), dep2.slice(v2, e2));
  return r === -1 ? 2 : r;
}

interface BinFile {
  path: string;
  type: RpmFileEntry['type'];
}

function legacyDirnames(h: RpmHeader): string[] {
  const dirs: string[] = [];
  for (const full of strs(h, TAG.OLDFILENAMES)!) {
    const dir = full.slice(0, full.lastIndexOf('/') + 1);
    if (!dirs.includes(dir)) dirs.push(dir);
  }
  return dirs;
}

function readFiles(h: RpmHeader): BinFile[] {
  let dirnames = strs(h, TAG.DIRNAMES);
  let basenames = strs(h, TAG.BASENAMES);
  let dirindexes = h.numbers(TAG.DIRINDEXES);
  if (!basenames && h.has(TAG.OLDFILENAMES)) {
    // rpm converts legacy (v3) file lists on reading (compressFilelist)
    const dirs: string[] = [];
    const dirIndex = new Map<string, number>();
    basenames = [];
    dirindexes = [];
    for (const full of strs(h, TAG.OLDFILENAMES)!) {
      const slash = full.lastIndexOf('/');
      const dir = full.slice(0, slash + 1);
      let di = dirIndex.get(dir);
      if (di === undefined) {
        di = dirs.length;
        dirs.push(dir);
        dirIndex.set(dir, di);
      }
      basenames.push(full.slice(slash + 1));
      dirindexes.push(di);
    }
    dirnames = dirs;
  }
  const flags = h.numbers(TAG.FILEFLAGS);
  const modes = h.numbers(TAG.FILEMODES);
  if (!dirnames || !basenames || !dirindexes || !flags || !modes) return [];
  const n = Math.min(basenames.length, dirindexes.length, flags.length, modes.length);
  const out: BinFile[] = [];
  for (let i = 0; i < n; i++) {
    const dir = dirnames[dirindexes[i]!];
    if (dir === undefined) throw badHeader(`file ${i} has directory index ${dirindexes[i]} but there are ${dirnames.length} directories`);
    const mode = modes[i]!;
    const type = (mode & 0xf000) === 0x4000 ? 'dir' : flags[i]! & RPMFILE_GHOST ? 'ghost' : 'file';
    out.push({ path: dir + basenames[i]!, type });
  }
  return out;
}

/** Computes the repository metadata of a package exactly as createrepo_c 0.17.3 would write it. */
export function rpmPackageMetadata(file: RpmFile, opts: RpmPackageOptions = {}): RpmPackageMetadata {
  const h = file.header;
  const sig = file.signature;
  let limit = opts.changelogLimit ?? 10;
  if (limit === Infinity) limit = -1;

  // rpm's rpmpkgRead retrofit: with neither SOURCERPM nor SOURCEPACKAGE, a package whose DIRNAMES is [""] is a
  // source package (SOURCEPACKAGE = 1), anything else gets SOURCERPM "(none)".
  let sourceRpmRaw = str(h, TAG.SOURCERPM);
  let sourcePackage = (h.number(TAG.SOURCEPACKAGE) ?? 0) !== 0;
  if (!h.has(TAG.SOURCERPM) && !h.has(TAG.SOURCEPACKAGE)) {
    const dirs = h.entry(TAG.DIRNAMES)?.type === 8 ? strs(h, TAG.DIRNAMES)! : undefined;
    const legacyDirs = !h.has(TAG.DIRNAMES) && h.has(TAG.OLDFILENAMES) ? legacyDirnames(h) : undefined;
    const d = dirs ?? legacyDirs;
    if (d && d.length === 1 && d[0] === '') sourcePackage = true;
    else sourceRpmRaw = '(none)';
  }
  const isSource = sourcePackage || sourceRpmRaw === undefined;
  const name = str(h, TAG.NAME) ?? '';
  const arch = sourcePackage ? 'src' : str(h, TAG.ARCH) ?? '';
  const epoch = String(h.number(TAG.EPOCH) ?? 0);

  const files = readFiles(h);
  const ownFiles = new Set(files.map((f) => f.path));

  // Dependencies, in createrepo_c's processing order (provides before requires: requires equal to a provide are dropped)
  const provides: BinDep[] = [];
  const conflicts: BinDep[] = [];
  const obsoletes: BinDep[] = [];
  const requires: BinDep[] = [];
  const suggests: BinDep[] = [];
  const enhances: BinDep[] = [];
  const recommends: BinDep[] = [];
  const supplements: BinDep[] = [];
  const provided = new Set<string>();
  const nfv = (d: RawDep) => d.name + (flagToString(d.flags) ?? '') + d.version;

  for (const d of rawDeps(h, TAG.PROVIDENAME, TAG.PROVIDEFLAGS, TAG.PROVIDEVERSION)) {
    const dep = makeDep(d);
    if (!dep) continue;
    provided.add(nfv(d));
    provides.push(dep);
  }
  for (const d of rawDeps(h, TAG.CONFLICTNAME, TAG.CONFLICTFLAGS, TAG.CONFLICTVERSION)) {
    const dep = makeDep(d);
    if (dep) conflicts.push(dep);
  }
  for (const d of rawDeps(h, TAG.OBSOLETENAME, TAG.OBSOLETEFLAGS, TAG.OBSOLETEVERSION)) {
    const dep = makeDep(d);
    if (dep) obsoletes.push(dep);
  }
  const seen = new Map<string, { flags: string | undefined; version: string; pre: boolean }>();
  let libcHighest: BinDep | undefined;
  for (const d of rawDeps(h, TAG.REQUIRENAME, TAG.REQUIREFLAGS, TAG.REQUIREVERSION)) {
    if (d.name.startsWith('rpmlib(')) continue;
    if (d.name.startsWith('/') && ownFiles.has(d.name) && isPrimaryFile(d.name)) continue;
    if (provided.has(nfv(d))) continue;
    const pre = (d.flags & PRE_MASK) !== 0;
    const flagsStr = flagToString(d.flags);
    const prev = seen.get(d.name);
    if (prev && prev.flags === flagsStr && prev.version === d.version && prev.pre === pre) continue;
    const dep = makeDep(d);
    if (!dep) continue;
    if (d.flags & RPMSENSE.MISSINGOK) {
      // createrepo_c built with ENABLE_LEGACY_WEAKDEPS (Debian's is) turns these into recommends
      recommends.push(dep);
      continue;
    }
    if (pre) dep.pre = true;
    if (dep.name.startsWith('libc.so.6')) {
      if (!libcHighest || compareLibcDep(libcHighest.name, dep.name) === 2) libcHighest = dep;
      continue;
    }
    requires.push(dep);
    seen.set(dep.name, { flags: flagsStr, version: d.version, pre });
  }
  if (libcHighest) requires.push(libcHighest);
  const simple = (list: BinDep[], n: number, f: number, v: number) => {
    for (const d of rawDeps(h, n, f, v)) {
      const dep = makeDep(d);
      if (dep) list.push(dep);
    }
  };
  simple(suggests, TAG.SUGGESTNAME, TAG.SUGGESTFLAGS, TAG.SUGGESTVERSION);
  simple(enhances, TAG.ENHANCENAME, TAG.ENHANCEFLAGS, TAG.ENHANCEVERSION);
  simple(recommends, TAG.RECOMMENDNAME, TAG.RECOMMENDFLAGS, TAG.RECOMMENDVERSION);
  simple(supplements, TAG.SUPPLEMENTNAME, TAG.SUPPLEMENTFLAGS, TAG.SUPPLEMENTVERSION);
  for (const d of rawDeps(h, TAG.OLDSUGGESTSNAME, TAG.OLDSUGGESTSFLAGS, TAG.OLDSUGGESTSVERSION)) {
    const dep = makeDep(d);
    if (dep) (d.flags & RPMSENSE.STRONG ? recommends : suggests).push(dep);
  }
  for (const d of rawDeps(h, TAG.OLDENHANCESNAME, TAG.OLDENHANCESFLAGS, TAG.OLDENHANCESVERSION)) {
    const dep = makeDep(d);
    if (dep) (d.flags & RPMSENSE.STRONG ? supplements : enhances).push(dep);
  }

  // Changelogs: the first `limit` entries in header order (newest first), then reversed; equal times are made
  // distinct by bumping the newer entries, as createrepo_c does.
  const changelogs: { author: string; date: number; text: string }[] = [];
  const times = h.numbers(TAG.CHANGELOGTIME);
  const authors = strs(h, TAG.CHANGELOGNAME);
  const texts = strs(h, TAG.CHANGELOGTEXT);
  if (times && authors && texts) {
    let lastTime = 0;
    const n = Math.min(times.length, authors.length, texts.length);
    for (let i = 0; i < n && (limit > 0 || limit === -1); i++) {
      const time = times[i]!;
      let author = authors[i]!;
      let end = author.length;
      while (end > 1 && author.charCodeAt(end - 1) === 32) end--;
      author = author.slice(0, end);
      changelogs.push({ author, date: time, text: texts[i]! });
      if (limit !== -1) limit--;
      if (lastTime === time) {
        let tmp = time;
        for (let j = changelogs.length - 2; j >= 0 && changelogs[j]!.date === tmp; j--) {
          changelogs[j]!.date++;
          tmp++;
        }
      } else {
        lastTime = time;
      }
    }
    changelogs.reverse();
  }

  const archiveSize = sig.number(SIGTAG.LONGARCHIVESIZE) ?? sig.number(SIGTAG.PAYLOADSIZE)
    ?? h.number(TAG.LONGARCHIVESIZE) ?? h.number(TAG.ARCHIVESIZE) ?? 0;
  const installedSize = h.number(TAG.LONGSIZE) ?? h.number(TAG.SIZE) ?? 0;

  const t = (s: string | undefined, field: string) => text(s ?? '', field);
  const depOut = (list: BinDep[], kind: string): RpmDependency[] => {
    const out: RpmDependency[] = [];
    for (const d of list) {
      // (Messages built only for an error.)
      const nm = text(d.name, () => `${kind} name`);
      const epochT = d.epoch === undefined ? undefined : text(d.epoch, () => `${kind} "${d.name}" epoch`);
      const ver = d.version === undefined ? undefined : text(d.version, () => `${kind} "${d.name}" version`);
      const rel = d.release === undefined ? undefined : text(d.release, () => `${kind} "${d.name}" release`);
      if (!nm) continue; // createrepo_c writes no entry without a name
      const r: { -readonly [K in keyof RpmDependency]: RpmDependency[K] } = { name: nm };
      if (d.flags) {
        r.flags = d.flags;
        if (epochT) r.epoch = epochT;
        if (ver) r.version = ver;
        if (rel) r.release = rel;
      }
      if (d.pre) r.pre = true;
      out.push(r);
    }
    return out;
  };

  const meta: RpmPackageMetadata = {
    name: t(name, 'Name'),
    arch: t(arch, 'Arch'),
    epoch: t(epoch, 'Epoch'),
    version: t(str(h, TAG.VERSION), 'Version'),
    release: t(str(h, TAG.RELEASE), 'Release'),
    summary: t(str(h, TAG.SUMMARY), 'Summary'),
    description: t(str(h, TAG.DESCRIPTION), 'Description'),
    packager: t(str(h, TAG.PACKAGER), 'Packager'),
    url: t(str(h, TAG.URL), 'URL'),
    buildTime: h.number(TAG.BUILDTIME) ?? 0,
    installedSize,
    archiveSize,
    license: t(str(h, TAG.LICENSE), 'License'),
    vendor: t(str(h, TAG.VENDOR), 'Vendor'),
    group: t(str(h, TAG.GROUP), 'Group'),
    buildHost: t(str(h, TAG.BUILDHOST), 'BuildHost'),
    sourceRpm: t(sourceRpmRaw, 'SourceRPM'),
    isSource,
    headerStart: file.headerRange.start,
    headerEnd: file.headerRange.end,
    provides: depOut(provides, 'Provides'),
    requires: depOut(requires, 'Requires'),
    conflicts: depOut(conflicts, 'Conflicts'),
    obsoletes: depOut(obsoletes, 'Obsoletes'),
    suggests: depOut(suggests, 'Suggests'),
    enhances: depOut(enhances, 'Enhances'),
    recommends: depOut(recommends, 'Recommends'),
    supplements: depOut(supplements, 'Supplements'),
    files: files.map((f) => ({ path: t(f.path, 'file name'), type: f.type })),
    changelogs: changelogs.map((c): RpmChangelogEntry => ({
      author: t(c.author, 'changelog author'),
      date: c.date,
      text: t(c.text, 'changelog text'),
    })),
  };
  return meta;
}
