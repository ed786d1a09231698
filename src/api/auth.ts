// Authentication of a request, shared by the API and the repository tree: credentials over a safe transport, a
// strict limit on failed attempts per client address, then the token service.
import type { IncomingMessage } from 'node:http';
import type { App } from '../app.ts';
import type { Config } from '../config.ts';
import { WharfError } from '../errors.ts';
import { JWT_BASIC_USERNAME, looksLikeJwt, principalFromClaims, type Principal } from '../services/tokens.ts';
import { presentedCredentials, type Credentials } from './http.ts';

export function isLoopback(ip: string | undefined): boolean {
  if (!ip) return false;
  return ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.');
}

/** The client address: the socket's, or with --trust-proxy the first X-Forwarded-For entry. */
export function clientIp(req: IncomingMessage, config: Config): string | undefined {
  if (config.trustProxy) {
    const xff = req.headers['x-forwarded-for'];
    const first = (Array.isArray(xff) ? xff[0] : xff)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket?.remoteAddress;
}

/** Whether the client reached Wharf over TLS (directly, or through a trusted proxy that says so). */
export function isSecure(req: IncomingMessage, config: Config): boolean {
  if (config.tls) return true;
  if (!config.trustProxy) return false;
  const proto = req.headers['x-forwarded-proto'];
  return (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase() === 'https';
}

/** Failed authentications per client address in a sliding one-minute window. */
export class AuthFailureLimiter {
  readonly #limit: number;
  readonly #failures = new Map<string, number[]>();

  constructor(perMinute: number) {
    this.#limit = perMinute;
  }

  /** Seconds to wait when `ip` is over the limit, else 0. */
  retryAfter(ip: string, now = Date.now()): number {
    const failures = this.#failures.get(ip);
    // The common case, on every authenticated request: no failures from this address, no allocation.
    if (failures === undefined || failures.length < this.#limit) return 0;
    const recent = failures.filter((t) => t > now - 60_000);
    if (recent.length < this.#limit) return 0;
    return Math.max(1, Math.ceil((recent[0]! + 60_000 - now) / 1000));
  }

  fail(ip: string, now = Date.now()): void {
    const recent = (this.#failures.get(ip) ?? []).filter((t) => t > now - 60_000);
    recent.push(now);
    if (this.#failures.size > 100_000) this.#failures.clear();
    this.#failures.set(ip, recent.slice(-this.#limit));
  }
}

/** Token buckets: `perSecond` requests per second per key, with bursts of ten seconds' worth. 0 disables. */
export class RateLimiter {
  readonly #rate: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perSecond: number) {
    this.#rate = perSecond;
  }

  /** 0 when the request may go ahead (and is counted), else the seconds to wait. */
  take(key: string, now = Date.now()): number {
    if (this.#rate <= 0) return 0;
    const burst = this.#rate * 10;
    const b = this.#buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    if (this.#buckets.size > 100_000) this.#buckets.clear();
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#rate));
  }
}

export interface Authenticated {
  readonly principal: Principal | undefined;
  readonly credentials: Credentials | undefined;
}

/** The principal behind the request's credentials (undefined when none or invalid). */
export async function authenticateRequest(app: App, req: IncomingMessage): Promise<Authenticated> {
  const credentials = presentedCredentials(req);
  if (!credentials) return { principal: undefined, credentials };
  const ip = clientIp(req, app.config) ?? 'unknown';
  if (credentials.scheme === 'basic' && !isSecure(req, app.config) && !isLoopback(req.socket?.remoteAddress)) {
    throw new WharfError('INSECURE_TRANSPORT');
  }
  const wait = app.authFailures.retryAfter(ip);
  if (wait > 0) throw new WharfError('RATE_LIMITED', [wait], { retryAfter: wait });
  const principal = looksLikeJwt(credentials.secret) ? await verifyJwt(app, credentials) : await app.tokens.verify(credentials.secret, credentials.username);
  if (!principal) {
    app.authFailures.fail(ip);
    app.metrics.authFailures.inc();
  } else {
    const tokenWait = app.rateLimits.perToken.take(principal.kind === 'jwt' ? `jwt:${principal.subject}` : `token:${principal.tokenId}`);
    if (tokenWait > 0) throw new WharfError('RATE_LIMITED_REQUESTS', [tokenWait], { retryAfter: tokenWait });
  }
  return { principal, credentials };
}

/**
 * A Wharf JWT, verified locally from the cached key set (no database lookup). Over HTTP Basic it goes with the user
 * name __token__ (or as the user name itself with an empty password).
 */
async function verifyJwt(app: App, credentials: Credentials): Promise<Principal | undefined> {
  if (credentials.username !== undefined && credentials.username !== JWT_BASIC_USERNAME) return undefined;
  const claims = await app.jwt.verify(credentials.secret, app.jwt.issuer);
  return claims ? principalFromClaims(claims) : undefined;
}
