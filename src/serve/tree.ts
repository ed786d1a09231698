// GET/HEAD /ORG/REPO/... : the published repository tree, straight from blob storage.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.ts';
import type { RepositoryInfo } from '../services/repositories.ts';
import { WharfError } from '../errors.ts';
import { presentedToken } from '../api/http.ts';
import { repoTreePrefix } from '../services/tree.ts';
import { cacheControlOf, contentTypeOf, isImmutablePath, sendBlob } from './tree-files.ts';

export async function handleTree(app: App, req: IncomingMessage, res: ServerResponse, seg: string[], publicUrl: string): Promise<void> {
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
  if (rest.length === 2 && rest[1]!.endsWith('.repo')) {
    const text = await repoFile(app, repo, rest[0]!, rest[1]!.slice(0, -'.repo'.length), publicUrl);
    if (text !== undefined) {
      res.writeHead(200, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(text),
        'Cache-Control': repo.private ? 'private, no-store' : 'public, max-age=300',
        ...(repo.private ? { Vary: 'Authorization' } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
  }
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

/** The .repo file for dnf/yum of an RPM distribution, or undefined when there is no such distribution. */
async function repoFile(app: App, repo: RepositoryInfo, os: string, dist: string, publicUrl: string): Promise<string | undefined> {
  const d = await app.db
    .selectFrom('distributions')
    .select('kind')
    .where('repo_id', '=', repo.id)
    .where('os', '=', os)
    .where('name', '=', dist)
    .executeTakeFirst();
  if (d?.kind !== 'rpm') return undefined;
  const base = `${publicUrl}/${repo.org}/${repo.name}`;
  const id = `${repo.org}-${repo.name}-${os}-${dist}`.replace(/[^A-Za-z0-9_.:-]/g, '_');
  return [
    `[${id}]`,
    `name=${repo.org}/${repo.name} ${os}/${dist}`,
    `baseurl=${base}/${os}/${dist}/$basearch`,
    'enabled=1',
    'gpgcheck=1',
    'repo_gpgcheck=1',
    `gpgkey=${base}/gpgkey ${base}/package-gpgkey`,
    'sslverify=1',
    'metadata_expire=300',
    '',
  ].join('\n');
}
