// The signing keys of the OIDC issuers, from their discovery document (`${iss}/.well-known/openid-configuration`) and
// its `jwks_uri`. Per issuer: cached for at most KEYS_MAX_AGE_MS, then refetched (when that fails the old set serves for
// up to twice that age); an unknown `kid` triggers one refetch per KID_REFRESH_COOLDOWN_MS (a key rotation), so random
// kids cannot make Wharf hammer an issuer. A failed fetch never replaces a good set, and an empty set is never stored.
import type { JWK } from 'jose';
import type { SecureContext } from 'node:tls';
import type { Logger } from '../../log.ts';
import { OidcError, quote } from './errors.ts';
import { fetchJson, issuerTlsContext } from './net.ts';

/** Asymmetric JWS algorithms: `none` and HMAC (HS*) are never accepted. */
export const ASYMMETRIC_ALGS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
export const KEYS_MAX_AGE_MS = 24 * 3600_000;
export const KID_REFRESH_COOLDOWN_MS = 60_000;
/** After a failed fetch, the next attempt waits this long (requests meanwhile use the cached set or are refused). */
export const FETCH_FAILURE_BACKOFF_MS = 10_000;
export const FETCH_TIMEOUT_MS = 5_000;
export const FETCH_MAX_BYTES = 1024 * 1024;

export interface IssuerRef {
  url: string;
  allowPrivateNetwork: boolean;
}

export interface KeySet {
  /** public JWKs by kid */
  keys: Map<string, JWK>;
  /** what the issuer advertises in id_token_signing_alg_values_supported, intersected with ASYMMETRIC_ALGS */
  algs: string[];
  fetchedAt: number;
}

interface Entry {
  set?: KeySet;
  /** when an unknown kid last triggered a refetch */
  kidRefreshAt: number | null;
  failedAt: number | null;
  lastError?: string;
  inflight?: Promise<KeySet>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The public part of a JWK fit for verifying signatures, or undefined (no kid, symmetric, encryption-only, malformed). */
export function publicSigningJwk(k: unknown): JWK | undefined {
  if (!isObject(k)) return undefined;
  const { kid, kty, use, alg } = k;
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) return undefined;
  if (use !== undefined && use !== 'sig') return undefined;
  if (alg !== undefined && (typeof alg !== 'string' || !ASYMMETRIC_ALGS.includes(alg))) return undefined;
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  let jwk: JWK;
  if (kty === 'RSA' && str(k.n) && str(k.e)) jwk = { kty, n: k.n as string, e: k.e as string };
  else if (kty === 'EC' && str(k.crv) && str(k.x) && str(k.y)) jwk = { kty, crv: k.crv as string, x: k.x as string, y: k.y as string };
  else if (kty === 'OKP' && (k.crv === 'Ed25519' || k.crv === 'Ed448') && str(k.x)) jwk = { kty, crv: k.crv, x: k.x as string };
  else return undefined;
  jwk.kid = kid;
  if (typeof alg === 'string') jwk.alg = alg;
  return jwk;
}

export class IssuerKeyCache {
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #extraCa: readonly string[];
  #secureContext?: SecureContext;
  readonly #entries = new Map<string, Entry>();

  constructor(o: { log: Logger; now: () => number; extraCa?: readonly string[] }) {
    this.#log = o.log;
    this.#now = o.now;
    this.#extraCa = o.extraCa ?? [];
  }

  /** Drops what is cached for an issuer (it was removed). */
  forget(url: string): void {
    this.#entries.delete(url);
  }

