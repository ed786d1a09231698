// The REST API under /api/v1 (what the CLI uses). Thin: parse and validate the request, call a service, shape JSON.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.ts';
import { WharfError } from '../errors.ts';
import { parseRepoRef, type RepoRef } from '../names.ts';
import { presentedToken, readJson, requestBody, sendJson } from './http.ts';
import { openApiDocument } from './openapi.ts';

async function requireAdmin(app: App, req: IncomingMessage): Promise<void> {
  const secret = presentedToken(req);
  if (!secret) throw new WharfError('UNAUTHORIZED');
  const p = await app.tokens.verify(secret);
  if (!p) throw new WharfError('UNAUTHORIZED');
  if (!p.scopes.includes('admin')) throw new WharfError('FORBIDDEN');
}

function repoRef(org: string, repo: string): RepoRef {
  return parseRepoRef(`${org}/${repo}`);
}

/** Handles /api/v1/...; `seg` are the path segments after /api/v1. */
export async function handleApi(app: App, req: IncomingMessage, res: ServerResponse, seg: string[], url: URL, publicUrl: string): Promise<void> {
  const method = req.method ?? 'GET';
  const route = seg.join('/');
  if (route === 'openapi.json' && (method === 'GET' || method === 'HEAD')) {
    sendJson(res, 200, openApiDocument(publicUrl));
    return;
  }
  await requireAdmin(app, req);

  if (seg[0] !== 'repos') throw new WharfError('NOT_FOUND', [`API route /api/v1/${route}`]);

  // /repos
  if (seg.length === 1) {
    if (method === 'GET') return sendJson(res, 200, { repositories: await app.repos.list() });
    if (method === 'POST') {
      const body = await readJson(req);
      if (typeof body.name !== 'string') throw new WharfError('BAD_REQUEST', ['"name" (ORG/REPO) is required']);
      if (body.private !== undefined && typeof body.private !== 'boolean') throw new WharfError('BAD_REQUEST', ['"private" must be a boolean']);
      if (body.sign_packages !== undefined && typeof body.sign_packages !== 'boolean') throw new WharfError('BAD_REQUEST', ['"sign_packages" must be a boolean']);
      const repo = await app.repos.create(parseRepoRef(body.name), { private: body.private === true, signPackages: body.sign_packages !== false });
      return sendJson(res, 201, { repository: repo });
    }
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  if (seg.length < 3) throw new WharfError('NOT_FOUND', [`API route /api/v1/${route}`]);
  const ref = repoRef(seg[1]!, seg[2]!);

  // /repos/ORG/REPO
  if (seg.length === 3) {
    if (method === 'GET') return sendJson(res, 200, { repository: await app.repos.get(ref) });
    throw new WharfError('METHOD_NOT_ALLOWED', [method]);
  }
  // /repos/ORG/REPO/packages[?distribution=OS/DIST]
  if (seg.length === 4 && seg[3] === 'packages') {
    if (method !== 'GET') throw new WharfError('METHOD_NOT_ALLOWED', [method]);
    const d = url.searchParams.get('distribution');
    let filter: { os: string; dist: string } | undefined;
    if (d) {
      const [os, dist, ...rest] = d.split('/');
      if (!os || !dist || rest.length) throw new WharfError('INVALID_DISTRIBUTION', [d.slice(0, 100)]);
      filter = { os, dist };
    }
    return sendJson(res, 200, { packages: await app.packages.list(ref, filter) });
  }
  // /repos/ORG/REPO/distributions/OS/DIST/packages[/FILENAME]
  if (seg[3] === 'distributions' && seg.length >= 7 && seg[6] === 'packages') {
    const [os, dist] = [seg[4]!, seg[5]!];
    if (seg.length === 7) {
      if (method === 'POST' || method === 'PUT') {
        const len = req.headers['content-length'];
        if (len !== undefined && Number(len) > app.config.maxUploadBytes) throw new WharfError('PAYLOAD_TOO_LARGE', [app.config.maxUploadBytes]);
        const result = await app.packages.push(ref, os, dist, requestBody(req));
        return sendJson(res, result.status === 'created' ? 201 : 200, result);
      }
      if (method === 'GET') return sendJson(res, 200, { packages: await app.packages.list(ref, { os, dist }) });
      throw new WharfError('METHOD_NOT_ALLOWED', [method]);
    }
    if (seg.length === 8) {
      if (method === 'DELETE') return sendJson(res, 200, { yanked: await app.packages.yank(ref, os, dist, seg[7]!) });
      throw new WharfError('METHOD_NOT_ALLOWED', [method]);
    }
  }
  throw new WharfError('NOT_FOUND', [`API route /api/v1/${route}`]);
}
