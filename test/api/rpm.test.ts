// RPM repositories over the real server and CLI: a differential check of the served repodata against createrepo_c run
// on the very files Wharf serves, package re-signing checked with rpmkeys, the repomd.xml signature checked with gpgv,
// immutability and yanking, rejection of bad input without side effects, and the .repo file.
// One server for the whole file; RPMs are built with the real rpmbuild in before().
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { startWharf, buildDeb, ROOT, type WharfInstance } from '../helpers/wharf.ts';

const execFileP = promisify(execFile);
const FIXTURES = join(ROOT, 'test/fixtures/rpm');
const TARGET = 'acme/tools/el/9';
const PUSH = '/api/v1/repos/acme/tools/distributions/el/9/packages';
const DIST = '/acme/tools/el/9';

let w: WharfInstance;
let work: string;
const built: { tool: string; toolSrc: string; toolOther: string; noarch: string; aarch64?: string; yankme: string; truncProbe: string } = {} as never;
let aarch64Skip: string | false = false;
/** files pushed in before() (built + fixtures Wharf accepted) */
const pushed: string[] = [];
/** el/rsa, el/eddsa, el/v6-multiple: one already-signed fixture each */
const signedDists: string[] = [];

// ---------------------------------------------------------------------------------------------------------------
// Building RPMs

interface SpecOpts {
  name: string;
  arch: 'x86_64' | 'aarch64' | 'noarch';
  /** makes the payload differ without changing the NEVRA */
  flavour?: string;
  rich?: boolean;
  /** leave out BuildArch (the arch then comes from --target alone) */
  noBuildArch?: boolean;
}

function specText(o: SpecOpts): string {
  const changelog: string[] = [];
  if (o.rich) {
    // 12 entries, newest first (createrepo_c keeps the newest 10 by default).
    const months = ['Dec', 'Nov', 'Oct', 'Sep', 'Aug', 'Jul', 'Jun', 'May', 'Apr', 'Mar', 'Feb', 'Jan'];
    for (let i = 0; i < 12; i++) {
      changelog.push(`* Mon ${months[i]} 01 2023 Dev Number${i} <dev${i}@example.invalid> - 2.1.0-${12 - i}`, `- change ${12 - i}: fixes & <improvements> "quoted"`, '');
    }
  } else {
    changelog.push('* Mon Jan 01 2024 Wharf Tests <tests@example.invalid> - 1.0-1', '- Test build', '');
  }
  const lines = [
    `Name: ${o.name}`,
    o.rich ? 'Epoch: 2' : '',
    `Version: ${o.rich ? '2.1.0' : '1.0'}`,
    `Release: ${o.rich ? '3.el9' : '1'}`,
    `Summary: The ${o.name} test package & friends <ok>`,
    'License: MIT',
    'URL: https://example.invalid/',
    o.noBuildArch ? '' : `BuildArch: ${o.arch}`,
    'AutoReqProv: no',
  ];
  if (o.rich) {
    lines.push(
      'Requires(pre): shadow-utils',
      'Requires(post): /bin/sh',
      'Requires: bash >= 4.0',
      'Requires: libfoo.so.1()(64bit)',
      'Provides: wharf-tool-api = 2.1',
      'Provides: tool(cli)',
      'Obsoletes: old-tool < 2.0',
      'Conflicts: evil-tool <= 1:0.5-1',
      'Recommends: less',
      'Suggests: vim',
    );
  }
  lines.push('', '%description', `${o.name} is built by the Wharf RPM test suite.`, 'Second line.', '', '%prep', '%build', '%install');
  lines.push(
    `mkdir -p %{buildroot}/usr/bin %{buildroot}/etc/${o.name} %{buildroot}/var/lib/${o.name} %{buildroot}/var/log`,
    `printf '#!/bin/sh\\necho ${o.name} ${o.flavour ?? 'one'}\\n' > %{buildroot}/usr/bin/${o.name}`,
    `chmod 0755 %{buildroot}/usr/bin/${o.name}`,
    `printf 'setting=1\\n' > %{buildroot}/etc/${o.name}/${o.name}.conf`,
    `touch %{buildroot}/var/log/${o.name}.log`,
  );
  if (o.rich) lines.push('', '%pre', 'exit 0', '', '%post', 'exit 0');
  lines.push(
    '',
    '%files',
    `/usr/bin/${o.name}`,
    `%dir /etc/${o.name}`,
    `%config(noreplace) /etc/${o.name}/${o.name}.conf`,
    `%dir /var/lib/${o.name}`,
    `%ghost /var/log/${o.name}.log`,
    '',
    '%changelog',
    ...changelog,
  );
  return lines.filter((l, i) => l !== '' || i > 8).join('\n') + '\n';
}

