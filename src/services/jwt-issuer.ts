// Wharf's own JWTs, signed with ES256 keys it generates. Keys go through published (in the JWKS, not signing) →
// active (signing; exactly one) → retired (in the JWKS so earlier tokens keep verifying) → deleted by trim, so a key
// is in every verifier's key set before the first token signed with it, and stays there until the last one expires.
// Each node verifies from a cached copy of the key set, reloaded periodically and on an unknown kid: no database
// lookup per request.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify, type JWK, type JWTPayload } from 'jose';
import type { Db } from '../db/database.ts';
import type { JwtKeyTable } from '../db/schema.ts';
import type { Selectable } from 'kysely';
import { WharfError } from '../errors.ts';
import type { KeyService } from './keys.ts';
import type { Logger } from '../log.ts';
import type { Locks } from './locks.ts';

export interface JwtKeyInfo {
  kid: string;
  alg: 'ES256';
  state: 'published' | 'active' | 'retired';
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
}

export interface WharfClaims extends JWTPayload {
  scopes: string[];
  [k: string]: unknown;
}

type KeyRow = Selectable<JwtKeyTable>;
interface LoadedKey {
  info: JwtKeyInfo;
  jwk: JWK;
  publicKey: KeyObject;
}

const ALG = 'ES256';
/**
 * Clock skew tolerated when checking exp, nbf and iat. Only Wharf's own nodes sign and check these tokens, and they
 * keep time with NTP, so a small leeway suffices (and an expired publish token stops working within seconds).
 */
const LEEWAY_SECONDS = 5;
/** an unknown kid reloads the key set at most this often, so garbage tokens cannot hammer the database */
const UNKNOWN_KID_RELOAD_MS = 5000;
const VERIFIED_CACHE_MS = 30_000;
const VERIFIED_CACHE_MAX = 10_000;

const iso = (t: number | null) => (t === null ? null : new Date(Number(t)).toISOString());
const info = (r: KeyRow): JwtKeyInfo => ({
  kid: r.kid,
  alg: ALG,
  state: r.state,
  created_at: iso(r.created_at)!,
  activated_at: iso(r.activated_at),
  retired_at: iso(r.retired_at),
});

export class JwtIssuer {
  /** longest lifetime of any token this service signs; trim keeps retired keys at least this long after retirement */
  static readonly MAX_TOKEN_SECONDS = 3600;
  readonly #db: Db;
  readonly #keys: KeyService;
  readonly #log: Logger;
  readonly #refreshMs: number;
  #issuer?: string;
  #set = new Map<string, LoadedKey>();
  #active?: { kid: string; privateKey: KeyObject };
  #reloading?: Promise<void>;
  #lastReload = 0;
  #timer?: NodeJS.Timeout;
  readonly #verified = new Map<string, { claims: WharfClaims; until: number }>();

  readonly #locks: Locks | undefined;
  /** Called after this node changed the key set, so other nodes reload at once (the cluster bus) instead of within the refresh period. */
  onChange: (() => void) | undefined;

  constructor(opts: { db: Db; keys: KeyService; log: Logger; refreshSeconds?: number; locks?: Locks }) {
    this.#locks = opts.locks;
    this.#db = opts.db;
    this.#keys = opts.keys;
    this.#log = opts.log;
    this.#refreshMs = (opts.refreshSeconds ?? 30) * 1000;
  }

  /** The issuer URL (Wharf's public URL, no trailing slash). Set once the server knows it, before any sign/verify. */
  setIssuer(url: string): void {
    this.#issuer = url.replace(/\/+$/, '');
    this.#verified.clear();
  }

