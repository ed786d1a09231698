// The audit log: every mutation, with who did it (which token), what, when and from which address. Never secrets.
import type { Db } from '../db/database.ts';
import type { Principal } from './tokens.ts';

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
  constructor(db: Db) {
    this.#db = db;
  }

  async record(e: AuditRecord): Promise<void> {
    await this.recordMany([e]);
  }

  /** Several entries in one statement (a batch push records one per package). */
  async recordMany(entries: readonly AuditRecord[]): Promise<void> {
    const at = Date.now();
    // In slices: a statement's parameters are limited (SQLite 32766, PostgreSQL 65535), 8 per row.
    for (let i = 0; i < entries.length; i += 500) {
      await this.#db
        .insertInto('audit_log')
        .values(
          entries.slice(i, i + 500).map((e) => ({
            at,
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
