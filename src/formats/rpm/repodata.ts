// Renders createrepo_c-compatible repodata XML (primary, filelists, other, repomd) from RpmPackageMetadata.
// Pure: strings in, strings out. Byte-for-byte modelled on createrepo_c 0.17 (src/xml_dump_*.c, xml_file.c) as
// serialised by libxml2 2.9 (xmlNodeDump with format=1, level=0):
//  - each package element starts at column 0, children indented by 2 spaces per level, and ends with "\n";
//  - text content escapes & < > and \r (&#13;), everything else (incl. non-ASCII, quotes) is written raw;
//  - attribute values escape & < > " \t \n \r and write every non-ASCII character as an uppercase hex character
//    reference (&#xE9;), because createrepo_c's nodes have no document/encoding (xmlBufAttrSerializeTxtContent);
//  - an element with text content that is empty is written <x></x> (createrepo_c always adds a text child),
//    an element without children <x/>.
// Inputs must not contain characters XML 1.0 cannot carry (C0 controls other than \t \n \r, lone surrogates,
// U+FFFE/U+FFFF): createrepo_c refuses such packages too, so these functions throw.

import type { RpmDependency, RpmFileEntry, RpmPackageMetadata, RpmFileFacts } from './metadata.ts';

export const XML_COMMON_NS = 'http://linux.duke.edu/metadata/common';
export const XML_FILELISTS_NS = 'http://linux.duke.edu/metadata/filelists';
export const XML_OTHER_NS = 'http://linux.duke.edu/metadata/other';
export const XML_REPOMD_NS = 'http://linux.duke.edu/metadata/repo';
export const XML_RPM_NS = 'http://linux.duke.edu/metadata/rpm';

const XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';

// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

function checkChars(s: string): string {
  if (typeof s !== 'string') throw new TypeError(`repodata: expected a string, got ${typeof s}`);
  const m = FORBIDDEN.exec(s);
  if (m) {
    const code = m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw new RangeError(`repodata: character U+${code} cannot be written to XML (in ${JSON.stringify(s.slice(0, 80))})`);
  }
  if (!s.isWellFormed()) throw new RangeError(`repodata: lone surrogate in ${JSON.stringify(s.slice(0, 80))}`);
  return s;
}

/** Escapes element text as libxml2's xmlEscapeContent does (& < > and CR). */
export function escapeXmlText(s: string): string {
  checkChars(s);
  if (!/[&<>\r]/.test(s)) return s;
  return s.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'));
}

/** Escapes an attribute value as libxml2's xmlBufAttrSerializeTxtContent does for a node without a document. */
export function escapeXmlAttr(s: string): string {
  checkChars(s);
  // eslint-disable-next-line no-control-regex
  if (!/[&<>"\t\n\r\u0080-\uFFFF]/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    switch (ch) {
      case '&': out += '&amp;'; break;
      case '<': out += '&lt;'; break;
      case '>': out += '&gt;'; break;
      case '"': out += '&quot;'; break;
      case '\t': out += '&#9;'; break;
      case '\n': out += '&#10;'; break;
      case '\r': out += '&#13;'; break;
      default: {
        const cp = ch.codePointAt(0)!;
        out += cp >= 0x80 ? `&#x${cp.toString(16).toUpperCase()};` : ch;
      }
    }
  }
  return out;
}

function num(n: number, what: string): string {
  if (!Number.isSafeInteger(n)) throw new RangeError(`repodata: ${what} must be an integer, got ${n}`);
  return String(n);
}

/** `<name>text</name>` (empty text still gives an explicit end tag, as createrepo_c writes it). */
function textEl(indent: string, name: string, text: string, attrs = ''): string {
  return `${indent}<${name}${attrs}>${escapeXmlText(text)}</${name}>\n`;
}

function attr(name: string, value: string): string {
  return ` ${name}="${escapeXmlAttr(value)}"`;
}

/** createrepo_c's cr_is_primary: the files primary.xml lists. */
export function isPrimaryFile(path: string): boolean {
  return path.startsWith('/etc/') || path === '/usr/lib/sendmail' || path.includes('bin/');
}

