// After a crash between storing a package and publishing it, the package is in the database but not yet in the
// signed metadata (clients never see a broken repository: metadata is written last). At start, every distribution
// whose packages are newer than its last publish is published again.
import type { Db } from '../db/database.ts';
import type { Logger } from '../log.ts';

export async function staleDistributions(db: Db): Promise<{ id: number; kind: string }[]> {
  const rows = await db
    .selectFrom('distributions')
    .leftJoin('deb_packages', 'deb_packages.distribution_id', 'distributions.id')
    .leftJoin('rpm_packages', 'rpm_packages.distribution_id', 'distributions.id')
    .select((eb) => [
      'distributions.id',
      'distributions.kind',
      'distributions.published_at',
      eb.fn.max('deb_packages.created_at').as('deb_newest'),
      eb.fn.max('rpm_packages.created_at').as('rpm_newest'),
    ])
    .groupBy(['distributions.id', 'distributions.kind', 'distributions.published_at'])
    .execute();
  return rows
    .filter((r) => {
      const newest = Math.max(Number(r.deb_newest ?? 0), Number(r.rpm_newest ?? 0));
      return r.published_at === null || newest > Number(r.published_at);
    })
    .map((r) => ({ id: r.id, kind: r.kind }));
}

export async function republishStale(
  db: Db,
  publish: (kind: string, id: number) => Promise<unknown>,
  log: Logger,
): Promise<number> {
  const stale = await staleDistributions(db);
  for (const d of stale) {
    try {
      await publish(d.kind, d.id);
    } catch (err) {
      log.error({ err, distributionId: d.id }, 'republishing a stale distribution failed');
    }
  }
  if (stale.length > 0) log.info({ distributions: stale.length }, 'republished distributions left unpublished by an interrupted run');
  return stale.length;
}
