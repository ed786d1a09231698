// Batch pushes: `wharf push TARGET FILE...` sends several packages as one tar archive per batch; the server stores
// each like a single push, reports every file's result, and publishes once per batch.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startWharf, type WharfInstance } from '../helpers/wharf.ts';
import { buildDebBytes, debMeta } from '../../bench/debgen.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';
import { tarHeader, tarPadding, TAR_END } from '../../src/formats/tar-stream.ts';

let wharf: WharfInstance;
let tmp: string;
const debs: string[] = [];

async function generation(dist: string): Promise<string | null> {
  const r = await fetch(`${wharf.url}/acme/batch/debian/dists/${dist}/Release`);
  return r.status === 200 ? (/^Date: (.+)$/m.exec(await r.text())?.[1] ?? null) : null;
}

const names = async (dist: string) =>
  new Set([...(await (await fetch(`${wharf.url}/acme/batch/debian/dists/${dist}/main/binary-amd64/Packages`)).text()).matchAll(/^Package: (\S+)$/gm)].map((m) => m[1]));

function tarOf(files: [string, Uint8Array][]): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.concat([...files.flatMap(([n, d]) => [tarHeader(n, d.byteLength), d, tarPadding(d.byteLength)]), TAR_END]));
}

describe('batch push', () => {
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-batch-'));
    for (let i = 1; i <= 40; i++) {
      const m = { ...debMeta(i), standalone: true };
      debs.push(join(tmp, m.filename));
      await writeFile(debs.at(-1)!, buildDebBytes(m));
    }
    wharf = await startWharf();
    assert.equal((await wharf.cli(['repo', 'create', 'acme/batch'])).code, 0);
  });

  after(async () => {
    await wharf?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('the CLI pushes many files in batches; each batch is one request and one publish', async () => {
    const r = await wharf.cli(['push', 'acme/batch/debian/bookworm', ...debs.slice(0, 25), '--batch-size', '10', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { pushed: { file: string; status: string; package: { name: string } }[]; failed: unknown[] };
    assert.equal(out.pushed.length, 25);
    assert.deepEqual(out.failed, []);
    assert.ok(out.pushed.every((p) => p.status === 'created'));
    assert.deepEqual(
      out.pushed.map((p) => p.file).sort(),
      debs.slice(0, 25).sort(),
      'every file reported under its own name',
    );
    const seen = await names('bookworm');
    for (let i = 1; i <= 25; i++) assert.ok(seen.has(debMeta(i).name), debMeta(i).name);
    // Three batches (10, 10, 5): each push request records its package with batch: true in the audit log.
    const audit = await wharf.cli(['audit', 'acme/batch', '--json']);
    const entries = (JSON.parse(audit.stdout) as { entries: { action: string; details: { batch?: boolean } | null }[] }).entries;
    assert.equal(entries.filter((e) => e.action === 'package.push' && e.details?.batch === true).length, 25);
  });

  test('an identical re-push of a batch is unchanged, and a batch answers 200', async () => {
    const r = await wharf.cli(['push', 'acme/batch/debian/bookworm', ...debs.slice(0, 5), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { pushed: { status: string }[] };
    assert.deepEqual(out.pushed.map((p) => p.status), ['unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
  });

  test('bad files in a batch are refused one by one; the rest is stored and published', async () => {
    const bad = join(tmp, 'broken_1.0_amd64.deb');
    await writeFile(bad, 'not a package');
    const rpm = join(tmp, rpmMeta(1).filename);
    await writeFile(rpm, buildRpmBytes({ ...rpmMeta(1), standalone: true }));
    const before = await generation('bookworm');
    const r = await wharf.cli(['push', 'acme/batch/debian/bookworm', debs[25]!, bad, rpm, debs[26]!]);
    assert.equal(r.code, 1, 'exit 1 when a file was refused');
    assert.match(r.stderr, /error UNSUPPORTED_PACKAGE: .*broken_1\.0_amd64\.deb: The upload is not a Debian package/);
    assert.match(r.stderr, /error UNSUPPORTED_PACKAGE: .*bench-rpm-00001.*x86_64\.rpm: debian\/bookworm is a Debian distribution, but the upload is an RPM package/);
    assert.match(r.stdout, /pushed bench-pkg-00026_1\.0\.26-1_amd64\.deb/);
    assert.match(r.stdout, /pushed bench-pkg-00027_1\.0\.27-1_amd64\.deb/);
    const seen = await names('bookworm');
    assert.ok(seen.has(debMeta(26).name) && seen.has(debMeta(27).name));
    assert.notEqual(await generation('bookworm'), null);
    assert.ok(before !== null);
  });

  test('over the API: a batch answers per file; 422 BATCH_PARTIAL lists the refusals', async () => {
    const body = tarOf([
      [debMeta(30).filename, await readFile(debs[29]!)],
      ['garbage.deb', Buffer.from('garbage')],
    ]);
    const r = await fetch(`${wharf.url}/api/v1/repos/acme/batch/distributions/debian/trixie/packages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${wharf.token}`, 'Content-Type': 'application/x-tar' },
      body,
    });
    assert.equal(r.status, 422);
    assert.equal(r.headers.get('x-wharf-error'), 'BATCH_PARTIAL');
    const j = (await r.json()) as { error: { code: string; message: string }; results: { file: string; status: string; error?: { code: string } }[]; generation: number };
    assert.equal(j.error.code, 'BATCH_PARTIAL');
    assert.match(j.error.message, /^1 of 2 packages/);
    assert.deepEqual(j.results.map((x) => [x.file, x.status, x.error?.code]), [
      [debMeta(30).filename, 'created', undefined],
      ['garbage.deb', 'refused', 'UNSUPPORTED_PACKAGE'],
    ]);
    assert.equal(j.generation, 1, 'published once');
    assert.ok((await names('trixie')).has(debMeta(30).name));
  });

  test('one batch of several chunks: a file sent twice is stored once; other bytes under the same name and version are a conflict', async () => {
    // More files than one stored chunk (PackageService.BATCH_CHUNK = 256): duplicates within a chunk and across chunks.
    const files: [string, Uint8Array][] = [];
    for (let i = 1; i <= 300; i++) files.push([debMeta(1000 + i).filename, buildDebBytes({ ...debMeta(1000 + i), standalone: true })]);
    const first = files[0]!;
    const second = files[1]!;
    const altered = buildDebBytes({ ...debMeta(1002), standalone: false }); // same name, version and architecture
    assert.notDeepEqual(altered, second[1]);
    const body = tarOf([first, first, ...files.slice(1), [second[0], altered], first]);
    const r = await fetch(`${wharf.url}/api/v1/repos/acme/batch/distributions/debian/chunks/packages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${wharf.token}`, 'Content-Type': 'application/x-tar' },
      body,
    });
    assert.equal(r.status, 422);
    const j = (await r.json()) as { results: { file: string; status: string; package?: { sha256: string }; error?: { code: string; message: string } }[]; generation: number };
    assert.equal(j.results.length, 303);
    assert.deepEqual(j.results.slice(0, 2).map((x) => x.status), ['created', 'unchanged'], 'the same bytes twice in one chunk');
    assert.ok(j.results.slice(2, 301).every((x) => x.status === 'created'));
    assert.equal(j.results[301]!.status, 'refused');
    assert.equal(j.results[301]!.error?.code, 'PACKAGE_CONFLICT');
    assert.match(j.results[301]!.error!.message, /bench-pkg-01002 1\.0\.1002-1 \(amd64\)/);
    assert.equal(j.results[302]!.status, 'unchanged', 'the same bytes again in a later chunk');
    assert.equal(j.generation, 1, 'one publish for the whole batch');
    const packages = await (await fetch(`${wharf.url}/acme/batch/debian/dists/chunks/main/binary-amd64/Packages`)).text();
    assert.equal([...packages.matchAll(/^Package: /gm)].length, 300, 'every package once (Architecture: all ones too)');
    const sha = createHash('sha256').update(second[1]).digest('hex');
    assert.match(packages, new RegExp(`Package: bench-pkg-01002\n[^]*?SHA256: ${sha}`), 'the first bytes of a conflicting pair are kept');
  });

  test('an archive that turns malformed half way: BATCH_INVALID, and the packages before it are stored and published', async () => {
    const good = tarOf([
      [debMeta(33).filename, await readFile(debs[32]!)],
      [debMeta(34).filename, await readFile(debs[33]!)],
    ]);
    // The end-of-archive blocks replaced by the header of an entry with a path: the archive breaks after two files.
    const body = new Uint8Array(Buffer.concat([good.subarray(0, good.byteLength - TAR_END.byteLength), tarHeader('dir/evil.deb', 10), Buffer.alloc(512)]));
    const r = await fetch(`${wharf.url}/api/v1/repos/acme/batch/distributions/debian/halfway/packages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${wharf.token}`, 'Content-Type': 'application/x-tar' },
      body,
    });
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'BATCH_INVALID');
    const seen = await names('halfway');
    assert.ok(seen.has(debMeta(33).name) && seen.has(debMeta(34).name), 'what was stored before the break is published');
  });

  test('a malformed archive is refused with BATCH_INVALID before anything is stored', async () => {
    const entry = tarOf([['dir/evil.deb', await readFile(debs[31]!)]]);
    const r = await fetch(`${wharf.url}/api/v1/repos/acme/batch/distributions/debian/sid/packages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${wharf.token}`, 'Content-Type': 'application/x-tar' },
      body: entry,
    });
    assert.equal(r.status, 400);
    const j = (await r.json()) as { error: { code: string; message: string } };
    assert.equal(j.error.code, 'BATCH_INVALID');
    assert.match(j.error.message, /not a plain file name/);
    assert.equal((await fetch(`${wharf.url}/acme/batch/debian/dists/sid/Release`)).status, 404);
    // A batch needs the push scope like a single push.
    const anon = await fetch(`${wharf.url}/api/v1/repos/acme/batch/distributions/debian/sid/packages`, { method: 'POST', headers: { 'Content-Type': 'application/x-tar' }, body: tarOf([]) });
    assert.equal(anon.status, 401);
  });
});
