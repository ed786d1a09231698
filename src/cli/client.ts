// The CLI's HTTP client for the Wharf API.
import type { IncomingMessage } from 'node:http';
// node:http through getBuiltinModule, not an ESM import: the ESM facade reads every export of node:http, and some are
// getters that load undici (about 30 ms of the CLI's start-up on every call).
const { request: httpRequest } = process.getBuiltinModule('node:http') as typeof import('node:http');
import type { Readable } from 'node:stream';

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  /** the whole JSON answer, when there was one (a partly refused batch lists every file's result) */
  readonly body?: unknown;
  constructor(code: string, message: string, status: number, body?: unknown) {
    super(message);
    this.code = code;
    this.status = status;
    if (body !== undefined) this.body = body;
  }
}

/** A request body: JSON, bytes in memory, or a stream of `length` bytes. */
export type RequestBody = { json: unknown } | { data: Uint8Array; type: string } | { stream: Readable; length: number; type: string };

export interface ClientOptions {
  readonly url: string;
  readonly token?: string;
}

export class WharfClient {
  readonly #base: URL;
  readonly #token?: string;

  constructor(opts: ClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url.replace(/\/+$/, '') + '/');
    } catch {
      throw new ApiError('BAD_URL', `not a valid server URL: ${opts.url} (set --url or WHARF_URL)`, 0);
    }
    this.#base = u;
    if (opts.token) this.#token = opts.token;
  }

  /** A client for the same server with another token (e.g. one minted through trusted publishing). */
  withToken(token: string): WharfClient {
    return new WharfClient({ url: this.#base.href, token });
  }

  /** Sends one API request (under /api/v1/); `body` is JSON or a stream of `length` bytes. */
  request<T>(method: string, path: string, body?: RequestBody, extraHeaders?: Record<string, string>): Promise<T> {
    return this.send<T>(method, `api/v1/${path}`, body, extraHeaders);
  }

  /** Sends one request to a path relative to the server's base URL (e.g. `_/oidc/audience`). */
  send<T>(method: string, path: string, body?: RequestBody, extraHeaders?: Record<string, string>): Promise<T> {
    const url = new URL(path, this.#base);
    const headers: Record<string, string | number> = { Accept: 'application/json', ...extraHeaders };
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    let payload: Buffer | undefined;
    if (body && 'json' in body) {
      payload = Buffer.from(JSON.stringify(body.json));
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = payload.length;
    } else if (body && 'data' in body) {
      payload = Buffer.from(body.data.buffer, body.data.byteOffset, body.data.byteLength);
      headers['Content-Type'] = body.type;
      headers['Content-Length'] = payload.length;
    } else if (body) {
      headers['Content-Type'] = body.type;
      headers['Content-Length'] = body.length;
    }
    // node:https (and TLS) only when the server is https: loading it is a good part of the CLI's start-up time.
    const send = url.protocol === 'https:' ? (process.getBuiltinModule('node:https') as typeof import('node:https')).request : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { method, headers }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = text ? JSON.parse(text) : {};
          } catch {
            return reject(new ApiError('BAD_RESPONSE', `unexpected response from ${url.origin} (HTTP ${res.statusCode}): ${text.slice(0, 200)}`, res.statusCode ?? 0));
          }
          if ((res.statusCode ?? 500) >= 400) {
            // Trusted publishing answers in Warehouse's shape: {"message", "errors": [{"code", "description"}]}.
            const first = Array.isArray(json?.errors) ? json.errors[0] : undefined;
            if (first && typeof first.code === 'string') {
              return reject(new ApiError(`OIDC_${first.code.toUpperCase().replace(/-/g, '_')}`, `${json.message ?? 'Token request failed'}: ${first.description ?? first.code}`, res.statusCode ?? 0));
            }
            const e = json?.error ?? {};
            return reject(new ApiError(e.code ?? `HTTP_${res.statusCode}`, e.message ?? `HTTP ${res.statusCode}`, res.statusCode ?? 0, json));
          }
          resolve(json as T);
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(new ApiError('CONNECTION_FAILED', `cannot reach Wharf at ${this.#base.origin}: ${e.code ?? e.message} (is the server running? set --url or WHARF_URL)`, 0)),
      );
      if (payload) req.end(payload);
      else if (body && 'stream' in body) {
        body.stream.on('error', (e) => req.destroy(e));
        body.stream.pipe(req);
      } else req.end();
    });
  }
}
