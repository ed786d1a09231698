// AWS Signature Version 4 for S3, with node:crypto only: header signing for requests and query-string presigning.
// Reference: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
// Small on purpose, so it can be read whole. The presign path is checked against AWS's published example
// (s3-blob-store.test.ts), the header path against the test S3 server, which recomputes every signature.

import { createHash, createHmac } from 'node:crypto';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Uint8Array, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** RFC 3986 percent-encoding as SigV4 wants it: everything but A-Z a-z 0-9 - . _ ~ is encoded. */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** A path encoded segment by segment ('/' kept): the canonical URI of S3 (encoded once, never normalised). */
export function encodePath(path: string): string {
  return path.split('/').map(uriEncode).join('/');
}

export function canonicalQuery(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** '20130524T000000Z' */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

const keyCache = new Map<string, Buffer>();

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const id = `${sha256Hex(secret)}/${date}/${region}/${service}`; // the cache never keys on the secret itself
  let k = keyCache.get(id);
  if (!k) {
    k = hmac(hmac(hmac(hmac('AWS4' + secret, date), region), service), 'aws4_request');
    if (keyCache.size > 32) keyCache.clear();
    keyCache.set(id, k);
  }
  return k;
}

interface CanonicalInput {
  method: string;
  /** Already encoded (encodePath). */
  path: string;
  query: Record<string, string>;
  /** lower-case name → value; all of them are signed. */
  headers: Record<string, string>;
  payloadHash: string;
}

function signature(creds: Credentials, region: string, service: string, when: string, req: CanonicalInput) {
  const names = Object.keys(req.headers).sort();
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    req.method,
    req.path,
    canonicalQuery(req.query),
    names.map((n) => `${n}:${req.headers[n]!.trim().replace(/\s+/g, ' ')}\n`).join(''),
    signedHeaders,
    req.payloadHash,
  ].join('\n');
  const date = when.slice(0, 8);
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', when, scope, sha256Hex(canonicalRequest)].join('\n');
  const sig = createHmac('sha256', signingKey(creds.secretAccessKey, date, region, service)).update(stringToSign, 'utf8').digest('hex');
  return { sig, scope, signedHeaders };
}

export interface SignInput {
  method: string;
  host: string;
  /** Encoded path (encodePath). */
  path: string;
  query?: Record<string, string>;
  /** Extra headers to sign and send (lower-case names). */
  headers?: Record<string, string>;
  /** Hex SHA-256 of the body, EMPTY_SHA256, or UNSIGNED_PAYLOAD. */
  payloadHash: string;
  region: string;
  now?: Date;
  service?: string;
}

/** The headers to send (host, x-amz-date, x-amz-content-sha256, [x-amz-security-token], authorization, extras). */
export function signHeaders(creds: Credentials, input: SignInput): Record<string, string> {
  const when = amzDate(input.now ?? new Date());
  const headers: Record<string, string> = {
    ...input.headers,
    host: input.host,
    'x-amz-date': when,
    'x-amz-content-sha256': input.payloadHash,
  };
  if (creds.sessionToken) headers['x-amz-security-token'] = creds.sessionToken;
  const { sig, scope, signedHeaders } = signature(creds, input.region, input.service ?? 's3', when, {
    method: input.method,
    path: input.path,
    query: input.query ?? {},
    headers,
    payloadHash: input.payloadHash,
  });
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${sig}`;
  return headers;
}

/** The query string (without '?') of a presigned request: only the host header is signed, the payload is not. */
export function presignQuery(
  creds: Credentials,
  input: { method: string; host: string; path: string; region: string; expiresSeconds: number; now?: Date; service?: string; query?: Record<string, string> },
): string {
  const when = amzDate(input.now ?? new Date());
  const service = input.service ?? 's3';
  const query: Record<string, string> = {
    ...input.query,
    'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
    'X-Amz-Credential': `${creds.accessKeyId}/${when.slice(0, 8)}/${input.region}/${service}/aws4_request`,
    'X-Amz-Date': when,
    'X-Amz-Expires': String(input.expiresSeconds),
    'X-Amz-SignedHeaders': 'host',
  };
  if (creds.sessionToken) query['X-Amz-Security-Token'] = creds.sessionToken;
  const { sig } = signature(creds, input.region, service, when, {
    method: input.method,
    path: input.path,
    query,
    headers: { host: input.host },
    payloadHash: UNSIGNED_PAYLOAD,
  });
  return `${canonicalQuery(query)}&X-Amz-Signature=${sig}`;
}
