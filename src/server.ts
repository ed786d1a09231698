// The HTTP(S) server: routes /healthz, /api/v1 and the repository tree, and logs one line per request.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import type { App } from './app.ts';
import { WharfError } from './errors.ts';
import { pathSegments, sendError, sendJson } from './api/http.ts';
import { handleApi } from './api/routes.ts';
import { handleTree } from './serve/tree.ts';
import { handleOidc } from './api/oidc-routes.ts';
import { checkReadiness } from './services/readiness.ts';
import { routeClass } from './metrics.ts';
import { clientIp } from './api/auth.ts';
import type { AccessLine } from './log.ts';

/** What a refused request may still send after its answer, read and discarded (see lingerOnRefusedBody). */
const LINGER_BYTES = 1024 * 1024;
const LINGER_MS = 5000;

/**
 * A request refused while its body is still arriving (too large, bad archive, no access): the client is usually
 * still writing. Closing at once makes its next write fail with a reset before it reads the answer (EPIPE in the
 * client instead of a 413 with its message), so, like nginx's lingering close, the rest is read and discarded, up to
 * 1 MiB and 5 s, and the connection stays usable. A longer remainder (by its Content-Length) gets `Connection: close`
 * with the answer; one that turns out longer, or a client that stalls, has its connection closed.
 */
function lingerOnRefusedBody(req: IncomingMessage, headers: Record<string, string>): void {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > LINGER_BYTES) {
    headers.Connection = 'close';
    req.resume();
    return;
  }
  let budget = LINGER_BYTES;
  const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
  timer.unref();
  req.on('data', (c: Buffer) => {
    budget -= c.length;
    if (budget < 0) req.socket.destroy();
  });
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}

/** What the server's requests need to know about its own state. */
interface ServerState {
  /** stopping (SIGTERM): /readyz answers 503, every answer closes its connection */
  draining: boolean;
}

async function route(app: App, publicUrl: string, req: IncomingMessage, res: ServerResponse, state: ServerState): Promise<void> {
  // Health and metrics stay reachable for load balancers and scrapers; everything else counts against the address.
  const probe = req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics';
  const wait = probe ? 0 : app.rateLimits.perIp.take(clientIp(req, app.config) ?? 'unknown');
  if (wait > 0) throw new WharfError('RATE_LIMITED_REQUESTS', [wait], { retryAfter: wait });
  const target = req.url ?? '/';
  if (!target.startsWith('/')) throw new WharfError('BAD_REQUEST', ['invalid request target']);
  // Segments come from the raw path: URL parsing would resolve "..", "%2e%2e" before they could be refused.
  const rawPath = target.split('?', 1)[0]!;
  const seg = pathSegments(rawPath);
  if (!seg) throw new WharfError('BAD_REQUEST', ['invalid path: dot-segments, empty segments and encoded slashes are not allowed']);
  if (seg.length === 1 && seg[0] === 'healthz') return sendJson(res, 200, { status: 'ok' });
  if (seg.length === 1 && seg[0] === 'metrics') {
    const text = app.metrics.render();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(text);
    return;
  }
  if (seg.length === 1 && seg[0] === 'readyz') {
    // Stopping: a load balancer takes the node out while it still finishes (and takes) requests.
    if (state.draining) return sendJson(res, 503, { status: 'stopping', checks: {} });
    const report = await checkReadiness(app);
    return sendJson(res, report.ready ? 200 : 503, { status: report.ready ? 'ready' : 'not ready', checks: report.checks });
  }
  if (seg[0] === 'api') {
    if (seg[1] !== 'v1') throw new WharfError('NOT_FOUND', ['API version']);
    return handleApi(app, req, res, seg.slice(2), new URL(target, publicUrl), publicUrl);
  }
  if (seg[0] === '.well-known' || seg[0] === '_') return handleOidc(app, req, res, seg);
  if (seg.length === 0) return sendJson(res, 200, { name: 'wharf', api: `${publicUrl}/api/v1/openapi.json` });
  return handleTree(app, req, res, seg, publicUrl);
}

