// Named locks: one lock or a set of them (a batch of packages), within a process and, on PostgreSQL, across
// processes (two Locks objects hold their advisory locks on connections of their own, like two nodes).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { testDialects, type TestDatabase } from '../db/test-dialects.ts';
import { Locks } from './locks.ts';
import { KeyedMutex } from './async.ts';

/** Records who holds which name, and fails on two holders of one name at once. */
class Holders {
  readonly #held = new Map<string, number>();
  max = 0;
  enter(names: readonly string[], who: number): void {
    for (const n of new Set(names)) {
      const other = this.#held.get(n);
      assert.equal(other, undefined, `${n} held by ${other} and ${who} at once`);
      this.#held.set(n, who);
    }
    this.max = Math.max(this.max, this.#held.size);
  }
  leave(names: readonly string[]): void {
    for (const n of new Set(names)) this.#held.delete(n);
  }
}

test('KeyedMutex.runAll: overlapping key sets in any order run exclusively and never deadlock', async () => {
  const m = new KeyedMutex<string>();
  const holders = new Holders();
  const keys = ['a', 'b', 'c', 'd', 'e'];
  const runs = Array.from({ length: 60 }, (_, i) => {
    // Sets of 1 to 4 keys, in rotating (so often opposite) orders, with duplicates now and then.
    const set = Array.from({ length: 1 + (i % 4) }, (_, j) => keys[(i * 3 + j * (i % 2 ? 1 : 4)) % keys.length]!);
    if (i % 7 === 0) set.push(set[0]!);
    const run = async () => {
      holders.enter(set, i);
      await sleep(i % 3);
      holders.leave(set);
      return i;
    };
    return set.length === 1 && i % 2 ? m.run(set[0]!, run) : m.runAll(set, run);
  });
  const done = await Promise.race([Promise.all(runs), sleep(10_000).then(() => 'deadlock')]);
  assert.notEqual(done, 'deadlock');
  assert.deepEqual(done, Array.from({ length: 60 }, (_, i) => i));
  assert.ok(holders.max > 1, 'disjoint sets ran at the same time');
});

for (const dialect of testDialects()) {
  describe(`Locks.runAll (${dialect.name})`, { skip: dialect.skip }, () => {
    let t: TestDatabase;
    const nodes: Locks[] = [];
    before(async () => {
      t = await dialect.open();
      // PostgreSQL: two "nodes", each with its own lock connections. SQLite: one process by construction.
      nodes.push(new Locks(t.db));
      nodes.push(dialect.name === 'postgres' ? new Locks(t.db) : nodes[0]!);
    });
    after(async () => {
      for (const n of new Set(nodes)) await n.close();
      await t?.close();
    });

    test('a set of locks excludes every holder of any of its names, on every node', async () => {
      const holders = new Holders();
      const names = Array.from({ length: 8 }, (_, i) => `dist/pkg-${i}.deb`);
      const runs = Array.from({ length: 24 }, (_, i) => {
        const node = nodes[i % 2]!;
        const set = i % 3 === 0 ? [names[i % 8]!] : [names[(i * 5) % 8]!, names[(i * 3 + 1) % 8]!, names[(i + 7) % 8]!];
        const run = async () => {
          holders.enter(set, i);
          await sleep(5);
          holders.leave(set);
          return i;
        };
        return set.length === 1 ? node.run('ingest', set[0]!, run) : node.runAll('ingest', set, run);
      });
      const done = await Promise.race([Promise.all(runs), sleep(20_000).then(() => 'deadlock')]);
      assert.notEqual(done, 'deadlock');
      assert.equal((done as number[]).length, 24);
    });

    test('an error in the holder releases every lock of the set', async () => {
      await assert.rejects(nodes[0]!.runAll('ingest', ['x/1', 'x/2'], async () => Promise.reject(new Error('boom'))), /boom/);
      const got = await Promise.race([nodes[1]!.runAll('ingest', ['x/2', 'x/1'], async () => 'free'), sleep(5_000).then(() => 'still held')]);
      assert.equal(got, 'free');
    });
  });
}
