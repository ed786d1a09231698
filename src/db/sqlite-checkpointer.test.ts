// WAL checkpoints run on a worker thread: the server's connection never checkpoints in its own commits, the
// database file still receives the pages, and the WAL is reused instead of growing without end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDatabase } from './database.ts';
import { SAFETY_NET_PAGES, SqliteCheckpointer } from './sqlite-checkpointer.ts';
import { spawnSync } from 'node:child_process';

const size = async (p: string) => (await stat(p).catch(() => undefined))?.size ?? 0;

async function until(what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('a new database has 8 KiB pages; its connection leaves checkpoints to the worker, which copies the WAL into the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-ckpt-'));
  const file = join(dir, 'wharf.db');
  const db = await openDatabase(file);
  try {
    assert.equal((await sql<{ page_size: number }>`PRAGMA page_size`.execute(db)).rows[0]!.page_size, 8192);
    assert.equal((await sql<{ wal_autocheckpoint: number }>`PRAGMA wal_autocheckpoint`.execute(db)).rows[0]!.wal_autocheckpoint, SAFETY_NET_PAGES);
    await sql`CREATE TABLE blobs (id integer primary key, body text not null)`.execute(db);
    const body = 'x'.repeat(6000);
    const write = () =>
      db.transaction().execute(async (tx) => {
        for (let i = 0; i < 1000; i++) await sql`INSERT INTO blobs (body) VALUES (${body})`.execute(tx);
      });
    const before = await size(file);
    await write(); // 6 MB: below the connection's own mark, so only the worker copies it into the file
    await until('the rows to reach the database file', async () => (await size(file)) > before + 5_000_000);
    const wal = await size(`${file}-wal`);
    assert.ok(wal > 5_000_000, `the WAL held the rows first (${wal} bytes)`);
    // Checkpointed, the WAL starts again from its beginning: three more rounds (each once the last checkpoint is
    // over: the database file no longer grows) do not make it grow.
    const settled = async () => {
      let last = -1;
      await until('the checkpoint to end', async () => {
        const now = await size(file);
        const same = now === last;
        last = now;
        if (!same) await new Promise((r) => setTimeout(r, 250));
        return same;
      });
    };
    await settled();
    for (let round = 0; round < 3; round++) {
      const target = (await size(file)) + 5_000_000;
      await write();
      await until('the rows to reach the database file', async () => (await size(file)) > target);
      await settled();
    }
    assert.ok((await size(`${file}-wal`)) <= wal * 1.5, `the WAL grew from ${wal} to ${await size(`${file}-wal`)} bytes`);
    assert.equal((await sql<{ n: number }>`SELECT count(*) AS n FROM blobs`.execute(db)).rows[0]!.n, 4000);
  } finally {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a checkpointer that cannot open the database hands checkpoints back to the connection, once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-ckpt-'));
  try {
    const fallbacks: unknown[] = [];
    const c = new SqliteCheckpointer(join(dir, 'no', 'such', 'dir', 'wharf.db'), (e) => fallbacks.push(e));
    c.wrote();
    await until('the fallback', async () => fallbacks.length > 0);
    c.wrote();
    await c.idle();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(fallbacks.length, 1);
    assert.equal(c.completed, 0);
    await c.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('under a steady stream of commits the WAL stays bounded: the connection checkpoints at its safety-net mark', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-ckpt-'));
  const file = join(dir, 'wharf.db');
  const db = await openDatabase(file);
  try {
    await sql`CREATE TABLE blobs (id integer primary key, body text not null)`.execute(db);
    const body = 'y'.repeat(20_000);
    let peak = 0;
    // 200 MB in 10,000 back-to-back transactions: the worker's checkpoint never finds the WAL quiet. (Without the
    // safety net the WAL holds all of it; with it, a few times the mark at most: the connection's own checkpoint
    // is skipped, busy, while the worker's runs, more often on a loaded machine.)
    for (let i = 0; i < 10_000; i++) {
      await db.transaction().execute((tx) => sql`INSERT INTO blobs (body) VALUES (${body})`.execute(tx));
      if (i % 250 === 0) peak = Math.max(peak, await size(`${file}-wal`));
    }
    peak = Math.max(peak, await size(`${file}-wal`));
    const mark = SAFETY_NET_PAGES * 8192;
    assert.ok(peak <= mark * 4, `the WAL reached ${peak} bytes (mark ${mark})`);
  } finally {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('closing the database ends the worker even when nothing else keeps the process alive; no checkpoint starts after', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-ckpt-'));
  try {
    const file = join(dir, 'wharf.db');
    const script = `
      import { openDatabase } from ${JSON.stringify(new URL('./database.ts', import.meta.url).href)};
      import { sql } from ${JSON.stringify(import.meta.resolve('kysely'))};
      const db = await openDatabase(${JSON.stringify(file)});
      await sql\`CREATE TABLE t (x text)\`.execute(db);
      await sql\`INSERT INTO t VALUES ('a')\`.execute(db);
      await new Promise((r) => setTimeout(r, 1000)); // the worker has started, checkpointed and gone idle
      await db.destroy();
      console.log('closed');
    `;
    await writeFile(join(dir, 'close.mts'), script);
    const r = spawnSync(process.execPath, [join(dir, 'close.mts')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `exit ${r.status}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /closed/);
    assert.equal(await size(`${file}-wal`), 0, 'the last connection to close removes the WAL');

    const c = new SqliteCheckpointer(file, () => assert.fail('no fallback expected'));
    await c.close();
    c.wrote();
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(c.completed, 0, 'a closed checkpointer started a checkpoint');
    await c.idle();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
