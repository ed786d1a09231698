// Differential test: rpmPackageMetadata must agree with the installed createrepo_c on real and freshly built RPMs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { bufferSource } from '../byte-source.ts';
import { readRpm } from './header.ts';
import { rpmPackageMetadata } from './package.ts';
import type { RpmDependency, RpmPackageMetadata } from './metadata.ts';

const FIXTURES = new URL('../../../test/fixtures/rpm/', import.meta.url).pathname;
const haveTools = spawnSync('createrepo_c', ['--version']).status === 0 && spawnSync('rpmbuild', ['--version']).status === 0;

// ---- minimal XML reader (enough for createrepo_c output) ----
interface XNode { name: string; attrs: Record<string, string>; children: XNode[]; text: string }
function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_m, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!;
  });
}
function parseXml(xml: string): XNode {
  const root: XNode = { name: '#root', attrs: {}, children: [], text: '' };
  const stack = [root];
  const re = /<\?[^]*?\?>|<!--[^]*?-->|<(\/?)([\w:.-]+)((?:\s+[\w:.-]+\s*=\s*"[^"]*")*)\s*(\/?)>|([^<]+)/g;
  for (let m; (m = re.exec(xml));) {
    const top = stack[stack.length - 1]!;
    if (m[5] !== undefined) { top.text += decodeEntities(m[5]); continue; }
    if (!m[2]) continue;
    if (m[1]) { assert.equal(stack.pop()!.name, m[2]); continue; }
    const attrs: Record<string, string> = {};
    for (const a of m[3]!.matchAll(/([\w:.-]+)\s*=\s*"([^"]*)"/g)) attrs[a[1]!] = decodeEntities(a[2]!);
    const node: XNode = { name: m[2], attrs, children: [], text: '' };
    top.children.push(node);
    if (!m[4]) stack.push(node);
  }
  return root;
}
const kids = (n: XNode, name: string) => n.children.filter((c) => c.name === name);
const kid = (n: XNode, name: string) => kids(n, name)[0];

function xmlDeps(format: XNode, el: string): RpmDependency[] {
  const list = kid(format, el);
  if (!list) return [];
  return kids(list, 'rpm:entry').map((e) => {
    const d: Record<string, unknown> = { name: e.attrs.name };
    if (e.attrs.flags) d.flags = e.attrs.flags;
    if (e.attrs.epoch) d.epoch = e.attrs.epoch;
    if (e.attrs.ver) d.version = e.attrs.ver;
    if (e.attrs.rel) d.release = e.attrs.rel;
    if (e.attrs.pre === '1') d.pre = true;
    return d as unknown as RpmDependency;
  });
}

function runCreaterepo(dir: string): { primary: XNode; filelists: XNode; other: XNode } {
  execFileSync('createrepo_c', ['--no-database', '--simple-md-filenames', '-o', dir, dir], { stdio: 'pipe' });
  const read = (n: string) => parseXml(gunzipSync(readFileSync(join(dir, 'repodata', `${n}.xml.gz`))).toString('utf8'));
  return { primary: read('primary'), filelists: read('filelists'), other: read('other') };
}

async function compareDir(dir: string): Promise<number> {
  const { primary, filelists, other } = runCreaterepo(dir);
  const byPkgid = new Map<string, XNode>();
  for (const p of kids(kid(filelists, 'filelists')!, 'package')) byPkgid.set(p.attrs.pkgid!, p);
  const otherById = new Map<string, XNode>();
  for (const p of kids(kid(other, 'otherdata')!, 'package')) otherById.set(p.attrs.pkgid!, p);
  const pkgs = kids(kid(primary, 'metadata')!, 'package');
  for (const p of pkgs) {
    const href = kid(p, 'location')!.attrs.href!;
    const pkgid = kid(p, 'checksum')!.text;
    const m: RpmPackageMetadata = rpmPackageMetadata(await readRpm(bufferSource(readFileSync(join(dir, href)))));
    const ctx = (f: string) => `${href}: ${f}`;
    const v = kid(p, 'version')!;
    assert.equal(m.name, kid(p, 'name')!.text, ctx('name'));
    assert.equal(m.arch, kid(p, 'arch')!.text, ctx('arch'));
    assert.deepEqual([m.epoch, m.version, m.release], [v.attrs.epoch, v.attrs.ver, v.attrs.rel], ctx('evr'));
    assert.equal(m.summary, kid(p, 'summary')!.text, ctx('summary'));
    assert.equal(m.description, kid(p, 'description')!.text, ctx('description'));
    assert.equal(m.packager, kid(p, 'packager')!.text, ctx('packager'));
    assert.equal(m.url, kid(p, 'url')!.text, ctx('url'));
    assert.equal(String(m.buildTime), kid(p, 'time')!.attrs.build, ctx('time build'));
    assert.equal(String(m.installedSize), kid(p, 'size')!.attrs.installed, ctx('size installed'));
    assert.equal(String(m.archiveSize), kid(p, 'size')!.attrs.archive, ctx('size archive'));
    const f = kid(p, 'format')!;
    assert.equal(m.license, kid(f, 'rpm:license')!.text, ctx('license'));
    assert.equal(m.vendor, kid(f, 'rpm:vendor')!.text, ctx('vendor'));
    assert.equal(m.group, kid(f, 'rpm:group')!.text, ctx('group'));
    assert.equal(m.buildHost, kid(f, 'rpm:buildhost')!.text, ctx('buildhost'));
    assert.equal(m.sourceRpm, kid(f, 'rpm:sourcerpm')!.text, ctx('sourcerpm'));
    assert.equal(m.isSource, m.arch === 'src' || m.sourceRpm === '', ctx('isSource'));
    const hr = kid(f, 'rpm:header-range')!;
    assert.deepEqual([String(m.headerStart), String(m.headerEnd)], [hr.attrs.start, hr.attrs.end], ctx('header-range'));
    for (const [key, el] of [['provides', 'rpm:provides'], ['requires', 'rpm:requires'], ['conflicts', 'rpm:conflicts'],
      ['obsoletes', 'rpm:obsoletes'], ['suggests', 'rpm:suggests'], ['enhances', 'rpm:enhances'],
      ['recommends', 'rpm:recommends'], ['supplements', 'rpm:supplements']] as const) {
      assert.deepEqual(m[key], xmlDeps(f, el), ctx(key));
    }
    const primaryFiles = kids(f, 'file').map((x) => ({ path: x.text, type: x.attrs.type ?? 'file' }));
    const { isPrimaryFile } = await import('./package.ts');
    assert.deepEqual(m.files.filter((x) => isPrimaryFile(x.path)), primaryFiles, ctx('primary files'));
    const fl = byPkgid.get(pkgid)!;
    assert.deepEqual(m.files, kids(fl, 'file').map((x) => ({ path: x.text, type: x.attrs.type ?? 'file' })), ctx('filelists'));
    const ot = otherById.get(pkgid)!;
    assert.deepEqual(m.changelogs, kids(ot, 'changelog').map((c) => ({ author: c.attrs.author, date: Number(c.attrs.date), text: c.text })), ctx('changelogs'));
  }
  return pkgs.length;
}

let T = '';
const SPEC = (n: number) => `
Name: wharftest
Epoch: 3
Version: 1.2~rc1
Release: 4.el9
Summary: Test package for Wharf <&> "quotes"
License: MIT AND (Apache-2.0 OR BSD-3-Clause)
URL: https://example.org/wharf?a=1&b=2
Vendor: Wharf Vendor
Packager: Tester <t@example.org>
Group: Applications/System
BuildArch: noarch
Requires(pre): shadow-utils
Requires(post): coreutils >= 8.0
Requires(preun): preunthing
Requires(pretrans): pretransthing
Requires(posttrans): posttransthing
Requires: /bin/sh
Requires: /usr/bin/wharftest-tool
Requires: /usr/share/wharftest/data
Requires: (foo or bar)
Requires: libx = 2:1.0-3
Requires: liby >= 1.0
Requires: liby >= 1.0
Requires: wharftest-capability = 1.2-4
Requires: libc.so.6(GLIBC_2.4)(64bit)
Requires: libc.so.6(GLIBC_2.17)(64bit)
Requires: libc.so.6()(64bit)
Provides: wharftest-capability = 1.2-4
Provides: virtual(x)
Provides: withepoch = 7:2.0
Obsoletes: oldthing < 1.0
Conflicts: badthing > 2
Conflicts: otherbad <= 3.0-1
Recommends: rec1
Suggests: sug1 >= 1
Supplements: (sup1 and sup2)
Enhances: enh1 = 5

%description
First line of the description.

Second paragraph with tab\tand unicode: Příliš žluťoučký kůň.

%pre
true
%post
true

%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc/wharftest %{buildroot}/var/lib/wharftest %{buildroot}/usr/share/wharftest
printf '#!/bin/sh\\n' > %{buildroot}/usr/bin/wharftest-tool
chmod 755 %{buildroot}/usr/bin/wharftest-tool
echo x > %{buildroot}/etc/wharftest/conf
echo y > %{buildroot}/usr/share/wharftest/data

%files
/usr/bin/wharftest-tool
%config(noreplace) /etc/wharftest/conf
%dir /var/lib/wharftest
%ghost /var/lib/wharftest/state
/usr/share/wharftest

%changelog
${Array.from({ length: n }, (_, i) => {
  const day = new Date(Date.UTC(2024, 0, 28 - i + (i >= 5 ? 1 : 0))); // entries 4 and 5 share a date
  const d = day.toUTCString().slice(0, 16).replace(',', '').split(' ');
  return `* ${d[0]} ${d[2]} ${d[1]} ${d[3]} Author Number${i} <a${i}@example.org>   - 1.${n - i}\n- change ${i}\n- second line of change ${i}\n`;
}).join('\n')}
`;

before(() => {
  if (!haveTools) return;
  T = mkdtempSync(join(tmpdir(), 'wharf-rpm-'));
  for (const d of ['SPECS', 'SOURCES', 'BUILD', 'RPMS', 'SRPMS', 'repo']) mkdirSync(join(T, d), { recursive: true });
  writeFileSync(join(T, 'SPECS', 'wharftest.spec'), SPEC(12));
  const defs = ['--define', `_topdir ${T}`, '--define', '_build_id_links none', '--define', 'dist %{nil}'];
  execFileSync('rpmbuild', [...defs, '-bb', join(T, 'SPECS', 'wharftest.spec')], { stdio: 'pipe' });
  execFileSync('rpmbuild', [...defs, '-bs', join(T, 'SPECS', 'wharftest.spec')], { stdio: 'pipe' });
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.rpm')) found.push(join(d, e.name));
    }
  };
  walk(join(T, 'RPMS'));
  walk(join(T, 'SRPMS'));
  assert.equal(found.length, 2);
  for (const f of found) copyFileSync(f, join(T, 'repo', f.split('/').pop()!));
});
after(() => { if (T) rmSync(T, { recursive: true, force: true }); });

