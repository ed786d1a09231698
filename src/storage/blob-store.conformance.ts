// Shared behaviour tests for every BlobStore implementation. A store's test file calls
// blobStoreConformance('fs', factory); each test gets a fresh, empty store from the factory.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setImmediate as tick } from 'node:timers/promises';
import { WharfError } from '../errors.ts';
import type { BlobStore } from './blob-store.ts';

export interface ConformanceFixture {
  store: BlobStore;
  /** Temporary artefacts the store left behind (staged uploads etc.): must be empty after every operation settles. */
  leftovers?(): Promise<string[]>;
  cleanup?(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream as AsyncIterable<Uint8Array | string>) parts.push(typeof c === 'string' ? enc.encode(c) : c);
  return new Uint8Array(Buffer.concat(parts));
}

async function listAll(store: BlobStore, prefix: string) {
  const out: { key: string; size: number; mtime: Date }[] = [];
  for await (const e of store.list(prefix)) out.push(e);
  return out;
}

/**
 * Byte comparison with a short failure message (assert.deepEqual on large arrays builds a diff that can take minutes,
 * blocking the event loop so that even test timeouts cannot fire).
 */
function assertBytes(actual: Uint8Array | undefined, expected: Uint8Array, message = 'bytes differ'): void {
  assert.ok(actual, `${message}: blob is absent`);
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  assert.fail(`${message}: ${actual.length} bytes vs ${expected.length} expected, first difference at offset ${i}`);
}

function isCode(code: string) {
  return (e: unknown) => e instanceof WharfError && e.code === code;
}

