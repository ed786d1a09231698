// API tokens. Secrets are random, carry a recognisable prefix (so secret scanners can spot a leaked one), are shown
// once and stored only as SHA-256 digests: a 256-bit random secret needs no slow KDF, and a digest lookup keeps
// verification cheap on every request.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../db/database.ts';
import { WharfError } from '../errors.ts';

export const ADMIN_TOKEN_PREFIX = 'wharf_admin_';

export interface Principal {
  readonly tokenId: number;
  readonly kind: string;
  readonly scopes: readonly string[];
}

function digest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

export class TokenService {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * On first start (no token at all) creates the admin token: `preset` if given, otherwise a random one; writes it to
   * DATA/admin-token (0600). Returns the secret when one was created, so the caller can print it once.
   */
  async bootstrapAdmin(dataDir: string, preset: string | undefined): Promise<string | undefined> {
    const any = await this.#db.selectFrom('tokens').select(['id']).where('kind', '=', 'admin').executeTakeFirst();
    if (any) return undefined;
    const secret = preset ?? newSecret(ADMIN_TOKEN_PREFIX);
    if (secret.length < 16) throw new WharfError('CONFIG_INVALID', ['WHARF_ADMIN_TOKEN must be at least 16 characters']);
    await this.#db
      .insertInto('tokens')
      .values({ kind: 'admin', name: 'admin', secret_sha256: digest(secret), scopes: 'admin', created_at: Date.now(), expires_at: null, revoked_at: null, last_used_at: null })
      .execute();
    await writeFile(join(dataDir, 'admin-token'), secret + '\n', { mode: 0o600 });
    return secret;
  }

  /** The principal for a presented secret, or undefined when it is unknown, revoked or expired. */
  async verify(secret: string): Promise<Principal | undefined> {
    if (!secret || secret.length > 512) return undefined;
    const d = digest(secret);
    const row = await this.#db
      .selectFrom('tokens')
      .select(['id', 'kind', 'scopes', 'secret_sha256', 'expires_at', 'revoked_at'])
      .where('secret_sha256', '=', d)
      .executeTakeFirst();
    if (!row || !timingSafeEqual(Buffer.from(row.secret_sha256, 'hex'), Buffer.from(d, 'hex'))) return undefined;
    const now = Date.now();
    if (row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now)) return undefined;
    return { tokenId: row.id, kind: row.kind, scopes: row.scopes.split(' ') };
  }
}
