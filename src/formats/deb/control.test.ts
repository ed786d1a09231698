import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getField, parseControl, renderStanza } from './control.ts';
import { isWharfError, type ErrorCode } from '../../errors.ts';
import { assertGolden, readFixture } from './test-helpers.ts';

const BASE = 'Package: foo\nVersion: 1.0-1\nArchitecture: amd64\n';

function assertBad(text: string | Uint8Array, code: ErrorCode, re: RegExp): void {
  assert.throws(() => parseControl(text), (e: unknown) => isWharfError(e) && e.code === code && re.test(e.message), JSON.stringify(text));
}

test('parses the fixture control file (golden)', () => {
  const text = readFixture('hello.control');
  const stanza = parseControl(text);
  assertGolden('hello.stanza.json', JSON.stringify(stanza, null, 2) + '\n');
  assert.equal(renderStanza(stanza), text, 'render reproduces the file');
  assert.equal(getField(stanza, 'HOMEPAGE'), 'https://example.org/hello');
  assert.equal(getField(stanza, 'description')!.split('\n').length, 6);
  assert.equal(getField(stanza, 'Nope'), undefined);
});

test('accepts blank lines around the stanza, empty values and spaces before the colon', () => {
  const s = parseControl(`\n \n${BASE}Empty:\nSpaced : value  \nNoSpace:x\nFirstEmpty:\n line\n\n\n`);
  assert.deepEqual(s.slice(3), [
    { name: 'Empty', value: '' },
    { name: 'Spaced', value: 'value' },
    { name: 'NoSpace', value: 'x' },
    { name: 'FirstEmpty', value: '\n line' },
  ]);
  assert.equal(renderStanza(s), `${BASE}Empty:\nSpaced: value\nNoSpace: x\nFirstEmpty:\n line\n`);
  assert.deepEqual(parseControl(new TextEncoder().encode(BASE + 'Description: caf\u00e9\n'))[3], { name: 'Description', value: 'caf\u00e9' });
});

test('rejects structural errors', () => {
  assertBad(BASE + 'Version: 2\n', 'DEB_BAD_CONTROL', /duplicate field Version/);
  assertBad(BASE + 'version: 2\n', 'DEB_BAD_CONTROL', /duplicate field version/);
  assertBad(BASE + '\nOther: stanza\n', 'DEB_BAD_CONTROL', /more than one stanza/);
  assertBad('# comment\n' + BASE, 'DEB_BAD_CONTROL', /invalid field name "# comment"|not a "Field: value"/);
  assertBad(BASE + 'no colon here\n', 'DEB_BAD_CONTROL', /not a "Field: value"/);
  assertBad(BASE + '-Bad: x\n', 'DEB_BAD_CONTROL', /invalid field name/);
  assertBad(BASE + 'B\u00e4d: x\n', 'DEB_BAD_CONTROL', /invalid field name/);
  assertBad(BASE + ': x\n', 'DEB_BAD_CONTROL', /empty field name/);
  assertBad(' cont\n' + BASE, 'DEB_BAD_CONTROL', /continuation line before/);
  assertBad(BASE + 'Description: x\n \n more\n', 'DEB_BAD_CONTROL', /blank line in the value/);
  assertBad(BASE.slice(0, -1), 'DEB_BAD_CONTROL', /final newline/);
  assertBad('', 'DEB_BAD_CONTROL', /empty/);
  assertBad('\n\n', 'DEB_BAD_CONTROL', /empty/);
  assertBad(BASE + 'Description: a\r\n', 'DEB_BAD_CONTROL', /carriage return/);
  assertBad(BASE + 'Description: a\0\n', 'DEB_BAD_CONTROL', /NUL/);
  assertBad(new Uint8Array([...new TextEncoder().encode(BASE + 'D: '), 0xff, 0x0a]), 'DEB_BAD_CONTROL', /UTF-8/);
  assertBad('\uFEFF' + BASE, 'DEB_BAD_CONTROL', /byte order mark/);
});

test('validates Package, Version and Architecture', () => {
  assertBad('Version: 1\nArchitecture: all\n', 'DEB_BAD_CONTROL', /missing required field Package/);
  assertBad('Package: foo\nArchitecture: all\n', 'DEB_BAD_CONTROL', /missing required field Version/);
  assertBad('Package: foo\nVersion: 1\n', 'DEB_BAD_CONTROL', /missing required field Architecture/);
  for (const name of ['Foo', 'f', '-foo', 'foo_bar', 'foo bar', '.foo', 'fo/o']) {
    assertBad(`Package: ${name}\nVersion: 1\nArchitecture: all\n`, 'DEB_BAD_FIELD', /Package/);
  }
  for (const name of ['0ad', 'g++', 'lib.x-y', 'ab']) assert.doesNotThrow(() => parseControl(`Package: ${name}\nVersion: 1\nArchitecture: all\n`));
  assertBad('Package: foo\nVersion: a1\nArchitecture: all\n', 'DEB_BAD_FIELD', /does not start with digit/);
  assertBad('Package: foo\nVersion: 1:\nArchitecture: all\n', 'DEB_BAD_FIELD', /nothing after colon/);
  for (const arch of ['All', 'amd64 i386', '-x', 'any_arch', '']) {
    assertBad(`Package: foo\nVersion: 1\nArchitecture: ${arch}\n`, 'DEB_BAD_FIELD', /Architecture/);
  }
  assertBad('Package: foo\nVersion: 1\nArchitecture: all\n more\n', 'DEB_BAD_FIELD', /single line/);
});

test('renderStanza refuses values that would inject fields or stanzas', () => {
  const bad = (value: string) => () => renderStanza([{ name: 'Package', value: 'foo' }, { name: 'Description', value }]);
  const isBadField = (e: unknown) => isWharfError(e) && e.code === 'DEB_BAD_FIELD';
  assert.throws(bad('x\nInjected: yes'), isBadField);
  assert.throws(bad('x\n\nPackage: evil'), isBadField);
  assert.throws(bad('x\n \n more'), isBadField);
  assert.throws(bad('x\r\nA: b'), isBadField);
  assert.throws(bad(' leading'), isBadField);
  assert.throws(() => renderStanza([{ name: 'Bad Name', value: 'x' }]), isBadField);
  assert.throws(() => renderStanza([{ name: 'A:B', value: 'x' }]), isBadField);
  assert.equal(renderStanza([{ name: 'A', value: 'x\n y\n\t.' }]), 'A: x\n y\n\t.\n');
});
