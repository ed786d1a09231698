// Storing checked packages in a distribution, one or many at a time. A single push and a batch of thousands take the
// same path; a batch simply pays once per chunk for what a single push pays once: the locks (one statement on
// PostgreSQL), the lookup of what is already there (one query), the commit (one transaction with one multi-row
// insert). Content goes first: every blob is written before the transaction that lets a publish list it.
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { WharfError } from '../errors.ts';
import type { Locks } from './locks.ts';
import type { WriteBatcher } from './write-batcher.ts';
import { mapLimit } from './async.ts';
import { insertRows } from '../db/insert-rows.ts';
import { createHash } from 'node:crypto';
import { bumpAndInsert, bumpChanges, canBumpAndInsert, findOrCreateDistribution, type DistributionKind, type PackageTableName } from './distributions.ts';
import type { PublishRequestOptions } from './publish-queue.ts';

/**
 * Ingest locks per distribution. A file name hashes to one of these stripes: two pushes of one file name always
 * take the same lock, pushes of different names rarely wait for each other, and a chunk of 256 packages holds at most
 * this many locks (PostgreSQL keeps advisory locks in its shared lock table, a few thousand entries by default).
 */
export const INGEST_LOCK_STRIPES = 64;

/** The ingest lock that serialises storing and removing `filename` in the distribution `distLabel`. */
export function ingestLockName(distLabel: string, filename: string): string {
  return `${distLabel}#${createHash('sha256').update(filename).digest().readUInt32BE(0) % INGEST_LOCK_STRIPES}`;
}

/** A checked package, ready to store: what the format service derived from the upload. */
export interface PreparedPackage<Row> {
  /** the file name in the distribution: the lock, and what two uploads of one package share */
  readonly filename: string;
  /** name, version and architecture, for messages */
  readonly identity: string;
  /** SHA-256 of the uploaded bytes: an identical re-push is 'unchanged', different bytes are a conflict */
  readonly uploadSha256: string;
  /** the blob key of the package file */
  readonly key: string;
  /** writes the package file under `key` (`concurrent`: one of many writes in flight, see WriteOptions) */
  write(store: BlobStore, opts?: { concurrent?: boolean }): Promise<void>;
  /** write() links a file already on the machine where the store can (BlobStore.linkFile): no bytes move */
  readonly links?: boolean;
  /** the row to insert, without its distribution */
  readonly row: Row;
}

export type StoreOutcome<Row, Existing> =
  | { status: 'created'; row: Row }
  | { status: 'unchanged'; existing: Existing | Row }
  | { status: 'refused'; error: WharfError };

export interface StoreSpec<Row, Existing> {
  readonly db: Db;
  readonly store: BlobStore;
  readonly locks: Locks;
  readonly writes: WriteBatcher;
  /** the distribution's label: lock names are ingestLockName(lockPrefix, filename) */
  readonly lockPrefix: string;
  /** the rows of the distribution with these file names */
  findExisting(db: Db, distributionId: number, filenames: string[]): Promise<Existing[]>;
  filenameOf(existing: Existing): string;
  uploadSha256Of(existing: Existing): string;
  /** the error for a package whose name and version are taken by different bytes */
  conflict(prepared: PreparedPackage<Row>, existingSha256: string): WharfError;
  /** inserts the rows (in one statement per chunk) */
  insert(tx: Db, rows: (Row & { distribution_id: number })[]): Promise<void>;
  /** records `count` changes; returns the distribution's new change count */
  bump(tx: Db, distributionId: number, count: number): Promise<number>;
  /** where the database can (canBumpAndInsert), bump and insert in one statement instead */
  bumpAndInsert?(db: Db, distributionId: number, rows: (Row & { distribution_id: number })[]): Promise<number>;
}

/** Rows per INSERT: 16 columns each stay well below SQLite's 32,766 and PostgreSQL's 65,535 parameters. */
const INSERT_ROWS = 500;
/** Package files written at once (the filesystem store writes small ones synchronously; S3 waits on the network). */
const WRITES_IN_FLIGHT = 16;

/**
 * Stores `items` in the distribution: under the ingest locks of their file names, skips those already there with the
 * same bytes, refuses those there with other bytes (and later duplicates within `items` that differ from the first),
 * writes the new files, then inserts their rows and bumps the change count by their number in one transaction.
 * Returns an outcome per item (same order) and the change number a publish must reach to list them (undefined when
 * nothing new was stored).
 */
