// Distributions are created by the first push to them; their kind (deb or rpm) is fixed from then on.
import type { Db } from '../db/database.ts';
import { WharfError } from '../errors.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { capabilities } from '../db/capabilities.ts';
import { sql } from 'kysely';

export type DistributionKind = 'deb' | 'rpm';

/** The id of OS/DIST in the repository, created as `kind` if new; a distribution of the other kind is refused. */
export async function findOrCreateDistribution(db: Db, repoId: number, os: string, name: string, kind: DistributionKind): Promise<number> {
  try {
    return await findOrInsert(db, repoId, os, name, kind);
  } catch (e) {
    // Two first pushes (of different files, on different nodes) raced to create it: the loser finds the winner's row.
    if (isUniqueViolation(e)) return findOrInsert(db, repoId, os, name, kind);
    throw e;
  }
}

async function findOrInsert(db: Db, repoId: number, os: string, name: string, kind: DistributionKind): Promise<number> {
  const found = await db.selectFrom('distributions').select(['id', 'kind']).where('repo_id', '=', repoId).where('os', '=', os).where('name', '=', name).executeTakeFirst();
  if (found) {
    if (found.kind !== kind) {
      throw new WharfError('UNSUPPORTED_PACKAGE', [
        `${os}/${name} is ${found.kind === 'rpm' ? 'an RPM' : 'a Debian'} distribution: push ${kind === 'rpm' ? 'RPM packages' : '.deb files'} to ${kind === 'rpm' ? 'an RPM' : 'a Debian'} distribution`,
      ]);
    }
    return found.id;
  }
  // An OS holds distributions of one kind: its first distribution's (the known OS names imply theirs). Two layouts
  // under one OS directory (dists/ and pool/ beside ARCH/repodata/) would only confuse whoever reads the tree. The
  // check and the insert hold the repository's row (a no-op update locks it on PostgreSQL and takes SQLite's write
  // lock), so two first pushes of different kinds under one new OS, on any nodes, cannot both pass.
  return db.transaction().execute(async (tx) => {
    await tx.updateTable('repos').set((eb) => ({ id: eb.ref('id') })).where('id', '=', repoId).execute();
    const other = await tx.selectFrom('distributions').select(['name', 'kind']).where('repo_id', '=', repoId).where('os', '=', os).where('kind', '!=', kind).executeTakeFirst();
    if (other) {
      throw new WharfError('UNSUPPORTED_PACKAGE', [
        `${os} holds ${other.kind === 'rpm' ? 'RPM' : 'Debian'} distributions (${os}/${other.name}): push ${kind === 'rpm' ? 'RPM packages' : '.deb files'} to another OS name, such as ${kind === 'rpm' ? 'el or rpm_any' : 'debian or any'}`,
      ]);
    }
    const row = await tx
      .insertInto('distributions')
      .values({ repo_id: repoId, kind, os, name, created_at: Date.now(), generation: 0, published_state: null, published_at: null })
      .returning(['id'])
      .executeTakeFirstOrThrow();
    return row.id;
  });
}

/** Records `count` stored or removed packages; call in the transaction that writes their rows. Returns the new count. */
export async function bumpChanges(tx: Db, distributionId: number, count = 1): Promise<number> {
  const row = await tx
    .updateTable('distributions')
    .set((eb) => ({ changes: eb('changes', '+', count) }))
    .where('id', '=', distributionId)
    .returning('changes')
    .executeTakeFirstOrThrow();
  return Number(row.changes);
}

/** The package tables whose rows bumpAndInsert writes. */
export type PackageTableName = 'deb_packages' | 'rpm_packages';

/**
 * The most text (in UTF-16 code units, before JSON escaping) bumpAndInsert sends as its one JSON parameter. The
 * parameter is one string: RPMs with huge file lists (a kernel-devel's filelists run to megabytes each) could
 * otherwise push a chunk of rows past V8's string limit. Above it, the rows go one parameter per value.
 */
export const BUMP_AND_INSERT_MAX_TEXT = 64 * 1024 * 1024;

