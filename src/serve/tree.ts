// GET/HEAD /ORG/REPO/... : the published repository tree, straight from blob storage.
//
// Public repositories are served to anyone and cacheable. Private ones need credentials with read access (HTTP Basic
// or Bearer); without them the answer is 401, exactly as for a repository that does not exist, so names cannot be
// probed. Their metadata is served directly; their package files answer 302 to a short-lived URL: presigned by the
// blob store when it has one (S3: the bytes then never pass through Wharf), else Wharf's own HMAC-signed URL, which
// any node verifies without the database. Every private response carries `Cache-Control: private, no-store`.
//
// With --public-base-url (a CDN or web server over the public/ tree, same layout as Wharf's URLs), a public
// repository's immutable files answer 302 there; its mutable metadata is still served here, so it is always current.
// A private repository never redirects there.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.ts';
import type { RepositoryInfo } from '../services/repositories.ts';
import { WharfError } from '../errors.ts';
import type { Credentials } from '../api/http.ts';
import { authenticateRequest } from '../api/auth.ts';
import { allows } from '../services/tokens.ts';
import { repoTreePrefix } from '../services/tree.ts';
import { cacheControlOf, contentTypeOf, isImmutablePath, sendBlob } from './tree-files.ts';
import { isPlainIndexPath, PlainIndexes } from './plain-index.ts';

const PRIVATE_HEADERS = { 'Cache-Control': 'private, no-store', Vary: 'Authorization' } as const;
const VARY_AUTHORIZATION: Record<string, string> = { Vary: 'Authorization' };

/** Package files of either format: what private repositories hand out through signed URLs. */
function isPackageFile(path: string): boolean {
  return path.endsWith('.deb') || path.endsWith('.rpm');
}

export async function handleTree(app: App, req: IncomingMessage, res: ServerResponse, seg: string[], publicUrl: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new WharfError('METHOD_NOT_ALLOWED', [req.method ?? '']);
  const [org, name, ...rest] = seg;
  let repo: RepositoryInfo | undefined;
  if (org && name) {
    // The same few repositories on every request: from the cache without waiting on a promise when possible.
    const hit = app.repos.peekCached(org, name);
    repo = hit !== false ? hit : await app.repos.findCached(org, name);
  }
  const target = req.url ?? '/';
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const path = rest.join('/');

  // Only a private repository's signed links have a query that means anything; without a '?' there is none to parse.
  const query = repo?.private && q >= 0 ? new URL(target, publicUrl).searchParams : undefined;
  if (repo && query?.has('signature')) {
    // A signed download link: no credentials needed, the signature is the authorisation.
    if (!isPackageFile(path) || !app.urlSigner.verify('GET', rawPath, query.get('expires'), query.get('signature'))) {
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

  if (rest.length === 1 && rest[0] === 'install') {
    const text = await installInstructions(app, repo, publicUrl);
    res.writeHead(200, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      ...(repo.private ? PRIVATE_HEADERS : { 'Cache-Control': 'public, max-age=60' }),
    });
    res.end(req.method === 'HEAD' ? undefined : text);
    return;
  }
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
    const stat = app.metadataCache.peekStat(key);
    if (!(stat !== false ? stat : await app.metadataCache.stat(key))) throw new WharfError('NOT_FOUND', ['File']);
    // A presigned URL is valid for its one method (S3 refuses a HEAD of a GET URL): HEAD gets Wharf's own link.
    const presigned = req.method === 'GET' ? app.store.presignedGetUrl?.(key, app.config.signedUrlSeconds) : undefined;
    const location = presigned ?? `${publicUrl}${app.urlSigner.sign('GET', rawPath)}`;
    app.metrics.redirects.inc();
    res.writeHead(302, { Location: location, 'Content-Length': 0, 'Cache-Control': PRIVATE_HEADERS['Cache-Control'], Vary: PRIVATE_HEADERS.Vary });
    res.end();
    return;
  }
  if (!repo.private && app.config.publicBaseUrl && isImmutablePath(`/${path}`)) {
    // Not checked for existence: the CDN answers 404 itself, and Wharf stays out of the download entirely.
    res.writeHead(302, { Location: publicBaseLocation(app.config.publicBaseUrl, repo, rest), 'Content-Length': 0, 'Cache-Control': PUBLIC_REDIRECT_CACHE });
    res.end();
    return;
  }
  return serveFile(app, req, res, repo, path);
}

/**
 * A redirect that names an immutable file never changes while the file exists, but the operator may move the CDN:
 * cached for a day, not for a year like the file itself.
 */
const PUBLIC_REDIRECT_CACHE = 'public, max-age=86400';

/** The file's URL under the public base URL: the blob key after `public/`, each segment percent-encoded. */
function publicBaseLocation(base: string, repo: RepositoryInfo, rest: readonly string[]): string {
  return `${base}/${[repo.org, repo.name, ...rest].map(encodeURIComponent).join('/')}`;
}

