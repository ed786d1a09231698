// The HTTP(S) server: routes /healthz, /api/v1 and the repository tree, and logs one line per request.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { App } from './app.ts';
import { WharfError } from './errors.ts';
import { pathSegments, sendError, sendJson } from './api/http.ts';
import { handleApi } from './api/routes.ts';
import { handleTree } from './serve/tree.ts';

async function route(app: App, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://wharf.invalid');
  const seg = pathSegments(url.pathname);
  if (!seg) throw new WharfError('BAD_REQUEST', ['invalid path']);
  if (seg.length === 1 && seg[0] === 'healthz') return sendJson(res, 200, { status: 'ok' });
  if (seg[0] === 'api') {
    if (seg[1] !== 'v1') throw new WharfError('NOT_FOUND', ['API version']);
    return handleApi(app, req, res, seg.slice(2), url);
  }
  if (seg.length === 0) return sendJson(res, 200, { name: 'wharf', api: `${app.config.publicUrl}/api/v1/openapi.json` });
  return handleTree(app, req, res, seg);
}

export interface RunningServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

export async function startServer(app: App): Promise<RunningServer> {
  const { config, log } = app;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    res.on('finish', () => {
      const path = (req.url ?? '').split('?')[0];
      log.info({ method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started), ip: req.socket.remoteAddress }, 'request');
    });
    route(app, req, res).catch((err) => {
      // Drain what the client is still sending so it can read the error instead of a reset connection.
      if (!req.complete) req.resume();
      sendError(res, err, log);
    });
  };
  const server: Server = config.tls
    ? createHttpsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, handler)
    : createHttpServer(handler);
  server.requestTimeout = 0; // large uploads may take long; idle sockets are still bounded by headersTimeout/keepAlive
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