function fileEls(indent: string, files: readonly RpmFileEntry[], primaryOnly: boolean): string {
  let out = '';
  for (const f of files) {
    if (primaryOnly && !isPrimaryFile(f.path)) continue;
    const type = f.type === 'dir' || f.type === 'ghost' ? attr('type', f.type) : '';
    out += textEl(indent, 'file', f.path, type);
  }
  return out;
}

function depEls(elem: string, deps: readonly RpmDependency[], isRequires: boolean): string {
  if (deps.length === 0) return '';
  let entries = '';
  for (const d of deps) {
    if (!d.name) continue; // createrepo_c skips nameless entries
    let a = attr('name', d.name);
    if (d.flags) {
      a += attr('flags', d.flags);
      if (d.epoch) a += attr('epoch', d.epoch);
      if (d.version) a += attr('ver', d.version);
      if (d.release) a += attr('rel', d.release);
    }
    if (isRequires && d.pre) a += ' pre="1"';
    entries += `      <rpm:entry${a}/>\n`;
  }
  // A non-empty list whose entries were all skipped still yields the (empty) container, like createrepo_c.
  return entries ? `    <${elem}>\n${entries}    </${elem}>\n` : `    <${elem}/>\n`;
}

function versionEl(meta: RpmPackageMetadata): string {
  return `  <version${attr('epoch', meta.epoch)}${attr('ver', meta.version)}${attr('rel', meta.release)}/>\n`;
}

/** One `<package type="rpm">` element of primary.xml, ending with "\n". */
export function primaryPackageXml(meta: RpmPackageMetadata, facts: RpmFileFacts): string {
  let s = '<package type="rpm">\n';
  s += textEl('  ', 'name', meta.name);
  s += textEl('  ', 'arch', meta.arch);
  s += versionEl(meta);
  s += textEl('  ', 'checksum', facts.sha256, ' type="sha256" pkgid="YES"');
  s += textEl('  ', 'summary', meta.summary);
  s += textEl('  ', 'description', meta.description);
  s += textEl('  ', 'packager', meta.packager);
  s += textEl('  ', 'url', meta.url);
  s += `  <time file="${num(facts.fileTime, 'fileTime')}" build="${num(meta.buildTime, 'buildTime')}"/>\n`;
  s += `  <size package="${num(facts.size, 'size')}" installed="${num(meta.installedSize, 'installedSize')}"` +
    ` archive="${num(meta.archiveSize, 'archiveSize')}"/>\n`;
  s += `  <location${attr('href', facts.location)}/>\n`;
  s += '  <format>\n';
  s += textEl('    ', 'rpm:license', meta.license);
  s += textEl('    ', 'rpm:vendor', meta.vendor);
  s += textEl('    ', 'rpm:group', meta.group);
  s += textEl('    ', 'rpm:buildhost', meta.buildHost);
  s += textEl('    ', 'rpm:sourcerpm', meta.sourceRpm);
  s += `    <rpm:header-range start="${num(meta.headerStart, 'headerStart')}" end="${num(meta.headerEnd, 'headerEnd')}"/>\n`;
  s += depEls('rpm:provides', meta.provides, false);
  s += depEls('rpm:requires', meta.requires, true);
  s += depEls('rpm:conflicts', meta.conflicts, false);
  s += depEls('rpm:obsoletes', meta.obsoletes, false);
  s += depEls('rpm:suggests', meta.suggests, false);
  s += depEls('rpm:enhances', meta.enhances, false);
  s += depEls('rpm:recommends', meta.recommends, false);
  s += depEls('rpm:supplements', meta.supplements, false);
  s += fileEls('    ', meta.files, true);
  s += '  </format>\n';
  s += '</package>\n';
  return s;
}

function idAttrs(meta: RpmPackageMetadata, facts: RpmFileFacts): string {
  return `${attr('pkgid', facts.sha256)}${attr('name', meta.name)}${attr('arch', meta.arch)}`;
}

