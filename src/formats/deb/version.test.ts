import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareDebVersions, isValidDebVersion, parseDebVersion, verrevcmp } from './version.ts';
import { isWharfError } from '../../errors.ts';
import { tempDir } from './test-helpers.ts';

// [a, b, expected sign of compare(a, b)]
const CASES: [string, string, number][] = [
  // dpkg lib/dpkg/t/t-version.c
  ['0', '0', 0],
  ['0', '00', 0],
  ['1', '1', 0],
  ['1', '2', -1],
  ['2', '1', 1],
  ['1:0', '2', 1],
  ['1:0', '1:0', 0],
  ['2:0', '1:0', 1],
  ['0:1.2', '1.2', 0],
  ['1.0-1', '1.0-1.1', -1],
  ['1.0~rc1', '1.0', -1],
  ['1.0', '1.0~rc1', 1],
  ['1.0~rc1', '1.0~rc1', 0],
  ['1.0~rc1', '1.0~rc2', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0~~a', '1.0~~', 1],
  ['1.0~', '1.0', -1],
  ['1.0~a', '1.0', -1],
  ['1.0', '1.0a', -1],
  ['1.0a', '1.0+', -1],
  ['1.0+', '1.0.', -1], // '+' (43) < '.' (46)
  ['1.0', '1.0.0', -1],
  ['1.0.0', '1.0.00', 0],
  ['1.01', '1.1', 0],
  ['1.10', '1.9', 1],
  ['1.9', '1.10', -1],
  ['0-a', '0-+', -1], // letters sort before non-letters
  ['0-a', '0-.', -1],
  ['0-+', '0-.', -1],
  ['0-~', '0', -1],
  ['0', '0-0', 0],
  ['1.0', '1.0-0', 0],
  ['1.0-0', '1.0-1', -1],
  ['1.0-1', '1.0-1~', 1],
  ['1.0-2', '1.0-10', -1],
  ['2.30-1', '2.4-1', 1],
  ['1:1.0', '9.0', 1],
  ['10:1', '9:100', 1],
  ['7.6p2-4', '7.6-0', 1],
  ['1.0.3-3', '1.0-1', 1],
  ['1.3', '1.2.2-2', 1],
  ['1.3', '1.2.2', 1],
  ['0-pre', '0-pre', 0],
  ['0-pre', '0-pree', -1],
  ['1.1.6r2-2', '1.1.6r-1', 1],
  ['2.6b2-1', '2.6b-2', 1],
  ['98.1p5-1', '98.1-pre2-b6-2', -1],
  ['0.4a6-2', '0.4-1', 1],
  ['1:3.0.5+dfsg-1', '3.0.5+dfsg-1', 1],
  ['1.2.3+git20230101', '1.2.3', 1],
  ['1.2.3~git20230101', '1.2.3', -1],
  ['1:2:3', '1:2:3', 0],
  ['1:2:3', '1:2.3', 1], // ':' (58+256) > '.' (46+256)
  ['1.0-1-1', '1.0-1', 1], // upstream "1.0-1" > "1.0"
  ['1A', '1a', -1],
];

// Valid per dpkg parseversion (dpkg-deb would accept them).
const VALID = ['0', '1.0', '1:1.0', '0:0', '1.0-1', '1.0-1-2', '1.0~rc1', '2:1.0+dfsg-3ubuntu1~22.04.1', '1:2:3', '1a', '1.0-a',
  '2147483647:1', '9', '1+', '1.0-1~bpo+1', '1.0-A.b+c~d'];
// [input, message fragment]
const INVALID: [string, RegExp][] = [
  ['', /empty/],
  ['a1.0', /does not start with digit/],
  ['1.0 ', /spaces/],
  [' 1.0', /spaces/],
  ['1 .0', /spaces/],
  [':1.0', /epoch in version is empty/],
  ['a:1.0', /epoch in version is not number/],
  ['-1:1.0', /epoch in version is not number/],
  ['+1:1.0', /epoch in version is not number/],
  ['1:', /nothing after colon/],
  ['2147483648:1', /too big/],
  ['1.0-', /revision number is empty/],
  ['-1', /version number is empty/],
  ['1:-1', /version number is empty/],
  ['1.0_1', /invalid character in version number/],
  ['1.0/1', /invalid character in version number/],
  ['1:1.0-1:2', /invalid character in revision number/],
  ['1.0-1_2', /invalid character in revision number/],
  ['1.0é', /invalid character in version number/],
  ['1:a', /does not start with digit/],
];

test('compareDebVersions matches the dpkg table', () => {
  for (const [a, b, want] of CASES) {
    assert.equal(compareDebVersions(a, b), want, `${a} vs ${b}`);
    assert.equal(compareDebVersions(b, a), want === 0 ? 0 : -want, `${b} vs ${a}`);
  }
});

test('verrevcmp handles empty parts and leading zeros', () => {
  assert.equal(verrevcmp('', ''), 0);
  assert.equal(verrevcmp('', '0'), 0);
  assert.ok(verrevcmp('~', '') < 0);
  assert.ok(verrevcmp('a', '') > 0);
  assert.ok(verrevcmp('001', '1') === 0);
  assert.ok(verrevcmp('99999999999999999999999', '99999999999999999999998') > 0);
});

test('parseDebVersion splits epoch, upstream and revision', () => {
  assert.deepEqual(parseDebVersion('1.0'), { epoch: 0, upstream: '1.0', revision: '' });
  assert.deepEqual(parseDebVersion('3:1.0-2'), { epoch: 3, upstream: '1.0', revision: '2' });
  assert.deepEqual(parseDebVersion('1:2.0-rc-1-3'), { epoch: 1, upstream: '2.0-rc-1', revision: '3' });
  assert.deepEqual(parseDebVersion('1:2:3-4'), { epoch: 1, upstream: '2:3', revision: '4' });
  assert.deepEqual(parseDebVersion('007:1'), { epoch: 7, upstream: '1', revision: '' });
  for (const v of VALID) assert.doesNotThrow(() => parseDebVersion(v), v);
});

test('parseDebVersion rejects what dpkg rejects', () => {
  for (const [v, msg] of INVALID) {
    assert.throws(() => parseDebVersion(v), (e: unknown) => isWharfError(e) && e.code === 'DEB_BAD_FIELD' && msg.test(e.message), JSON.stringify(v));
  }
});

test('valid and invalid versions agree with dpkg', () => {
  // dpkg --compare-versions fails on hard errors and only warns ("has bad syntax") on the others: either counts as bad.
  const { dir, cleanup } = tempDir();
  try {
    // dpkg reads the epoch with strtol, which also takes a '+' sign; we accept digits only (deliberately stricter).
    const list = [...VALID, ...INVALID.map(([v]) => v).filter((v) => !/\s/.test(v) && v !== '' && v !== '+1:1.0')];
    writeFileSync(join(dir, 'v.txt'), list.join('\n') + '\n');
    const out = execFileSync('bash', ['-c', `while IFS= read -r a; do err=$(dpkg --compare-versions "$a" eq "$a" 2>&1); if [ $? -eq 0 ] && [ -z "$err" ]; then echo ok; else echo bad; fi; done < "${join(dir, 'v.txt')}"`], { encoding: 'utf8' });
    const got = out.trim().split('\n');
    list.forEach((v, i) => {
      const ours = (() => { try { parseDebVersion(v); return 'ok'; } catch { return 'bad'; } })();
      assert.equal(ours, got[i], `validity of ${JSON.stringify(v)}: dpkg says ${got[i]}`);
    });
  } finally {
    cleanup();
  }
});

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomVersion(r: () => number): string {
  const pick = (chars: string) => chars[Math.floor(r() * chars.length)]!;
  const part = (first: string, chars: string, max: number) => {
    let s = pick(first);
    const n = Math.floor(r() * max);
    for (let i = 0; i < n; i++) s += pick(chars);
    return s;
  };
  const upChars = '0123456789012345678901234567890123456789..~~++aAbzZ';
  let v = part('0123456789', upChars, 7);
  if (r() < 0.2) v = `${Math.floor(r() * 3)}:${v}`;
  if (r() < 0.2) v += `-${part('0123456789', upChars.replace(/[-]/g, ''), 3)}`;
  if (r() < 0.5) v += `-${part('0123456789ab~.+', '0123456789ab~.+', 4)}`;
  return v;
}

test('compareDebVersions agrees with dpkg --compare-versions on random pairs', () => {
  const r = rng(20240601);
  const pairs: [string, string][] = CASES.map(([a, b]) => [a, b]);
  for (let i = 0; i < 400; i++) {
    const a = randomVersion(r);
    // Half the pairs are near-misses: mutate one character of a.
    let b = randomVersion(r);
    if (r() < 0.5) {
      const pos = Math.floor(r() * a.length);
      const repl = '0123456789~.+ab'[Math.floor(r() * 15)]!;
      b = a.slice(0, pos) + repl + a.slice(pos + 1);
    }
    if (!isValidDebVersion(b)) b = a + '~';
    assert.ok(isValidDebVersion(a) && isValidDebVersion(b), `${a} / ${b}`);
    pairs.push([a, b]);
  }
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, 'pairs.txt'), pairs.map(([a, b]) => `${a} ${b}`).join('\n') + '\n');
    const script = `while read -r a b; do if dpkg --compare-versions "$a" lt "$b"; then echo -1; elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done < "${join(dir, 'pairs.txt')}"`;
    const out = execFileSync('bash', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n');
    assert.equal(out.length, pairs.length);
    let unequal = 0;
    pairs.forEach(([a, b], i) => {
      const want = Number(out[i]);
      if (want !== 0) unequal++;
      assert.equal(compareDebVersions(a, b), want, `${a} vs ${b}`);
    });
    assert.ok(unequal > 100, 'the random pairs should mostly differ');
  } finally {
    cleanup();
  }
});
