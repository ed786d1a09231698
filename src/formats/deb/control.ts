// deb822 control file of a binary package (dpkg lib/dpkg/parse.c, man deb822(5), deb-control(5)).
import { WharfError } from '../../errors.ts';
import { parseDebVersion } from './version.ts';

export type ControlField = { name: string; value: string };
/** The fields of one stanza, in file order. */
export type ControlStanza = readonly ControlField[];

const FIELD_NAME = /^[!-9;-~]+$/;
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;
const ARCHITECTURE = /^[a-z0-9][a-z0-9-]*$/;

function badControl(msg: string): WharfError {
  return new WharfError('DEB_BAD_CONTROL', [msg]);
}

export function isValidFieldName(name: string): boolean {
  return FIELD_NAME.test(name) && name[0] !== '#' && name[0] !== '-';
}

export function isValidPackageName(name: string): boolean {
  return PACKAGE_NAME.test(name);
}

export function isValidArchitecture(arch: string): boolean {
  return ARCHITECTURE.test(arch);
}

/**
 * Checks that a field value cannot break the stanza structure when rendered as "Name: value": no CR or NUL, and every
 * line after the first starts with a space or TAB and is not blank. Throws DEB_BAD_FIELD.
 */
export function assertSafeFieldValue(name: string, value: string): void {
  if (/[\r\0]/.test(value)) throw new WharfError('DEB_BAD_FIELD', [`${name} contains a carriage return or NUL character`]);
  const lines = value.split('\n');
  if (/^[ \t]/.test(lines[0]!) || /[ \t]$/.test(lines[0]!)) {
    throw new WharfError('DEB_BAD_FIELD', [`${name} has leading or trailing whitespace on its first line`]);
  }
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    if (!/^[ \t]/.test(l)) throw new WharfError('DEB_BAD_FIELD', [`${name} has a continuation line not starting with a space or TAB`]);
    if (!/[^ \t]/.test(l)) throw new WharfError('DEB_BAD_FIELD', [`${name} has a blank continuation line (use " ." for an empty line)`]);
  }
}

/**
 * Parses a binary package control file: exactly one stanza (blank lines before and after are allowed), no comments
 * (dpkg rejects them in DEBIAN/control), no duplicate fields (case-insensitive), UTF-8 without CR or NUL, final newline
 * required. Values: the first-line text trimmed, then "\n" + each continuation line verbatim.
 * Requires valid Package, Version and Architecture fields.
 */
export function parseControl(input: string | Uint8Array): ControlStanza {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw badControl('the control file is not valid UTF-8');
    }
  }
  if (text.includes('\0')) throw badControl('the control file contains a NUL character');
  if (text.includes('\r')) throw badControl('the control file contains a carriage return (CRLF line endings?)');
  if (text.startsWith('\uFEFF')) throw badControl('the control file starts with a byte order mark');

  const lines = text.split('\n');
  const last = lines.pop()!; // text after the final newline
  let i = 0;
  while (i < lines.length && /^[ \t]*$/.test(lines[i]!)) i++;
  if (i === lines.length) {
    if (last.length > 0) throw badControl('missing final newline');
    throw badControl('the control file is empty');
  }
  const fields: ControlField[] = [];
  const seen = new Set<string>();
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    const lineNo = i + 1;
    if (line.length === 0) break;
    if (line[0] === ' ' || line[0] === '\t') {
      if (fields.length === 0) throw badControl(`line ${lineNo}: continuation line before the first field`);
      if (!/[^ \t]/.test(line)) throw badControl(`line ${lineNo}: blank line in the value of field ${fields[fields.length - 1]!.name}`);
      fields[fields.length - 1]!.value += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) throw badControl(`line ${lineNo}: "${line.slice(0, 40)}" is not a "Field: value" line`);
    const name = line.slice(0, colon).replace(/[ \t]+$/, '');
    if (name.length === 0) throw badControl(`line ${lineNo}: empty field name`);
    if (!isValidFieldName(name)) throw badControl(`line ${lineNo}: invalid field name "${name}"`);
    const key = name.toLowerCase();
    if (seen.has(key)) throw badControl(`duplicate field ${name}`);
    seen.add(key);
    fields.push({ name, value: line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '') });
  }
  // Only blank lines may follow the stanza.
  for (; i < lines.length; i++) {
    if (/[^ \t]/.test(lines[i]!)) throw badControl(`line ${i + 1}: more than one stanza (only one is allowed)`);
  }
  if (last.length > 0) {
    if (/[^ \t]/.test(last)) throw badControl('missing final newline');
  }
  if (fields.length === 0) throw badControl('the control file is empty');

  for (const f of fields) assertSafeFieldValue(f.name, f.value);
  validateRequired(fields);
  return fields;
}

function validateRequired(stanza: ControlStanza): void {
  for (const req of ['Package', 'Version', 'Architecture']) {
    const v = getField(stanza, req);
    if (v === undefined) throw badControl(`missing required field ${req}`);
    if (v.includes('\n')) throw new WharfError('DEB_BAD_FIELD', [`${req} must be a single line`]);
  }
  const pkg = getField(stanza, 'Package')!;
  if (!isValidPackageName(pkg)) {
    throw new WharfError('DEB_BAD_FIELD', [`Package "${pkg}": use at least 2 characters from a-z, 0-9, "+", "-", ".", starting with a letter or digit`]);
  }
  parseDebVersion(getField(stanza, 'Version')!);
  const arch = getField(stanza, 'Architecture')!;
  if (!isValidArchitecture(arch)) {
    throw new WharfError('DEB_BAD_FIELD', [`Architecture "${arch}": expected a single architecture name such as amd64, arm64 or all`]);
  }
}

/** The value of a field (name compared case-insensitively), or undefined. */
export function getField(stanza: ControlStanza, name: string): string | undefined {
  const key = name.toLowerCase();
  for (const f of stanza) if (f.name.toLowerCase() === key) return f.value;
  return undefined;
}

/** Renders fields as "Name: value" lines; multi-line values are kept as they are. No trailing blank line. */
export function renderStanza(fields: ControlStanza): string {
  let out = '';
  for (const f of fields) {
    if (!isValidFieldName(f.name)) throw new WharfError('DEB_BAD_FIELD', [`invalid field name "${f.name}"`]);
    assertSafeFieldValue(f.name, f.value);
    out += f.value.length === 0 || f.value.startsWith('\n') ? `${f.name}:${f.value}\n` : `${f.name}: ${f.value}\n`;
  }
  return out;
}