  get issuer(): string {
    if (!this.#issuer) throw new Error('JwtIssuer: setIssuer() has not been called');
    return this.#issuer;
  }

  /** On first start: creates a key and makes it active (nothing can depend on it yet). Loads the key set. */
  async init(): Promise<void> {
    const created = await this.#db.transaction().execute(async (trx) => {
      // In the transaction, so nodes starting together cannot both create an active key.
      if (await trx.selectFrom('jwt_keys').select('id').where('state', '=', 'active').executeTakeFirst()) return undefined;
      const row = await this.#generate(Date.now());
      await trx.insertInto('jwt_keys').values({ ...row, state: 'active', activated_at: row.created_at }).execute();
      return row.kid;
    });
    if (created) this.#log.info({ kid: created }, 'created the first JWT signing key');
    await this.reload();
    this.#timer ??= setInterval(() => {
      this.reload().catch((err) => this.#log.warn({ err }, 'reloading the JWT key set failed'));
    }, this.#refreshMs);
    this.#timer.unref();
  }

  /** Signs with the active key. */
  async sign(claims: { sub: string; aud: string; scopes: string[]; ttlSeconds: number; extra?: Record<string, unknown> }): Promise<{ token: string; expires: number; jti: string }> {
    const { ttlSeconds } = claims;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > JwtIssuer.MAX_TOKEN_SECONDS) {
      throw new RangeError(`JWT lifetime must be 1..${JwtIssuer.MAX_TOKEN_SECONDS} seconds, got ${ttlSeconds}`);
    }
    const issuer = this.issuer;
    if (!this.#active) await this.reload();
    const active = this.#active;
    if (!active) throw new WharfError('JWT_KEY_NO_ACTIVE');
    const now = Math.floor(Date.now() / 1000);
    const jti = randomBytes(16).toString('base64url');
    const expires = now + ttlSeconds;
    // Registered claims are set after `extra`, so extra claims cannot override them.
    const token = await new SignJWT({ ...claims.extra, scopes: [...claims.scopes] })
      .setProtectedHeader({ alg: ALG, kid: active.kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setSubject(claims.sub)
      .setAudience(claims.aud)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(expires)
      .setJti(jti)
      .sign(active.privateKey);
    return { token, expires, jti };
  }

  /** The claims of a valid token for `audience`, or undefined for anything else (never throws for bad input). */
  async verify(token: string, audience: string): Promise<WharfClaims | undefined> {
    const issuer = this.issuer;
    if (typeof token !== 'string' || token.length > 8192 || typeof audience !== 'string' || !audience) return undefined;
    const cacheKey = `${audience}\n${token}`;
    const now = Date.now();
    const hit = this.#verified.get(cacheKey);
    if (hit && hit.until > now) return hit.claims;
    let kid: unknown;
    try {
      const header = decodeProtectedHeader(token);
      if (header.alg !== ALG) return undefined;
      kid = header.kid;
    } catch {
      return undefined;
    }
    if (typeof kid !== 'string' || !kid) return undefined;
    let key = this.#set.get(kid);
    if (!key && now - this.#lastReload >= UNKNOWN_KID_RELOAD_MS) {
      // Perhaps a key created or activated on another node since our last refresh.
      try {
        await this.reload();
      } catch (err) {
        this.#log.warn({ err }, 'reloading the JWT key set failed');
      }
      key = this.#set.get(kid);
    }
    if (!key) return undefined;
    let claims: WharfClaims;
    try {
      const r = await jwtVerify<WharfClaims>(token, key.publicKey, {
        algorithms: [ALG],
        typ: 'JWT',
        issuer,
        audience,
        clockTolerance: LEEWAY_SECONDS,
        // Also refuses an iat in the future or older than any token we sign.
        maxTokenAge: JwtIssuer.MAX_TOKEN_SECONDS,
        requiredClaims: ['iss', 'aud', 'sub', 'exp', 'iat', 'nbf', 'jti'],
      });
      claims = r.payload;
    } catch {
      return undefined;
    }
    // jose accepts an aud array containing the audience; a token for several audiences is not ours.
    if (typeof claims.aud !== 'string' || typeof claims.sub !== 'string' || !claims.sub) return undefined;
    if (typeof claims.jti !== 'string' || !claims.jti) return undefined;
    if (!Array.isArray(claims.scopes) || !claims.scopes.every((s) => typeof s === 'string')) return undefined;
    if (this.#verified.size >= VERIFIED_CACHE_MAX) this.#verified.clear();
    this.#verified.set(cacheKey, { claims, until: Math.min(claims.exp! * 1000, now + VERIFIED_CACHE_MS) });
    return claims;
  }

  /** Public JWKS from the cached key set: an anonymous request never reaches the database. */
  async jwks(): Promise<{ keys: JWK[] }> {
    return { keys: [...this.#set.values()].map((k) => ({ ...k.jwk })) };
  }

  discovery(): Record<string, unknown> {
    const issuer = this.issuer;
    return {
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      id_token_signing_alg_values_supported: [ALG],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'scopes'],
    };
  }

  async list(): Promise<JwtKeyInfo[]> {
    return (await this.#db.selectFrom('jwt_keys').selectAll().orderBy('id').execute()).map(info);
  }

  /** Key changes run one at a time across nodes, and tell the other nodes when done. */
  async #change<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.#locks ? await this.#locks.run('jwt-keys', 'keys', fn) : await fn();
    this.onChange?.();
    return r;
  }

  /** Step 1: a new key, published in the JWKS but not yet signing. */
  create(): Promise<JwtKeyInfo> {
    return this.#change(() => this.#create());
  }

  async #create(): Promise<JwtKeyInfo> {
    const row = await this.#generate(Date.now());
    await this.#db.insertInto('jwt_keys').values({ ...row, state: 'published', activated_at: null }).execute();
    this.#log.info({ kid: row.kid }, 'published a new JWT signing key');
    await this.reload();
    return info({ id: 0, ...row, state: 'published', activated_at: null });
  }

  /**
   * Step 2: the newest published key starts signing and the active one retires (still verifying). Run it once every
   * node has refreshed its key set after `create`; a node that has not yet still reloads on the new kid.
   */
  rotate(): Promise<{ active: JwtKeyInfo; retired: JwtKeyInfo | null }> {
    return this.#change(() => this.#rotate());
  }

  async #rotate(): Promise<{ active: JwtKeyInfo; retired: JwtKeyInfo | null }> {
    const now = Date.now();
    // One transaction (BEGIN IMMEDIATE on SQLite): at most one active key, even with two admins rotating at once.
    const r = await this.#db.transaction().execute(async (trx) => {
      const next = await trx.selectFrom('jwt_keys').selectAll().where('state', '=', 'published').orderBy('id', 'desc').executeTakeFirst();
      if (!next) throw new WharfError('JWT_KEY_NONE_PUBLISHED', [this.#refreshMs / 1000]);
      const old = await trx.selectFrom('jwt_keys').selectAll().where('state', '=', 'active').execute();
      await trx.updateTable('jwt_keys').set({ state: 'retired', retired_at: now }).where('state', '=', 'active').execute();
      await trx.updateTable('jwt_keys').set({ state: 'active', activated_at: now }).where('id', '=', next.id).execute();
      return { next, old };
    });
    this.#log.info({ kid: r.next.kid, retired: r.old.map((o) => o.kid) }, 'switched JWT signing to a new key');
    await this.reload();
    const retired = r.old.at(-1);
    return {
      active: info({ ...r.next, state: 'active', activated_at: now }),
      retired: retired ? info({ ...retired, state: 'retired', retired_at: now }) : null,
    };
  }

  /**
   * Step 3: deletes keys retired long enough ago that no token they signed is still valid (all retired keys with
   * force). The grace adds the clock leeway and a refresh period, during which a node that has not yet seen the
   * rotation may still sign with the retired key.
   */
  trim(opts: { force?: boolean } = {}): Promise<JwtKeyInfo[]> {
    return this.#change(() => this.#trim(opts));
  }

  async #trim(opts: { force?: boolean }): Promise<JwtKeyInfo[]> {
    const cutoff = Date.now() - (JwtIssuer.MAX_TOKEN_SECONDS + LEEWAY_SECONDS) * 1000 - this.#refreshMs;
    const removed = await this.#db.transaction().execute(async (trx) => {
      let q = trx.selectFrom('jwt_keys').selectAll().where('state', '=', 'retired');
      if (!opts.force) q = q.where('retired_at', '<', cutoff);
      const rows = await q.execute();
      if (rows.length > 0) await trx.deleteFrom('jwt_keys').where('id', 'in', rows.map((r) => r.id)).execute();
      return rows;
    });
    if (removed.length > 0) this.#log.info({ kids: removed.map((r) => r.kid), force: !!opts.force }, 'trimmed retired JWT signing keys');
    await this.reload();
    return removed.map(info);
  }

  /** Reloads the key set from the database (concurrent calls share one load). */
  reload(): Promise<void> {
    this.#reloading ??= this.#load().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #load(): Promise<void> {
    const rows = await this.#db.selectFrom('jwt_keys').selectAll().where('alg', '=', ALG).orderBy('id').execute();
    const set = new Map<string, LoadedKey>();
    let active = this.#active;
    for (const r of rows) {
      const p = JSON.parse(r.public_jwk) as JWK;
      // Public members only, whatever the column holds.
      const jwk: JWK = { kty: p.kty, crv: p.crv, x: p.x, y: p.y, kid: r.kid, alg: ALG, use: 'sig' };
      const publicKey = this.#set.get(r.kid)?.publicKey ?? createPublicKey({ key: { kty: p.kty!, crv: p.crv!, x: p.x!, y: p.y! }, format: 'jwk' });
      set.set(r.kid, { info: info(r), jwk, publicKey });
      if (r.state === 'active' && active?.kid !== r.kid) {
        const der = await this.#keys.unseal(r.private_encrypted, 'a JWT signing key');
        active = { kid: r.kid, privateKey: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) };
      }
    }
    if (!rows.some((r) => r.state === 'active')) active = undefined;
    // Forget verified tokens whose key is gone (trimmed): they must stop verifying at once.
    const gone = [...this.#set.keys()].some((kid) => !set.has(kid));
    this.#set = set;
    this.#active = active;
    this.#lastReload = Date.now();
    if (gone) this.#verified.clear();
  }

  async #generate(now: number): Promise<Omit<KeyRow, 'id' | 'state' | 'activated_at'>> {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
    const kid = await calculateJwkThumbprint({ kty: kty!, crv: crv!, x: x!, y: y! }, 'sha256');
    return {
      kid,
      alg: ALG,
      public_jwk: JSON.stringify({ kty, crv, x, y }),
      private_encrypted: await this.#keys.seal(privateKey.export({ format: 'der', type: 'pkcs8' })),
      created_at: now,
      retired_at: null,
    };
  }
}
