// GET/HEAD /ORG/REPO/... : the published repository tree, straight from blob storage.
//
// Public repositories are served to anyone and cacheable. Private ones need credentials with read access (HTTP Basic
// or Bearer); without them the answer is 401, exactly as for a repository that does not exist, so names cannot be
// probed. Their metadata is served directly; their package files answer 302 to a short-lived signed URL, which any
// node verifies without the database. Every private response carries `Cache-Control: private, no-store`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.ts';
import type { RepositoryInfo } from '../services/repositories.ts';
import { WharfError } from '../errors.ts';
import type { Credentials } from '../api/http.ts';
import { authenticateRequest } from '../api/auth.ts';
import { allows } from '../services/tokens.ts';
import { repoTreePrefix } from '../services/tree.ts';
import { cacheControlOf, contentTypeOf, isImmutablePath, sendBlob } from './tree-files.ts';

const PRIVATE_HEADERS = { 'Cache-Control': 'private, no-store', Vary: 'Authorization' } as const;

/** Package files of either format: what private repositories hand out through signed URLs. */
function isPackageFile(path: string): boolean {
  return path.endsWith('.deb') || path.endsWith('.rpm');
}

export async function handleTree(app: App, req: IncomingMessage, res: ServerResponse, seg: string[], publicUrl: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new WharfError('METHOD_NOT_ALLOWED', [req.method ?? '']);
  const [org, name, ...rest] = seg;
  const repo = org && name ? await app.repos.find(org, name) : undefined;
  const target = req.url ?? '/';
  const query = new URL(target, publicUrl).searchParams;
  const path = rest.join('/');

  if (repo?.private && query.has('signature')) {
    // A signed download link: no credentials needed, the signature is the authorisation.
    if (!isPackageFile(path) || !app.urlSigner.verify('GET', target.split('?', 1)[0]!, query.get('expires'), query.get('signature'))) {
      throw new WharfError('SIGNED_URL_INVALID');
    }
    return serveFile(app, req, res, repo, path);
  }

  let credentials: Credentials | undefined;
  if (!repo || repo.private) {
    const auth = await authenticateRequest(app, req);
    credentials = auth.credentials;
    const p = auth.principal;
    if (!repo) {
      // The server admin may learn that a repository does not exist; nobody else can tell it from a private one.
      if (p?.kind === 'admin') throw new WharfError('NOT_FOUND', ['File']);
      throw new WharfError('UNAUTHORIZED');
    }
    if (!allows(p, 'read', repo.org_id, repo.id)) throw new WharfError('UNAUTHORIZED');
  }
  if (rest.length === 0) throw new WharfError('NOT_FOUND', ['File']);

  if (rest.length === 2 && rest[1]!.endsWith('.repo')) {
    const text = await repoFile(app, repo, rest[0]!, rest[1]!.slice(0, -'.repo'.length), publicUrl, credentials);
    if (text !== undefined) {
      res.writeHead(200, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(text),
        ...(repo.private ? PRIVATE_HEADERS : { 'Cache-Control': 'public, max-age=300' }),
      });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
  }

  if (repo.private && isPackageFile(path)) {
    const key = `${repoTreePrefix(repo.org, repo.name, true)}/${path}`;
    if (!(await app.store.stat(key))) throw new WharfError('NOT_FOUND', ['File']);
    const location = `${publicUrl}${app.urlSigner.sign('GET', target.split('?', 1)[0]!)}`;
    app.metrics.redirects.inc();
    res.writeHead(302, { Location: location, 'Content-Length': 0, ...PRIVATE_HEADERS });
    res.end();
    return;
  }
  return serveFile(app, req, res, repo, path);
}

async function serveFile(app: App, req: IncomingMessage, res: ServerResponse, repo: RepositoryInfo, path: string): Promise<void> {
  const key = `${repoTreePrefix(repo.org, repo.name, repo.private)}/${path}`;
  const sent = await sendBlob(req, res, app.store, key, {
    cacheControl: cacheControlOf(`/${path}`, repo.private),
    contentType: contentTypeOf(path),
    mutable: !isImmutablePath(`/${path}`),
    ...(repo.private ? { extraHeaders: { Vary: 'Authorization' } } : {}),
  });
  if (!sent) throw new WharfError('NOT_FOUND', ['File']);
}

/**
 * The .repo file for dnf/yum of an RPM distribution, or undefined when there is no such distribution. For a private
 * repository it carries the credentials the request was made with (the response is private and never cached).
 */
async function repoFile(app: App, repo: RepositoryInfo, os: string, dist: string, publicUrl: string, credentials: Credentials | undefined): Promise<string | undefined> {
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
  const lines = [
    `[${id}]`,
    `name=${repo.org}/${repo.name} ${os}/${dist}`,
    `baseurl=${base}/${os}/${dist}/$basearch`,
    'enabled=1',
    'gpgcheck=1',
    'repo_gpgcheck=1',
    `gpgkey=${base}/gpgkey ${base}/package-gpgkey`,
    'sslverify=1',
    'metadata_expire=300',
  ];
  if (repo.private) {
    lines.push('# A private repository: dnf authenticates with HTTP Basic (a deploy token: wharf token create).');
    if (credentials && /^[\x21-\x7e]+$/.test(credentials.secret) && (!credentials.username || /^[\x21-\x7e]+$/.test(credentials.username))) {
      lines.push(`username=${credentials.username ?? credentials.secret}`, `password=${credentials.username ? credentials.secret : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}