export async function storePackages<Row extends object, Existing>(
  spec: StoreSpec<Row, Existing>,
  distributionId: number,
  items: readonly PreparedPackage<Row>[],
): Promise<{ outcomes: StoreOutcome<Row, Existing>[]; target: number | undefined }> {
  const names = [...new Set(items.map((p) => ingestLockName(spec.lockPrefix, p.filename)))];
  return spec.locks.runAll('ingest', names, async () => {
    const filenames = [...new Set(items.map((p) => p.filename))];
    const existing = new Map<string, Existing>();
    for (let i = 0; i < filenames.length; i += INSERT_ROWS) {
      for (const e of await spec.findExisting(spec.db, distributionId, filenames.slice(i, i + INSERT_ROWS))) existing.set(spec.filenameOf(e), e);
    }
    const outcomes: StoreOutcome<Row, Existing>[] = new Array(items.length);
    let fresh: number[] = [];
    const firstInBatch = new Map<string, number>();
    /** later items of the batch with the bytes of an earlier one, by the earlier one's index */
    const sameAs = new Map<number, number[]>();
    items.forEach((p, i) => {
      const there = existing.get(p.filename);
      if (there) {
        const sha = spec.uploadSha256Of(there);
        outcomes[i] = sha === p.uploadSha256 ? { status: 'unchanged', existing: there } : { status: 'refused', error: spec.conflict(p, sha) };
        return;
      }
      const f = firstInBatch.get(p.filename);
      if (f !== undefined) {
        const first = items[f]!;
        outcomes[i] = first.uploadSha256 === p.uploadSha256 ? { status: 'unchanged', existing: first.row } : { status: 'refused', error: spec.conflict(p, first.uploadSha256) };
        if (first.uploadSha256 === p.uploadSha256) sameAs.set(f, [...(sameAs.get(f) ?? []), i]);
        return;
      }
      firstInBatch.set(p.filename, i);
      fresh.push(i);
    });
    if (fresh.length === 0) return { outcomes, target: undefined };
    // Content first: each file exists before any index can name it. After a failed write none is left running
    // (mapLimit): the locks are released, and the inputs disposed of, only once every write has ended.
    // Several files (a batch) are written through the thread pool, overlapping the parsing of the next ones.
    // A write refused for its own file (4xx: an imported file that changed or vanished) refuses that item only.
    // Links move no bytes: a chunk's are all asked for at once (the store makes them together).
    const concurrent = fresh.length > 1;
    const refused = new Set<number>();
    const allLinks = spec.store.linkFile !== undefined && fresh.every((i) => items[i]!.links);
    /** files written: if the chunk then fails, no row names them */
    const written: string[] = [];
    const orphaned = async (e: unknown): Promise<never> => {
      await retireOrphans(spec.db, distributionId, written).catch(() => {});
      throw e;
    };
    await mapLimit(fresh, allLinks ? fresh.length : WRITES_IN_FLIGHT, async (i) => {
      try {
        await items[i]!.write(spec.store, { concurrent });
        written.push(items[i]!.key);
      } catch (e) {
        if (!(e instanceof WharfError) || e.status >= 500) throw e;
        refused.add(i);
        for (const j of [i, ...(sameAs.get(i) ?? [])]) outcomes[j] = { status: 'refused', error: e };
      }
    }).catch(orphaned);
    if (refused.size > 0) fresh = fresh.filter((i) => !refused.has(i));
    if (fresh.length === 0) return { outcomes, target: undefined };
    const rows = fresh.map((i) => ({ ...items[i]!.row, distribution_id: distributionId }));
    // The rows and the bump of `changes` commit together: a publish that saw the bump sees the rows. The bump comes
    // first: it locks the distribution's row until commit, so rows of one distribution get their ids in commit order,
    // and a publisher reading "ids above the last it saw" never misses one committed late.
    // On PostgreSQL a chunk is one statement (bumpAndInsert keeps that order), run without a transaction of its own
    // when no other push's write shares the commit.
    const oneStatement = spec.bumpAndInsert !== undefined && rows.length <= INSERT_ROWS && canBumpAndInsert(spec.db, rows);
    const target = await (oneStatement
      ? spec.writes.run((db) => spec.bumpAndInsert!(db, distributionId, rows), { atomic: true })
      : spec.writes.run(async (tx) => {
          const change = await spec.bump(tx, distributionId, rows.length);
          for (let i = 0; i < rows.length; i += INSERT_ROWS) await spec.insert(tx, rows.slice(i, i + INSERT_ROWS));
          return change;
        })
    ).catch(orphaned);
    for (const i of fresh) outcomes[i] = { status: 'created', row: items[i]!.row };
    return { outcomes, target };
  });
}

