// What /readyz checks: that this node can do its work now. The database answers, blob storage can be written, read
// and deleted, and the metadata signing key is loaded. Each check is named in the answer so an operator sees which
// permission or service is missing.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { KeyService } from './keys.ts';

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, { ok: boolean; ms: number; error?: string }>;
}

/**
 * A check that has not answered by then has failed: a storage service that accepts connections and never answers
 * (S3 retries a request for minutes) must give a 503 naming it, not a probe that times out without saying why.
 */
const CHECK_DEADLINE_MS = 5000;

async function timed(fn: () => Promise<void>): Promise<{ ok: boolean; ms: number; error?: string }> {
  const t = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_DEADLINE_MS} ms`)), CHECK_DEADLINE_MS);
  });
  try {
    await Promise.race([fn(), deadline]);
    return { ok: true, ms: Math.round(performance.now() - t) };
  } catch (e) {
    return { ok: false, ms: Math.round(performance.now() - t), error: (e as Error).message.slice(0, 200) };
  } finally {
    clearTimeout(timer);
  }
}

export async function checkReadiness(deps: { db: Db; store: BlobStore; keys: KeyService }): Promise<ReadinessReport> {
  const checks: ReadinessReport['checks'] = {};
  checks.database = await timed(async () => {
    await sql`select 1`.execute(deps.db);
  });
  checks.storage = await timed(async () => {
    const key = `internal/readyz/${randomBytes(8).toString('hex')}`;
    const body = randomBytes(16);
    await deps.store.put(key, body, { sync: 'deferred' });
    const back = await deps.store.get(key);
    await deps.store.delete(key);
    if (!back || Buffer.compare(back, body) !== 0) throw new Error('read back different bytes');
  });
  checks.signing_key = await timed(async () => {
    await deps.keys.metadataKey();
  });
  checks.url_signing_secret = await timed(async () => {
    if ((await deps.keys.urlSigningSecrets()).length === 0) throw new Error('no URL-signing secret');
  });
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}