/** The path of a request target, without the query string (never logged: it can carry a URL signature). */
function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

export interface RunningServer {
  readonly server: Server;
  /** where the server listens */
  readonly url: string;
  /** the externally visible base URL: --url, or the listening address */
  readonly publicUrl: string;
  /**
   * Stops the server gracefully: /readyz answers 503 at once; new requests are still taken for `delayMs` (so a load
   * balancer polling /readyz stops sending them first), then no new connection is accepted, idle connections are
   * closed, and the requests in flight (uploads, pushes waiting for their publish, downloads) may finish for up to
   * `timeoutMs`, each answer closing its connection. Those still running then are cut off. `force` (a second
   * SIGTERM) skips what is left of both waits. Resolves with how many requests were cut off.
   */
  drain(opts: { delayMs: number; timeoutMs: number; force?: AbortSignal }): Promise<{ cutOff: number }>;
  /** Closes the listener and every connection at once. */
  close(): Promise<void>;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function startServer(app: App): Promise<RunningServer> {
  const { config, log } = app;
  let publicUrl = config.publicUrl ?? '';
  // The level is fixed for the server's life: the per-request log objects are only built when they are written.
  const traceOn = log.trace !== undefined && (log.isLevelEnabled?.('trace') ?? true);
  const accessLog = log.isLevelEnabled?.('info') ?? true;
  const state: ServerState = { draining: false };
  /** the answers under way (stopping marks them to close their connections) */
  const inFlight = new Set<ServerResponse>();
  /**
   * Connections with an answer not yet handed to the system whole. (Node's own idle test, closeIdleConnections,
   * counts a connection idle once end() is called, while a large answer may still wait in memory to be sent.)
   */
  const busy = new WeakMap<Socket, number>(); // (weak: a refused request whose body never ends leaves its entry)
  /** the connections HTTP runs on (the TLS sockets with HTTPS) */
  const sockets = new Set<Socket>();
  /** every TCP connection, also one still in its TLS handshake (which closeAllConnections does not know) */
  const raw = new Set<Socket>();
  /** the TCP connections whose TLS handshake is done (known from the TLS socket's _parent, which Node sets) */
  const secured = new WeakSet<Socket>();
  let parentUnknown = false;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    inFlight.add(res);
    // Busy until the answer is handed to the system whole and the request is read to its end (a refused upload's
    // rest is read and discarded after the answer: closing before would reset the connection under the answer).
    const socket = req.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    let answered = false;
    let read = req.complete;
    let counted = true;
    const done = () => {
      if (!counted || !answered || !read) return;
      counted = false;
      const n = busy.get(socket)! - 1;
      if (n > 0) busy.set(socket, n);
      else busy.delete(socket);
    };
    const wasAnswered = () => {
      answered = true;
      done();
    };
    const wasRead = () => {
      read = true;
      done();
    };
    res.once('finish', wasAnswered);
    req.once('end', wasRead);
    req.once('close', wasRead);
    // (Also when the answer was cut short: nothing more will be sent.)
    res.once('close', () => {
      wasAnswered();
      inFlight.delete(res);
    });
    // While stopping, no connection is kept for another request.
    if (state.draining) res.setHeader('Connection', 'close');
    const ip = req.socket?.remoteAddress;
    // Trace: the request line and which headers came, never their values (Authorization, cookies).
    if (traceOn) log.trace!({ method: req.method, path: pathOf(req.url), headers: Object.keys(req.headers), ip }, 'request received');
    // 'close', not 'finish': a response the client cut short (a download abandoned halfway) is logged too, marked
    // aborted, instead of leaving no line at all.
    res.once('close', () => {
      const ms = performance.now() - started;
      const path = pathOf(req.url);
      // No answer sent (the client went away first, or the stop cut the request off): status 0, not the default 200.
      const status = res.headersSent ? res.statusCode : 0;
      app.metrics.request(routeClass(path), req.method ?? '', status, ms / 1000);
      if (!accessLog) return;
      const failure = status >= 400 ? (res.getHeader('x-wharf-error') as string | undefined) : undefined;
      const line: AccessLine = failure ? { method: req.method, path, status, ms: Math.round(ms), ip, failure } : { method: req.method, path, status, ms: Math.round(ms), ip };
      if (!res.writableFinished) line.aborted = true;
      if (log.access) log.access(line);
      else log.info(line, 'request');
    });
    route(app, publicUrl, req, res, state).catch((err) => {
      const headers: Record<string, string> = {};
      if (!req.complete) {
        lingerOnRefusedBody(req, headers);
        // Stopping: not "Connection: close", under which Node would close the socket with the body's rest unread
        // (what lingerOnRefusedBody avoids), but the connection ended once the rest is read.
        if (state.draining && headers.Connection === undefined && !res.headersSent) {
          res.removeHeader('Connection');
          req.once('end', () => req.socket.end());
        }
      }
      sendError(res, err, log, headers);
    });
  };
  const server: Server = config.tls
    ? createHttpsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, handler)
    : createHttpServer(handler);
  server.requestTimeout = 0; // large uploads may take long; idle sockets are still bounded by headersTimeout/keepAlive
  const track = (set: Set<Socket>) => (socket: Socket) => {
    set.add(socket);
    socket.once('close', () => set.delete(socket));
  };
  server.on('connection', track(raw));
  if (config.tls) {
    server.on('secureConnection', (tlsSocket: Socket & { _parent?: Socket }) => {
      track(sockets)(tlsSocket);
      if (tlsSocket._parent) secured.add(tlsSocket._parent);
      else parentUnknown = true;
    });
  } else server.on('connection', track(sockets));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  publicUrl ||= url;
  app.setPublicUrl(publicUrl);
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  /** Stops listening: new connections are refused (without Node's one-shot close of "idle" connections, see busy). */
  const stopListening = () => {
    if (!server.listening) return;
    // server.close(), for what else it stops (Node's interval checking connections, which would keep the server and
    // the App alive), without its close of "idle" connections.
    server.closeIdleConnections = () => {};
    try {
      server.close();
    } finally {
      delete (server as { closeIdleConnections?: unknown }).closeIdleConnections;
    }
  };
  /** Closes every connection now, answers under way or not. */
  const cutAll = () => {
    server.closeAllConnections();
    for (const s of raw) s.destroy();
  };
  return {
    server,
    url,
    publicUrl,
    async drain({ delayMs, timeoutMs, force }) {
      state.draining = true;
      for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      await pause(delayMs, force);
      stopListening();
      // Every 100 ms, the connections with nothing under way and nothing left to send are closed: those kept alive
      // after an answer that began before the stop (answers since close their own), and those never used. The
      // server closes once the last is gone.
      // With HTTPS, so are those still in their handshake (a client that connected and never spoke would otherwise
      // hold the stop until the timeout).
      const handshakesKnown = config.tls !== undefined;
      const sweep = setInterval(() => {
        for (const s of sockets) if (!busy.has(s) && s.writableLength === 0) s.destroy();
        if (handshakesKnown && !parentUnknown) for (const r of raw) if (!secured.has(r)) r.destroy();
      }, 100);
      const waited = new AbortController();
      await Promise.race([closed, pause(timeoutMs, force ? AbortSignal.any([force, waited.signal]) : waited.signal)]);
      waited.abort(); // (its timer must not hold the process)
      clearInterval(sweep);
      const cutOff = inFlight.size;
      cutAll();
      await closed;
      return { cutOff };
    },
    close: () => {
      stopListening();
      cutAll();
      return closed;
    },
  };
}