/**
 * Files a failed chunk wrote before it failed (a later write, or its transaction): recorded as retired, so the next
 * publish's clean-up deletes them once the retention period is over, unless a row names them by then (a retry that
 * succeeded). Best effort: the failure that got here may be the database's.
 */
async function retireOrphans(db: Db, distributionId: number, keys: readonly string[]): Promise<void> {
  const retiredAt = Date.now();
  for (let i = 0; i < keys.length; i += INSERT_ROWS) {
    await db.insertInto('retired_files').values(keys.slice(i, i + INSERT_ROWS).map((key) => ({ distribution_id: distributionId, key, retired_at: retiredAt }))).execute();
  }
}

/** What differs between the Debian and the RPM package table, for storeInDistribution. */
export interface PackageTable<Row, Existing, Info> {
  readonly kind: DistributionKind;
  /** the table: both have `distribution_id` and `filename`, which is all the lookup and the insert need to know */
  readonly table: PackageTableName;
  uploadSha256Of(existing: Existing): string;
  /** what a push reports about a package (`distribution` is OS/DIST) */
  info(distribution: string, row: Row | Existing): Info;
}

/**
 * Stores prepared packages in OS/DIST of a repository (created as `table.kind` if new), without publishing: one
 * result per package, in order (a refused one as its error), and the change number a publish must reach to list
 * what was stored.
 */
export async function storeInDistribution<Row extends object, Existing, Info>(
  deps: Pick<StoreSpec<Row, Existing>, 'db' | 'store' | 'locks' | 'writes'>,
  table: PackageTable<Row, Existing, Info>,
  where: { repoId: number; label: string; os: string; dist: string; distributionId?: number },
  items: readonly PreparedPackage<Row>[],
): Promise<{ distributionId: number; target: number | undefined; results: ({ status: 'created' | 'unchanged'; package: Info } | WharfError)[] }> {
  const distributionId = where.distributionId ?? (await findOrCreateDistribution(deps.db, where.repoId, where.os, where.dist, table.kind));
  const { outcomes, target } = await storePackages<Row, Existing>(
    {
      ...deps,
      lockPrefix: where.label,
      // The two tables differ in their columns, not in these: one lookup and one insert serve both (the rows are
      // the table's own, as its PackageTable types them).
      findExisting: (db, id, filenames) =>
        db.selectFrom(table.table as 'deb_packages').selectAll().where('distribution_id', '=', id).where('filename', 'in', filenames).execute() as Promise<unknown[]> as Promise<Existing[]>,
      filenameOf: (e) => (e as { filename: string }).filename,
      uploadSha256Of: (e) => table.uploadSha256Of(e),
      conflict: (p, sha) => new WharfError('PACKAGE_CONFLICT', [p.identity, where.label, sha]),
      insert: (tx, rows) => insertRows(tx, table.table, rows as unknown as Record<string, unknown>[]),
      bump: bumpChanges,
      bumpAndInsert: (db, id, rows) => bumpAndInsert(db, table.table, id, rows),
    },
    distributionId,
    items,
  );
  const distribution = `${where.os}/${where.dist}`;
  const results = outcomes.map((o) =>
    o.status === 'refused'
      ? o.error
      : { status: o.status, package: table.info(distribution, o.status === 'created' ? o.row : o.existing) },
  );
  return { distributionId, target, results };
}

/**
 * The publish a single push asks for once its package is stored (an identical re-push too: it may follow an
 * interrupted publish): waited for (the default), requested in the background after the package's file is flushed
 * (an asynchronous push; the queue logs a failure, the reconciler publishes what is left), or none (`false`: the
 * caller publishes, as a batch does).
 */
export async function publishStored(
  deps: { store: BlobStore; publisher: { request(distributionId: number, opts: PublishRequestOptions): Promise<unknown> } },
  label: string,
  distributionId: number,
  target: number | undefined,
  publish: boolean | 'background' | undefined,
): Promise<void> {
  if (publish === false) return;
  if (publish === 'background') await deps.store.flush();
  const published = deps.publisher.request(distributionId, { label, coalesce: true, ...(target !== undefined ? { target } : {}) });
  if (publish === 'background') published.catch(() => {});
  else await published;
}
