// Short-lived signed URLs for private package files: an HMAC-SHA256 over method, path and expiry with a secret used
// for nothing else. Any node holding the secret verifies a URL without a database lookup. Several secrets can be
// accepted at once (the newest signs), so the secret can be rotated without breaking links in flight.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

export class UrlSigner {
  /** prepared once: preparing a raw key costs more than the HMAC itself */
  readonly #secrets: readonly KeyObject[];
  readonly ttlSeconds: number;

  constructor(secrets: readonly Buffer[], ttlSeconds: number) {
    if (secrets.length === 0) throw new Error('UrlSigner needs at least one secret');
    this.#secrets = secrets.map((s) => createSecretKey(s));
    this.ttlSeconds = ttlSeconds;
  }

  #mac(secret: KeyObject, method: string, path: string, expires: number): Buffer {
    return createHmac('sha256', secret).update(`${method}\n${path}\n${expires}`).digest();
  }

  /**
   * The URL last signed for a method and path, with its expiry. A signature depends only on method, path and expiry,
   * and the expiry moves once a second, so the requests of the same second for the same file share one HMAC.
   */
  readonly #recent = new Map<string, { expires: number; url: string }>();
  static readonly MAX_RECENT = 10_000;

  /** `path` is the URL path (already percent-encoded as it will be requested). */
  sign(method: string, path: string, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + this.ttlSeconds;
    const k = `${method}\n${path}`;
    const hit = this.#recent.get(k);
    if (hit !== undefined && hit.expires === expires) return hit.url;
    const sig = this.#mac(this.#secrets[0]!, method, path, expires).toString('base64url');
    const url = `${path}?expires=${expires}&signature=${sig}`;
    if (this.#recent.size >= UrlSigner.MAX_RECENT) this.#recent.clear();
    this.#recent.set(k, { expires, url });
    return url;
  }

  verify(method: string, path: string, expires: string | null, signature: string | null, now = Date.now()): boolean {
    if (!expires || !signature || !/^\d{1,12}$/.test(expires)) return false;
    const exp = Number(expires);
    if (exp < Math.floor(now / 1000)) return false;
    let given: Buffer;
    try {
      given = Buffer.from(signature, 'base64url');
    } catch {
      return false;
    }
    let ok = false;
    for (const s of this.#secrets) {
      const want = this.#mac(s, method, path, exp);
      if (given.length === want.length && timingSafeEqual(given, want)) ok = true;
    }
    return ok;
  }
}