/**
 * Whether bumpAndInsert can store these rows in one statement: PostgreSQL (a WITH clause holding an UPDATE), rows
 * that all name the same columns (a column some row leaves out keeps its default only in a per-row insert), and
 * no more than BUMP_AND_INSERT_MAX_TEXT of text in them.
 */
export function canBumpAndInsert(db: Db, rows: readonly object[]): boolean {
  if (!capabilities(db).dataModifyingCte || rows.length === 0) return false;
  const cols = Object.keys(rows[0]!).filter((k) => (rows[0] as Record<string, unknown>)[k] !== undefined);
  let text = 0;
  return rows.every((r) => {
    const keys = Object.keys(r).filter((k) => (r as Record<string, unknown>)[k] !== undefined);
    for (const k of keys) {
      const v = (r as Record<string, unknown>)[k];
      if (typeof v === 'string') text += v.length;
    }
    return keys.length === cols.length && keys.every((k) => cols.includes(k)) && text <= BUMP_AND_INSERT_MAX_TEXT;
  });
}

/**
 * bumpChanges and the insert of `rows` in one statement (check canBumpAndInsert first): one round trip, atomic on
 * its own, where a transaction costs four. The rows come in as one JSON parameter that json_populate_recordset types
 * by the table's own columns. They join the UPDATE's result, so the distribution's row is locked before any row
 * draws its id, as bumpChanges-then-insert guarantees in a transaction: ids of one distribution follow commit order.
 * Returns the new change count.
 */
export async function bumpAndInsert(db: Db, table: PackageTableName, distributionId: number, rows: readonly object[]): Promise<number> {
  const cols = Object.keys(rows[0]!).filter((k) => (rows[0] as Record<string, unknown>)[k] !== undefined);
  const r = await sql<{ changes: string | number }>`
    with bumped as (update distributions set changes = changes + ${rows.length} where id = ${distributionId} returning changes),
    inserted as (
      insert into ${sql.table(table)} (${sql.join(cols.map((c) => sql.ref(c)))})
      select ${sql.join(cols.map((c) => sql.ref(`r.${c}`)))}
      from bumped, json_populate_recordset(null::${sql.table(table)}, ${JSON.stringify(rows)}::json) as r
    )
    select changes from bumped`.execute(db);
  const row = r.rows[0];
  if (!row) throw new Error(`distribution ${distributionId} not found`);
  return Number(row.changes);
}

/** What a publish records about the distribution it made live. */
export interface PublishRecord {
  generation: number;
  published_state: string;
  published_at: number;
  published_changes: number;
}

/** Retired files recorded in one statement, at most (3 parameters each, well under every dialect's limit). */
const RETIRED_PER_STATEMENT = 5000;

/**
 * Records a publish: the distribution's new generation and state, and the files it retired (deleted after the
 * retention period), atomically. On PostgreSQL one statement (the update in a WITH clause): every round trip of a
 * publish delays the pushes waiting for it. A lone update is atomic by itself; elsewhere a transaction.
 */
export async function recordPublish(db: Db, distributionId: number, record: PublishRecord, retired: readonly string[]): Promise<void> {
  const rows = retired.map((key) => ({ distribution_id: distributionId, key, retired_at: record.published_at }));
  const update = () => db.updateTable('distributions').set(record).where('id', '=', distributionId);
  if (rows.length === 0) {
    await update().execute();
    return;
  }
  if (capabilities(db).dataModifyingCte && rows.length <= RETIRED_PER_STATEMENT) {
    await db
      .with('published', (qc) => qc.updateTable('distributions').set(record).where('id', '=', distributionId).returning('id'))
      .insertInto('retired_files')
      .values(rows)
      .execute();
    return;
  }
  await db.transaction().execute(async (tx) => {
    await tx.updateTable('distributions').set(record).where('id', '=', distributionId).execute();
    for (let i = 0; i < rows.length; i += RETIRED_PER_STATEMENT) await tx.insertInto('retired_files').values(rows.slice(i, i + RETIRED_PER_STATEMENT)).execute();
  });
}
