// Fetching an OIDC issuer's discovery document and key set without becoming an SSRF proxy: https only, no redirects,
// a deadline and a size cap, and every address the host name resolves to is checked at connect time (a custom
// `lookup` on the request, so a DNS answer that changes between a check and the connection cannot slip past). Private,
// loopback and other non-public addresses are refused unless the issuer was allowed them.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request, type RequestOptions } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { createSecureContext, getCACertificates, type SecureContext } from 'node:tls';

// ---- Address classification ----

/** IPv4 ranges that are not public unicast: [first address, prefix length]. */
const V4_NON_PUBLIC: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local (cloud metadata services)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

function v4ToInt(a: string): number {
  const p = a.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

const V4_RULES = V4_NON_PUBLIC.map(([base, len]) => ({ base: v4ToInt(base), len }));

function v4NonPublic(ip: number): boolean {
  return V4_RULES.some(({ base, len }) => (len === 0 ? true : ip >>> (32 - len) === base >>> (32 - len)));
}

/** The 8 hextets of an IPv6 address (isIP(a) === 6 already checked), embedded dotted quads included. */
export function parseIPv6(a: string): number[] {
  let s = a;
  const tail: number[] = [];
  if (s.includes('.')) {
    const lastColon = s.lastIndexOf(':');
    const v4 = v4ToInt(s.slice(lastColon + 1));
    tail.push(v4 >>> 16, v4 & 0xffff);
    s = s.slice(0, lastColon + 1); // "...::" stays, "...x:" loses its colon
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const hex = (part: string) => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const dbl = s.indexOf('::');
  let groups: number[];
  if (dbl === -1) {
    groups = [...hex(s), ...tail];
  } else {
    const head = hex(s.slice(0, dbl));
    const rest = [...hex(s.slice(dbl + 2)), ...tail];
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  }
  return groups;
}

/**
 * True when `address` (an IP literal) is not a public unicast address: loopback, private (RFC 1918, ULA), link-local,
 * CGNAT, multicast, documentation, unspecified... IPv4 embedded in IPv6 (mapped, NAT64, 6to4) is judged by its IPv4
 * part. Anything that does not parse counts as non-public.
 */
export function isPrivateAddress(address: string): boolean {
  const a = address.split('%')[0]!; // a zone id only appears on link-local addresses
  const family = isIP(a);
  if (family === 4) return v4NonPublic(v4ToInt(a));
  if (family !== 6) return true;
  const g = parseIPv6(a);
  if (g.length !== 8 || g.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffff)) return true;
  const embedded = (hi: number, lo: number) => v4NonPublic(((hi << 16) | lo) >>> 0);
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return embedded(g[6]!, g[7]!); // ::ffff:a.b.c.d (mapped)
  if (zeros(0, 6)) return true; // ::, ::1, deprecated IPv4-compatible ::a.b.c.d
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return embedded(g[6]!, g[7]!); // 64:ff9b::/96 NAT64
  if (g[0] === 0x64 && g[1] === 0xff9b) return true; // 64:ff9b:1::/48 local-use NAT64
  if (g[0] === 0x2002) return embedded(g[1]!, g[2]!); // 6to4
  if (g[0] === 0x100 && zeros(1, 4)) return true; // 100::/64 discard
  if (g[0] === 0x2001 && g[1]! < 0x200) return true; // 2001::/23 IETF assignments (Teredo, ORCHID, ...)
  if (g[0] === 0x2001 && g[1] === 0xdb8) return true; // documentation
  if ((g[0]! & 0xfe00) === 0xfc00) return true; // fc00::/7 unique local
  if ((g[0]! & 0xffc0) === 0xfe80 || (g[0]! & 0xffc0) === 0xfec0) return true; // link-local, old site-local
  if ((g[0]! & 0xff00) === 0xff00) return true; // multicast
  return false;
}

// ---- Connect-time address check ----

export type Resolver = (hostname: string, callback: (err: Error | null, addresses: LookupAddress[]) => void) => void;

const systemResolver: Resolver = (hostname, callback) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => callback(err, addresses ?? []));