/** One `<package pkgid name arch>` element of filelists.xml, ending with "\n". */
export function filelistsPackageXml(meta: RpmPackageMetadata, facts: RpmFileFacts): string {
  return `<package${idAttrs(meta, facts)}>\n${versionEl(meta)}${fileEls('  ', meta.files, false)}</package>\n`;
}

/** One `<package pkgid name arch>` element of other.xml, ending with "\n". Changelogs in the given order. */
export function otherPackageXml(meta: RpmPackageMetadata, facts: RpmFileFacts): string {
  let s = `<package${idAttrs(meta, facts)}>\n${versionEl(meta)}`;
  for (const c of meta.changelogs) {
    s += textEl('  ', 'changelog', c.text, `${attr('author', c.author)} date="${num(c.date, 'changelog date')}"`);
  }
  return s + '</package>\n';
}

function count(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`repodata: bad package count ${n}`);
  return String(n);
}

/**
 * XML declaration + `<metadata … packages="N">` line (ends with "\n"). A document is header + package fragments +
 * footer; the footers have no trailing newline, exactly like createrepo_c's files.
 */
export function primaryHeader(packages: number): string {
  return `${XML_DECL}<metadata xmlns="${XML_COMMON_NS}" xmlns:rpm="${XML_RPM_NS}" packages="${count(packages)}">\n`;
}
export const PRIMARY_FOOTER = '</metadata>';

export function filelistsHeader(packages: number): string {
  return `${XML_DECL}<filelists xmlns="${XML_FILELISTS_NS}" packages="${count(packages)}">\n`;
}
export const FILELISTS_FOOTER = '</filelists>';

export function otherHeader(packages: number): string {
  return `${XML_DECL}<otherdata xmlns="${XML_OTHER_NS}" packages="${count(packages)}">\n`;
}
export const OTHER_FOOTER = '</otherdata>';

export interface RepomdRecord {
  /** 'primary' | 'filelists' | 'other' | anything else (e.g. 'updateinfo', 'modules') */
  readonly type: string;
  /** hex sha256 of the file as stored (compressed) */
  readonly checksum: string;
  /** hex sha256 of the uncompressed content */
  readonly openChecksum: string;
  /** relative to the repository root, e.g. 'repodata/<sha>-primary.xml.gz' */
  readonly href: string;
  /** seconds since the epoch */
  readonly timestamp: number;
  readonly size: number;
  readonly openSize: number;
}

export interface RepomdInput {
  readonly revision: string;
  readonly data: readonly RepomdRecord[];
}

const RECORD_RANK: Record<string, number> = {
  primary: 1, filelists: 2, other: 3, primary_db: 4, filelists_db: 5, other_db: 6,
  primary_zck: 7, filelists_zck: 8, other_zck: 9,
};

function cmpStr(a: string, b: string): number {
  // g_strcmp0 = strcmp on the UTF-8 bytes
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * repomd.xml as createrepo_c writes it (xmlDocDumpFormatMemoryEnc): records sorted like cr_repomd_sort_records
 * (primary, filelists, other, then other types by name, then href). Ends with "\n".
 */
export function repomdXml(input: RepomdInput): string {
  const recs = [...input.data].sort((a, b) =>
    (RECORD_RANK[a.type] ?? 10) - (RECORD_RANK[b.type] ?? 10) || cmpStr(a.type, b.type) || cmpStr(a.href, b.href));
  let s = `${XML_DECL}<repomd xmlns="${XML_REPOMD_NS}" xmlns:rpm="${XML_RPM_NS}">\n`;
  s += textEl('  ', 'revision', input.revision);
  for (const r of recs) {
    s += `  <data${attr('type', r.type)}>\n`;
    s += textEl('    ', 'checksum', r.checksum, ' type="sha256"');
    s += textEl('    ', 'open-checksum', r.openChecksum, ' type="sha256"');
    s += `    <location${attr('href', r.href)}/>\n`;
    s += `    <timestamp>${num(r.timestamp, 'timestamp')}</timestamp>\n`;
    s += `    <size>${num(r.size, 'size')}</size>\n`;
    s += `    <open-size>${num(r.openSize, 'openSize')}</open-size>\n`;
    s += '  </data>\n';
  }
  return s + '</repomd>\n';
}