/** Deterministic pseudo-random bytes. */
/** Deterministic pseudo-random bytes (shared with the S3-specific tests). */
export function pattern(seed: number, size: number, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export const BAD_KEYS: readonly string[] = [
  '',
  '/abs',
  'a//b',
  'a/',
  './a',
  'a/./b',
  '../x',
  'a/../../x',
  'a/..',
  '..',
  '.',
  'a\\b',
  '..\\x',
  'a\0b',
  'x'.repeat(1025),
  'a/' + 'y'.repeat(256),
  '.tmp/x',
  '.tmp',
];

/** Every test gets a time limit, so a store that hangs fails the test instead of stalling the run. */
const T = { timeout: 30_000 };

export function blobStoreConformance(name: string, factory: () => Promise<ConformanceFixture>): void {
  async function withStore(fn: (store: BlobStore, fx: ConformanceFixture) => Promise<void>): Promise<void> {
    const fx = await factory();
    try {
      await fn(fx.store, fx);
      if (fx.leftovers) assert.deepEqual(await fx.leftovers(), [], 'no temporary data left behind');
    } finally {
      await fx.cleanup?.();
    }
  }

  describe(`BlobStore conformance: ${name}`, () => {
    test('put/get/stat of strings, bytes and async iterables', T, () =>
      withStore(async (store) => {
        const st1 = await store.put('a.txt', 'héllo');
        assert.equal(st1.size, 6);
        assert.ok(st1.mtime instanceof Date && !Number.isNaN(st1.mtime.getTime()));
        assert.match(st1.etag, /^"[^"]+"$/);
        assert.equal(dec.decode(await store.get('a.txt')), 'héllo');

        await store.put('dir/sub/b.bin', new Uint8Array([0, 1, 2, 255]));
        assertBytes(await store.get('dir/sub/b.bin'), new Uint8Array([0, 1, 2, 255]));

        async function* gen() {
          yield enc.encode('one,');
          yield 'two,'; // string chunks are UTF-8 encoded
          yield new Uint8Array(0);
          yield enc.encode('three');
        }
        const st3 = await store.put('c/it.txt', gen());
        assert.equal(st3.size, 13);
        assert.equal(dec.decode(await store.get('c/it.txt')), 'one,two,three');

        const stat = await store.stat('c/it.txt');
        assert.ok(stat);
        assert.equal(stat.size, 13);
        assert.equal(stat.etag, st3.etag, 'stat etag equals the etag returned by put');
        assert.equal(stat.mtime.getTime(), st3.mtime.getTime());
        assert.equal((await store.stat('c/it.txt'))?.etag, stat.etag, 'etag is stable');

        await store.put('empty', '');
        assertBytes(await store.get('empty'), new Uint8Array(0));
        assert.equal((await store.stat('empty'))?.size, 0);

        // keys with unusual but valid characters
        for (const key of ['pool/main/h/hello/hello_1.0-1+b1_amd64.deb', 'by-hash/SHA256/ab cd', 'ünïcode/ß', '.hidden', 'a/.b/..c/...']) {
          await store.put(key, key);
          assert.equal(dec.decode(await store.get(key)), key);
        }
      }));

    test('absent blobs: get/open/stat return undefined, delete is fine', T, () =>
      withStore(async (store) => {
        assert.equal(await store.get('nope'), undefined);
        assert.equal(await store.get('no/such/dir/file'), undefined);
        assert.equal(await store.open('nope'), undefined);
        assert.equal(await store.open('nope', { start: 0, end: 1 }), undefined);
        assert.equal(await store.stat('nope'), undefined);
        await store.delete('nope');
        await store.delete('no/such/dir/file');
        await store.put('file', 'x');
        // a path "through" a blob, and a "directory" key, are absent too
        assert.equal(await store.get('file/child'), undefined);
        assert.equal(await store.stat('file/child'), undefined);
        await store.put('d/child', 'x');
        assert.equal(await store.get('d'), undefined);
        assert.equal(await store.stat('d'), undefined);
        assert.equal(await store.open('d'), undefined);
      }));

    test('overwrite replaces content and etag', T, () =>
      withStore(async (store) => {
        const a = await store.put('k', 'first version');
        const b = await store.put('k', 'second version');
        assert.equal(dec.decode(await store.get('k')), 'second version');
        assert.notEqual(a.etag, b.etag);
        const c = await store.put('k', 'second version'); // same bytes, rewritten: still a new etag
        assert.notEqual(b.etag, c.etag);
        assert.equal((await store.stat('k'))?.etag, c.etag);
      }));

    test('deferred-sync writes are visible at once; concurrent flushes all resolve', T, () =>
      withStore(async (store) => {
        await store.put('deferred/a', 'alpha', { sync: 'deferred' });
        await store.copy('deferred/a', 'deferred/b', { sync: 'deferred' });
        assert.equal(dec.decode(await store.get('deferred/b')), 'alpha');
        await store.put('deferred/c', 'gamma', { sync: 'deferred' });
        await store.delete('deferred/c'); // deleted before the flush: not an error
        await Promise.all([store.flush(), store.flush()]);
        await store.flush();
        assert.equal(dec.decode(await store.get('deferred/a')), 'alpha');
      }));

    test('generation changes with every write and delete', T, () =>
      withStore(async (store) => {
        const g0 = store.generation;
        await store.put('gen/a', 'a');
        const g1 = store.generation;
        assert.notEqual(g1, g0);
        await store.copy('gen/a', 'gen/b');
        const g2 = store.generation;
        assert.notEqual(g2, g1);
        await store.delete('gen/b');
        assert.notEqual(store.generation, g2);
        const g3 = store.generation;
        await store.get('gen/a');
        await store.stat('gen/a');
        assert.equal(store.generation, g3, 'reads do not change it');
      }));

    test('putFile moves a local file into the store', T, () =>
      withStore(async (store) => {
        const { mkdtemp, writeFile, access } = await import('node:fs/promises');
        const { tmpdir } = await import('node:os');
        const { join } = await import('node:path');
        const dir = await mkdtemp(join(tmpdir(), 'wharf-putfile-'));
        for (const sync of ['now', 'deferred'] as const) {
          const local = join(dir, `upload-${sync}`);
          await writeFile(local, `contents ${sync}`);
          const st = await store.putFile(`moved/${sync}`, local, { sync });
          assert.equal(st.size, `contents ${sync}`.length);
          assert.equal(dec.decode(await store.get(`moved/${sync}`)), `contents ${sync}`);
          await assert.rejects(access(local), 'the local file is consumed');
        }
        await store.flush();
        await assert.rejects(store.putFile('moved/missing', join(dir, 'nope')));
        assert.equal(await store.stat('moved/missing'), undefined);
      }));

    test('linkFile (where the store has it): a link to exactly the file checked, or a refusal that leaves nothing', T, () =>
      withStore(async (store) => {
        const { mkdtemp, writeFile, stat, lstat } = await import('node:fs/promises');
        const { tmpdir } = await import('node:os');
        const { join } = await import('node:path');
        if (!store.linkFile) {
          // Stores without local files (S3) have no links: an import copies the bytes with put().
          assert.equal(typeof store.localPath?.('x'), 'undefined');
          return;
        }
        const dir = await mkdtemp(join(tmpdir(), 'wharf-linkfile-'));
        const local = join(dir, 'pkg.rpm');
        await writeFile(local, 'package bytes');
        const identity = async () => {
          const st = await lstat(local);
          return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
        };
        const expect = await identity();
        assert.equal(await store.linkFile('linked/deep/dir/pkg.rpm', local, { expect }), 'linked', 'parents are created');
        assert.equal(dec.decode(await store.get('linked/deep/dir/pkg.rpm')), 'package bytes');
        assert.equal(store.localPath ? (await stat(store.localPath('linked/deep/dir/pkg.rpm')!)).ino : expect.ino, expect.ino, 'the same file, not a copy');
        // An existing blob is replaced atomically.
        await store.put('linked/over', 'old');
        assert.equal(await store.linkFile('linked/over', local, { sync: 'deferred' }), 'linked');
        assert.equal(dec.decode(await store.get('linked/over')), 'package bytes');
        await store.flush();
        // A file that changed since it was checked (size, or its modification time) is not linked.
        await writeFile(local, 'package bytes, then more');
        assert.equal(await store.linkFile('linked/changed', local, { expect }), 'changed');
        assert.equal(await store.stat('linked/changed'), undefined);
        const replaced = join(dir, 'other.rpm');
        await writeFile(replaced, 'package bytes');
        assert.equal(await store.linkFile('linked/other', replaced, { expect }), 'changed', 'another file (inode) with the same size');
        assert.equal(await store.stat('linked/other'), undefined);
        await assert.rejects(store.linkFile('linked/missing', join(dir, 'nope')), /ENOENT/);
        assert.equal(await store.stat('linked/missing'), undefined);
        await assert.rejects(store.linkFile('../escape', local), /STORAGE_BAD_KEY|Invalid/);
      }));

    test('open: whole blob and byte ranges', T, () =>
      withStore(async (store) => {
        const data = pattern(1, 100_000);
        await store.put('r', data);
        assertBytes(await readAll((await store.open('r'))!), data);
        assertBytes(await readAll((await store.open('r', { start: 0, end: 10 }))!), data.subarray(0, 10));
        assertBytes(await readAll((await store.open('r', { start: 65_530, end: 65_550 }))!), data.subarray(65_530, 65_550));
        assertBytes(await readAll((await store.open('r', { start: 99_999, end: 100_000 }))!), data.subarray(99_999));
        assertBytes(await readAll((await store.open('r', { start: 5, end: 5 }))!), new Uint8Array(0));
        assertBytes(await readAll((await store.open('r', { start: 100_000, end: 100_000 }))!), new Uint8Array(0));
        // end past the size is clamped
        assertBytes(await readAll((await store.open('r', { start: 99_990, end: 200_000 }))!), data.subarray(99_990));
        await assert.rejects(store.open('r', { start: 100_001, end: 100_002 }), isCode('RANGE_NOT_SATISFIABLE'));
        await assert.rejects(store.open('r', { start: 10, end: 5 }), isCode('RANGE_NOT_SATISFIABLE'));
        await assert.rejects(store.open('r', { start: -1, end: 5 }), isCode('RANGE_NOT_SATISFIABLE'));
        await assert.rejects(store.open('r', { start: 1.5, end: 5 }), isCode('RANGE_NOT_SATISFIABLE'));
        // an open stream keeps reading the old content when the blob is replaced meanwhile
        const s = await store.open('r');
        await store.put('r', 'new');
        assertBytes(await readAll(s!), data);
      }));

    test('copy: independent copies, overwrite, missing source', T, () =>
      withStore(async (store) => {
        await store.put('src/a', 'original');
        await store.copy('src/a', 'dst/deep/b');
        assert.equal(dec.decode(await store.get('dst/deep/b')), 'original');
        assert.equal(dec.decode(await store.get('src/a')), 'original');
        assert.equal((await store.stat('dst/deep/b'))?.size, 8);
        // later writes to either key never affect the other
        await store.put('src/a', 'changed source');
        assert.equal(dec.decode(await store.get('dst/deep/b')), 'original');
        await store.put('dst/deep/b', 'changed copy');
        assert.equal(dec.decode(await store.get('src/a')), 'changed source');
        // overwrite an existing destination
        await store.copy('src/a', 'dst/deep/b');
        assert.equal(dec.decode(await store.get('dst/deep/b')), 'changed source');
        // deleting the source keeps the copy
        await store.delete('src/a');
        assert.equal(dec.decode(await store.get('dst/deep/b')), 'changed source');
        await assert.rejects(store.copy('src/a', 'x'), isCode('NOT_FOUND'));
        await assert.rejects(store.copy('dst', 'x'), isCode('NOT_FOUND')); // a "directory" is not a blob
        assert.equal(await store.get('x'), undefined);
        // copy onto itself is a no-op
        await store.copy('dst/deep/b', 'dst/deep/b');
        assert.equal(dec.decode(await store.get('dst/deep/b')), 'changed source');
      }));

    test('delete', T, () =>
      withStore(async (store) => {
        await store.put('x/y/z', '1');
        await store.put('x/y2', '2');
        await store.delete('x/y/z');
        assert.equal(await store.get('x/y/z'), undefined);
        assert.equal(dec.decode(await store.get('x/y2')), '2');
        await store.delete('x/y/z');
        // the freed "directory" name can be reused as a blob key
        await store.put('x/y', 'now a blob');
        assert.equal(dec.decode(await store.get('x/y')), 'now a blob');
        assert.deepEqual((await listAll(store, '')).map((e) => e.key), ['x/y', 'x/y2']);
      }));

    test('list: prefixes, nesting, sizes, order', T, () =>
      withStore(async (store) => {
        assert.deepEqual(await listAll(store, ''), []);
        assert.deepEqual(await listAll(store, 'nothing/'), []);
        const keys = ['dists/bookworm/InRelease', 'dists/bookworm/main/binary-amd64/Packages', 'dists/bookworm-backports/Release', 'dists/bullseye/Release', 'pool/main/h/hello.deb', 'pool-other', 'top'];
        for (const k of keys) await store.put(k, k.toUpperCase() + '!');
        const all = await listAll(store, '');
        assert.deepEqual(all.map((e) => e.key), [...keys].sort());
        for (const e of all) {
          assert.equal(e.size, e.key.length + 1);
          assert.ok(e.mtime instanceof Date);
        }
        assert.deepEqual((await listAll(store, 'dists/')).map((e) => e.key), keys.filter((k) => k.startsWith('dists/')).sort());
        assert.deepEqual((await listAll(store, 'dists/bookworm/')).map((e) => e.key), ['dists/bookworm/InRelease', 'dists/bookworm/main/binary-amd64/Packages']);
        assert.deepEqual((await listAll(store, 'dists/bookworm')).map((e) => e.key), ['dists/bookworm-backports/Release', 'dists/bookworm/InRelease', 'dists/bookworm/main/binary-amd64/Packages']);
        assert.deepEqual((await listAll(store, 'dists/b')).length, 4);
        assert.deepEqual((await listAll(store, 'pool')).map((e) => e.key), ['pool-other', 'pool/main/h/hello.deb']);
        assert.deepEqual((await listAll(store, 'top')).map((e) => e.key), ['top']);
        assert.deepEqual((await listAll(store, 'top/')).map((e) => e.key), []);
        assert.deepEqual((await listAll(store, 'pool/main/h/hello.deb')).map((e) => e.key), ['pool/main/h/hello.deb']);
        await assert.rejects(listAll(store, '../'), isCode('STORAGE_BAD_KEY'));
        await assert.rejects(listAll(store, '/abs'), isCode('STORAGE_BAD_KEY'));
        await assert.rejects(listAll(store, 'a//'), isCode('STORAGE_BAD_KEY'));
      }));

    test('list never shows a blob that is still being written', T, () =>
      withStore(async (store) => {
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        async function* slow() {
          yield enc.encode('part 1 ');
          await gate;
          yield enc.encode('part 2');
        }
        const pending = store.put('dir/slow', slow());
        await tick();
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(await listAll(store, ''), []);
        assert.equal(await store.get('dir/slow'), undefined);
        assert.equal(await store.stat('dir/slow'), undefined);
        release();
        await pending;
        assert.deepEqual((await listAll(store, '')).map((e) => e.key), ['dir/slow']);
        assert.equal(dec.decode(await store.get('dir/slow')), 'part 1 part 2');
      }));

    test('key validation on every method', T, () =>
      withStore(async (store) => {
        for (const key of BAD_KEYS) {
          const label = JSON.stringify(key.length > 40 ? key.slice(0, 40) + '…' : key);
          await assert.rejects(store.put(key, 'x'), isCode('STORAGE_BAD_KEY'), `put ${label}`);
          await assert.rejects(store.get(key), isCode('STORAGE_BAD_KEY'), `get ${label}`);
          await assert.rejects(store.open(key), isCode('STORAGE_BAD_KEY'), `open ${label}`);
          await assert.rejects(store.stat(key), isCode('STORAGE_BAD_KEY'), `stat ${label}`);
          await assert.rejects(store.delete(key), isCode('STORAGE_BAD_KEY'), `delete ${label}`);
          await assert.rejects(store.copy(key, 'ok'), isCode('STORAGE_BAD_KEY'), `copy from ${label}`);
          await store.put('ok', 'x');
          await assert.rejects(store.copy('ok', key), isCode('STORAGE_BAD_KEY'), `copy to ${label}`);
          if (store.localPath) assert.throws(() => store.localPath!(key), isCode('STORAGE_BAD_KEY'), `localPath ${label}`);
        }
        // the longest valid key works
        const longest = ['k'.repeat(255), 'k'.repeat(255), 'k'.repeat(255), 'k'.repeat(254), 'k'].join('/');
        assert.equal(longest.length, 1024);
        await store.put(longest, 'long');
        assert.equal(dec.decode(await store.get(longest)), 'long');
        // nothing escaped: only the keys written above exist
        assert.deepEqual((await listAll(store, '')).map((e) => e.key).sort(), [longest, 'ok'].sort());
      }));

    test('a key cannot be both a blob and a directory of blobs', T, () =>
      withStore(async (store) => {
        await store.put('a/b', '1');
        await assert.rejects(store.put('a', '2'), isCode('STORAGE_BAD_KEY'));
        await assert.rejects(store.put('a/b/c', '3'), isCode('STORAGE_BAD_KEY'));
        await assert.rejects(store.copy('a/b', 'a'), isCode('STORAGE_BAD_KEY'));
        assert.equal(dec.decode(await store.get('a/b')), '1');
      }));

    test('a body that throws halfway leaves no blob (and keeps the old one)', T, () =>
      withStore(async (store) => {
        async function* failing() {
          yield pattern(2, 300_000);
          await tick();
          yield pattern(3, 300_000);
          throw new Error('client went away');
        }
        await assert.rejects(store.put('fail/new', failing()), /client went away/);
        assert.equal(await store.get('fail/new'), undefined);
        assert.equal(await store.stat('fail/new'), undefined);
        assert.deepEqual(await listAll(store, ''), []);

        await store.put('fail/existing', 'old content');
        await assert.rejects(store.put('fail/existing', failing()), /client went away/);
        assert.equal(dec.decode(await store.get('fail/existing')), 'old content');
        assert.deepEqual((await listAll(store, '')).map((e) => e.key), ['fail/existing']);
      }));

    test('concurrent puts to one key: readers and the final blob see exactly one whole version', T, () =>
      withStore(async (store) => {
        const N = 8;
        const size = 256 * 1024;
        const versions = Array.from({ length: N }, (_, i) => pattern(100 + i, size + i));
        const hashes = new Set(versions.map((v) => createHash('sha256').update(v).digest('hex')));
        async function* chunked(data: Uint8Array) {
          for (let off = 0; off < data.length; off += 16 * 1024) {
            yield data.subarray(off, Math.min(off + 16 * 1024, data.length));
            await tick();
          }
        }
        let done = false;
        const seen = new Set<string>();
        const reader = (async () => {
          while (!done) {
            const got = await store.get('hot/key');
            if (got) {
              const h = createHash('sha256').update(got).digest('hex');
              assert.ok(hashes.has(h), `reader saw a partial or mixed blob (${got.length} bytes)`);
              seen.add(h);
            }
            await tick();
          }
        })();
        const stats = await Promise.all(versions.map((v) => store.put('hot/key', chunked(v))));
        done = true;
        await reader;
        const final = await store.get('hot/key');
        assert.ok(final);
        const h = createHash('sha256').update(final).digest('hex');
        assert.ok(hashes.has(h), 'final blob is one of the versions written');
        const st = await store.stat('hot/key');
        assert.equal(st?.size, final.length);
        assert.ok(stats.some((s) => s.etag === st?.etag), 'final etag is the one returned by the winning put');
        // sequential puts: the last one wins
        for (const v of versions) await store.put('hot/key', v);
        assertBytes(await store.get('hot/key'), versions[N - 1]!);
      }));

    test('concurrent puts, copies and deletes in one directory', T, () =>
      withStore(async (store) => {
        const ops: Promise<unknown>[] = [];
        for (let i = 0; i < 40; i++) {
          ops.push(store.put(`d/e/f${i}`, `v${i}`));
          if (i % 3 === 0) ops.push(store.delete(`d/e/f${i - 3 < 0 ? 0 : i - 3}`));
          if (i % 5 === 0) ops.push(store.put(`d/e/g${i}`, `g${i}`).then(() => store.copy(`d/e/g${i}`, `d/x/c${i}`)));
        }
        await Promise.all(ops);
        for (let i = 0; i < 40; i++) {
          const v = await store.get(`d/e/f${i}`);
          if (v) assert.equal(dec.decode(v), `v${i}`);
          if (i % 5 === 0) assert.equal(dec.decode(await store.get(`d/x/c${i}`)), `g${i}`);
        }
        assert.equal(dec.decode(await store.get('d/e/f39')), 'v39');
      }));

    test('large blob (50 MiB) is streamed, not buffered', { timeout: 120_000 }, () =>
      withStore(async (store) => {
        const CHUNK = 1024 * 1024;
        const COUNT = 50;
        const expected = createHash('sha256');
        // One buffer, refilled for every chunk: a store that kept references to chunks instead of consuming them
        // before asking for the next one would end up with corrupt content.
        const buf = new Uint8Array(CHUNK);
        async function* big() {
          for (let i = 0; i < COUNT; i++) {
            pattern(1000 + i, CHUNK, buf);
            expected.update(buf);
            yield buf;
          }
        }
        // Live memory, sampled after a full collection every 10 ms while the put runs: garbage waiting for the
        // collector is not buffering (measured without collecting, the check failed now and then).
        const gc = liveGc();
        const used = () => {
          const m = process.memoryUsage();
          return m.arrayBuffers + m.heapUsed;
        };
        gc();
        const base = used();
        let peak = base;
        const timer = setInterval(() => {
          gc();
          peak = Math.max(peak, used());
        }, 10);
        let st;
        try {
          st = await store.put('big/blob.bin', big());
        } finally {
          clearInterval(timer);
        }
        assert.equal(st.size, CHUNK * COUNT);
        const growth = peak - base;
        assert.ok(growth < 40 * CHUNK, `live memory grew by ${(growth / CHUNK).toFixed(1)} MiB while putting 50 MiB`);
        const actual = createHash('sha256');
        for await (const c of (await store.open('big/blob.bin'))! as AsyncIterable<Uint8Array>) actual.update(c);
        assert.equal(actual.digest('hex'), expected.digest('hex'));
        // a range deep inside
        const mid = await readAll((await store.open('big/blob.bin', { start: 37 * CHUNK + 5, end: 37 * CHUNK + 25 }))!);
        assertBytes(mid, pattern(1037, 25).subarray(5, 25));
        const listed = await listAll(store, 'big/');
        assert.deepEqual(listed.map((e) => [e.key, e.size]), [['big/blob.bin', CHUNK * COUNT]]);
        assert.equal(listed[0]!.mtime.getTime(), st.mtime.getTime());
      }));
  });
}

/** A full garbage collection on demand (without starting the process with --expose-gc). */
function liveGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}
