import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compareEVR, rpmvercmp } from './vercmp.ts';

const haveRpm = spawnSync('rpm', ['--version']).status === 0;

test('rpmvercmp: known cases from rpm tests/rpmvercmp.at', () => {
  const cases: [string, string, number][] = [
    ['1.0', '1.0', 0], ['1.0', '2.0', -1], ['2.0.1', '2.0.1a', -1], ['5.5p1', '5.5p2', -1], ['5.5p10', '5.5p1', 1],
    ['10xyz', '10.1xyz', -1], ['xyz10', 'xyz10.1', -1], ['1.0010', '1.9', 1], ['1.05', '1.5', 0], ['1.0', '1', 1],
    ['2.0', '2_0', 0], ['a', 'a', 0], ['a+', 'a_', 0], ['+', '_', 0], ['1.0~rc1', '1.0', -1], ['1.0~rc1', '1.0~rc2', -1],
    ['1.0~rc1~git123', '1.0~rc1', -1], ['1.0^', '1.0', 1], ['1.0^git1', '1.0', 1], ['1.0^git1', '1.01', -1],
    ['1.0^git1', '1.0^git2', -1], ['1.0^git1~pre', '1.0^git1', -1], ['1.0^20160101', '1.0.1', -1],
    ['1.0~rc1^git1', '1.0~rc1', 1], ['1.0^git1', '1.0~rc1', 1], ['1b', '1a', 1], ['1', 'a', 1], ['a', '1', -1],
  ];
  for (const [a, b, r] of cases) {
    assert.equal(rpmvercmp(a, b), r, `${a} vs ${b}`);
    assert.equal(rpmvercmp(b, a), -r || 0, `${b} vs ${a}`);
  }
});

test('compareEVR: epoch first, release only when both have one', () => {
  assert.equal(compareEVR({ epoch: '1', version: '1.0', release: '1' }, { version: '9.0', release: '1' }), 1);
  assert.equal(compareEVR({ epoch: 0, version: '1.0', release: '2' }, { epoch: '', version: '1.0', release: '10' }), -1);
  assert.equal(compareEVR({ version: '1.0' }, { version: '1.0', release: '5' }), 0);
});

// rpm.vercmp() in rpm's Lua compares EVR strings (rpmverCmp), so the alphabet has no '-' or ':'.
test('rpmvercmp agrees with the real rpm on random pairs', { skip: !haveRpm && 'rpm not installed' }, () => {
  let seed = 12345;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const alphabet = ['0', '1', '2', '9', '00', '10', 'a', 'b', 'z', 'A', '.', '.', '_', '~', '^', '+', 'rc', 'git'];
  const gen = () => Array.from({ length: 1 + rnd(6) }, () => alphabet[rnd(alphabet.length)]).join('');
  const pairs: [string, string][] = [];
  for (let i = 0; i < 400; i++) {
    const a = gen();
    pairs.push([a, rnd(4) === 0 ? a + alphabet[rnd(alphabet.length)] : gen()]);
  }
  const lua = pairs.map(([a, b]) => `print(rpm.vercmp("${a}","${b}") .. "\\n")`).join(' ');
  const out = spawnSync('rpm', ['--eval', `%{lua: ${lua}}`], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const results = out.stdout.trim().split('\n').map(Number);
  assert.equal(results.length, pairs.length);
  pairs.forEach(([a, b], i) => assert.equal(rpmvercmp(a, b), Math.sign(results[i]!), `rpmvercmp("${a}", "${b}")`));
});
