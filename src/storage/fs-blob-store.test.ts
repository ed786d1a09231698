import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobStoreConformance } from './blob-store.conformance.ts';
import { FsBlobStore } from './fs-blob-store.ts';

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'wharf-blobs-'));
}

/** Every path under root, relative, directories with a trailing '/'. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    const rel = join(e.parentPath, e.name).slice(root.length + 1);
    out.push(e.isDirectory() ? rel + '/' : rel);
  }
  return out.sort();
}

for (const fsync of [true, false]) {
  blobStoreConformance(`FsBlobStore (fsync ${fsync ? 'on' : 'off'})`, async () => {
    const root = await tempRoot();
    const store = new FsBlobStore(root, { fsync });
    return {
      store,
      leftovers: async () => {
        try {
          return await readdir(join(root, '.tmp'));
        } catch {
          return [];
        }
      },
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  });
}

test('FsBlobStore: the root is a plain static tree (no sidecar files), keys map to paths', async () => {
  const root = await tempRoot();
  try {
    const store = new FsBlobStore(root);
    await store.put('dists/bookworm/InRelease', 'signed');
    await store.put('pool/main/h/hello_1.0_amd64.deb', new Uint8Array([1, 2, 3]));
    await store.copy('pool/main/h/hello_1.0_amd64.deb', 'dists/bookworm/by-hash/SHA256/abc');
    assert.deepEqual(await tree(root), [
      '.tmp/',
      'dists/',
      'dists/bookworm/',
      'dists/bookworm/InRelease',
      'dists/bookworm/by-hash/',
      'dists/bookworm/by-hash/SHA256/',
      'dists/bookworm/by-hash/SHA256/abc',
      'pool/',
      'pool/main/',
      'pool/main/h/',
      'pool/main/h/hello_1.0_amd64.deb',
    ]);
    assert.equal(await readFile(join(root, 'dists/bookworm/InRelease'), 'utf8'), 'signed');
    assert.equal(store.localPath('pool/main/h/hello_1.0_amd64.deb'), join(root, 'pool/main/h/hello_1.0_amd64.deb'));
    // copy hard-links on the same filesystem: same inode, same etag
    const a = await stat(join(root, 'pool/main/h/hello_1.0_amd64.deb'));
    const b = await stat(join(root, 'dists/bookworm/by-hash/SHA256/abc'));
    assert.equal(a.ino, b.ino);
    assert.equal((await store.stat('pool/main/h/hello_1.0_amd64.deb'))?.etag, (await store.stat('dists/bookworm/by-hash/SHA256/abc'))?.etag);
    // files are world-readable for the web server (umask permitting)
    assert.equal(a.mode & 0o444, 0o444 & ~process.umask());
    // deleting prunes directories left empty, but never the root
    await store.delete('dists/bookworm/by-hash/SHA256/abc');
    await store.delete('pool/main/h/hello_1.0_amd64.deb');
    assert.deepEqual(await tree(root), ['.tmp/', 'dists/', 'dists/bookworm/', 'dists/bookworm/InRelease']);
    await store.delete('dists/bookworm/InRelease');
    assert.deepEqual(await tree(root), ['.tmp/']);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('FsBlobStore: etag is "<inode>-<size>-<mtime ns>" in hex and survives a new store instance', async () => {
  const root = await tempRoot();
  try {
    const store = new FsBlobStore(root, { fsync: false });
    const put = await store.put('x', 'hello');
    const st = await stat(join(root, 'x'), { bigint: true });
    assert.equal(put.etag, `"${st.ino.toString(16)}-5-${st.mtimeNs.toString(16)}"`);
    assert.equal((await new FsBlobStore(root).stat('x'))?.etag, put.etag);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('FsBlobStore: list skips the staging directory and foreign non-files; a missing root lists nothing', async () => {
  const root = await tempRoot();
  try {
    const store = new FsBlobStore(root);
    await mkdir(join(root, '.tmp'), { recursive: true });
    await writeFile(join(root, '.tmp', '.tmp-stale'), 'partial');
    await store.put('a', '1');
    const keys: string[] = [];
    for await (const e of store.list('')) keys.push(e.key);
    assert.deepEqual(keys, ['a']);
    const missing = new FsBlobStore(join(root, 'does-not-exist'));
    for await (const e of missing.list('')) assert.fail(`unexpected ${e.key}`);
    assert.equal(await missing.get('a'), undefined);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('FsBlobStore.sweepTemporaryFiles removes old crash leftovers (staging and in-place temporary files) and nothing else', async () => {
  const { mkdtemp, rm: rmDir, writeFile, utimes, mkdir: mkdirp, readdir: readDir } = await import('node:fs/promises');
  const { tmpdir: tmp } = await import('node:os');
  const { join: j } = await import('node:path');
  const root = await mkdtemp(j(tmp(), 'wharf-sweep-'));
  try {
    const store = new FsBlobStore(root, { fsync: false });
    await store.put('pool/a/a_1_amd64.deb', new Uint8Array([1, 2, 3]));
    const old = new Date(Date.now() - 3 * 3600_000);
    const leftovers = [j(root, 'pool/a/.wharf-tmp-crashed'), j(root, '.tmp/.tmp-crashed')];
    const fresh = j(root, 'pool/a/.wharf-tmp-inflight');
    await mkdirp(j(root, '.tmp'), { recursive: true });
    for (const f of [...leftovers, fresh]) await writeFile(f, 'partial');
    for (const f of leftovers) await utimes(f, old, old);
    // A blob whose name merely looks old is kept: only reserved temporary names are swept.
    await store.put('pool/a/older.deb', new Uint8Array([4]));
    await utimes(j(root, 'pool/a/older.deb'), old, old);
    assert.equal(await store.sweepTemporaryFiles(3600_000), 2);
    assert.deepEqual((await readDir(j(root, 'pool/a'))).sort(), ['.wharf-tmp-inflight', 'a_1_amd64.deb', 'older.deb']);
    assert.deepEqual(await readDir(j(root, '.tmp')), []);
  } finally {
    await rmDir(root, { recursive: true, force: true });
  }
});

test('FsBlobStore.flush of many deferred writes completes through syncfs, and without a sync command through per-file fsyncs', async () => {
  const { mkdtemp, rm: rmDir } = await import('node:fs/promises');
  const { tmpdir: tmp } = await import('node:os');
  const { join: j } = await import('node:path');
  for (const withSyncCommand of [true, false]) {
    const root = await mkdtemp(j(tmp(), 'wharf-flush-'));
    const path = process.env.PATH;
    try {
      const store = new FsBlobStore(root, { fsync: true });
      const n = FsBlobStore.SYNCFS_THRESHOLD + 100;
      for (let i = 0; i < n; i++) await store.put(`pool/p${i % 50}/f${i}.deb`, new Uint8Array([i & 0xff]), { sync: 'deferred' });
      if (!withSyncCommand) process.env.PATH = j(root, 'no-such-bin');
      await store.flush();
      process.env.PATH = path;
      for (const i of [0, n - 1]) assert.deepEqual(await store.get(`pool/p${i % 50}/f${i}.deb`), new Uint8Array([i & 0xff]));
    } finally {
      process.env.PATH = path;
      await rmDir(root, { recursive: true, force: true });
    }
  }
});

test('FsBlobStore: concurrent small writes (a batch) go through the thread pool and land like direct ones', async () => {
  for (const fsync of [true, false]) {
    const root = await tempRoot();
    try {
      const store = new FsBlobStore(root, { fsync });
      const key = (i: number) => `pool/main/p/p${i % 40}/p${i}_1.0_amd64.deb`;
      const body = (i: number) => new TextEncoder().encode(`package ${i} `.repeat(1 + (i % 7)));
      // 200 at once into 40 new directories: parents are created on demand, concurrent creators do not collide.
      const stats = await Promise.all(Array.from({ length: 200 }, (_, i) => store.put(key(i), body(i), { sync: 'deferred', concurrent: true })));
      await store.flush();
      for (let i = 0; i < 200; i++) {
        assert.deepEqual(await store.get(key(i)), body(i), key(i));
        const st = await store.stat(key(i));
        assert.equal(st?.size, body(i).byteLength);
        assert.equal(st?.etag, stats[i]!.etag, 'the stat put() returned is the stored one');
      }
      // Only the blobs: no temporary file is left next to them.
      const files = (await tree(root)).filter((p) => !p.endsWith('/'));
      assert.deepEqual(files.sort(), Array.from({ length: 200 }, (_, i) => key(i)).sort());
      // Overwriting works the same way, and a key under a blob is refused as with a direct write.
      await store.put(key(0), body(1), { sync: 'deferred', concurrent: true });
      assert.deepEqual(await store.get(key(0)), body(1));
      await assert.rejects(store.put(`${key(0)}/x`, body(0), { sync: 'deferred', concurrent: true }), /STORAGE_BAD_KEY|parent path is a blob/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }
});

test('FsBlobStore.linkFile: onto a free key or over a blob, only the file expected, never a hidden name left', async () => {
  const root = await tempRoot();
  const outside = await tempRoot();
  try {
    const store = new FsBlobStore(root, { fsync: false });
    const identity = async (p: string) => {
      const st = await stat(p);
      return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    };
    const a = join(outside, 'a.rpm');
    const b = join(outside, 'b.rpm');
    await writeFile(a, 'first');
    await writeFile(b, 'second');
    // A free key in a directory that does not exist yet: linked straight onto it.
    assert.equal(await store.linkFile('el/9/x86_64/Packages/a/a.rpm', a, { expect: await identity(a) }), 'linked');
    assert.equal((await stat(join(root, 'el/9/x86_64/Packages/a/a.rpm'))).ino, (await stat(a)).ino);
    // A free key in a directory that exists.
    assert.equal(await store.linkFile('el/9/x86_64/Packages/a/b.rpm', b, { expect: await identity(b) }), 'linked');
    // Over an existing blob: replaced, like put.
    assert.equal(await store.linkFile('el/9/x86_64/Packages/a/a.rpm', b), 'linked');
    assert.equal(await readFile(join(root, 'el/9/x86_64/Packages/a/a.rpm'), 'utf8'), 'second');
    // The file is not the one checked: onto a free key (in a directory that exists, and in one that does not),
    // nothing is left there.
    const stale = await identity(a);
    await rm(a);
    await writeFile(a, 'replaced after the check');
    assert.equal(await store.linkFile('el/9/x86_64/Packages/a/c.rpm', a, { expect: stale }), 'changed');
    assert.equal(await store.stat('el/9/x86_64/Packages/a/c.rpm'), undefined);
    assert.equal(await store.linkFile('el/9/x86_64/Packages/c/c.rpm', a, { expect: stale }), 'changed');
    assert.equal(await store.stat('el/9/x86_64/Packages/c/c.rpm'), undefined);
    // ... and over a blob, the blob stays as it was.
    assert.equal(await store.linkFile('el/9/x86_64/Packages/a/b.rpm', a, { expect: stale }), 'changed');
    assert.equal(await readFile(join(root, 'el/9/x86_64/Packages/a/b.rpm'), 'utf8'), 'second');
    // The file gone: the error names the key.
    await assert.rejects(store.linkFile('el/9/x86_64/Packages/d/d.rpm', join(outside, 'missing.rpm')), /ENOENT|no such file/i);
    assert.equal(await store.stat('el/9/x86_64/Packages/d/d.rpm'), undefined);
    // A blob linked onto its own key (an import root that holds the store): linked, nothing left beside it.
    await store.put('el/9/x86_64/Packages/e/e.rpm', 'its own');
    const own = join(root, 'el/9/x86_64/Packages/e/e.rpm');
    assert.equal(await store.linkFile('el/9/x86_64/Packages/e/e.rpm', own, { expect: await identity(own) }), 'linked');
    assert.equal(await readFile(own, 'utf8'), 'its own');
    // No hidden name survives any of it.
    assert.deepEqual((await tree(root)).filter((p) => /\/\.[^/]*$/.test(p) && !p.startsWith('.tmp/')), []);
    assert.deepEqual((await tree(root)).filter((p) => p.endsWith('.rpm')).sort(), ['el/9/x86_64/Packages/a/a.rpm', 'el/9/x86_64/Packages/a/b.rpm', 'el/9/x86_64/Packages/e/e.rpm']);
  } finally {
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  }
});
