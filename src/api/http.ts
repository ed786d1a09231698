// HTTP plumbing shared by the API and the repository tree: JSON responses, error mapping, authentication.
// Only this layer turns WharfError codes into HTTP statuses.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { WharfError, isWharfError } from '../errors.ts';
import type { Logger } from '../log.ts';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    // Never cached, and the answer depends on the credentials.
    'Cache-Control': 'private, no-store',
    Vary: 'Authorization',
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown, log: Logger, headers: Record<string, string> = {}): void {
  const e = isWharfError(err) ? err : new WharfError('INTERNAL');
  if (!isWharfError(err)) log.error({ err }, 'unhandled error');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The error code travels to the access log line as the failure type.
  const extra: Record<string, string> = { ...headers, 'X-Wharf-Error': e.code };
  if (e.status === 401) extra['WWW-Authenticate'] = 'Basic realm="wharf", charset="UTF-8"';
  if (e.status === 429 && typeof e.details?.retryAfter === 'number') extra['Retry-After'] = String(e.details.retryAfter);
  sendJson(res, e.status, { error: { code: e.code, message: e.message } }, extra);
}

export interface Credentials {
  readonly secret: string;
  /** the Basic user name, when a password carried the secret */
  readonly username?: string;
  readonly scheme: 'bearer' | 'basic';
}

/**
 * Credentials from `Authorization: Bearer T` or HTTP Basic: user name + token as password, or the token as user name
 * with an empty password (the `https://TOKEN:@host/` form).
 */
export function presentedCredentials(req: IncomingMessage): Credentials | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const [scheme, value] = h.split(/\s+/, 2);
  if (!scheme || !value) return undefined;
  if (/^bearer$/i.test(scheme)) return { secret: value, scheme: 'bearer' };
  if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) return undefined;
    const user = decoded.slice(0, i);
    const pass = decoded.slice(i + 1);
    if (pass) return { secret: pass, username: user, scheme: 'basic' };
    return user ? { secret: user, scheme: 'basic' } : undefined;
  }
  return undefined;
}

/**
 * The request body as an async iterable that, unlike `for await (... of req)`, leaves the request open when the
 * consumer stops early (a limit exceeded, a parse error), so the error response can still be sent.
 */
/** Whether the request carries `Prefer: respond-async` (RFC 7240; preferences are case-insensitive tokens). */
export function prefersAsync(req: IncomingMessage): boolean {
  const prefer = req.headers.prefer;
  if (!prefer) return false;
  return (Array.isArray(prefer) ? prefer.join(',') : prefer).split(',').some((p) => p.split(';', 1)[0]!.trim().toLowerCase() === 'respond-async');
}

export function requestBody(req: IncomingMessage): AsyncIterable<Buffer> {
  return req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
}

export async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of requestBody(req)) {
    size += c.length;
    if (size > limit) throw new WharfError('PAYLOAD_TOO_LARGE', [limit]);
    chunks.push(c);
  }
  if (size === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new WharfError('BAD_REQUEST', ['the body is not valid JSON']);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new WharfError('BAD_REQUEST', ['the body must be a JSON object']);
  return v as Record<string, unknown>;
}

/** Splits and percent-decodes a URL path; rejects dot-segments, empty segments and encoded slashes or NULs. */
export function pathSegments(pathname: string): string[] | undefined {
  const raw = pathname.split('/').slice(1);
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  const out: string[] = [];
  for (const s of raw) {
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      return undefined;
    }
    if (d === '' || d === '.' || d === '..' || /[\/\\\0]/.test(d)) return undefined;
    out.push(d);
  }
  return out;
}
