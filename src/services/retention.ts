// Files superseded by a publish (old indexes, yanked packages) stay downloadable for the retention period, so that
// clients holding the previous signed metadata still find what it names; then they are deleted.
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Locks } from './locks.ts';
import { ingestLockName } from './ingest.ts';

/** Runs a sweep of `keys` (the check of what is live, then the deletes) under whatever keeps them from changing. */
export type SweepGuard = (keys: string[], sweep: () => Promise<void>) => Promise<void>;

/**
 * The package files among the keys are checked and deleted holding their ingest locks (those of the distribution
 * `label`, by file name: the locks a push of that file holds from its write to its commit). Without them a push of
 * the same package (a retry after a failed chunk, a yanked package pushed again) could write and commit its file
 * between the check and the delete, and lose it.
 */
export function ingestGuard(locks: Locks, label: string, isPackage: (key: string) => boolean): SweepGuard {
  return async (keys, sweep) => {
    const names = [...new Set(keys.filter(isPackage).map((k) => ingestLockName(label, k.slice(k.lastIndexOf('/') + 1))))];
    return names.length === 0 ? sweep() : locks.runAll('ingest', names, sweep);
  };
}

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
  schedule?: RetentionSchedule,
  guard?: SweepGuard,
): Promise<void> {
  if (schedule && !schedule.due(distributionId)) return;
  const due = await db
    .selectFrom('retired_files')
    .select(['id', 'key'])
    .where('distribution_id', '=', distributionId)
    .where('retired_at', '<=', cutoff)
    .limit(1000)
    .execute();
  schedule?.checked(distributionId, due.length > 0);
  if (due.length === 0) return;
  const keys = due.map((r) => r.key);
  const sweep = async () => {
    const live = await stillLive(keys);
    for (const r of due) if (!live.has(r.key)) await store.delete(r.key);
  };
  await (guard ? guard(keys, sweep) : sweep());
  for (let i = 0; i < due.length; i += 500) {
    await db.deleteFrom('retired_files').where('id', 'in', due.slice(i, i + 500).map((r) => r.id)).execute();
  }
}

/**
 * When a distribution's retired files are worth looking for. Publishes follow each other quickly under load (several a
 * second), while a retired file waits the whole retention period (an hour by default): after a look found nothing
 * due, the next waits a tenth of the retention period, at most 5 s. One database round trip fewer under the publish
 * lock for most publishes; files are deleted at most that much later than they could be.
 */
export class RetentionSchedule {
  readonly #quietUntil = new Map<number, number>();
  readonly #pauseMs: number;
  readonly #now: () => number;

  constructor(retentionSeconds: number, now: () => number = Date.now) {
    this.#pauseMs = Math.min(5000, (retentionSeconds * 1000) / 10);
    this.#now = now;
  }

  due(distributionId: number): boolean {
    const until = this.#quietUntil.get(distributionId);
    return until === undefined || this.#now() >= until;
  }

  checked(distributionId: number, foundSome: boolean): void {
    if (foundSome || this.#pauseMs <= 0) this.#quietUntil.delete(distributionId);
    else {
      if (this.#quietUntil.size >= 10_000) this.#quietUntil.clear();
      this.#quietUntil.set(distributionId, this.#now() + this.#pauseMs);
    }
  }
}
