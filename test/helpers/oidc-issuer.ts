// A real OIDC issuer for tests: a throw-away CA and a server certificate for localhost (made with the openssl CLI),
// HTTPS on 127.0.0.1, a discovery document and a JWKS of RS256 keys, and tokens shaped like GitLab CI id_tokens and
// GitHub Actions OIDC tokens. Knobs make it misbehave (jwks_uri on another origin, errors, huge key sets, key rotation)
// and counters show what Wharf fetched.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

const execFileP = promisify(execFile);

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

export interface MintOptions {
  /** claims to set; a value of undefined deletes the claim */
  claims?: Record<string, unknown>;
  /** protected header fields to set (kid, alg, typ...); undefined deletes (e.g. { kid: undefined }) */
  header?: Record<string, unknown>;
  /** sign with this key instead of the current one (its kid goes into the header unless overridden) */
  key?: SigningKey;
  /** the audience (default: the issuer's default audience) */
  audience?: string | string[];
}

export interface Misbehaviour {
  /** jwks_uri advertised in the discovery document (default: this issuer's /oauth/discovery/keys) */
  jwksUri?: string;
  /** `issuer` in the discovery document (default: the issuer URL) */
  discoveryIssuer?: string;
  /** id_token_signing_alg_values_supported (default ['RS256']) */
  algs?: string[];
  /** answer every request with this HTTP status */
  status?: number;
  /** serve this body as the JWKS instead of the published keys */
  jwks?: unknown;
  /** pad the JWKS response with this many bytes of whitespace */
  jwksPadding?: number;
}

export interface TestOidcIssuer {
  /** https://localhost:PORT[/path]: the `iss` of the tokens */
  readonly url: string;
  readonly port: number;
  /** the CA certificate (PEM) and its file, for extraCa or NODE_EXTRA_CA_CERTS */
  readonly caPem: string;
  readonly caPath: string;
  /** requests served, by kind */
  readonly stats: { requests: number; discovery: number; jwks: number };
  /** set fields to make the issuer misbehave; reset with `misbehave = {}` */
  misbehave: Misbehaviour;
  /** the key tokens are signed with */
  readonly current: SigningKey;
  /** the keys in the JWKS */
  readonly published: SigningKey[];
  /** a fresh RS256 key that is not published (sign with it through MintOptions.key) */
  newKey(alg?: string): Promise<SigningKey>;
  /** publishes a new key and signs with it from now on; the old keys stay published unless dropOld */
  rotateKey(opts?: { dropOld?: boolean }): Promise<SigningKey>;
  /** the default claim sets (with overrides applied), for building tokens by hand */
  gitlabClaims(overrides?: Record<string, unknown>): Record<string, unknown>;
  githubClaims(overrides?: Record<string, unknown>): Record<string, unknown>;
  mintGitLab(o?: MintOptions): Promise<string>;
  mintGitHub(o?: MintOptions): Promise<string>;
  /** signs exactly these claims (no defaults) */
  sign(claims: Record<string, unknown>, o?: Omit<MintOptions, 'claims' | 'audience'>): Promise<string>;
  /** SPKI PEM of the current key (for algorithm-confusion tests) */
  publicKeyPem(): Promise<string>;
  close(): Promise<void>;
}

export interface TestIssuerOptions {
  /** the audience put in tokens by default */
  audience?: string;
  /** a path under the origin, for issuers such as https://host/gitlab (no trailing slash) */
  path?: string;
  /** the clock tokens are stamped with (ms) */
  now?: () => number;
  /** token lifetime in seconds (default 300, GitLab's default job timeout is longer but tokens are checked anyway) */
  ttl?: number;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await execFileP('openssl', args, { cwd });
}

async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  // EC keys: much faster to generate than RSA, and any TLS client accepts them.
  await openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=Wharf OIDC Test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', 'ca-key.pem', '-out', 'ca.pem'],
    dir,
  ); // prettier-ignore
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server-key.pem', '-out', 'server.csr'], dir);
  await writeFile(
    join(dir, 'server.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
  );
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-sha256', '-extfile', 'server.ext', '-out', 'server.pem'], dir);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server-key.pem') };
}

