// Files superseded by a publish (old indexes, yanked packages) stay downloadable for the retention period, so that
// clients holding the previous signed metadata still find what it names; then they are deleted.
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';

/**
 * Deletes the files of a distribution retired at or before `cutoff` (never those of the publish that just ran:
 * callers pass a cutoff before it), except the ones `stillLive` reports as live again (the same content can come
 * back, e.g. a yanked package pushed again).
 */
export async function collectRetiredFiles(
  db: Db,
  store: BlobStore,
  distributionId: number,
  cutoff: number,
  stillLive: (keys: string[]) => Promise<Set<string>>,
): Promise<void> {
  const due = await db
    .selectFrom('retired_files')
    .select(['id', 'key'])
    .where('distribution_id', '=', distributionId)
    .where('retired_at', '<=', cutoff)
    .limit(1000)
    .execute();
  if (due.length === 0) return;
  const live = await stillLive(due.map((r) => r.key));
  for (const r of due) if (!live.has(r.key)) await store.delete(r.key);
  for (let i = 0; i < due.length; i += 500) {
    await db.deleteFrom('retired_files').where('id', 'in', due.slice(i, i + 500).map((r) => r.id)).execute();
  }
}
