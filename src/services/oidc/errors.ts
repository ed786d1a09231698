// Refusals of a trusted-publishing exchange. The codes are Warehouse's, so CI tooling written for PyPI reads them:
//   invalid-payload     the request is not a JWT, or names an issuer this server does not accept (nothing was fetched)
//   not-enabled         trusted publishing is switched off here
//   invalid-token       the signature or the standard claims (alg, kid, aud, exp, nbf, iat, jti) do not verify
//   invalid-publisher   the token is genuine but no trusted publisher accepts its CI claims
//   invalid-reuse-token the token was already exchanged (jti replay)
// Descriptions say what to change and never contain token text.

export type OidcErrorCode = 'invalid-payload' | 'not-enabled' | 'invalid-token' | 'invalid-publisher' | 'invalid-reuse-token';

export class OidcError extends Error {
  readonly code: OidcErrorCode;
  readonly description: string;

  constructor(code: OidcErrorCode, description: string) {
    super(`${code}: ${description}`);
    this.name = 'OidcError';
    this.code = code;
    this.description = description;
  }
}

export function isOidcError(e: unknown): e is OidcError {
  return e instanceof OidcError;
}

/** A value from an unverified or foreign source, quoted and shortened for a message (never token text). */
export function quote(value: unknown, max = 120): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  const shortened = s.length > max ? s.slice(0, max) + '…' : s;
  return JSON.stringify(shortened);
}
