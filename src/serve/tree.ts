// GET/HEAD /ORG/REPO/... : the published repository tree, straight from blob storage.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.ts';
import { WharfError } from '../errors.ts';
import { presentedToken } from '../api/http.ts';
import { repoTreePrefix } from '../services/tree.ts';
import { cacheControlOf, contentTypeOf, isImmutablePath, sendBlob } from './tree-files.ts';

export async function handleTree(app: App, req: IncomingMessage, res: ServerResponse, seg: string[]): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new WharfError('METHOD_NOT_ALLOWED', [req.method ?? '']);
  const [org, name, ...rest] = seg;
  const repo = org && name ? await app.repos.find(org, name) : undefined;
  if (!repo || repo.private) {
    // Private trees need the admin token for now; deploy tokens come with private repositories proper.
    // A repository that does not exist answers exactly like a private one, so names cannot be probed.
    const secret = presentedToken(req);
    const p = secret ? await app.tokens.verify(secret) : undefined;
    if (!p?.scopes.includes('admin')) throw new WharfError('UNAUTHORIZED');
  }
  if (!repo || rest.length === 0) throw new WharfError('NOT_FOUND', ['File']);
  const path = rest.join('/');
  const key = `${repoTreePrefix(repo.org, repo.name, repo.private)}/${path}`;
  const sent = await sendBlob(req, res, app.store, key, {
    cacheControl: cacheControlOf(`/${path}`, repo.private),
    contentType: contentTypeOf(path),
    mutable: !isImmutablePath(`/${path}`),
    ...(repo.private ? { extraHeaders: { Vary: 'Authorization' } } : {}),
  });
  if (!sent) throw new WharfError('NOT_FOUND', ['File']);
}
