// The reference for the serving benchmark (bench/serve.ts): a bare Node `http` server answering every request with
// the same fixed body (2 KB by default, BARE_BODY_BYTES), keep-alive, nothing else. Prints "bare listening on URL".
//
//   node bench/bare-server.ts [HOST:PORT]   (default 127.0.0.1:0)
import { createServer } from 'node:http';

const [host, port] = (process.argv[2] ?? '127.0.0.1:0').split(':') as [string, string];
const size = Number(process.env.BARE_BODY_BYTES ?? 2048);
const body = Buffer.alloc(size, 'x');
const headers = { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) };

const server = createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(Number(port), host, () => {
  const a = server.address();
  if (a && typeof a === 'object') process.stdout.write(`bare listening on http://${a.address}:${a.port}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
