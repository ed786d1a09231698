// The Packages index entry for a .deb, as dpkg-scanpackages writes it (dpkg scripts/dpkg-scanpackages.pl,
// Dpkg::Control::HashCore::output with the CTRL_INDEX_PKG order of Dpkg::Control::FieldsCore).
import { WharfError } from '../../errors.ts';
import { isValidFieldName, type ControlStanza } from './control.ts';

export interface PackageFileInfo {
  /** Path relative to the repository root, e.g. pool/main/f/foo/foo_1.0_amd64.deb */
  filename: string;
  size: number;
  md5: string;
  sha1: string;
  sha256: string;
  sha512: string;
}

// dpkg 1.21.22 field_ordered_list(CTRL_INDEX_PKG). SHA512 is not in dpkg's list (dpkg-scanpackages does not compute it by
// default); it is placed after SHA256 as apt-ftparchive does.
export const PACKAGES_FIELD_ORDER: readonly string[] = [
  'Package', 'Package-Type', 'Source', 'Version', 'Kernel-Version', 'Built-For-Profiles', 'Auto-Built-Package',
  'Architecture', 'Subarchitecture', 'Installer-Menu-Item', 'Build-Essential', 'Essential', 'Protected', 'Origin', 'Bugs',
  'Maintainer', 'Installed-Size',
  'Pre-Depends', 'Depends', 'Recommends', 'Suggests', 'Enhances', 'Conflicts', 'Breaks', 'Replaces', 'Provides',
  'Built-Using', 'Static-Built-Using',
  'Filename', 'Size', 'MD5sum', 'SHA1', 'SHA256', 'SHA512',
  'Section', 'Priority', 'Multi-Arch', 'Homepage', 'Description', 'Tag', 'Task',
];

// Known fields whose canonical spelling is not the generic Word-Word capitalisation (Dpkg::Control::FieldsCore).
const SPECIAL_NAMES: Record<string, string> = {
  md5sum: 'MD5sum',
  sha1: 'SHA1',
  sha256: 'SHA256',
  sha512: 'SHA512',
  butautomaticupgrades: 'ButAutomaticUpgrades',
  notautomatic: 'NotAutomatic',
  'no-support-for-architecture-all': 'No-Support-for-Architecture-all',
};

/** dpkg's field_capitalize: canonical spelling of known fields, otherwise each hyphen-separated word capitalised. */
export function capitalizeFieldName(name: string): string {
  const lower = name.toLowerCase();
  const special = SPECIAL_NAMES[lower];
  if (special) return special;
  return lower.split('-').map((w) => (w.length > 0 ? w[0]!.toUpperCase() + w.slice(1) : w)).join('-');
}

const ORDER_INDEX = new Map(PACKAGES_FIELD_ORDER.map((n, i) => [n, i] as const));
const FILE_FIELDS = new Set(['filename', 'size', 'md5sum', 'sha1', 'sha256', 'sha512']);

/** Renders one value the way Dpkg::Control::HashCore::output does (continuation lines re-indented by one space). */
function renderValue(name: string, value: string): string {
  const [first, ...rest] = value.split('\n');
  let out = first!.length > 0 ? `${name}: ${first}\n` : `${name}:\n`;
  for (const line of rest) {
    const body = line.slice(1).replace(/[ \t\n\v\f\r]+$/, '');
    out += ` ${body}\n`;
  }
  return out;
}

/**
 * The Packages entry for a .deb: every control field plus Filename, Size, MD5sum, SHA1, SHA256, SHA512 (control fields of
 * those names are replaced), in dpkg-scanpackages order; fields unknown to dpkg follow in alphabetical order (as dpkg
 * sorts them); field names get dpkg's capitalisation; empty fields are dropped. Ends with "\n", no blank line.
 */
export function renderPackagesStanza(control: ControlStanza, file: PackageFileInfo): string {
  if (!Number.isSafeInteger(file.size) || file.size < 0) throw new WharfError('DEB_BAD_FIELD', [`Size ${file.size}`]);
  const hexes: [string, string, number][] = [['MD5sum', file.md5, 32], ['SHA1', file.sha1, 40], ['SHA256', file.sha256, 64], ['SHA512', file.sha512, 128]];
  for (const [n, v, len] of hexes) {
    if (typeof v !== 'string' || v.length !== len || !/^[0-9a-f]+$/.test(v)) throw new WharfError('DEB_BAD_FIELD', [`${n} must be ${len} lower-case hex digits`]);
  }
  if (!file.filename || /[\s\0]/.test(file.filename)) throw new WharfError('DEB_BAD_FIELD', [`Filename "${file.filename}" must not be empty or contain whitespace`]);

  const fields = new Map<string, string>();
  for (const f of control) {
    if (!isValidFieldName(f.name)) throw new WharfError('DEB_BAD_FIELD', [`invalid field name "${f.name}"`]);
    if (/[\r\0]/.test(f.value)) throw new WharfError('DEB_BAD_FIELD', [`${f.name} contains a carriage return or NUL character`]);
    if (FILE_FIELDS.has(f.name.toLowerCase())) continue;
    const lines = f.value.split('\n');
    for (let i = 1; i < lines.length; i++) {
      if (!/^[ \t]/.test(lines[i]!) || !/[^ \t]/.test(lines[i]!)) {
        throw new WharfError('DEB_BAD_FIELD', [`${f.name} has an invalid continuation line`]);
      }
    }
    fields.set(capitalizeFieldName(f.name), f.value);
  }
  fields.set('Filename', file.filename);
  fields.set('Size', String(file.size));
  fields.set('MD5sum', file.md5);
  fields.set('SHA1', file.sha1);
  fields.set('SHA256', file.sha256);
  fields.set('SHA512', file.sha512);

  const names = [...fields.keys()].sort((a, b) => {
    const ia = ORDER_INDEX.get(a);
    const ib = ORDER_INDEX.get(b);
    if (ia !== undefined && ib !== undefined) return ia - ib;
    if (ia !== undefined) return -1;
    if (ib !== undefined) return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
  let out = '';
  for (const n of names) {
    const v = fields.get(n)!;
    if (!/\S/.test(v)) continue;
    out += renderValue(n, v);
  }
  return out;
}
