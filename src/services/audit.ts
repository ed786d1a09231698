// The audit log: every mutation, with who did it (which token), what, when and from which address. Never secrets.
import type { Db } from '../db/database.ts';
import type { Principal } from './tokens.ts';
import { deferred, type Deferred } from './async.ts';

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  ip: string | null;
  action: string;
  target: string;
  details: Record<string, unknown> | null;
}

export function actorOf(p: Principal): string {
  if (p.kind === 'jwt') return `jwt:${p.subject ?? 'unknown'}`;
  return p.kind === 'admin' ? `admin-token:${p.tokenId}` : `deploy-token:${p.tokenId}`;
}

export interface AuditRecord {
  actor: string;
  ip: string | undefined;
  action: string;
  orgId: number | null;
  repoId: number | null;
  target: string;
  details?: Record<string, unknown>;
}

export class AuditLog {
  readonly #db: Db;
  /** entries waiting for the statement under way to finish: they go together in the next one */
  #queue: { e: AuditRecord; at: number; done: Deferred<void> }[] = [];
  #writing = false;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Records one entry; resolves once it is stored. Group commit: an entry recorded while another statement is under
   * way waits for it and goes with the others that arrived meanwhile, in one statement (concurrent pushes answered by
   * the same publish cost one round trip, not one each). A lone entry is written at once.
   */
  record(e: AuditRecord): Promise<void> {
    const done = deferred<void>();
    this.#queue.push({ e, at: Date.now(), done });
    if (!this.#writing) void this.#drain();
    return done.promise;
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, AuditLog.#ROWS);
        try {
          await this.#insert(this.#db, batch.map((b) => ({ ...b.e, at: b.at })));
          for (const b of batch) b.done.resolve();
        } catch (err) {
          for (const b of batch) b.done.reject(err);
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  /** Several entries in few statements and one transaction (a batch push records one per package). */
  async recordMany(entries: readonly AuditRecord[]): Promise<void> {
    const at = Date.now();
    if (entries.length <= AuditLog.#ROWS) return this.#insert(this.#db, entries.map((e) => ({ ...e, at })));
    await this.#db.transaction().execute(async (tx) => {
      for (let i = 0; i < entries.length; i += AuditLog.#ROWS) await this.#insert(tx, entries.slice(i, i + AuditLog.#ROWS).map((e) => ({ ...e, at })));
    });
  }

  // A statement's parameters are limited (SQLite 32766, PostgreSQL 65535), 8 per row.
  static readonly #ROWS = 500;

  async #insert(db: Db, entries: readonly (AuditRecord & { at: number })[]): Promise<void> {
    if (entries.length === 0) return;
    await db
      .insertInto('audit_log')
      .values(
        entries.map((e) => ({
          at: e.at,
          // Column sizes hold on every dialect (PostgreSQL refuses longer values): an X-Forwarded-For entry or a long
          // target must not fail the request whose change is being recorded.
          actor: e.actor.slice(0, 256),
          ip: e.ip?.slice(0, 64) ?? null,
          action: e.action.slice(0, 64),
          org_id: e.orgId,
          repo_id: e.repoId,
          target: e.target.slice(0, 1024),
          details: e.details ? JSON.stringify(e.details) : null,
        })),
      )
      .execute();
  }

  /** Newest first. `repoId` null: the whole organisation. */
  async list(orgId: number, repoId: number | null, limit = 200): Promise<AuditEntry[]> {
    let q = this.#db.selectFrom('audit_log').selectAll().where('org_id', '=', orgId);
    if (repoId !== null) q = q.where('repo_id', '=', repoId);
    const rows = await q.orderBy('id', 'desc').limit(Math.min(Math.max(1, limit), 1000)).execute();
    return rows.map((r) => ({
      id: r.id,
      at: new Date(Number(r.at)).toISOString(),
      actor: r.actor,
      ip: r.ip,
      action: r.action,
      target: r.target,
      details: r.details ? (JSON.parse(r.details) as Record<string, unknown>) : null,
    }));
  }
}
