// Distributions are created by the first push to them; their kind (deb or rpm) is fixed from then on.
import type { Db } from '../db/database.ts';
import { WharfError } from '../errors.ts';
import { isUniqueViolation } from '../db/errors.ts';

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
  const row = await db
    .insertInto('distributions')
    .values({ repo_id: repoId, kind, os, name, created_at: Date.now(), generation: 0, published_state: null, published_at: null })
    .returning(['id'])
    .executeTakeFirstOrThrow();
  return row.id;
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
