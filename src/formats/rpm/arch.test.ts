import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { rpmBaseArch } from './arch.ts';

test('32-bit architectures map to the $basearch dnf substitutes; 64-bit ones and unknown ones are their own', () => {
  for (const a of ['i386', 'i486', 'i586', 'i686', 'athlon', 'geode']) assert.equal(rpmBaseArch(a), 'i386', a);
  for (const a of ['armv6hl', 'armv7hl', 'armv7hnl', 'armv8hl']) assert.equal(rpmBaseArch(a), 'armhfp', a);
  for (const a of ['armv5tel', 'armv7l']) assert.equal(rpmBaseArch(a), 'arm', a);
  for (const a of ['x86_64', 'aarch64', 'ppc64le', 's390x', 'riscv64', 'noarch']) assert.equal(rpmBaseArch(a), a, a);
  assert.equal(rpmBaseArch('amd64'), 'x86_64');
  assert.equal(rpmBaseArch('ppc64p7'), 'ppc64');
  assert.equal(rpmBaseArch('made_up'), 'made_up');
});

// The table is dnf's own: compared with the installed dnf's _BASEARCH_MAP where dnf is present.
const DNF_RPM = '/usr/lib/python3/dist-packages/dnf/rpm/__init__.py';
test("agrees with the installed dnf's _BASEARCH_MAP", { skip: existsSync(DNF_RPM) ? false : 'dnf is not installed (the Debian package dnf)' }, () => {
  const src = readFileSync(DNF_RPM, 'utf8');
  const body = /_BASEARCH_MAP = _invert\(\{([\s\S]*?)\}\)/.exec(src)?.[1];
  assert.ok(body, 'the map was not found in dnf');
  let n = 0;
  for (const m of body.matchAll(/'([\w]+)'\s*:\s*\(([^)]*)\)/g)) {
    for (const a of m[2]!.matchAll(/'([\w]+)'/g)) {
      assert.equal(rpmBaseArch(a[1]!), m[1], a[1]);
      n++;
    }
  }
  assert.ok(n > 40, `only ${n} architectures read from dnf`);
});
