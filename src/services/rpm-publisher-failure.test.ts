// A publish that fails while the documents are being built (a noarch copy that cannot be made) must not leave a
// compression running that hands its chunks, afterwards, to documents already dropped: those chunks would stay on
// the digest worker for good. Injected failures and a slowed gzip (a loaded thread pool) make the race certain; its
// own file, because it patches node:zlib and the digest worker's bookkeeping for the whole process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { loadConfig } from '../config.ts';
import { createApp } from '../app.ts';
import { createLogger } from '../log.ts';
import { DigestWorker } from './digest-worker.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';
import { tarHeader, tarPadding, TAR_END } from '../formats/tar-stream.ts';

const kept = new Set<number>();
const keep = DigestWorker.prototype.keep;
const release = DigestWorker.prototype.release;
DigestWorker.prototype.keep = function (parts) {
  const keys = keep.call(this, parts);
  for (const k of keys) kept.add(k);
  return keys;
};
DigestWorker.prototype.release = function (keys) {
  for (const k of keys) kept.delete(k);
  return release.call(this, keys);
};

test('a publish failing while its documents are compressed leaves nothing kept on the digest worker', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-rpm-failure-'));
  const config = () => loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {});
  const ref = { org: 'acme', repo: 'rpms' };
  let app = await createApp(config(), { log: createLogger('silent') });
  try {
    await app.repos.create(ref, { private: false, signPackages: false });
    const parts: Uint8Array[] = [];
    for (let i = 1; i <= 600; i++) {
      const m = rpmMeta(i);
      const b = buildRpmBytes({ ...m, standalone: true });
      parts.push(tarHeader(m.filename, b.byteLength), b, tarPadding(b.byteLength));
    }
    parts.push(TAR_END);
    await app.packages.pushBatch(ref, 'el', '9', (async function* () {
      yield* parts;
    })());
    await app.close();
    // A fresh start: the next publish builds every document from the rows, and its first noarch copy fails.
    app = await createApp(config(), { log: createLogger('silent') });
    const store = app.store as unknown as { copy: (...a: unknown[]) => Promise<void>; flush: () => Promise<void> };
    const copy = store.copy.bind(store);
    let failCopy = true;
    store.copy = async (...a: unknown[]) => {
      if (failCopy) {
        failCopy = false;
        throw new Error('injected copy failure');
      }
      return copy(...a);
    };
    const zlib = createRequire(import.meta.url)('node:zlib') as { gzip: (d: unknown, o: unknown, cb: (e: unknown, r: unknown) => void) => void };
    const gzip = zlib.gzip;
    zlib.gzip = (d, o, cb) => gzip(d, o, (e, r) => setTimeout(() => cb(e, r), 200));
    syncBuiltinESMExports();
    const push = (i: number) => {
      const b = buildRpmBytes({ ...rpmMeta(i), standalone: true });
      return app.packages.push(ref, 'el', '9', (async function* () {
        yield b;
      })());
    };
    try {
      await assert.rejects(push(601), /injected copy failure/);
      await new Promise((r) => setTimeout(r, 600)); // any compression still running would land now
      // A failure after the documents are built drops them all: every chunk they kept is released.
      const flush = store.flush.bind(store);
      let failFlush = true;
      store.flush = async () => {
        if (failFlush) {
          failFlush = false;
          throw new Error('injected flush failure');
        }
        return flush();
      };
      await assert.rejects(push(602), /injected flush failure/);
      assert.equal(kept.size, 0, `${kept.size} chunks kept on the digest worker belong to no document`);
    } finally {
      zlib.gzip = gzip;
      syncBuiltinESMExports();
    }
  } finally {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
});