test('all fixture RPMs parse', async () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.rpm'));
  assert.ok(files.length >= 10);
  for (const f of files) {
    const m = rpmPackageMetadata(await readRpm(bufferSource(readFileSync(join(FIXTURES, f)))));
    assert.ok(m.name.length > 0, f);
  }
});

test('fixture RPMs: metadata equals createrepo_c output', { skip: !haveTools && 'createrepo_c not installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-rpmfx-'));
  try {
    for (const f of readdirSync(FIXTURES).filter((f) => f.endsWith('.rpm'))) copyFileSync(join(FIXTURES, f), join(dir, f));
    assert.equal(await compareDir(dir), 12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rpmbuild-made RPM and SRPM: metadata equals createrepo_c output', { skip: !haveTools && 'rpmbuild not installed' }, async () => {
  assert.equal(await compareDir(join(T, 'repo')), 2);
  const bin = readdirSync(join(T, 'repo')).find((f) => f.endsWith('.noarch.rpm'))!;
  const m = rpmPackageMetadata(await readRpm(bufferSource(readFileSync(join(T, 'repo', bin)))));
  // the differential test is only as good as what the package exercises
  assert.equal(m.epoch, '3');
  assert.equal(m.changelogs.length, 10);
  assert.ok(m.changelogs[0]!.date < m.changelogs[9]!.date, 'oldest first');
  assert.ok(m.requires.some((d) => d.pre), 'a pre="1" require');
  assert.ok(m.requires.some((d) => d.name === '(foo or bar)'), 'rich dependency');
  assert.ok(!m.requires.some((d) => d.name.startsWith('rpmlib(')), 'rpmlib( dropped');
  assert.ok(!m.requires.some((d) => d.name === '/usr/bin/wharftest-tool'), 'own primary file dropped');
  assert.ok(m.requires.some((d) => d.name === '/usr/share/wharftest/data'), 'own non-primary file kept');
  assert.ok(!m.requires.some((d) => d.name === 'wharftest-capability'), 'own provide dropped');
  assert.equal(m.requires.filter((d) => d.name === 'liby').length, 1, 'duplicate dropped');
  assert.equal(m.requires.filter((d) => d.name.startsWith('libc.so.6')).length, 1, 'highest libc.so.6 only');
  assert.ok(m.files.some((f) => f.type === 'ghost') && m.files.some((f) => f.type === 'dir'));
  assert.deepEqual(m.obsoletes, [{ name: 'oldthing', flags: 'LT', epoch: '0', version: '1.0' }]);
  assert.equal(m.recommends.length + m.suggests.length + m.supplements.length + m.enhances.length, 4);
  const all = rpmPackageMetadata(await readRpm(bufferSource(readFileSync(join(T, 'repo', bin)))), { changelogLimit: -1 });
  assert.equal(all.changelogs.length, 12);
  const src = readdirSync(join(T, 'repo')).find((f) => f.endsWith('.src.rpm'))!;
  const s = rpmPackageMetadata(await readRpm(bufferSource(readFileSync(join(T, 'repo', src)))));
  assert.equal(s.arch, 'src');
  assert.equal(s.isSource, true);
  assert.equal(s.sourceRpm, '');
});
