// Serves files of the published tree from blob storage: GET and HEAD with Content-Length, ETag, Last-Modified,
// single byte ranges, If-Range and conditional requests, and a Cache-Control that matches what the file is.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { BlobStore, BlobStat } from '../storage/blob-store.ts';
import type { CachedBlob, MetadataCache } from './metadata-cache.ts';

/** How long a mutable metadata file may be cached: apt must see a new InRelease quickly. */
const METADATA_MAX_AGE = 60;
const IMMUTABLE = 'public, max-age=31536000, immutable';

export function contentTypeOf(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (base.endsWith('.deb')) return 'application/vnd.debian.binary-package';
  if (base.endsWith('.rpm')) return 'application/x-rpm';
  if (base.endsWith('.xml')) return 'application/xml';
  if (base.endsWith('.key')) return 'application/pgp-keys';
  if (base.endsWith('.gz')) return 'application/gzip';
  if (base.endsWith('.xz')) return 'application/x-xz';
  if (base.endsWith('.gpg') || base.endsWith('.asc')) return 'application/pgp-signature';
  if (base === 'gpgkey' || base === 'package-gpgkey') return 'application/pgp-keys';
  if (path.includes('/by-hash/')) return 'application/octet-stream';
  return 'text/plain; charset=utf-8';
}

/** An APT index named by its content: dists/DIST/COMPONENT/binary-ARCH/by-hash/SHA256/<hex> */
const BY_HASH = /\/by-hash\/(?:MD5Sum|SHA1|SHA256|SHA512)\/[0-9a-f]{32,128}$/;
/** RPM data files are content-addressed: repodata/<sha256>-primary.xml.gz */
const REPODATA_FILE = /\/repodata\/[0-9a-f]{64}-[^/]+$/;

/**
 * Content that never changes under its name (content-addressed indexes, immutable packages) vs mutable metadata.
 * `path` is `/OS/…` below the repository. Decided by the file's own name, not by a directory in its path: a
 * distribution may be named "pool" or "by-hash", and its InRelease must not be cached for a year (or be redirected
 * to the public base URL).
 */
export function isImmutablePath(path: string): boolean {
  // Package files (Debian pool files are .deb files; no metadata file's name ends like a package).
  if (path.endsWith('.deb') || path.endsWith('.rpm')) return true;
  return BY_HASH.test(path) || REPODATA_FILE.test(path);
}

export function cacheControlOf(path: string, isPrivate: boolean): string {
  if (isPrivate) return 'private, no-store';
  if (isImmutablePath(path)) return IMMUTABLE;
  return `public, max-age=${METADATA_MAX_AGE}`;
}

function parseRange(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // malformed or multiple ranges: serve the whole file
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (start >= size || start > end) return 'unsatisfiable';
  }
  return { start, end };
}

function etagMatches(header: string, etag: string): boolean {
  const weak = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || weak(t) === weak(etag));
}

/**
 * If-Modified-Since has one-second resolution, but metadata can be republished twice within a second. For mutable
 * files a 304 is only safe when the file is older than the whole second the client names; otherwise a client that
 * fetched InRelease early in a second would keep the old one after a republish later in that second.
 */
function notModifiedSince(req: IncomingMessage, stat: BlobStat, mutable: boolean): boolean {
  const ims = req.headers['if-modified-since'];
  if (!ims || req.headers['if-none-match']) return false;
  const t = Date.parse(ims);
  if (Number.isNaN(t)) return false;
  const modified = Math.floor(stat.mtime.getTime() / 1000);
  const since = Math.floor(t / 1000);
  return mutable ? modified < since : modified <= since;
}

/**
 * Sends the blob at `key`. Returns false when it does not exist (the caller answers 404).
 * `extraHeaders` go on every response (e.g. Vary for private trees).
 */
export async function sendBlob(
  req: IncomingMessage,
  res: ServerResponse,
  store: Pick<BlobStore, 'stat' | 'open'>,
  key: string,
  opts: { cacheControl: string; contentType: string; mutable: boolean; extraHeaders?: Record<string, string>; cache?: MetadataCache },
): Promise<boolean> {
  let cached: CachedBlob | undefined;
  if (opts.cache && opts.mutable) {
    // Served from memory, usually without waiting on a promise.
    const c = opts.cache.peek(key) ?? (await opts.cache.get(key));
    if (c === 'absent') return false;
    if (c !== 'large') cached = c;
  }
  const stat = cached?.stat ?? (await store.stat(key));
  if (!stat) return false;
  const headers: Record<string, string | number> = {
    'Content-Type': opts.contentType,
    'Cache-Control': opts.cacheControl,
    ETag: stat.etag,
    'Last-Modified': cached ? cached.lastModified : stat.mtime.toUTCString(),
    'Accept-Ranges': 'bytes',
  };
  if (opts.extraHeaders) Object.assign(headers, opts.extraHeaders);
  const inm = req.headers['if-none-match'];
  if ((inm && etagMatches(inm, stat.etag)) || notModifiedSince(req, stat, opts.mutable)) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  let range: { start: number; end: number } | undefined;
  const rangeHeader = req.headers.range;
  if (rangeHeader) {
    const ifRange = req.headers['if-range'] as string | undefined;
    const rangeApplies =
      !ifRange ||
      (ifRange.startsWith('"') || ifRange.startsWith('W/') ? ifRange === stat.etag : Date.parse(ifRange) >= Math.floor(stat.mtime.getTime() / 1000) * 1000);
    if (rangeApplies) {
      const r = parseRange(rangeHeader, stat.size);
      if (r === 'unsatisfiable') {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${stat.size}`, 'Content-Length': 0 });
        res.end();
        return true;
      }
      range = r;
    }
  }
  if (range) {
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${stat.size}`;
    headers['Content-Length'] = range.end - range.start + 1;
  } else {
    headers['Content-Length'] = stat.size;
  }
  if (req.method === 'HEAD') {
    res.writeHead(range ? 206 : 200, headers);
    res.end();
    return true;
  }
  if (cached) {
    res.writeHead(range ? 206 : 200, headers);
    if (range) res.end(cached.body.subarray(range.start, range.end + 1));
    else res.end(cached.latin1, 'latin1');
    return true;
  }
  const body = await store.open(key, range ? { start: range.start, end: range.end + 1 } : undefined);
  if (!body) return false;
  res.writeHead(range ? 206 : 200, headers);
  await pipeline(body, res);
  return true;
}