export class AddressRefusedError extends Error {}

/**
 * A `lookup` for http(s).request / net.connect that resolves with the system resolver and refuses the connection when
 * any resolved address is non-public (unless `allowPrivateNetwork`). `resolver` replaces the system resolver in tests.
 */
export function guardedLookup(allowPrivateNetwork: boolean, resolver: Resolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    resolver(hostname, (err, all) => {
      if (err) return callback(err, '', 0);
      const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
      const addresses = family ? all.filter((a) => a.family === family) : all;
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} does not resolve to any address`), { code: 'ENOTFOUND' }), '', 0);
      if (!allowPrivateNetwork) {
        const bad = addresses.find((a) => isPrivateAddress(a.address));
        if (bad) {
          return callback(
            new AddressRefusedError(`${hostname} resolves to ${bad.address}, a private, loopback or otherwise non-public address (an admin can allow that for a self-hosted issuer with allowPrivateNetwork)`),
            '',
            0,
          );
        }
      }
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

// ---- Trust store ----

let defaultCas: string[] | undefined;

/** The system store, Node's bundled Mozilla store and NODE_EXTRA_CA_CERTS, deduplicated; plus `extra`. */
export function trustedCas(extra: readonly string[] = []): string[] {
  defaultCas ??= [...new Set([...getCACertificates('system'), ...getCACertificates('bundled'), ...getCACertificates('extra')])];
  return extra.length ? [...new Set([...defaultCas, ...extra])] : defaultCas;
}

export function issuerTlsContext(extra: readonly string[] = []): SecureContext {
  return createSecureContext({ ca: trustedCas(extra) });
}

// ---- The fetch ----

export interface FetchJsonOptions {
  allowPrivateNetwork: boolean;
  secureContext: SecureContext;
  timeoutMs: number;
  maxBytes: number;
  /** replaces the system resolver (tests) */
  resolver?: Resolver;
}

/** GETs `url` (https only, no redirects) and parses the body as JSON; rejects with an Error saying what went wrong. */
export function fetchJson(url: string, o: FetchJsonOptions): Promise<unknown> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new Error(`${url} is not a URL`));
  }
  if (u.protocol !== 'https:') return Promise.reject(new Error(`${url} is not an https URL`));
  if (u.username || u.password) return Promise.reject(new Error(`${url} carries credentials`));
  // An IP literal never goes through `lookup`: check it here.
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (isIP(host) && !o.allowPrivateNetwork && isPrivateAddress(host)) {
    return Promise.reject(new AddressRefusedError(`${host} is a private, loopback or otherwise non-public address (an admin can allow that for a self-hosted issuer with allowPrivateNetwork)`));
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value);
    };
    // secureContext reaches tls.connect with the other options (the typings of https.request omit it).
    const options: RequestOptions & { secureContext: SecureContext } = {
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': 'wharf-oidc' },
      agent: false,
      secureContext: o.secureContext,
      lookup: guardedLookup(o.allowPrivateNetwork, o.resolver),
    };
    const req = request(
      u,
      options,
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          const where = res.headers.location ? ` (redirect to ${res.headers.location}; redirects are not followed)` : '';
          return finish(new Error(`${url} answered HTTP ${res.statusCode}${where}`));
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > o.maxBytes) {
          req.destroy();
          return finish(new Error(`${url} is larger than ${o.maxBytes} bytes`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > o.maxBytes) {
            req.destroy();
            finish(new Error(`${url} is larger than ${o.maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          try {
            finish(null, JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            finish(new Error(`${url} did not return JSON`));
          }
        });
        res.on('error', (e) => finish(e));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish(new Error(`${url} did not answer within ${o.timeoutMs / 1000} s`));
    }, o.timeoutMs);
    req.on('error', (e) => finish(e instanceof AddressRefusedError ? e : new Error(`${url}: ${e.message}`)));
    req.end();
  });
}