  /** The issuer's key `kid` and the algorithms it signs with; throws OidcError('invalid-token'). */
  async key(issuer: IssuerRef, kid: string): Promise<{ jwk: JWK; algs: string[] }> {
    let e = this.#entries.get(issuer.url);
    if (!e) {
      e = { kidRefreshAt: null, failedAt: null };
      this.#entries.set(issuer.url, e);
    }
    const now = this.#now();
    let fetchedNow = false;
    if (!e.set || now - e.set.fetchedAt >= KEYS_MAX_AGE_MS) {
      const backingOff = !e.inflight && e.failedAt !== null && now - e.failedAt < FETCH_FAILURE_BACKOFF_MS;
      if (!backingOff) {
        try {
          await this.#refresh(issuer, e);
          fetchedNow = true;
        } catch {
          // reported below, or served from the previous set
        }
      }
      if (!fetchedNow) {
        if (!e.set || now - e.set.fetchedAt >= 2 * KEYS_MAX_AGE_MS) {
          throw new OidcError(
            'invalid-token',
            `Wharf could not fetch the signing keys of ${issuer.url}: ${e.lastError ?? 'the fetch failed'}. Retry later; if this persists, the Wharf admin should check the issuer's reachability and configuration`,
          );
        }
        this.#log.warn({ issuer: issuer.url, fetchedAt: new Date(e.set.fetchedAt).toISOString() }, 'using an outdated OIDC key set: refetching it failed');
      }
    }
    let jwk = e.set!.keys.get(kid);
    if (!jwk && !fetchedNow) {
      if (e.inflight) {
        await e.inflight.catch(() => undefined);
      } else if (e.kidRefreshAt === null || now - e.kidRefreshAt >= KID_REFRESH_COOLDOWN_MS) {
        // An unknown kid: perhaps the issuer rotated its keys.
        e.kidRefreshAt = now;
        await this.#refresh(issuer, e).catch(() => undefined);
      }
      jwk = e.set!.keys.get(kid);
    }
    if (!jwk) {
      throw new OidcError(
        'invalid-token',
        `The issuer ${issuer.url} publishes no signing key with kid ${quote(kid)}: the token was not signed by this issuer, or its keys were just rotated (then retry in a minute)`,
      );
    }
    return { jwk, algs: e.set!.algs };
  }

  #refresh(issuer: IssuerRef, e: Entry): Promise<KeySet> {
    if (e.inflight) return e.inflight;
    const p = this.#load(issuer).then(
      (set) => {
        e.set = set;
        e.failedAt = null;
        e.lastError = undefined;
        return set;
      },
      (err: unknown) => {
        e.failedAt = this.#now();
        e.lastError = err instanceof Error ? err.message : String(err);
        this.#log.warn({ issuer: issuer.url, err: e.lastError }, 'fetching the OIDC key set failed');
        throw err;
      },
    );
    e.inflight = p;
    const clear = () => {
      if (e.inflight === p) e.inflight = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  async #load(issuer: IssuerRef): Promise<KeySet> {
    this.#secureContext ??= issuerTlsContext(this.#extraCa);
    const opts = { allowPrivateNetwork: issuer.allowPrivateNetwork, secureContext: this.#secureContext, timeoutMs: FETCH_TIMEOUT_MS, maxBytes: FETCH_MAX_BYTES };
    const doc = await fetchJson(`${issuer.url}/.well-known/openid-configuration`, opts);
    if (!isObject(doc)) throw new Error('the discovery document is not a JSON object');
    if (doc.issuer !== issuer.url) throw new Error(`the discovery document names the issuer ${quote(doc.issuer)}, not ${issuer.url}`);
    if (typeof doc.jwks_uri !== 'string') throw new Error('the discovery document has no jwks_uri');
    let jwksUrl: URL;
    try {
      jwksUrl = new URL(doc.jwks_uri);
    } catch {
      throw new Error(`jwks_uri ${quote(doc.jwks_uri)} is not a URL`);
    }
    if (jwksUrl.protocol !== 'https:' || jwksUrl.origin !== new URL(issuer.url).origin || jwksUrl.username || jwksUrl.password) {
      throw new Error(`jwks_uri ${quote(doc.jwks_uri)} is not on the issuer's origin ${new URL(issuer.url).origin}`);
    }
    const advertised = doc.id_token_signing_alg_values_supported;
    if (!Array.isArray(advertised)) throw new Error('the discovery document has no id_token_signing_alg_values_supported');
    const algs = ASYMMETRIC_ALGS.filter((a) => advertised.includes(a));
    if (algs.length === 0) throw new Error(`the issuer advertises no asymmetric signing algorithm (${quote(advertised)})`);
    const jwks = await fetchJson(jwksUrl.href, opts);
    if (!isObject(jwks) || !Array.isArray(jwks.keys)) throw new Error('the key set is not a JWKS ({"keys": [...]})');
    const keys = new Map<string, JWK>();
    for (const k of jwks.keys) {
      const jwk = publicSigningJwk(k);
      if (jwk && !keys.has(jwk.kid!)) keys.set(jwk.kid!, jwk);
    }
    if (keys.size === 0) throw new Error('the key set has no usable signing key');
    this.#log.info({ issuer: issuer.url, kids: [...keys.keys()], algs }, 'fetched the OIDC key set');
    return { keys, algs, fetchedAt: this.#now() };
  }
}
