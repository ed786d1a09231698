// The REST API under /api/v1 (what the CLI uses). Thin: parse and validate the request, authorise, call a service,
// shape JSON.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.ts';
import { WharfError } from '../errors.ts';
import { parseRepoRef, validateOrgName } from '../names.ts';
import { allows, SCOPES, type Principal, type Scope } from '../services/tokens.ts';
import type { RepositoryInfo } from '../services/repositories.ts';
import type { BatchResult } from '../services/packages.ts';
import { prefersAsync, readJson, requestBody, sendJson } from './http.ts';
import { authenticateRequest, clientIp } from './auth.ts';
import { actorOf } from '../services/audit.ts';
import { openApiDocument } from './openapi.ts';

/** The caller, or UNAUTHORIZED. */
export async function authenticate(app: App, req: IncomingMessage): Promise<Principal> {
  const { principal } = await authenticateRequest(app, req);
  if (!principal) throw new WharfError('UNAUTHORIZED');
  return principal;
}

/**
 * The repository when `p` may do `scope` in it. A repository the caller cannot see answers like a missing one
 * (404 for the API), so names cannot be probed; one it can see but not change answers 403.
 */
async function repoFor(app: App, p: Principal, org: string, name: string, scope: Scope): Promise<RepositoryInfo> {
  const ref = parseRepoRef(`${org}/${name}`);
  // Pushes (the hot write path: CI jobs, bulk imports) read the repository through the short cache the download path
  // uses (2 s; creations reach every node at once through the cluster bus). Management requests read it fresh.
  const repo = scope === 'push' ? await app.repos.findCached(ref.org, ref.repo) : await app.repos.find(ref.org, ref.repo);
  if (!repo || !allows(p, 'read', repo.org_id, repo.id)) throw new WharfError('REPO_NOT_FOUND', [`${ref.org}/${ref.repo}`, `${ref.org}/${ref.repo}`]);
  if (!allows(p, scope, repo.org_id, repo.id)) throw new WharfError('FORBIDDEN');
  return repo;
}

function requireServerAdmin(p: Principal): void {
  if (p.kind !== 'admin') throw new WharfError('FORBIDDEN');
}

function parseScopes(v: unknown): Scope[] {
  if (v === undefined) return ['read'];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s))) {
    throw new WharfError('BAD_REQUEST', ['"scopes" must be a list of read, push, write, admin']);
  }
  return v as Scope[];
}

function parseExpiry(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw new WharfError('BAD_REQUEST', ['"expires_at" must be an ISO 8601 date such as 2027-06-30']);
  return Date.parse(v);
}

