// The HTTP(S) server: routes /healthz, /api/v1 and the repository tree, and logs one line per request.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ServerConnections } from './serve/connections.ts';
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

async function route(app: App, publicUrl: string, req: IncomingMessage, res: ServerResponse, connections: ServerConnections): Promise<void> {
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
    if (connections.draining) return sendJson(res, 503, { status: 'stopping', checks: {} });
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

export async function startServer(app: App): Promise<RunningServer> {
  const { config, log } = app;
  let publicUrl = config.publicUrl ?? '';
  // The level is fixed for the server's life: the per-request log objects are only built when they are written.
  const traceOn = log.trace !== undefined && (log.isLevelEnabled?.('trace') ?? true);
  const accessLog = log.isLevelEnabled?.('info') ?? true;
  // (Assigned once the server exists; every request comes after.)
  let connections!: ServerConnections;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    connections.track(req, res);
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
    route(app, publicUrl, req, res, connections).catch((err) => {
      const headers: Record<string, string> = {};
      if (!req.complete) {
        lingerOnRefusedBody(req, headers);
        connections.lingering(req, res, headers);
      }
      sendError(res, err, log, headers);
    });
  };
  const server: Server = config.tls
    ? createHttpsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, handler)
    : createHttpServer(handler);
  server.requestTimeout = 0; // large uploads may take long; idle sockets are still bounded by headersTimeout/keepAlive
  connections = new ServerConnections(server, config.tls !== undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  publicUrl ||= url;
  app.setPublicUrl(publicUrl);
  return {
    server,
    url,
    publicUrl,
    drain: (opts) => connections.drain(opts),
    close: () => connections.close(),
  };
}
