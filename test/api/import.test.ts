// `wharf import`: the package files of a directory on the server, stored and published without an upload. Only
// directories under the server's import roots, only for its admin; each file checked and reported like a push.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';
import { buildDebBytes, debMeta } from '../../bench/debgen.ts';
import { checkImportFile } from '../../src/services/import-worker.ts';
import { listImportFiles } from '../../src/services/import.ts';

const execFileP = promisify(execFile);

let wharf: WharfInstance;
let tmp: string;
let root: string;
let incoming: string;
let outside: string;
const N = 24;

async function primaryNames(base: string): Promise<string[]> {
  const repomd = await (await fetch(`${base}/repodata/repomd.xml`)).text();
  const href = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(repomd)![1]!;
  const xml = gunzipSync(Buffer.from(await (await fetch(`${base}/${href}`)).arrayBuffer())).toString();
  return [...xml.matchAll(/<name>([^<]+)<\/name>/g)].map((m) => m[1]!).sort();
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('import from a directory on the server', () => {
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-import-'));
    root = join(tmp, 'root');
    incoming = join(root, 'incoming');
    outside = join(tmp, 'outside');
    await mkdir(join(incoming, 'sub'), { recursive: true });
    await mkdir(join(incoming, '.hidden'), { recursive: true });
    await mkdir(outside, { recursive: true });
    for (let i = 1; i <= N; i++) {
      const m = rpmMeta(i);
      await writeFile(join(i > N - 2 ? join(incoming, 'sub') : incoming, m.filename), buildRpmBytes(m));
    }
    await writeFile(join(incoming, '.hidden', rpmMeta(900).filename), buildRpmBytes(rpmMeta(900)));
    await writeFile(join(incoming, 'notes.txt'), 'not a package');
    await writeFile(join(incoming, 'broken.rpm'), Buffer.from('\xed\xab\xee\xdb but nothing after the magic', 'latin1'));
    const d = debMeta(1);
    await writeFile(join(incoming, d.filename), buildDebBytes(d));
    await writeFile(join(outside, rpmMeta(800).filename), buildRpmBytes(rpmMeta(800)));
    await symlink(join(outside, rpmMeta(800).filename), join(incoming, 'linked.rpm'));
    await symlink(outside, join(root, 'escape'));
    wharf = await startWharf({ env: { WHARF_IMPORT_ROOTS: root } });
    assert.equal((await wharf.cli(['repo', 'create', 'acme/imp', '--no-package-signing'])).code, 0);
    assert.equal((await wharf.cli(['repo', 'create', 'acme/signed'])).code, 0);
  });

  after(async () => {
    await wharf?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('imports every package file of the tree (not hidden directories), refuses the others one by one, publishes once', async () => {
    const r = await wharf.cli(['import', 'acme/imp/el/9', incoming, '--link', '--json']);
    assert.equal(r.code, 1, 'some files were refused');
    const out = JSON.parse(r.stdout) as { results: { file: string; status: string; error?: { code: string; message: string } }[]; generation?: number };
    const by = new Map(out.results.map((x) => [x.file, x]));
    assert.equal(out.results.length, N + 3, 'the rpms, broken.rpm, the .deb and the symbolic link; not notes.txt nor .hidden/');
    for (let i = 1; i <= N; i++) {
      const f = (i > N - 2 ? 'sub/' : '') + rpmMeta(i).filename;
      assert.equal(by.get(f)?.status, 'created', f);
    }
    assert.equal(by.get('broken.rpm')?.status, 'refused');
    assert.match(by.get('broken.rpm')!.error!.code, /^RPM_/);
    assert.equal(by.get(debMeta(1).filename)?.error?.code, 'UNSUPPORTED_PACKAGE');
    assert.equal(by.get('linked.rpm')?.error?.code, 'IMPORT_FILE_SKIPPED');
    assert.match(by.get('linked.rpm')!.error!.message, /symbolic link/);
    assert.equal(typeof out.generation, 'number');

    const names = await primaryNames(`${wharf.url}/acme/imp/el/9/x86_64`);
    assert.deepEqual(names, Array.from({ length: N }, (_, k) => rpmMeta(k + 1).name).sort(), 'noarch ones too, in x86_64');
    // Hard-linked: the tree's file is the imported file.
    const m = rpmMeta(3);
    const src = await stat(join(incoming, m.filename));
    const stored = await stat(join(wharf.dataDir, 'storage', 'public', 'acme', 'imp', 'el', '9', 'x86_64', 'Packages', 'b', m.filename));
    assert.equal(stored.ino, src.ino);
    const got = Buffer.from(await (await fetch(`${wharf.url}/acme/imp/el/9/x86_64/Packages/b/${m.filename}`)).arrayBuffer());
    assert.equal(sha256(got), sha256(await readFile(join(incoming, m.filename))));
    const { stdout } = await execFileP('rpmkeys', ['--checksig', '--nosignature', join(incoming, m.filename)]);
    assert.match(stdout, /digests OK/);
  });

  test('importing the same files again changes nothing', async () => {
    const before = await (await fetch(`${wharf.url}/acme/imp/el/9/x86_64/repodata/repomd.xml`)).text();
    const r = await wharf.cli(['import', 'acme/imp/el/9', join(incoming, 'sub'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { results: { status: string }[] };
    assert.deepEqual(out.results.map((x) => x.status), ['unchanged', 'unchanged']);
    assert.equal(await (await fetch(`${wharf.url}/acme/imp/el/9/x86_64/repodata/repomd.xml`)).text(), before);
  });

  test('a copy (the default) and a repository that re-signs: the stored files are new, signed with the package key', async () => {
    const r = await wharf.cli(['import', 'acme/signed/el/9', join(incoming, 'sub'), '--link', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const m = rpmMeta(N);
    const file = join(wharf.dataDir, 'storage', 'public', 'acme', 'signed', 'el', '9', 'x86_64', 'Packages', 'b', m.filename);
    assert.notEqual((await stat(file)).ino, (await stat(join(incoming, 'sub', m.filename))).ino, 'a re-signed package cannot be a link');
    const keyring = join(tmp, 'keyring');
    await writeFile(keyring, Buffer.from(await (await fetch(`${wharf.url}/acme/signed/package-gpgkey`)).arrayBuffer()));
    const db = join(tmp, 'rpmdb');
    await mkdir(db, { recursive: true });
    await execFileP('rpmkeys', ['--dbpath', db, '--import', keyring]);
    const { stdout } = await execFileP('rpmkeys', ['--dbpath', db, '--checksig', file]);
    assert.match(stdout, /digests signatures OK/);
  });

  test('Debian packages too, copied', async () => {
    const debs = join(root, 'debs');
    await mkdir(debs);
    for (let i = 1; i <= 3; i++) await writeFile(join(debs, debMeta(i).filename), buildDebBytes(debMeta(i)));
    const r = await wharf.cli(['import', 'acme/imp/debian/bookworm', debs]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 3 new and 0 unchanged packages into acme\/imp\/debian\/bookworm/);
    const packages = await (await fetch(`${wharf.url}/acme/imp/debian/dists/bookworm/main/binary-amd64/Packages`)).text();
    for (let i = 1; i <= 3; i++) assert.match(packages, new RegExp(`^Package: ${debMeta(i).name}$`, 'm'));
    const stanza = packages.split('\n\n').find((s) => s.includes(`Package: ${debMeta(2).name}\n`))!;
    const path = /^Filename: (.+)$/m.exec(stanza)![1]!;
    const bytes = await readFile(join(debs, debMeta(2).filename));
    assert.match(stanza, new RegExp(`^SHA256: ${sha256(bytes)}$`, 'm'));
    const stored = join(wharf.dataDir, 'storage', 'public', 'acme', 'imp', 'debian', path);
    assert.notEqual((await stat(stored)).ino, (await stat(join(debs, debMeta(2).filename))).ino, 'copied, not linked');
  });

  test('packages larger than what is checked in memory, many per worker: every result is its own file\'s, linked or re-signed', async () => {
    const mixed = join(root, 'mixed');
    await mkdir(mixed);
    // Sorted by name, the large ones come first: a worker's second task (small files) would finish before its first.
    for (let i = 101; i <= 200; i++) await writeFile(join(mixed, rpmMeta(i).filename), buildRpmBytes({ ...rpmMeta(i), ...(i <= 140 ? { extraBytes: 300_000 } : {}) }));
    const r = await wharf.cli(['import', 'acme/imp/el/10', mixed, '--link', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(0, 2000));
    const out = JSON.parse(r.stdout) as { results: { file: string; status: string; package: { name: string; sha256: string } }[] };
    assert.equal(out.results.length, 100);
    for (const x of out.results) {
      assert.equal(x.status, 'created', x.file);
      assert.equal(`${x.package.name}-`, x.file.slice(0, x.package.name.length + 1), 'the result names its own file');
      assert.equal(x.package.sha256, sha256(await readFile(join(mixed, x.file))), x.file);
    }
    assert.equal((await primaryNames(`${wharf.url}/acme/imp/el/10/x86_64`)).length, 100);
    // The large ones into a repository that re-signs: staged from the checked bytes, signed, published.
    const s = await wharf.cli(['import', 'acme/signed/el/10', mixed, '--json']);
    assert.equal(s.code, 0, s.stderr + s.stdout.slice(0, 2000));
    const big = rpmMeta(101);
    const file = join(wharf.dataDir, 'storage', 'public', 'acme', 'signed', 'el', '10', 'x86_64', 'Packages', 'b', big.filename);
    assert.ok((await stat(file)).size > 300_000);
    const keyring = join(tmp, 'keyring10');
    await writeFile(keyring, Buffer.from(await (await fetch(`${wharf.url}/acme/signed/package-gpgkey`)).arrayBuffer()));
    const db = join(tmp, 'rpmdb10');
    await mkdir(db, { recursive: true });
    await execFileP('rpmkeys', ['--dbpath', db, '--import', keyring]);
    assert.match((await execFileP('rpmkeys', ['--dbpath', db, '--checksig', file])).stdout, /digests signatures OK/);
  });

  test('--no-wait: answered once stored (202), the signed metadata follows', async () => {
    const later = join(root, 'later');
    await mkdir(later);
    for (let i = 401; i <= 403; i++) await writeFile(join(later, rpmMeta(i).filename), buildRpmBytes(rpmMeta(i)));
    const res = await fetch(`${wharf.url}/api/v1/repos/acme/imp/distributions/el/12/import`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${wharf.token}`, 'Content-Type': 'application/json', Prefer: 'respond-async' },
      body: JSON.stringify({ path: later }),
    });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('preference-applied'), 'respond-async');
    const body = (await res.json()) as { results: { status: string }[]; generation?: number };
    assert.deepEqual(body.results.map((x) => x.status), ['created', 'created', 'created']);
    assert.equal(body.generation, undefined);
    const deadline = Date.now() + 20_000;
    let names: string[] = [];
    while (Date.now() < deadline) {
      const res = await fetch(`${wharf.url}/acme/imp/el/12/x86_64/repodata/repomd.xml`);
      if (res.status === 200) {
        await res.arrayBuffer();
        names = await primaryNames(`${wharf.url}/acme/imp/el/12/x86_64`);
        if (names.length === 3) break;
      } else await res.arrayBuffer();
      await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.deepEqual(names, [401, 402, 403].map((i) => rpmMeta(i).name));
  });

  test('a file that others may write is copied, not linked', async () => {
    const shared = join(root, 'shared');
    await mkdir(shared);
    const m = rpmMeta(300);
    await writeFile(join(shared, m.filename), buildRpmBytes(m));
    await chmod(join(shared, m.filename), 0o664);
    const r = await wharf.cli(['import', 'acme/imp/el/11', shared, '--link']);
    assert.equal(r.code, 0, r.stderr);
    const stored = join(wharf.dataDir, 'storage', 'public', 'acme', 'imp', 'el', '11', 'noarch', 'Packages', 'b', m.filename);
    assert.notEqual((await stat(stored)).ino, (await stat(join(shared, m.filename))).ino);
  });

  test('both formats in one directory, into a distribution of an OS that implies neither: the first format wins, the other is refused', async () => {
    const both = join(root, 'both');
    await mkdir(both);
    for (let i = 1; i <= 6; i++) await writeFile(join(both, debMeta(i).filename), buildDebBytes(debMeta(i)));
    for (let i = 1; i <= 6; i++) await writeFile(join(both, rpmMeta(i).filename), buildRpmBytes(rpmMeta(i)));
    const r = await wharf.cli(['import', 'acme/imp/custom/one', both, '--json']);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { results: { file: string; status: string; error?: { code: string } }[] };
    const created = out.results.filter((x) => x.status === 'created').map((x) => x.file);
    const refused = out.results.filter((x) => x.status === 'refused');
    assert.equal(created.length, 6, JSON.stringify(out.results));
    assert.ok(created.every((f) => f.endsWith('.deb')) || created.every((f) => f.endsWith('.rpm')), 'one format');
    assert.equal(refused.length, 6);
    assert.ok(refused.every((x) => x.error?.code === 'UNSUPPORTED_PACKAGE'), JSON.stringify(refused));
  });

  test('a file is checked where the kernel opened it: outside the roots it is refused, whatever path led there', async () => {
    const m = rpmMeta(1);
    const req = { dist: '9', maxBytes: 1 << 30, rpmLimits: {}, resign: false, keepBytes: false };
    const inside = await checkImportFile(join(incoming, m.filename), { ...req, roots: [root] });
    assert.equal(inside.filename, m.filename);
    // The same file when the roots are elsewhere: a directory on its path swapped for a symbolic link looks like this.
    await assert.rejects(checkImportFile(join(incoming, m.filename), { ...req, roots: [outside] }), (e: Error & { code?: string }) => e.code === 'IMPORT_FILE_SKIPPED' && /outside the import roots/.test(e.message));
    await assert.rejects(checkImportFile(join(root, 'escape', rpmMeta(800).filename), { ...req, roots: [root] }), /outside the import roots/);
  });

  test('the listing: sorted, hidden directories skipped, bounded in files and in directories', async () => {
    const l = await listImportFiles([root], incoming, true);
    assert.equal(l.dir, incoming);
    assert.deepEqual(l.files, [...l.files].sort());
    assert.ok(!l.files.some((f) => f.includes('/.hidden/')));
    assert.ok(l.files.includes(join(incoming, 'sub', rpmMeta(N).filename)));
    assert.equal((await listImportFiles([root], incoming, false)).files.some((f) => f.includes('/sub/')), false);
    await assert.rejects(listImportFiles([root], incoming, true, { files: 5, directories: 100 }), (e: Error & { code?: string }) => e.code === 'IMPORT_TOO_MANY_FILES');
    await assert.rejects(listImportFiles([root], root, true, { files: 1000, directories: 2 }), /more than 2 directories/);
    await assert.rejects(listImportFiles([], incoming, true), (e: Error & { code?: string }) => e.code === 'IMPORT_DISABLED');
  });

  test('only directories inside the import roots, only absolute paths, never through a symbolic link out', async () => {
    const post = (path: unknown, token = wharf.token) =>
      fetch(`${wharf.url}/api/v1/repos/acme/imp/distributions/el/9/import`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ path }),
      });
    for (const p of [outside, join(root, 'escape'), join(incoming, '..', '..', 'outside'), '/etc', '/nonexistent/dir']) {
      const r = await post(p);
      assert.equal(r.status, 403, p);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'IMPORT_PATH_NOT_ALLOWED', p);
    }
    for (const p of ['incoming', '', 42]) {
      const r = await post(p);
      assert.equal(r.status, 400, String(p));
    }
    const empty = join(root, 'empty');
    await mkdir(empty);
    const r = await post(empty);
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /holds no \.rpm or \.deb files/);
    // A repository's own token, even with every scope, cannot read the server's files.
    const tok = JSON.parse((await wharf.cli(['token', 'create', 'acme/imp', '--name', 'all', '--scope', 'push', '--scope', 'write', '--scope', 'admin', '--json'])).stdout) as { token: string };
    const denied = await post(incoming, tok.token);
    assert.equal(denied.status, 403);
    assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'FORBIDDEN');
  });

  test('a server without import roots refuses every import', async () => {
    const plain = await startWharf();
    try {
      assert.equal((await plain.cli(['repo', 'create', 'acme/x'])).code, 0);
      const r = await plain.cli(['import', 'acme/x/el/9', incoming]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /IMPORT_DISABLED/);
    } finally {
      await plain.stop();
    }
  });
});
