// Files superseded by a publish (old indexes, yanked packages) stay downloadable for the retention period, so that
// clients holding the previous signed metadata still find what it names; then they are deleted.
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Locks } from './locks.ts';
import { ingestLockName } from './ingest.ts';

/**
 * Package files, the kind a push writes: the clean-up leaves them to `collectRetiredPackages`, which runs after the
 * publish lock is released and deletes them holding their ingest locks.
 */
export interface PackageSweep {
  /** whether a retired key is a package file (and not metadata) */
  isPackage(key: string): boolean;
  /** the distribution's label, `org/repo/os/dist`: the ingest locks are ingestLockName(label, file name) */
  label: string;
  locks: Locks;
}

/** What a sweep found: whether package files are due (collectRetiredPackages takes them). */
export interface SweepResult {
  packagesDue: boolean;
}

const DUE_PER_SWEEP = 1000;

function dueRows(db: Db, distributionId: number, cutoff: number) {
  return db.selectFrom('retired_files').select(['id', 'key']).where('distribution_id', '=', distributionId).where('retired_at', '<=', cutoff).limit(DUE_PER_SWEEP).execute();
}

async function sweep(db: Db, store: BlobStore, due: readonly { id: number; key: string }[], stillLive: (keys: string[]) => Promise<Set<string>>): Promise<void> {
  if (due.length === 0) return;
  const live = await stillLive(due.map((r) => r.key));
  for (const r of due) if (!live.has(r.key)) await store.delete(r.key);
  for (let i = 0; i < due.length; i += 500) {
    await db.deleteFrom('retired_files').where('id', 'in', due.slice(i, i + 500).map((r) => r.id)).execute();
  }
}

/**
 * Deletes the files of a distribution retired at or before `cutoff` (never those of the publish that just ran:
 * callers pass a cutoff before it), except the ones `stillLive` reports as live again (the same content can come
 * back, e.g. a yanked package pushed again). Runs under the publish lock. With `packages`, package files are left
 * for collectRetiredPackages.
 */
export async function collectRetiredFiles(
  db: Db,
  store: BlobStore,
  distributionId: number,
  cutoff: number,
  stillLive: (keys: string[]) => Promise<Set<string>>,
  schedule?: RetentionSchedule,
  packages?: Pick<PackageSweep, 'isPackage'>,
): Promise<SweepResult> {
  if (schedule && !schedule.due(distributionId)) return { packagesDue: false };
  const due = await dueRows(db, distributionId, cutoff);
  schedule?.checked(distributionId, due.length > 0);
  const mine = packages ? due.filter((r) => !packages.isPackage(r.key)) : due;
  await sweep(db, store, mine, stillLive);
  return { packagesDue: mine.length < due.length };
}

/** Package files checked and deleted at once, holding their ingest locks (a push of one of them waits that long). */
const PACKAGES_PER_SWEEP = 50;

/**
 * Deletes the retired package files of a distribution (as collectRetiredFiles does), a few at a time, each few
 * checked and deleted holding the ingest locks of their file names: the locks a push of that file holds from its
 * write to its commit. Without them a push of the same package (a retry after a failed chunk, a yanked package pushed
 * again) could write and commit its file between the check and the delete, and lose it. Runs after the publish lock
 * is released: on PostgreSQL each holder of locks has a connection of its own from a small pool, and a publish
 * waiting for a second one while holding the first could, with enough publishes at once, wait for ever.
 */
export async function collectRetiredPackages(
  db: Db,
  store: BlobStore,
  distributionId: number,
  cutoff: number,
  stillLive: (keys: string[]) => Promise<Set<string>>,
  packages: PackageSweep,
): Promise<void> {
  const due = (await dueRows(db, distributionId, cutoff)).filter((r) => packages.isPackage(r.key));
  for (let i = 0; i < due.length; i += PACKAGES_PER_SWEEP) {
    const part = due.slice(i, i + PACKAGES_PER_SWEEP);
    const names = [...new Set(part.map((r) => ingestLockName(packages.label, r.key.slice(r.key.lastIndexOf('/') + 1))))];
    await packages.locks.runAll('ingest', names, () => sweep(db, store, part, stillLive));
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