async function makeKey(alg = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

function applyOverrides(base: Record<string, unknown>, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

export async function startOidcIssuer(opts: TestIssuerOptions = {}): Promise<TestOidcIssuer> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-oidc-issuer-'));
  const [pki, first] = await Promise.all([makeCertificates(dir), makeKey()]);
  const caPem = await readFile(pki.ca, 'utf8');
  const path = opts.path ?? '';
  const now = opts.now ?? Date.now;
  const ttl = opts.ttl ?? 300;
  const audience = opts.audience ?? 'wharf-test';
  const stats = { requests: 0, discovery: 0, jwks: 0 };
  let published: SigningKey[] = [first];
  let current = first;
  let url = '';

  const server: Server = createServer({ cert: await readFile(pki.cert), key: await readFile(pki.key) }, (req, res) => {
    stats.requests++;
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'public, max-age=86400' });
      res.end(body);
    };
    if (issuer.misbehave.status) return send(issuer.misbehave.status, '{"error":"misbehaving"}');
    const p = (req.url ?? '').split('?')[0];
    if (p === `${path}/.well-known/openid-configuration`) {
      stats.discovery++;
      return send(
        200,
        JSON.stringify({
          issuer: issuer.misbehave.discoveryIssuer ?? url,
          authorization_endpoint: `${url}/oauth/authorize`,
          token_endpoint: `${url}/oauth/token`,
          jwks_uri: issuer.misbehave.jwksUri ?? `${url}/oauth/discovery/keys`,
          response_types_supported: ['code', 'id_token'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: issuer.misbehave.algs ?? ['RS256'],
          scopes_supported: ['openid'],
          claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti'],
        }),
      );
    }
    if (p === `${path}/oauth/discovery/keys`) {
      stats.jwks++;
      const body = issuer.misbehave.jwks ?? { keys: published.map((k) => k.publicJwk) };
      return send(200, JSON.stringify(body) + ' '.repeat(issuer.misbehave.jwksPadding ?? 0));
    }
    send(404, '{"error":"not found"}');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  url = `https://localhost:${port}${path}`;
  const host = url.slice('https://'.length);

  const base = () => {
    const iat = Math.floor(now() / 1000);
    return { iss: url, iat, nbf: iat - 5, exp: iat + ttl, jti: randomUUID() };
  };
  const sha = '714a629c0b401fdce83e847fc9589983fc6f46bc';

  const issuer: TestOidcIssuer = {
    url,
    port,
    caPem,
    caPath: pki.ca,
    stats,
    misbehave: {},
    get current() {
      return current;
    },
    get published() {
      return published;
    },
    newKey: (alg) => makeKey(alg),
    async rotateKey(o = {}) {
      const k = await makeKey();
      published = o.dropOld ? [k] : [...published, k];
      current = k;
      return k;
    },
    gitlabClaims(overrides) {
      // As GitLab 18 fills an id_token (ids are strings; runner_id is a number).
      return applyOverrides(
        {
          namespace_id: '72',
          namespace_path: 'acme/sub',
          project_id: '20',
          project_path: 'acme/sub/tools',
          user_id: '5',
          user_login: 'alice',
          user_email: 'alice@example.com',
          user_access_level: 'maintainer',
          pipeline_id: '574',
          pipeline_source: 'push',
          job_id: '302',
          ref: 'main',
          ref_type: 'branch',
          ref_path: 'refs/heads/main',
          ref_protected: 'true',
          environment: 'production',
          environment_protected: 'true',
          deployment_tier: 'production',
          environment_action: 'start',
          runner_id: 1,
          runner_environment: 'gitlab-hosted',
          sha,
          ci_config_ref_uri: `${host}/acme/sub/tools//.gitlab-ci.yml@refs/heads/main`,
          ci_config_sha: sha,
          project_visibility: 'private',
          ...base(),
          sub: 'project_path:acme/sub/tools:ref_type:branch:ref:main',
          aud: audience,
        },
        overrides,
      );
    },
    githubClaims(overrides) {
      return applyOverrides(
        {
          ...base(),
          sub: 'repo:acme/tools:environment:production',
          aud: audience,
          ref: 'refs/heads/main',
          sha,
          repository: 'acme/tools',
          repository_owner: 'acme',
          repository_owner_id: '1001',
          repository_id: '2002',
          repository_visibility: 'private',
          run_id: '9876543210',
          run_number: '42',
          run_attempt: '1',
          actor: 'octocat',
          actor_id: '583231',
          workflow: 'Release',
          workflow_ref: 'acme/tools/.github/workflows/release.yml@refs/heads/main',
          workflow_sha: sha,
          job_workflow_ref: 'acme/tools/.github/workflows/release.yml@refs/heads/main',
          job_workflow_sha: sha,
          event_name: 'push',
          ref_type: 'branch',
          ref_protected: 'true',
          environment: 'production',
          runner_environment: 'github-hosted',
        },
        overrides,
      );
    },
    async sign(claims, o = {}) {
      const key = o.key ?? current;
      const header = applyOverrides({ alg: key.alg, kid: key.kid, typ: 'JWT' }, o.header);
      return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
    },
    async mintGitLab(o = {}) {
      const claims = issuer.gitlabClaims(o.audience === undefined ? o.claims : { aud: o.audience, ...o.claims });
      return issuer.sign(claims, o);
    },
    async mintGitHub(o = {}) {
      const claims = issuer.githubClaims(o.audience === undefined ? o.claims : { aud: o.audience, ...o.claims });
      return issuer.sign(claims, o);
    },
    publicKeyPem: () => exportSPKI(current.publicKey),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return issuer;
}
