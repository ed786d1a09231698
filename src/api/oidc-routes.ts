// Trusted publishing and Wharf's token service over HTTP, outside /api/v1 so the paths match what CI tooling and
// OIDC clients expect:
//   GET  /.well-known/openid-configuration, /.well-known/jwks.json  Wharf as a JWT issuer (public, cacheable)
//   GET  /_/oidc/audience                                            the `aud` a CI token must carry
//   POST /_/oidc/mint-token {"token", "repository"?}                 CI token -> short-lived Wharf JWT
// Mint failures answer 422 in Warehouse's shape: {"message", "errors": [{"code", "description"}]}.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.ts';
import { WharfError, isWharfError } from '../errors.ts';
import { OidcError } from '../services/oidc/trusted-publishing.ts';
import { clientIp } from './auth.ts';
import { readJson, sendJson } from './http.ts';

function sendPublicJson(req: IncomingMessage, res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  // Public and cacheable for five minutes: a new key is published at least that long before it signs (wharf keys).
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'public, max-age=300' });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function mintFailure(res: ServerResponse, code: string, description: string): void {
  sendJson(res, 422, { message: 'Token request failed', errors: [{ code, description }] }, { 'X-Wharf-Error': `OIDC_${code.toUpperCase().replace(/-/g, '_')}` });
}

export async function handleOidc(app: App, req: IncomingMessage, res: ServerResponse, seg: string[]): Promise<void> {
  const route = seg.join('/');
  const method = req.method ?? 'GET';
  const read = method === 'GET' || method === 'HEAD';
  if (route === '.well-known/openid-configuration' && read) return sendPublicJson(req, res, app.jwt.discovery());
  if (route === '.well-known/jwks.json' && read) return sendPublicJson(req, res, await app.jwt.jwks());
  if (route === '_/oidc/audience' && read) return sendJson(res, 200, { audience: app.oidcAudience() });
  if (route === '_/oidc/mint-token') {
    if (method !== 'POST') throw new WharfError('METHOD_NOT_ALLOWED', [method]);
    return mint(app, req, res);
  }
  if (['.well-known/openid-configuration', '.well-known/jwks.json', '_/oidc/audience'].includes(route)) throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  throw new WharfError('NOT_FOUND', [`/${route}`]);
}

async function mint(app: App, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const ip = clientIp(req, app.config) ?? 'unknown';
  // Failed exchanges count against the address like failed logins.
  const wait = app.authFailures.retryAfter(ip);
  if (wait > 0) throw new WharfError('RATE_LIMITED', [wait], { retryAfter: wait });
  let body: Record<string, unknown>;
  try {
    body = await readJson(req, 32 * 1024);
  } catch (e) {
    if (isWharfError(e) && e.code !== 'PAYLOAD_TOO_LARGE') return mintFailure(res, 'invalid-payload', 'the body must be a JSON object {"token": "<CI OIDC token>"}');
    throw e;
  }
  if (typeof body.token !== 'string' || body.token === '') return mintFailure(res, 'invalid-payload', 'the body must be a JSON object {"token": "<CI OIDC token>"}');
  if (body.repository !== undefined && (typeof body.repository !== 'string' || !/^[^/]+\/[^/]+$/.test(body.repository))) {
    return mintFailure(res, 'invalid-payload', '"repository", when given, must be ORG/REPO');
  }
  // A CI project may be trusted by several repositories: the caller names one, or there must be exactly one. Decided
  // before the token's jti is spent, so a wrong "repository" can be corrected and the same token retried.
  const wanted = body.repository as string | undefined;
  const narrow = async (repoIds: number[]): Promise<number[]> => {
    const repos = [];
    for (const id of repoIds) {
      const repo = await app.repos.byId(id);
      if (repo && (wanted === undefined || `${repo.org}/${repo.name}` === wanted)) repos.push(repo);
    }
    if (repos.length === 0) {
      throw new OidcError('invalid-publisher', `no trusted publisher of ${String(wanted)} matches this token: register one with \`wharf publisher add ${String(wanted)} ...\``);
    }
    if (repos.length > 1) {
      const names = repos.map((r) => `${r.org}/${r.name}`).join(', ');
      throw new OidcError('invalid-publisher', `this CI project may publish to several repositories (${names}): name one with "repository" (wharf push --oidc does)`);
    }
    return [repos[0]!.id];
  };
  let exchanged;
  try {
    exchanged = await app.oidc().exchange(body.token, narrow);
  } catch (e) {
    if (!(e instanceof OidcError)) throw e;
    app.authFailures.fail(ip);
    app.metrics.authFailures.inc();
    app.log.info({ ip, code: e.code, reason: e.description }, 'trusted publishing: token refused');
    return mintFailure(res, e.code, e.description);
  }
  const candidates = [];
  for (const p of exchanged.publishers) {
    const repo = await app.repos.byId(p.repo_id);
    if (repo) candidates.push({ publisher: p, repo });
  }
  if (candidates.length === 0) return mintFailure(res, 'invalid-publisher', 'the repository of the matching trusted publisher no longer exists');
  const { publisher, repo } = candidates[0]!;
  const ci = { ...exchanged.identity, publisher_id: publisher.id };
  const minted = await app.jwt.sign({
    sub: `publisher:${publisher.id}`,
    aud: app.jwt.issuer,
    scopes: ['push'],
    ttlSeconds: app.config.publishTokenSeconds,
    extra: { repository: `${repo.org}/${repo.name}`, org_id: repo.org_id, repo_id: repo.id, ci },
  });
  await app.audit.record({
    actor: `trusted-publisher:${publisher.id}`,
    ip,
    action: 'oidc.mint',
    orgId: repo.org_id,
    repoId: repo.id,
    target: `${repo.org}/${repo.name}`,
    details: { jti: minted.jti, expires: minted.expires, ci },
  });
  sendJson(res, 200, { success: true, token: minted.token, expires: minted.expires });
}
