import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { capitalizeFieldName, renderPackagesStanza } from './packages-stanza.ts';
import { parseControl } from './control.ts';
import { isWharfError } from '../../errors.ts';
import { assertGolden, buildDeb, readFixture, tempDir } from './test-helpers.ts';

function fileInfo(deb: Uint8Array, filename: string) {
  const h = (alg: string) => createHash(alg).update(deb).digest('hex');
  return { filename, size: deb.length, md5: h('md5'), sha1: h('sha1'), sha256: h('sha256'), sha512: h('sha512') };
}

const FIXED = {
  filename: 'pool/main/h/hello-wharf/hello-wharf_2.10-3+b1_amd64.deb',
  size: 1234,
  md5: '0'.repeat(32),
  sha1: '1'.repeat(40),
  sha256: '2'.repeat(64),
  sha512: '3'.repeat(128),
};

test('renders the fixture as a Packages stanza (golden)', () => {
  const out = renderPackagesStanza(parseControl(readFixture('hello.control')), FIXED);
  assertGolden('hello.packages', out);
  assert.ok(out.endsWith('\n') && !out.endsWith('\n\n'));
  const names = out.split('\n').filter((l) => /^\S/.test(l)).map((l) => l.split(':')[0]);
  assert.deepEqual(names.slice(0, 4), ['Package', 'Version', 'Architecture', 'Maintainer']);
  assert.ok(names.indexOf('SHA512') === names.indexOf('SHA256') + 1);
  assert.deepEqual(names.slice(-3), ['A-Unknown', 'Conffiles', 'X-Custom-Field']);
});

test('matches dpkg-scanpackages byte for byte (apart from SHA512)', () => {
  const { dir, cleanup } = tempDir();
  try {
    const controls = [
      readFixture('hello.control'),
      'Package: minimal\nVersion: 0.1\nArchitecture: all\nMaintainer: M <m@x>\nDescription: short\n',
      'Package: tricky\nVersion: 1.0\nArchitecture: arm64\nmaintainer: M <m@x>\nfilename: bogus\nSize: 1\nMD5sum: bogus\nx-lower-case: v\nZ-Last:\n  two  \n\t three\nEmpty:\nDescription: d\n .\n ..\n ...\n',
    ];
    for (const [i, control] of controls.entries()) {
      const deb = buildDeb(control);
      mkdirSync(join(dir, `p${i}`));
      writeFileSync(join(dir, `p${i}`, 'x.deb'), deb);
      const want = execFileSync('dpkg-scanpackages', ['-m', `p${i}`, '/dev/null'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const ours = renderPackagesStanza(parseControl(control), fileInfo(deb, `p${i}/x.deb`));
      const sha512 = `SHA512: ${fileInfo(deb, '').sha512}\n`;
      assert.ok(ours.includes(sha512));
      assert.equal(ours.replace(sha512, '') + '\n', want, `control #${i}`);
    }
  } finally {
    cleanup();
  }
});

test('capitalises field names like dpkg', () => {
  assert.equal(capitalizeFieldName('md5sum'), 'MD5sum');
  assert.equal(capitalizeFieldName('SHA256'), 'SHA256');
  assert.equal(capitalizeFieldName('x-FOO-bar'), 'X-Foo-Bar');
  assert.equal(capitalizeFieldName('multi-arch'), 'Multi-Arch');
});

test('rejects bad file info and unsafe values', () => {
  const c = parseControl('Package: a1\nVersion: 1\nArchitecture: all\n');
  const isBad = (e: unknown) => isWharfError(e) && e.code === 'DEB_BAD_FIELD';
  assert.throws(() => renderPackagesStanza(c, { ...FIXED, sha256: 'XYZ' }), isBad);
  assert.throws(() => renderPackagesStanza(c, { ...FIXED, filename: 'a b.deb' }), isBad);
  assert.throws(() => renderPackagesStanza(c, { ...FIXED, filename: 'a\nPackage: x' }), isBad);
  assert.throws(() => renderPackagesStanza(c, { ...FIXED, size: -1 }), isBad);
  assert.throws(() => renderPackagesStanza([...c, { name: 'D', value: 'x\nInjected: 1' }], FIXED), isBad);
  assert.throws(() => renderPackagesStanza([...c, { name: 'D', value: 'x\n\nPackage: evil' }], FIXED), isBad);
});
