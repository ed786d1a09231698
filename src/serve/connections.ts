// The connections of the HTTP(S) server, for a graceful stop (SIGTERM; docs/deployment.md, "Rolling restarts"):
// which answers are under way, which connections are busy, and the drain that lets them finish.
//
// Node's own tools fall short here: closeIdleConnections counts a connection idle once end() is called, while a large
// answer may still wait in memory to be sent (a 6 MB JSON answer to a slow client was cut), and closeAllConnections
// does not know TCP connections still in their TLS handshake (one that never spoke held a stop for 120 s).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

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

/** How often a drain closes the connections that have become idle. */
const SWEEP_MS = 100;

export class ServerConnections {
  readonly #server: Server;
  readonly #tls: boolean;
  #draining = false;
  /** the answers under way (a drain marks them to close their connections) */
  readonly #inFlight = new Set<ServerResponse>();
  /**
   * per connection, its requests not yet done: the answer handed to the system whole and the request read to its end
   * (weak: a refused request whose body never ends leaves its entry)
   */
  readonly #busy = new WeakMap<Socket, number>();
  /** the connections HTTP runs on (the TLS sockets with HTTPS) */
  readonly #sockets = new Set<Socket>();
  /** every TCP connection, also one still in its TLS handshake */
  readonly #raw = new Set<Socket>();
  /** the TCP connections whose TLS handshake is done (known from the TLS socket's _parent, which Node sets) */
  readonly #secured = new WeakSet<Socket>();
  #parentUnknown = false;
  readonly #closed: Promise<void>;

  constructor(server: Server, tls: boolean) {
    this.#server = server;
    this.#tls = tls;
    this.#closed = new Promise((resolve) => server.once('close', () => resolve()));
    const track = (set: Set<Socket>) => (socket: Socket) => {
      set.add(socket);
      socket.once('close', () => set.delete(socket));
    };
    server.on('connection', track(this.#raw));
    if (tls) {
      server.on('secureConnection', (tlsSocket: Socket & { _parent?: Socket }) => {
        track(this.#sockets)(tlsSocket);
        if (tlsSocket._parent) this.#secured.add(tlsSocket._parent);
        else this.#parentUnknown = true;
      });
    } else server.on('connection', track(this.#sockets));
  }

  /** Stopping: /readyz answers 503 and every answer closes its connection. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Follows one request, from the server's request handler (before anything else is done with it). */
  track(req: IncomingMessage, res: ServerResponse): void {
    this.#inFlight.add(res);
    // Busy until the answer is handed to the system whole and the request is read to its end (a refused upload's
    // rest is read and discarded after the answer: closing before would reset the connection under the answer).
    const socket = req.socket;
    const busy = this.#busy;
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
      this.#inFlight.delete(res);
    });
    // While stopping, no connection is kept for another request.
    if (this.#draining) res.setHeader('Connection', 'close');
  }

  /**
   * A request refused before its body was read, whose rest lingerOnRefusedBody reads and discards: while stopping,
   * its connection is ended once that rest is read, not closed with the answer (under which Node would close the
   * socket with the body unread, resetting the connection under the answer).
   */
  lingering(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
    if (this.#draining && headers.Connection === undefined && !res.headersSent) {
      res.removeHeader('Connection');
      req.once('end', () => req.socket.end());
    }
  }

  /** See RunningServer.drain. */
  async drain({ delayMs, timeoutMs, force }: { delayMs: number; timeoutMs: number; force?: AbortSignal }): Promise<{ cutOff: number }> {
    this.#draining = true;
    for (const res of this.#inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    await pause(delayMs, force);
    this.#stopListening();
    // Every SWEEP_MS, the connections with nothing under way and nothing left to send are closed: those kept alive
    // after an answer that began before the stop (answers since close their own), and those never used; with HTTPS
    // also those still in their handshake. The server closes once the last is gone.
    const sweep = setInterval(() => {
      for (const s of this.#sockets) if (!this.#busy.has(s) && s.writableLength === 0) s.destroy();
      if (this.#tls && !this.#parentUnknown) for (const r of this.#raw) if (!this.#secured.has(r)) r.destroy();
    }, SWEEP_MS);
    const waited = new AbortController();
    await Promise.race([this.#closed, pause(timeoutMs, force ? AbortSignal.any([force, waited.signal]) : waited.signal)]);
    waited.abort(); // (its timer must not hold the process)
    clearInterval(sweep);
    const cutOff = this.#inFlight.size;
    this.#cutAll();
    await this.#closed;
    return { cutOff };
  }

  /** Closes the listener and every connection at once. */
  close(): Promise<void> {
    this.#stopListening();
    this.#cutAll();
    return this.#closed;
  }

  /**
   * Stops listening: new connections are refused. server.close(), for what else it stops (Node's interval checking
   * connections, which would keep the server and the App alive), without its close of "idle" connections.
   */
  #stopListening(): void {
    const server = this.#server;
    if (!server.listening) return;
    server.closeIdleConnections = () => {};
    try {
      server.close();
    } finally {
      delete (server as { closeIdleConnections?: unknown }).closeIdleConnections;
    }
  }

  /** Closes every connection now, answers under way or not. */
  #cutAll(): void {
    this.#server.closeAllConnections();
    for (const r of this.#raw) r.destroy();
  }
}