/** rpmbuild -bb (or -ba with source) in a temporary _topdir; returns the built files moved into `outDir`. */
async function rpmbuild(outDir: string, o: SpecOpts, source = false): Promise<string[]> {
  const top = await mkdtemp(join(work, 'top-'));
  for (const d of ['SPECS', 'SOURCES', 'BUILD', 'BUILDROOT', 'RPMS', 'SRPMS', 'home']) await mkdir(join(top, d), { recursive: true });
  const spec = join(top, 'SPECS', `${o.name}.spec`);
  await writeFile(spec, specText(o));
  const defines = [
    `_topdir ${top}`,
    '_build_id_links none',
    '__os_install_post %{nil}',
    'debug_package %{nil}',
    '_binary_payload w9.gzdio',
    '_source_payload w9.gzdio',
    'source_date_epoch_from_changelog 0',
  ].flatMap((d) => ['--define', d]);
  try {
    await execFileP('rpmbuild', [source ? '-ba' : '-bb', ...defines, '--nodeps', '--target', o.arch, spec], {
      env: { ...process.env, HOME: join(top, 'home'), LC_ALL: 'C.UTF-8', SOURCE_DATE_EPOCH: '1704067200' },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`rpmbuild failed for ${o.name}: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
  await mkdir(outDir, { recursive: true });
  const out: string[] = [];
  for (const sub of ['RPMS', 'SRPMS']) {
    for (const f of (await readdir(join(top, sub), { recursive: true })).filter((f) => f.endsWith('.rpm'))) {
      const dest = join(outDir, basename(f));
      await rename(join(top, sub, f), dest);
      out.push(dest);
    }
  }
  await rm(top, { recursive: true, force: true });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// RPM structure (for patching bad inputs)

interface RpmLayout {
  sigStart: number;
  sigIl: number;
  sigDl: number;
  hdrStart: number;
  hdrIl: number;
  hdrDl: number;
  payloadStart: number;
}

function layout(b: Buffer): RpmLayout {
  const sigStart = 96;
  const sigIl = b.readUInt32BE(sigStart + 8);
  const sigDl = b.readUInt32BE(sigStart + 12);
  const sigLen = 16 + 16 * sigIl + sigDl;
  const hdrStart = sigStart + sigLen + ((8 - (sigLen % 8)) % 8);
  const hdrIl = b.readUInt32BE(hdrStart + 8);
  const hdrDl = b.readUInt32BE(hdrStart + 12);
  return { sigStart, sigIl, sigDl, hdrStart, hdrIl, hdrDl, payloadStart: hdrStart + 16 + 16 * hdrIl + hdrDl };
}

/** Offset of the string value of `tag` in the main header. */
function headerStringOffset(b: Buffer, tag: number): number {
  const l = layout(b);
  const store = l.hdrStart + 16 + 16 * l.hdrIl;
  for (let i = 0; i < l.hdrIl; i++) {
    const e = l.hdrStart + 16 + 16 * i;
    if (b.readUInt32BE(e) === tag) return store + b.readUInt32BE(e + 8);
  }
  throw new Error(`tag ${tag} not found`);
}

// ---------------------------------------------------------------------------------------------------------------
// A small XML tokenizer / tree

interface XmlEl {
  name: string;
  attrs: Record<string, string>;
  children: XmlEl[];
  text: string;
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e === 'amp' ? '&' : e === 'lt' ? '<' : e === 'gt' ? '>' : e === 'quot' ? '"' : e === 'apos' ? "'" : String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)),
  );
}

function parseXml(xml: string): XmlEl {
  const root: XmlEl = { name: '#root', attrs: {}, children: [], text: '' };
  const stack: XmlEl[] = [root];
  const re = /<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!\[CDATA\[([\s\S]*?)\]\]>|<\/([^\s>]+)\s*>|<([^\s/>]+)((?:\s+[^\s=]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(xml))) {
    assert.equal(m.index, pos, `XML tokenizer: unexpected input at ${pos}: ${JSON.stringify(xml.slice(pos, pos + 60))}`);
    pos = re.lastIndex;
    const top = stack[stack.length - 1]!;
    if (m[1] !== undefined) top.text += m[1];
    else if (m[2] !== undefined) {
      const el = stack.pop()!;
      assert.equal(el.name, m[2], `XML: </${m[2]}> closes <${el.name}>`);
    } else if (m[3] !== undefined) {
      const attrs: Record<string, string> = {};
      for (const a of m[4]!.matchAll(/([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) attrs[a[1]!] = decodeEntities(a[2] ?? a[3] ?? '');
      const el: XmlEl = { name: m[3], attrs, children: [], text: '' };
      top.children.push(el);
      if (m[5] !== '/') stack.push(el);
    } else if (m[6] !== undefined) top.text += decodeEntities(m[6]);
  }
  assert.equal(pos, xml.length, 'XML: trailing garbage');
  assert.equal(stack.length, 1, `XML: unclosed <${stack[stack.length - 1]!.name}>`);
  assert.equal(root.children.length, 1);
  return root.children[0]!;
}

/** A comparable plain form: whitespace-only text dropped, `time@file` ignored. */
function canon(el: XmlEl): unknown {
  const attrs = { ...el.attrs };
  if (el.name === 'time') delete attrs.file;
  const text = el.text.trim() === '' ? undefined : el.text;
  return { [el.name]: attrs, ...(text !== undefined ? { text } : {}), ...(el.children.length ? { c: el.children.map(canon) } : {}) };
}

function child(el: XmlEl, name: string): XmlEl {
  const c = el.children.find((x) => x.name === name);
  assert.ok(c, `<${el.name}> has no <${name}>`);
  return c;
}

/** Packages of a primary/filelists/other document keyed by pkgid (+arch, + location for primary). */
function packagesOf(doc: XmlEl, type: 'primary' | 'filelists' | 'other'): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const p of doc.children) {
    assert.equal(p.name, 'package');
    const key = type === 'primary' ? `${child(p, 'checksum').text} ${child(p, 'location').attrs.href}` : `${p.attrs.pkgid} ${p.attrs.name} ${p.attrs.arch}`;
    assert.ok(!out.has(key), `duplicate ${type} package ${key}`);
    out.set(key, canon(p));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP helpers

async function get(path: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const res = await fetch(w.url + path);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

async function getOk(path: string): Promise<Buffer> {
  const r = await get(path);
  assert.equal(r.status, 200, `GET ${path} -> ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
  return r.body;
}

async function pushBytes(body: Buffer, path = PUSH): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(w.url + path, { method: 'POST', headers: { Authorization: `Bearer ${w.token}` }, body: new Uint8Array(body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

/** A request with the path sent exactly as given (fetch would normalise dot-segments). */
function rawPush(path: string, body: Buffer): Promise<{ status: number; json: any; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(w.url);
    const req = httpRequest(
      { host: u.hostname, port: u.port, method: 'POST', path, headers: { Authorization: `Bearer ${w.token}`, 'Content-Length': body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode!, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function listFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => !e.isDirectory())
      .map((e) => join(e.parentPath, e.name).slice(dir.length))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** repomd.xml of a repository directory: its <data> records. */
async function repomd(dir: string): Promise<{ raw: Buffer; data: Map<string, XmlEl> }> {
  const raw = await getOk(`${DIST}/${dir}/repodata/repomd.xml`);
  const doc = parseXml(raw.toString('utf8'));
  assert.equal(doc.name, 'repomd');
  const data = new Map<string, XmlEl>();
  for (const d of doc.children.filter((c) => c.name === 'data')) data.set(d.attrs.type!, d);
  return { raw, data };
}

async function servedDoc(dir: string, type: 'primary' | 'filelists' | 'other'): Promise<XmlEl> {
  const { data } = await repomd(dir);
  const href = child(data.get(type)!, 'location').attrs.href!;
  return parseXml(gunzipSync(await getOk(`${DIST}/${dir}/${href}`)).toString('utf8'));
}

async function primaryLocations(dir: string): Promise<string[]> {
  const doc = await servedDoc(dir, 'primary');
  return doc.children.map((p) => child(p, 'location').attrs.href!);
}

const sha256 = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

async function fingerprints(armored: Buffer): Promise<string[]> {
  const home = await mkdtemp(join(work, 'gnupg-'));
  const f = join(home, 'key.asc');
  await writeFile(f, armored);
  const { stdout } = await execFileP('gpg', ['--homedir', home, '--batch', '--with-colons', '--show-keys', f]);
  await rm(home, { recursive: true, force: true });
  return stdout.split('\n').filter((l) => l.startsWith('fpr:')).map((l) => l.split(':')[9]!);
}

/** The differential is only as good as its inputs: the rich package's features must really be in the documents. */
function assertRichPackage(type: 'primary' | 'filelists' | 'other', doc: XmlEl): void {
  const p = doc.children.find((c) => (type === 'primary' ? child(c, 'name').text === 'wharf-tool' && child(c, 'arch').text === 'x86_64' : c.attrs.name === 'wharf-tool'));
  assert.ok(p, `wharf-tool in ${type}`);
  if (type === 'primary') {
    assert.equal(child(p, 'version').attrs.epoch, '2');
    const fmt = child(p, 'format');
    const entries = (n: string) => child(fmt, n).children.map((e) => e.attrs);
    assert.ok(entries('rpm:requires').some((e) => e.name === 'shadow-utils' && e.pre === '1'), 'Requires(pre)');
    assert.ok(entries('rpm:requires').some((e) => e.name === 'bash' && e.flags === 'GE' && e.ver === '4.0'));
    assert.ok(entries('rpm:provides').some((e) => e.name === 'wharf-tool-api' && e.flags === 'EQ' && e.ver === '2.1'));
    assert.ok(entries('rpm:obsoletes').some((e) => e.name === 'old-tool' && e.flags === 'LT'));
    assert.ok(entries('rpm:conflicts').some((e) => e.name === 'evil-tool' && e.epoch === '1'));
    assert.ok(entries('rpm:recommends').some((e) => e.name === 'less'));
    assert.ok(fmt.children.some((f) => f.name === 'file' && f.text === '/usr/bin/wharf-tool'), 'primary lists /usr/bin files');
  } else if (type === 'filelists') {
    const files = p.children.filter((f) => f.name === 'file').map((f) => `${f.attrs.type ?? 'file'} ${f.text}`);
    for (const f of ['file /usr/bin/wharf-tool', 'file /etc/wharf-tool/wharf-tool.conf', 'dir /etc/wharf-tool', 'dir /var/lib/wharf-tool', 'ghost /var/log/wharf-tool.log']) {
      assert.ok(files.includes(f), `filelists: ${f} in ${files.join(', ')}`);
    }
  } else {
    // 12 entries in the spec; createrepo_c (and so Wharf) keeps the newest 10, oldest first.
    const log = p.children.filter((c) => c.name === 'changelog');
    assert.equal(log.length, 10);
    assert.match(log[0]!.attrs.author!, /Number9 .* - 2\.1\.0-3$/);
    assert.match(log[9]!.attrs.author!, /Number0 .* - 2\.1\.0-12$/);
    assert.match(log[9]!.text, /change 12: fixes & <improvements> "quoted"/);
  }
}

// ---------------------------------------------------------------------------------------------------------------

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-rpm-test-'));
  const out = join(work, 'rpms');
  const [[toolA, toolSrc], [toolOther], [noarch], [yankme]] = await Promise.all([
    rpmbuild(out, { name: 'wharf-tool', arch: 'x86_64', rich: true }, true).then((f) => [f.find((x) => !x.endsWith('.src.rpm'))!, f.find((x) => x.endsWith('.src.rpm'))!]),
    rpmbuild(join(work, 'other'), { name: 'wharf-tool', arch: 'x86_64', rich: true, flavour: 'two' }),
    rpmbuild(out, { name: 'wharf-data', arch: 'noarch' }),
    rpmbuild(out, { name: 'yank-me', arch: 'x86_64' }),
  ]);
  Object.assign(built, { tool: toolA, toolSrc, toolOther, noarch, yankme });
  try {
    [built.aarch64] = await rpmbuild(out, { name: 'wharf-arm', arch: 'aarch64' });
  } catch {
    // On an x86_64 host rpmbuild refuses "BuildArch: aarch64" ("No compatible architectures found for build": aarch64
    // is not among the host's compatible build archs), but builds for --target aarch64 without BuildArch.
    try {
      [built.aarch64] = await rpmbuild(out, { name: 'wharf-arm', arch: 'aarch64', noBuildArch: true });
    } catch (e) {
      aarch64Skip = `rpmbuild cannot build for aarch64 on this host: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  [built.truncProbe] = await rpmbuild(join(work, 'probe'), { name: 'trunc-probe', arch: 'x86_64', flavour: randomBytes(30000).toString('hex') });
  w = await startWharf();
  const rc = await w.cli(['repo', 'create', 'acme/tools']);
  assert.equal(rc.code, 0, rc.stdout + rc.stderr);
  const mine = [toolA!, toolSrc!, noarch!, yankme!, ...(built.aarch64 ? [built.aarch64] : [])];
  const r = await w.cli(['push', TARGET, ...mine]);
  assert.equal(r.code, 0, `push of built RPMs failed:\n${r.stdout}${r.stderr}`);
  pushed.push(...mine);
  // The empty-signed-* fixtures all are empty-0-0.x86_64 (one NEVRA): each goes to a distribution of its own.
  const all = (await readdir(FIXTURES)).filter((f) => f.endsWith('.rpm'));
  const fixtures = all.filter((f) => !f.startsWith('empty-signed-')).map((f) => join(FIXTURES, f));
  const rf = await w.cli(['push', TARGET, ...fixtures]);
  assert.equal(rf.code, 0, `push of the createrepo_c fixtures failed:\n${rf.stdout}${rf.stderr}`);
  pushed.push(...fixtures);
  for (const f of all.filter((f) => f.startsWith('empty-signed-'))) {
    const dist = `el/${f.replace(/^empty-signed-|-0-0\.x86_64\.rpm$/g, '')}`;
    const r = await w.cli(['push', `acme/tools/${dist}`, join(FIXTURES, f)]);
    assert.equal(r.code, 0, `push of ${f} (already signed) failed:\n${r.stdout}${r.stderr}`);
    signedDists.push(dist);
  }
});

after(async () => {
  await w?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------

describe('repodata equals createrepo_c on the served files', () => {
  for (const dir of ['x86_64', 'aarch64', 'SRPMS']) {
    test(dir, async () => {
      const locations = await primaryLocations(dir);
      assert.ok(locations.length > 0, `${dir}: no packages`);
      const repo = join(work, `createrepo-${dir}`);
      for (const loc of locations) {
        assert.match(loc, /^Packages\/[a-z0-9]\/[^/]+\.rpm$/, `${dir}: location ${loc}`);
        await mkdir(join(repo, dirname(loc)), { recursive: true });
        await writeFile(join(repo, loc), await getOk(`${DIST}/${dir}/${loc}`));
      }
      await execFileP('createrepo_c', ['--no-database', '--simple-md-filenames', '--quiet', repo], { maxBuffer: 16 * 1024 * 1024 });
      for (const type of ['primary', 'filelists', 'other'] as const) {
        const ours = await servedDoc(dir, type);
        const theirs = parseXml(gunzipSync(await readFile(join(repo, 'repodata', `${type}.xml.gz`))).toString('utf8'));
        assert.equal(ours.name, theirs.name);
        assert.deepEqual(ours.attrs, theirs.attrs, `${dir} ${type}: root attributes`);
        const a = packagesOf(ours, type);
        const b = packagesOf(theirs, type);
        assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${dir} ${type}: package set`);
        for (const [k, v] of b) assert.deepEqual(a.get(k), v, `${dir} ${type}: package ${k}`);
        if (dir === 'x86_64') assertRichPackage(type, ours);
      }

      // repomd.xml: every record describes the served file.
      const { raw, data } = await repomd(dir);
      assert.deepEqual([...data.keys()].sort(), ['filelists', 'other', 'primary']);
      for (const [type, d] of data) {
        const file = await getOk(`${DIST}/${dir}/${child(d, 'location').attrs.href}`);
        const open = gunzipSync(file);
        assert.equal(child(d, 'checksum').attrs.type, 'sha256');
        assert.equal(child(d, 'checksum').text, sha256(file), `${dir} ${type}: checksum`);
        assert.equal(child(d, 'open-checksum').text, sha256(open), `${dir} ${type}: open-checksum`);
        assert.equal(Number(child(d, 'size').text), file.length, `${dir} ${type}: size`);
        assert.equal(Number(child(d, 'open-size').text), open.length, `${dir} ${type}: open-size`);
        assert.match(child(d, 'location').attrs.href!, new RegExp(`^repodata/${sha256(file)}-${type}\\.xml\\.gz$`));
      }

      // Signature: repomd.xml.asc verifies with the served gpgkey; repomd.xml.key is that key.
      const gpgkey = await getOk('/acme/tools/gpgkey');
      assert.deepEqual(await getOk(`${DIST}/${dir}/repodata/repomd.xml.key`), gpgkey);
      const home = await mkdtemp(join(work, 'gnupg-'));
      await writeFile(join(home, 'key.asc'), gpgkey);
      await execFileP('gpg', ['--homedir', home, '--batch', '--yes', '--output', join(home, 'keyring.gpg'), '--dearmor', join(home, 'key.asc')]);
      await writeFile(join(home, 'repomd.xml'), raw);
      await writeFile(join(home, 'repomd.xml.asc'), await getOk(`${DIST}/${dir}/repodata/repomd.xml.asc`));
      await execFileP('gpgv', ['--homedir', home, '--keyring', join(home, 'keyring.gpg'), join(home, 'repomd.xml.asc'), join(home, 'repomd.xml')]);
      // ...and a modified repomd.xml does not verify (the check can fail).
      await writeFile(join(home, 'repomd.xml'), Buffer.concat([raw, Buffer.from(' ')]));
      await assert.rejects(execFileP('gpgv', ['--homedir', home, '--keyring', join(home, 'keyring.gpg'), join(home, 'repomd.xml.asc'), join(home, 'repomd.xml')]));
      await rm(home, { recursive: true, force: true });
    });
  }
});

describe('packages', () => {
  test('every served .rpm is signed by package-gpgkey (rpmkeys --checksig)', async () => {
    const db = await mkdtemp(join(work, 'rpmdb-'));
    const key = join(db, 'package-gpgkey');
    await writeFile(key, await getOk('/acme/tools/package-gpgkey'));
    await execFileP('rpmkeys', ['--dbpath', db, '--import', key]);
    const files: string[] = [];
    for (const dir of ['x86_64', 'aarch64', 'SRPMS']) {
      for (const loc of await primaryLocations(dir)) {
        const f = join(db, `${dir}-${basename(loc)}`);
        await writeFile(f, await getOk(`${DIST}/${dir}/${loc}`));
        files.push(f);
      }
    }
    assert.ok(files.length >= pushed.length, `${files.length} served files for ${pushed.length} pushed`);
    // Fixtures that arrived signed (RSA, EdDSA, several v6 signatures) are re-signed too.
    assert.equal(signedDists.length, 3);
    for (const dist of signedDists) {
      const f = join(db, `${dist.replace('/', '-')}-empty-0-0.x86_64.rpm`);
      await writeFile(f, await getOk(`/acme/tools/${dist}/x86_64/Packages/e/empty-0-0.x86_64.rpm`));
      files.push(f);
    }
    for (const f of files) {
      const r = await execFileP('rpmkeys', ['--dbpath', db, '--checksig', f]).catch((e) => e as { stdout: string; stderr: string });
      assert.equal(r.stdout.trim(), `${f}: digests signatures OK`, `${basename(f)}: ${r.stdout}${r.stderr}`);
    }
    // An unsigned original (as built) does not pass, so the check can fail.
    const r = await execFileP('rpmkeys', ['--dbpath', db, '--checksig', built.yankme]).catch((e) => e as { stdout: string });
    assert.notEqual(r.stdout.trim(), `${built.yankme}: digests signatures OK`);
    await rm(db, { recursive: true, force: true });
  });

  test('the package key is not the metadata key', async () => {
    const meta = await fingerprints(await getOk('/acme/tools/gpgkey'));
    const pkg = await fingerprints(await getOk('/acme/tools/package-gpgkey'));
    assert.ok(meta.length > 0 && pkg.length > 0);
    for (const f of pkg) assert.ok(!meta.includes(f), `fingerprint ${f} is in both keys`);
  });

  test('each repository has its own package key; the metadata key is shared', async () => {
    assert.equal((await w.cli(['repo', 'create', 'acme/other'])).code, 0);
    const push = await w.cli(['push', 'acme/other/el/9', built.noarch]);
    assert.equal(push.code, 0, push.stderr);
    const mine = await fingerprints(await getOk('/acme/tools/package-gpgkey'));
    const theirs = await fingerprints(await getOk('/acme/other/package-gpgkey'));
    assert.ok(theirs.length > 0);
    for (const f of theirs) assert.ok(!mine.includes(f), `acme/other signs with acme/tools's package key ${f}`);
    assert.deepEqual(await fingerprints(await getOk('/acme/other/gpgkey')), await fingerprints(await getOk('/acme/tools/gpgkey')));
  });

  test('noarch is byte-identical in every arch dir; the source RPM only in SRPMS', async () => {
    const name = basename(built.noarch);
    const loc = `Packages/${name[0]}/${name}`;
    const x = await getOk(`${DIST}/x86_64/${loc}`);
    const a = await getOk(`${DIST}/aarch64/${loc}`);
    assert.deepEqual(x, a);
    assert.equal((await get(`${DIST}/SRPMS/${loc}`)).status, 404);
    assert.ok((await primaryLocations('x86_64')).includes(loc));
    assert.ok((await primaryLocations('aarch64')).includes(loc));
    assert.ok(!(await primaryLocations('SRPMS')).includes(loc));

    const src = basename(built.toolSrc);
    const srcLoc = `Packages/${src[0]}/${src}`;
    assert.ok((await primaryLocations('SRPMS')).includes(srcLoc));
    await getOk(`${DIST}/SRPMS/${srcLoc}`);
    for (const dir of ['x86_64', 'aarch64']) {
      assert.ok(!(await primaryLocations(dir)).some((l) => l.endsWith('.src.rpm')), `${dir} lists a source RPM`);
      assert.equal((await get(`${DIST}/${dir}/${srcLoc}`)).status, 404);
    }
    // The x86_64 binary package is not in aarch64.
    const bin = basename(built.tool);
    assert.ok((await primaryLocations('x86_64')).includes(`Packages/${bin[0]}/${bin}`));
    assert.ok(!(await primaryLocations('aarch64')).includes(`Packages/${bin[0]}/${bin}`));
  });

  test('aarch64 package only in aarch64', async (t) => {
    if (!built.aarch64) return t.skip(String(aarch64Skip));
    const name = basename(built.aarch64);
    assert.ok((await primaryLocations('aarch64')).includes(`Packages/${name[0]}/${name}`));
    assert.ok(!(await primaryLocations('x86_64')).includes(`Packages/${name[0]}/${name}`));
  });
});

describe('immutability and yank', () => {
  test('identical re-push is "unchanged" and does not touch repomd.xml', async () => {
    const before = await getOk(`${DIST}/x86_64/repodata/repomd.xml`);
    const r = await pushBytes(await readFile(built.tool));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'unchanged');
    const c = await w.cli(['push', TARGET, built.tool]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^unchanged wharf-tool-2\.1\.0-3\.el9\.x86_64\.rpm to /m);
    assert.deepEqual(await getOk(`${DIST}/x86_64/repodata/repomd.xml`), before);
  });

  test('same NEVRA with different bytes is a 409 PACKAGE_CONFLICT', async () => {
    const before = await getOk(`${DIST}/x86_64/repodata/repomd.xml`);
    const tmpBefore = await listFiles(join(w.dataDir, 'tmp'));
    assert.notDeepEqual(await readFile(built.toolOther), await readFile(built.tool));
    const r = await pushBytes(await readFile(built.toolOther));
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json?.error?.code ?? r.json?.code, 'PACKAGE_CONFLICT', r.text);
    assert.deepEqual(await getOk(`${DIST}/x86_64/repodata/repomd.xml`), before);
    assert.deepEqual(await listFiles(join(w.dataDir, 'tmp')), tmpBefore);
  });

  test('yank removes the package from primary.xml; the file stays downloadable', async () => {
    const name = basename(built.yankme);
    const loc = `Packages/${name[0]}/${name}`;
    assert.ok((await primaryLocations('x86_64')).includes(loc));
    const bytes = await getOk(`${DIST}/x86_64/${loc}`);
    const r = await w.cli(['yank', TARGET, name]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(!(await primaryLocations('x86_64')).includes(loc), 'still in primary.xml');
    for (const type of ['filelists', 'other'] as const) {
      assert.ok(!(await servedDoc('x86_64', type)).children.some((p) => p.attrs.name === 'yank-me'), `still in ${type}.xml`);
    }
    assert.deepEqual(await getOk(`${DIST}/x86_64/${loc}`), bytes);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('bad input is refused without side effects', () => {
  async function state() {
    const list = await fetch(`${w.url}${PUSH}`, { headers: { Authorization: `Bearer ${w.token}` } });
    assert.equal(list.status, 200);
    return {
      list: await list.text(),
      repomd: (await getOk(`${DIST}/x86_64/repodata/repomd.xml`)).toString('utf8'),
      files: await listFiles(join(w.dataDir, 'storage/public')),
    };
  }

  async function refused(what: string, body: Buffer, status: number, code: string | RegExp, path = PUSH) {
    const s = await state();
    const r = path.includes('..') ? await rawPush(path, body) : await pushBytes(body, path);
    const got = r.json?.error?.code ?? r.json?.code;
    assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
    if (typeof code === 'string') assert.equal(got, code, `${what}: ${r.text}`);
    else assert.match(String(got), code, `${what}: ${r.text}`);
    assert.deepEqual(await state(), s, `${what}: something changed`);
    assert.deepEqual(await listFiles(join(w.dataDir, 'tmp')), [], `${what}: DATA/tmp is not empty`);
    assert.equal((await get('/healthz')).status, 200);
    return r;
  }

  let good: Buffer;
  before(async () => {
    good = await readFile(built.noarch);
  });

  test('truncated inside the signature header', async () => {
    const l = layout(good);
    await refused('cut in signature header', good.subarray(0, l.sigStart + 16 + 8), 422, 'RPM_TRUNCATED');
    await refused('cut in signature data', good.subarray(0, l.hdrStart - 4), 422, 'RPM_TRUNCATED');
  });

  test('truncated inside the main header', async () => {
    const l = layout(good);
    await refused('cut in main index', good.subarray(0, l.hdrStart + 16 + 20), 422, 'RPM_TRUNCATED');
    await refused('cut in main data', good.subarray(0, l.payloadStart - 10), 422, 'RPM_TRUNCATED');
  });

  test('truncated inside the payload', async (t) => {
    // The headers are intact and the header digests match; the size recorded in the signature header and the payload
    // digest in the main header give the cut away. A package of a NEVRA not yet published (else: PACKAGE_CONFLICT first).
    const probe = await readFile(built.truncProbe);
    const l = layout(probe);
    assert.ok(probe.length - l.payloadStart > 20000, 'the probe has a real payload');
    const cut = probe.subarray(0, l.payloadStart + Math.floor((probe.length - l.payloadStart) / 2));
    const s = await state();
    const r = await pushBytes(cut);
    t.diagnostic(`payload truncated at ${cut.length} of ${probe.length} bytes: ${r.status} ${r.json?.error?.code ?? r.json?.status}`);
    assert.equal(r.status, 422, `payload truncation: ${r.status} ${r.text}`);
    assert.equal(r.json.error.code, 'RPM_TRUNCATED');
    assert.deepEqual(await state(), s);
    // The same length with altered payload bytes: the payload digest catches it.
    const altered = Buffer.from(probe);
    altered[altered.length - 100]! ^= 0xff;
    const r2 = await pushBytes(altered);
    assert.equal(r2.status, 422, `altered payload: ${r2.status} ${r2.text}`);
    assert.equal(r2.json.error.code, 'RPM_BAD_HEADER');
    assert.match(r2.json.error.message, /payload digest/);
    assert.deepEqual(await state(), s);
    assert.deepEqual(await listFiles(join(w.dataDir, 'tmp')), []);
    assert.equal((await get('/healthz')).status, 200);
  });

  test('absurd index counts', async () => {
    const l = layout(good);
    for (const [what, off] of [
      ['signature il', l.sigStart + 8],
      ['main il', l.hdrStart + 8],
      ['main dl', l.hdrStart + 12],
    ] as const) {
      const b = Buffer.from(good);
      b.writeUInt32BE(0xfffffff0, off);
      await refused(what, b, 422, /^RPM_(BAD_HEADER|HEADER_TOO_LARGE|TRUNCATED)$/);
    }
  });

  test('a .deb pushed to el/9', async () => {
    const deb = await buildDeb(work, 'Package: hello\nVersion: 1.0\nArchitecture: amd64\nMaintainer: x <x@example.invalid>\nDescription: x\n');
    await refused('.deb to el/9', await readFile(deb), 415, 'UNSUPPORTED_PACKAGE');
  });

  test('an RPM pushed to a Debian distribution', async () => {
    await refused('.rpm to debian/bookworm', good, 415, 'UNSUPPORTED_PACKAGE', '/api/v1/repos/acme/tools/distributions/debian/bookworm/packages');
  });

  test('random bytes', async () => {
    await refused('random bytes', randomBytes(4096), 415, 'UNSUPPORTED_PACKAGE');
  });

  test('a control character in the Summary', async () => {
    const RPMTAG_SUMMARY = 1004;
    const b = Buffer.from(good);
    const off = headerStringOffset(b, RPMTAG_SUMMARY);
    assert.equal(b.toString('latin1', off, off + 3), 'The');
    b[off + 1] = 0x01;
    // The header digests no longer match either: Wharf checks the text first (metadata), the digests when re-signing.
    await refused('control character in Summary', b, 422, 'RPM_BAD_TEXT');
  });

  test('a header whose digest does not match (a patched printable byte)', async () => {
    const RPMTAG_SUMMARY = 1004;
    const b = Buffer.from(good);
    const off = headerStringOffset(b, RPMTAG_SUMMARY);
    b[off] = 'X'.charCodeAt(0);
    // Wharf verifies the header SHA256/SHA1 digests when re-signing. A corrupt package is malformed RPM input (422
    // like every other RPM_* refusal), not an unsupported media type.
    await refused('patched Summary', b, 422, /^RPM_/);
  });

  test('invalid OS or DIST names', async () => {
    for (const path of [
      '/api/v1/repos/acme/tools/distributions/../9/packages',
      '/api/v1/repos/acme/tools/distributions/el/../packages',
      '/api/v1/repos/acme/tools/distributions/el/..%2F..%2Fx/packages',
      '/api/v1/repos/acme/tools/distributions/el/9.repo/packages',
      '/api/v1/repos/acme/tools/distributions/gpgkey/9/packages',
      '/api/v1/repos/acme/tools/distributions/_el/9/packages',
      '/api/v1/repos/acme/tools/distributions/el/a..b/packages',
    ]) {
      await refused(path, good, 400, /^(INVALID_DISTRIBUTION|INVALID_NAME|BAD_REQUEST)$/, path);
    }
  });
});

describe('.repo file', () => {
  test('el/9.repo', async () => {
    const r = await get('/acme/tools/el/9.repo');
    assert.equal(r.status, 200);
    const text = r.body.toString('utf8');
    const kv = new Map(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.match(text, /^\[[^\]\s]+\]$/m);
    assert.ok(kv.get('baseurl')?.endsWith('/acme/tools/el/9/$basearch'), text);
    assert.ok(kv.get('baseurl')?.startsWith(w.url), text);
    assert.equal(kv.get('gpgcheck'), '1');
    assert.equal(kv.get('repo_gpgcheck'), '1');
    assert.deepEqual(kv.get('gpgkey')?.split(/[\s,]+/), [`${w.url}/acme/tools/gpgkey`, `${w.url}/acme/tools/package-gpgkey`]);
  });

  test('a Debian distribution or a missing one has no .repo', async () => {
    const deb = await buildDeb(work, 'Package: repo-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@example.invalid>\nDescription: x\n');
    const p = await w.cli(['push', 'acme/tools/debian/bookworm', deb]);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.equal((await get('/acme/tools/debian/bookworm.repo')).status, 404);
    assert.equal((await get('/acme/tools/el/10.repo')).status, 404);
    assert.equal((await get('/acme/tools/el/9.repo')).status, 200);
  });
});
