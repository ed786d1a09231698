// The S3 settings, parsed and validated: what config.ts needs from the S3 store, without loading the store itself
// (node:https and friends cost the CLI start-up time it runs on every call).
import type { Agent } from 'node:http';
import { validateKey } from '../blob-store.ts';
import type { Credentials } from './sigv4.ts';

export interface S3Location {
  bucket: string;
  /** '' or a key prefix ending in '/'. */
  prefix: string;
}

export interface S3StoreOptions extends Credentials {
  bucket: string;
  /** Key prefix inside the bucket ('' or 'a/b', a trailing '/' is implied). */
  prefix?: string;
  /** e.g. 'https://storage.googleapis.com'; default https://s3.<region>.amazonaws.com. */
  endpoint?: string;
  /** Signing region; default 'us-east-1' ('auto' for R2). */
  region?: string;
  /** https://host/bucket/key instead of https://bucket.host/key. Default false (always path style for dotted bucket names). */
  forcePathStyle?: boolean;
  /** putFile uses a multipart upload from this size on. Default 64 MiB; at least partSize. */
  multipartThreshold?: number;
  /** Part size for multipart uploads (and the in-memory buffer for streamed puts). Default 8 MiB, at least 5 MiB. */
  partSize?: number;
  /** Parts of one putFile uploaded at once. Default 4. */
  partConcurrency?: number;
  /** Keys per ListObjectsV2 page (1-1000). Default 1000. */
  listPageSize?: number;
  /** Copies larger than this use UploadPartCopy (CopyObject's limit is 5 GiB). Default 5 GiB. */
  copyPartThreshold?: number;
  /** Refuse keys that are a "directory" of blobs or lie below a blob, like the filesystem. Default true. */
  checkKeyConflicts?: boolean;
  /** Attempts for a request failing with a network error or 500/502/503/504. Default 4. */
  maxAttempts?: number;
  /** Socket idle timeout, ms. Default 120 000. */
  timeoutMs?: number;
  /** Custom agent (tests; proxies). Default: a keep-alive agent per store. */
  agent?: Agent;
  /** Clock for signing (tests). */
  now?: () => Date;
}

/** 's3://bucket' or 's3://bucket/some/prefix' → { bucket, prefix: '' | 'some/prefix/' }. */
export function parseS3Location(url: string): S3Location {
  const m = /^s3:\/\/([^/?#]+)(\/[^?#]*)?$/.exec(url);
  if (!m) throw new Error(`Invalid S3 storage location "${url}": expected s3://BUCKET or s3://BUCKET/PREFIX`);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new Error(`Invalid S3 bucket name "${bucket}": lower-case letters, digits, '.', '-' and '_', 3-222 characters`);
  }
  const path = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (path === '') return { bucket, prefix: '' };
  try {
    validateKey(path);
  } catch {
    throw new Error(`Invalid S3 key prefix "${path}": no empty, "." or ".." segments, no backslash`);
  }
  return { bucket, prefix: path + '/' };
}

function truthy(name: string, v: string | undefined): boolean | undefined {
  if (v === undefined || v === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new Error(`${name} must be true or false, not "${v}"`);
}

/**
 * The S3 settings from the environment: WHARF_STORAGE=s3://bucket/prefix, WHARF_S3_ENDPOINT, WHARF_S3_REGION
 * (else AWS_REGION, AWS_DEFAULT_REGION, 'us-east-1'), WHARF_S3_FORCE_PATH_STYLE, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. Pure: reads only `env`. Error messages name variables, never values of
 * secrets.
 */
export function s3OptionsFromEnv(env: Readonly<Record<string, string | undefined>>): S3StoreOptions {
  const storage = env.WHARF_STORAGE ?? '';
  const location = parseS3Location(storage);
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error('S3 storage needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for GCS: an HMAC key; for R2: an API token\'s S3 key pair)');
  }
  const endpoint = env.WHARF_S3_ENDPOINT || undefined;
  if (endpoint !== undefined) normaliseEndpoint(endpoint);
  const opts: S3StoreOptions = {
    ...location,
    accessKeyId,
    secretAccessKey,
    region: env.WHARF_S3_REGION || env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
  };
  if (env.AWS_SESSION_TOKEN) opts.sessionToken = env.AWS_SESSION_TOKEN;
  if (endpoint !== undefined) opts.endpoint = endpoint;
  const pathStyle = truthy('WHARF_S3_FORCE_PATH_STYLE', env.WHARF_S3_FORCE_PATH_STYLE);
  if (pathStyle !== undefined) opts.forcePathStyle = pathStyle;
  return opts;
}

export function normaliseEndpoint(endpoint: string): URL {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new Error(`Invalid S3 endpoint "${endpoint}": expected http(s)://host[:port]`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || u.search || u.hash || (u.pathname !== '/' && u.pathname !== '')) {
    throw new Error(`Invalid S3 endpoint "${u.protocol}//${u.host}${u.pathname}": expected http(s)://host[:port] with no path, query or user`);
  }
  return u;
}