/** Handles /api/v1/...; `seg` are the path segments after /api/v1. */
export async function handleApi(app: App, req: IncomingMessage, res: ServerResponse, seg: string[], url: URL, publicUrl: string): Promise<void> {
  const method = req.method ?? 'GET';
  const route = seg.join('/');
  if (route === 'openapi.json' && (method === 'GET' || method === 'HEAD')) {
    sendJson(res, 200, openApiDocument(publicUrl));
    return;
  }
  const p = await authenticate(app, req);
  const notFound = () => new WharfError('NOT_FOUND', [`API route /api/v1/${route}`]);
  const audit = (action: string, orgId: number | null, repoId: number | null, target: string, details?: Record<string, unknown>) =>
    app.audit.record({ actor: actorOf(p), ip: clientIp(req, app.config), action, orgId, repoId, target, ...(details ? { details } : {}) });

  // /orgs/ORG/tokens[/ID[/rotate]]: organisation-wide tokens
  if (seg[0] === 'orgs' && seg.length >= 3 && seg[2] === 'tokens') {
    const org = validateOrgName(seg[1]!);
    const orgId = await app.repos.orgId(org);
    const ok = orgId !== undefined && (p.kind === 'admin' || (p.orgId === orgId && p.repoId === null && p.scopes.includes('admin')));
    if (!ok) throw new WharfError('NOT_FOUND', [`Organisation "${org}"`]);
    return handleTokens(app, req, res, seg.slice(3), method, orgId, null, (action, target, details) => audit(action, orgId, null, target, details));
  }
  // /orgs/ORG/audit: the audit log of an organisation
  if (seg[0] === 'orgs' && seg.length === 3 && seg[2] === 'audit') {
    const org = validateOrgName(seg[1]!);
    const orgId = await app.repos.orgId(org);
    const ok = orgId !== undefined && (p.kind === 'admin' || (p.orgId === orgId && p.repoId === null && p.scopes.includes('admin')));
    if (!ok) throw new WharfError('NOT_FOUND', [`Organisation "${org}"`]);
    return sendJson(res, 200, { entries: await app.audit.list(orgId, null, Number(url.searchParams.get('limit') ?? 200)) });
  }
  // /issuers[/ID]: OIDC issuers allowed for trusted publishing (server admin)
  if (seg[0] === 'issuers' && seg.length <= 2) {
    requireServerAdmin(p);
    const oidc = app.oidc();
    if (seg.length === 1 && method === 'GET') return sendJson(res, 200, { issuers: await oidc.listIssuers() });
    if (seg.length === 1 && method === 'POST') {
      const body = await readJson(req);
      if (typeof body.url !== 'string') throw new WharfError('BAD_REQUEST', ['"url" (the issuer, https://...) is required']);
      if (body.type !== 'gitlab' && body.type !== 'github') throw new WharfError('BAD_REQUEST', ['"type" must be gitlab or github']);
      if (body.allow_private_network !== undefined && typeof body.allow_private_network !== 'boolean') throw new WharfError('BAD_REQUEST', ['"allow_private_network" must be a boolean']);
      const issuer = await oidc.addIssuer({ url: body.url, type: body.type, allowPrivateNetwork: body.allow_private_network === true });
      await audit('issuer.add', null, null, issuer.url, { type: issuer.type, allow_private_network: body.allow_private_network === true });
      return sendJson(res, 201, { issuer });
    }
    if (seg.length === 2 && method === 'DELETE') {
      const id = positiveId(seg[1]!, 'ISSUER_NOT_FOUND');
      await oidc.removeIssuer(id);
      await audit('issuer.remove', null, null, `issuer:${id}`);
      return sendJson(res, 200, { removed: id });
    }
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  // /keys, /keys/rotate, /keys/trim: the keys that sign Wharf's JWTs (server admin)
  if (seg[0] === 'keys' && seg.length <= 2) {
    requireServerAdmin(p);
    if (seg.length === 1 && method === 'GET') return sendJson(res, 200, { keys: await app.jwt.list() });
    if (seg.length === 1 && method === 'POST') {
      const key = await app.jwt.create();
      await audit('jwt-key.create', null, null, `jwt-key:${key.kid}`);
      return sendJson(res, 201, { key });
    }
    if (seg.length === 2 && seg[1] === 'rotate' && method === 'POST') {
      const r = await app.jwt.rotate();
      await audit('jwt-key.rotate', null, null, `jwt-key:${r.active.kid}`, { retired: r.retired?.kid ?? null });
      return sendJson(res, 200, r);
    }
    if (seg.length === 2 && seg[1] === 'trim' && method === 'POST') {
      const body = await readJson(req);
      if (body.force !== undefined && typeof body.force !== 'boolean') throw new WharfError('BAD_REQUEST', ['"force" must be a boolean']);
      const trimmed = await app.jwt.trim({ force: body.force === true });
      await audit('jwt-key.trim', null, null, 'jwt-keys', { trimmed: trimmed.map((k) => k.kid), force: body.force === true });
      return sendJson(res, 200, { trimmed });
    }
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  if (seg[0] !== 'repos') throw notFound();

  // /repos
  if (seg.length === 1) {
    if (method === 'GET') {
      const all = await app.repos.list();
      return sendJson(res, 200, { repositories: all.filter((r) => allows(p, 'read', r.org_id, r.id)) });
    }
    if (method === 'POST') {
      requireServerAdmin(p);
      const body = await readJson(req);
      if (typeof body.name !== 'string') throw new WharfError('BAD_REQUEST', ['"name" (ORG/REPO) is required']);
      for (const k of ['private', 'sign_packages', 'deploy_token'] as const) {
        if (body[k] !== undefined && typeof body[k] !== 'boolean') throw new WharfError('BAD_REQUEST', [`"${k}" must be a boolean`]);
      }
      const repo = await app.repos.create(parseRepoRef(body.name), { private: body.private === true, signPackages: body.sign_packages !== false });
      // A private repository is useless without a credential to read it: it gets a read-only deploy token unless asked not to.
      const deployToken =
        repo.private && body.deploy_token !== false
          ? await app.tokens.create({ orgId: repo.org_id, repoId: repo.id, name: 'default-deploy', scopes: ['read'], expiresAt: null })
          : undefined;
      await audit('repository.create', repo.org_id, repo.id, `${repo.org}/${repo.name}`, { private: repo.private, deploy_token: deployToken?.id ?? null });
      if (deployToken) await audit('token.create', repo.org_id, repo.id, `token:${deployToken.id}`, { name: deployToken.name, scopes: deployToken.scopes });
      return sendJson(res, 201, { repository: repo, ...(deployToken ? { deploy_token: deployToken } : {}) });
    }
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  if (seg.length < 3) throw notFound();
  const [org, name] = [seg[1]!, seg[2]!];

  // /repos/ORG/REPO
  if (seg.length === 3) {
    if (method === 'GET') return sendJson(res, 200, { repository: await repoFor(app, p, org, name, 'read') });
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  // /repos/ORG/REPO/tokens[/ID[/rotate]]
  if (seg[3] === 'tokens') {
    const repo = await repoFor(app, p, org, name, 'admin');
    return handleTokens(app, req, res, seg.slice(4), method, repo.org_id, repo.id, (action, target, details) => audit(action, repo.org_id, repo.id, target, details));
  }
  // /repos/ORG/REPO/publishers[/ID]: trusted publishers (CI workflows that may publish without a stored secret)
  if (seg[3] === 'publishers' && seg.length <= 5) {
    const repo = await repoFor(app, p, org, name, 'admin');
    const oidc = app.oidc();
    if (seg.length === 4 && method === 'GET') return sendJson(res, 200, { publishers: await oidc.listPublishers(repo.id) });
    if (seg.length === 4 && method === 'POST') {
      const body = await readJson(req);
      if (body.provider !== 'gitlab' && body.provider !== 'github') throw new WharfError('BAD_REQUEST', ['"provider" must be gitlab or github']);
      for (const k of ['project', 'workflow'] as const) if (typeof body[k] !== 'string') throw new WharfError('BAD_REQUEST', [`"${k}" is required`]);
      for (const k of ['environment', 'issuer', 'owner_id'] as const) {
        if (body[k] !== undefined && body[k] !== null && typeof body[k] !== 'string') throw new WharfError('BAD_REQUEST', [`"${k}" must be a string`]);
      }
      const publisher = await oidc.addPublisher(repo.id, {
        provider: body.provider,
        project: body.project as string,
        workflow: body.workflow as string,
        ...(typeof body.environment === 'string' ? { environment: body.environment } : {}),
        ...(typeof body.issuer === 'string' ? { issuer: body.issuer } : {}),
        ...(typeof body.owner_id === 'string' ? { ownerId: body.owner_id } : {}),
      });
      await audit('publisher.add', repo.org_id, repo.id, `publisher:${publisher.id}`, { ...publisher });
      return sendJson(res, 201, { publisher });
    }
    if (seg.length === 5 && method === 'DELETE') {
      const id = positiveId(seg[4]!, 'PUBLISHER_NOT_FOUND');
      await oidc.removePublisher(repo.id, id);
      await audit('publisher.remove', repo.org_id, repo.id, `publisher:${id}`);
      return sendJson(res, 200, { removed: id });
    }
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  // /repos/ORG/REPO/audit
  if (seg.length === 4 && seg[3] === 'audit') {
    const repo = await repoFor(app, p, org, name, 'admin');
    return sendJson(res, 200, { entries: await app.audit.list(repo.org_id, repo.id, Number(url.searchParams.get('limit') ?? 200)) });
  }
  // /repos/ORG/REPO/packages[?distribution=OS/DIST]
  if (seg.length === 4 && seg[3] === 'packages') {
    if (method !== 'GET') throw new WharfError('METHOD_NOT_ALLOWED', [method]);
    const repo = await repoFor(app, p, org, name, 'read');
    const d = url.searchParams.get('distribution');
    let filter: { os: string; dist: string } | undefined;
    if (d) {
      const [os, dist, ...rest] = d.split('/');
      if (!os || !dist || rest.length) throw new WharfError('INVALID_DISTRIBUTION', [d.slice(0, 100)]);
      filter = { os, dist };
    }
    return sendJson(res, 200, { packages: await app.packages.list({ org: repo.org, repo: repo.name }, filter) });
  }
  // /repos/ORG/REPO/distributions/OS/DIST/import: the package files of a directory on the server (server admin)
  if (seg[3] === 'distributions' && seg.length === 7 && seg[6] === 'import') {
    if (method !== 'POST') throw new WharfError('METHOD_NOT_ALLOWED', [method]);
    // It reads the server's own files: for the server's admin only, whatever the repository's tokens allow.
    if (p.kind !== 'admin') throw new WharfError('FORBIDDEN');
    const repo = await repoFor(app, p, org, name, 'push');
    const body = await readJson(req);
    if (typeof body.path !== 'string') throw new WharfError('BAD_REQUEST', ['"path" (the absolute path of a directory on the server) is required']);
    for (const f of ['link', 'recursive'] as const) {
      if (body[f] !== undefined && typeof body[f] !== 'boolean') throw new WharfError('BAD_REQUEST', [`"${f}" must be true or false`]);
    }
    const wait = !prefersAsync(req);
    const applied: Record<string, string> = wait ? {} : { 'Preference-Applied': 'respond-async' };
    const [os, dist] = [seg[4]!, seg[5]!];
    const batch = await app.packages.importDirectory(
      { org: repo.org, repo: repo.name },
      os,
      dist,
      { path: body.path, ...(body.link !== undefined ? { link: body.link as boolean } : {}), ...(body.recursive !== undefined ? { recursive: body.recursive as boolean } : {}) },
      { repo, ...(wait ? {} : { wait: false }) },
    );
    return sendBatch(app, req, res, p, repo, os, dist, batch, wait, applied, { import: true });
  }
  // /repos/ORG/REPO/distributions/OS/DIST/packages[/FILENAME]
  if (seg[3] === 'distributions' && seg.length >= 7 && seg[6] === 'packages') {
    const [os, dist] = [seg[4]!, seg[5]!];
    if (seg.length === 7) {
      if (method === 'POST' || method === 'PUT') {
        const repo = await repoFor(app, p, org, name, 'push');
        // `Prefer: respond-async`: answer 202 once the package is stored; the metadata follows (group commit).
        const wait = !prefersAsync(req);
        const applied: Record<string, string> = wait ? {} : { 'Preference-Applied': 'respond-async' };
        const pushOpts = { repo, ...(p.provenance ? { provenance: p.provenance } : {}), ...(wait ? {} : { wait: false }) };
        // Several packages in one request: a tar archive of the files (what `wharf push` sends for many files).
        if (/^application\/(x-)?tar\b/i.test(req.headers['content-type'] ?? '')) {
          const batch = await app.packages.pushBatch({ org: repo.org, repo: repo.name }, os, dist, requestBody(req), pushOpts);
          return sendBatch(app, req, res, p, repo, os, dist, batch, wait, applied);
        }
        const len = req.headers['content-length'];
        if (len !== undefined && Number(len) > app.config.maxUploadBytes) throw new WharfError('PAYLOAD_TOO_LARGE', [app.config.maxUploadBytes]);
        const result = await app.packages.push({ org: repo.org, repo: repo.name }, os, dist, requestBody(req), pushOpts);
        await audit('package.push', repo.org_id, repo.id, `${repo.org}/${repo.name}/${os}/${dist}/${result.package.filename}`, {
          status: result.status,
          sha256: result.package.sha256,
          ...(p.provenance ? { ci: p.provenance } : {}),
        });
        return sendJson(res, !wait ? 202 : result.status === 'created' ? 201 : 200, result, applied);
      }
      if (method === 'GET') {
        const repo = await repoFor(app, p, org, name, 'read');
        return sendJson(res, 200, { packages: await app.packages.list({ org: repo.org, repo: repo.name }, { os, dist }) });
      }
      throw new WharfError('METHOD_NOT_ALLOWED', [method]);
    }
    if (seg.length === 8) {
      if (method !== 'DELETE') throw new WharfError('METHOD_NOT_ALLOWED', [method]);
      const repo = await repoFor(app, p, org, name, 'write');
      const yanked = await app.packages.yank({ org: repo.org, repo: repo.name }, os, dist, seg[7]!);
      await audit('package.yank', repo.org_id, repo.id, `${repo.org}/${repo.name}/${os}/${dist}/${yanked.filename}`);
      return sendJson(res, 200, { yanked });
    }
  }
  throw notFound();
}

/** Records a batch's stored packages in the audit log and answers with every file's result. */
async function sendBatch(
  app: App,
  req: IncomingMessage,
  res: ServerResponse,
  p: Principal,
  repo: RepositoryInfo,
  os: string,
  dist: string,
  batch: BatchResult,
  wait: boolean,
  applied: Record<string, string>,
  extra: Record<string, unknown> = { batch: true },
): Promise<void> {
  const actor = actorOf(p);
  const ip = clientIp(req, app.config);
  await app.audit.recordMany(
    batch.results.flatMap((r) =>
      r.status === 'refused' || !r.package
        ? []
        : [
            {
              actor,
              ip,
              action: 'package.push',
              orgId: repo.org_id,
              repoId: repo.id,
              target: `${repo.org}/${repo.name}/${os}/${dist}/${r.package.filename}`,
              details: { status: r.status, sha256: r.package.sha256, ...extra, ...(p.provenance ? { ci: p.provenance } : {}) },
            },
          ],
    ),
  );
  const refused = batch.results.filter((r) => r.status === 'refused').length;
  if (refused > 0) {
    const e = new WharfError('BATCH_PARTIAL', [refused, batch.results.length]);
    return sendJson(res, e.status, { error: { code: e.code, message: e.message }, ...batch }, { 'X-Wharf-Error': e.code, ...applied });
  }
  return sendJson(res, !wait ? 202 : batch.results.some((r) => r.status === 'created') ? 201 : 200, batch, applied);
}

function positiveId(s: string, code: 'ISSUER_NOT_FOUND' | 'PUBLISHER_NOT_FOUND'): number {
  const id = Number(s);
  if (!Number.isSafeInteger(id) || id <= 0) throw new WharfError(code, [s.slice(0, 20)]);
  return id;
}

type Audit = (action: string, target: string, details?: Record<string, unknown>) => Promise<void>;

async function handleTokens(app: App, req: IncomingMessage, res: ServerResponse, rest: string[], method: string, orgId: number, repoId: number | null, audit: Audit): Promise<void> {
  if (rest.length === 0) {
    if (method === 'GET') return sendJson(res, 200, { tokens: await app.tokens.list(orgId, repoId) });
    if (method === 'POST') {
      const body = await readJson(req);
      if (typeof body.name !== 'string') throw new WharfError('BAD_REQUEST', ['"name" is required']);
      const token = await app.tokens.create({ orgId, repoId, name: body.name, scopes: parseScopes(body.scopes), expiresAt: parseExpiry(body.expires_at) });
      await audit('token.create', `token:${token.id}`, { name: token.name, scopes: token.scopes, expires_at: token.expires_at });
      return sendJson(res, 201, { token });
    }
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  const id = Number(rest[0]);
  if (!Number.isSafeInteger(id) || id <= 0) throw new WharfError('TOKEN_NOT_FOUND', [String(rest[0]).slice(0, 20)]);
  if (rest.length === 1 && method === 'DELETE') {
    await app.tokens.revoke(id, orgId, repoId);
    await audit('token.revoke', `token:${id}`);
    return sendJson(res, 200, { revoked: id });
  }
  if (rest.length === 2 && rest[1] === 'rotate' && method === 'POST') {
    const body = await readJson(req);
    const grace = body.grace_seconds ?? 86400;
    if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0 || grace > 90 * 86400) {
      throw new WharfError('BAD_REQUEST', ['"grace_seconds" must be a whole number of seconds, at most 90 days']);
    }
    const token = await app.tokens.rotate(id, orgId, repoId, grace);
    await audit('token.rotate', `token:${id}`, { grace_seconds: grace });
    return sendJson(res, 200, { token });
  }
  throw new WharfError('METHOD_NOT_ALLOWED', [method]);
}
