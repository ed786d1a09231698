// After a crash between storing a package and publishing it, the package is in the database but not yet in the
// signed metadata (clients never see a broken repository: metadata is written last). Such a distribution is
// published again:
// - at start, every distribution whose committed changes are not all published (`changes > published_changes`), or
//   whose packages are newer than its last publish (databases from before the change counter);
// - while running, every few seconds: a distribution found unpublished with the same `changes` on two checks in a
//   row. On one node this never happens (the push that stored a package publishes it before answering); with several
//   nodes it is how the survivors finish what a node killed mid-push left behind. The request coalesces: if another
//   node published meanwhile, it does nothing.
import type { Db } from '../db/database.ts';
import type { Logger } from '../log.ts';

export interface StaleDistribution {
  id: number;
  kind: string;
  changes: number;
  /** stale by the change counter (false: only by package times, which a forced publish resolves) */
  counted: boolean;
}

export async function staleDistributions(db: Db, opts: { byTime: boolean } = { byTime: true }): Promise<StaleDistribution[]> {
  const counted = await db
    .selectFrom('distributions')
    .select(['id', 'kind', 'changes'])
    .whereRef('changes', '>', 'published_changes')
    .execute();
  const out = new Map<number, StaleDistribution>(counted.map((r) => [r.id, { id: r.id, kind: r.kind, changes: Number(r.changes), counted: true }]));
  if (!opts.byTime) return [...out.values()];
  const rows = await db
    .selectFrom('distributions')
    .leftJoin('deb_packages', 'deb_packages.distribution_id', 'distributions.id')
    .leftJoin('rpm_packages', 'rpm_packages.distribution_id', 'distributions.id')
    .select((eb) => [
      'distributions.id',
      'distributions.kind',
      'distributions.changes',
      'distributions.published_at',
      eb.fn.max('deb_packages.created_at').as('deb_newest'),
      eb.fn.max('rpm_packages.created_at').as('rpm_newest'),
    ])
    .groupBy(['distributions.id', 'distributions.kind', 'distributions.changes', 'distributions.published_at'])
    .execute();
  for (const r of rows) {
    const newest = Math.max(Number(r.deb_newest ?? 0), Number(r.rpm_newest ?? 0));
    if ((r.published_at === null || newest > Number(r.published_at)) && !out.has(r.id)) {
      out.set(r.id, { id: r.id, kind: r.kind, changes: Number(r.changes), counted: false });
    }
  }
  return [...out.values()];
}

export class Reconciler {
  static readonly INTERVAL_MS = 5_000;
  readonly #db: Db;
  readonly #log: Logger;
  readonly #publish: (kind: string, id: number, opts: { coalesce: boolean }) => Promise<unknown>;
  readonly #intervalMs: number;
  /** what the previous periodic check found unpublished: distribution id → its `changes` then */
  #previous = new Map<number, number>();
  #timer: NodeJS.Timeout | undefined;
  /** the periodic check under way */
  #check: Promise<void> | undefined;
  #stopped = false;

  constructor(opts: {
    db: Db;
    log: Logger;
    publish: (kind: string, id: number, opts: { coalesce: boolean }) => Promise<unknown>;
    intervalMs?: number;
  }) {
    this.#db = opts.db;
    this.#log = opts.log;
    this.#publish = opts.publish;
    this.#intervalMs = opts.intervalMs ?? Reconciler.INTERVAL_MS;
  }

  /** One check. At start every stale distribution is published; later only those stale on two checks in a row. */
  async runOnce(opts: { atStart?: boolean } = {}): Promise<number> {
    const stale = await staleDistributions(this.#db, { byTime: opts.atStart === true });
    const due = opts.atStart ? stale : stale.filter((d) => this.#previous.get(d.id) === d.changes);
    this.#previous = new Map(stale.filter((d) => d.counted).map((d) => [d.id, d.changes]));
    for (const d of due) {
      if (this.#stopped) break; // the rest is for the next start
      try {
        await this.#publish(d.kind, d.id, { coalesce: d.counted });
      } catch (err) {
        this.#log.error({ err, distributionId: d.id }, 'republishing a stale distribution failed');
      }
    }
    if (due.length > 0) this.#log.info({ distributions: due.length }, 'republished distributions left unpublished by an interrupted run');
    return due.length;
  }

  /** Starts the periodic check (the timer does not keep the process alive). */
  start(): void {
    this.#timer ??= setInterval(() => {
      if (this.#check) return;
      this.#check = this.runOnce()
        .then(() => {})
        .catch((err) => this.#log.warn({ err }, 'checking for unpublished distributions failed'))
        .finally(() => (this.#check = undefined));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops the periodic check; resolves once a check under way has ended (it starts no publish after this call). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#check;
  }
}
