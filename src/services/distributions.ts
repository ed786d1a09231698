// Distributions are created by the first push to them; their kind (deb or rpm) is fixed from then on.
import type { Db } from '../db/database.ts';
import { WharfError } from '../errors.ts';

export type DistributionKind = 'deb' | 'rpm';

/** The id of OS/DIST in the repository, created as `kind` if new; a distribution of the other kind is refused. */
export async function findOrCreateDistribution(db: Db, repoId: number, os: string, name: string, kind: DistributionKind): Promise<number> {
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