async function serveFile(app: App, req: IncomingMessage, res: ServerResponse, repo: RepositoryInfo, path: string): Promise<void> {
  const key = `${repoTreePrefix(repo.org, repo.name, repo.private)}/${path}`;
  // Only over the data directory: nginx cannot reach a bucket through its internal location.
  if (app.config.accelRedirect && isPackageFile(path) && app.store.localPath) {
    // nginx serves the bytes (ranges, sendfile, conditional requests) from its internal location over DATA/storage;
    // Wharf has already authorised the request. Headers set here are kept by nginx.
    const stat = app.metadataCache.peekStat(key);
    if (!(stat !== false ? stat : await app.metadataCache.stat(key))) throw new WharfError('NOT_FOUND', ['File']);
    res.writeHead(200, {
      'X-Accel-Redirect': `${app.config.accelRedirect}/${key.split('/').map(encodeURIComponent).join('/')}`,
      'Content-Type': contentTypeOf(path),
      'Cache-Control': cacheControlOf(`/${path}`, repo.private),
      ...(repo.private ? { Vary: 'Authorization' } : {}),
    });
    res.end();
    return;
  }
  const slashPath = `/${path}`;
  const opts = {
    cacheControl: cacheControlOf(slashPath, repo.private),
    contentType: contentTypeOf(path),
    mutable: !isImmutablePath(slashPath),
    ...(repo.private ? { extraHeaders: VARY_AUTHORIZATION } : {}),
  };
  // The uncompressed Packages is not stored (plain-index.ts): decompressed from Packages.gz on request.
  if (isPlainIndexPath(path)) {
    const gzStat = await app.store.stat(`${key}.gz`);
    if (!gzStat) throw new WharfError('NOT_FOUND', ['File']);
    const etag = PlainIndexes.etagOf(gzStat.etag);
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
      // Unchanged: answered without decompressing anything.
      res.writeHead(304, { ETag: etag, 'Cache-Control': opts.cacheControl, ...(opts.extraHeaders ?? {}) });
      res.end();
      return;
    }
    let plain = plainIndexes.get(app);
    if (!plain) plainIndexes.set(app, (plain = new PlainIndexes()));
    const view = await plain.view(app.store, key, gzStat);
    if (view && (await sendBlob(req, res, view, key, opts))) return;
    throw new WharfError('NOT_FOUND', ['File']);
  }
  if (await sendBlob(req, res, app.store, key, { ...opts, cache: app.metadataCache })) return;
  throw new WharfError('NOT_FOUND', ['File']);
}

const plainIndexes = new WeakMap<App, PlainIndexes>();

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
    // Without package signing the packages carry whatever signature they came with, or none: the signed metadata
    // (repo_gpgcheck) still pins each package's SHA-256, and gpgcheck=1 would refuse every unsigned one.
    ...(repo.sign_packages
      ? ['gpgcheck=1', 'repo_gpgcheck=1', `gpgkey=${base}/gpgkey ${base}/package-gpgkey`]
      : [
          '# Wharf does not sign the packages of this repository: the signed metadata carries their SHA-256 checksums.',
          "# If they carry their publisher's signatures, set gpgcheck=1 and add that publisher's key to gpgkey.",
          'gpgcheck=0',
          'repo_gpgcheck=1',
          `gpgkey=${base}/gpgkey`,
        ]),
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

/** GET /ORG/REPO/install: how to set the repository up with apt, dnf and zypper, for each of its distributions. */
async function installInstructions(app: App, repo: RepositoryInfo, publicUrl: string): Promise<string> {
  const dists = await app.db
    .selectFrom('distributions')
    .select(['kind', 'os', 'name'])
    .where('repo_id', '=', repo.id)
    .orderBy('os')
    .orderBy('name')
    .execute();
  const base = `${publicUrl}/${repo.org}/${repo.name}`;
  const host = new URL(publicUrl);
  const slug = `${repo.org}-${repo.name}`;
  const out = [`# ${repo.org}/${repo.name}${repo.private ? ' (private)' : ''}`, ''];
  if (repo.private) {
    out.push(
      '# A private repository: use a deploy token (wharf token create ' + `${repo.org}/${repo.name}` + ' --name NAME).',
      '# Below, USERNAME and TOKEN are its user name and secret; package managers send them with HTTP Basic.',
      '',
    );
  }
  if (dists.length === 0) out.push('# Nothing has been pushed yet.');
  for (const d of dists) {
    out.push(`## ${d.os}/${d.name} (${d.kind === 'rpm' ? 'dnf, yum, zypper' : 'apt'})`);
    if (d.kind === 'deb') {
      if (repo.private) {
        out.push(
          `echo "machine ${host.protocol === 'https:' ? '' : 'http://'}${host.host}/${repo.org}/${repo.name}/ login USERNAME password TOKEN" | sudo tee /etc/apt/auth.conf.d/${slug}.conf`,
          `sudo chmod 600 /etc/apt/auth.conf.d/${slug}.conf`,
          `curl -fsSL -u USERNAME:TOKEN ${base}/gpgkey | sudo gpg --dearmor -o /usr/share/keyrings/${slug}.gpg`,
        );
      } else {
        out.push(`curl -fsSL ${base}/gpgkey | sudo gpg --dearmor -o /usr/share/keyrings/${slug}.gpg`);
      }
      out.push(
        `echo "deb [signed-by=/usr/share/keyrings/${slug}.gpg] ${base}/${d.os}/ ${d.name} main" | sudo tee /etc/apt/sources.list.d/${slug}.list`,
        'sudo apt-get update',
      );
    } else {
      const auth = repo.private ? '-u USERNAME:TOKEN ' : '';
      out.push(
        `sudo curl -fsSL ${auth}-o /etc/yum.repos.d/${slug}.repo ${base}/${d.os}/${d.name}.repo   # dnf / yum`,
        `sudo zypper addrepo ${repo.private ? base.replace('://', '://USERNAME:TOKEN@') : base}/${d.os}/${d.name}/x86_64 ${slug}   # zypper (or aarch64)`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}
