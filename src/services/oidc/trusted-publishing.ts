// Trusted publishing: a CI job proves who it is with its OIDC id token (GitLab CI id_tokens, GitHub Actions), and a
// repository that trusts that CI workflow lets it publish without a stored secret. This service keeps the allowed
// issuers and the trusted publishers, and verifies a CI token into the publishers that accept it.
//
// Order of the checks in `exchange` (Warehouse's): the token's shape and its unverified `iss` against the allow-list
// (invalid-payload, before any network access); the header (asymmetric alg, kid); the issuer's keys (discovery + JWKS,
// cached); signature and standard claims (invalid-token); the CI claims against the publishers (invalid-publisher);
// single use of the jti (invalid-reuse-token); finally the ids bound on first use.
import { decodeJwt, decodeProtectedHeader, errors, importJWK, jwtVerify, type JWTPayload } from 'jose';
import { sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import { WharfError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { ciIdentity, claimString, matchGitHub, matchGitLab, tokenProject, validateEnvironment, validateOwnerId, validateProject, validateWorkflow, type Claims, type Provider, type PublisherRow } from './claims.ts';
import { OidcError, quote } from './errors.ts';
import type { CiIdentity } from './identity.ts';
import { isUniqueViolation, SqlJtiStore, type JtiStore } from './jti-store.ts';
import { ASYMMETRIC_ALGS, IssuerKeyCache, type IssuerRef } from './jwks.ts';

export { OidcError, isOidcError, type OidcErrorCode } from './errors.ts';
export type { CiIdentity } from './identity.ts';
export type { JtiStore } from './jti-store.ts';

export const GITLAB_COM = 'https://gitlab.com';
export const GITHUB_ACTIONS = 'https://token.actions.githubusercontent.com';
export const BUILTIN_ISSUERS: ReadonlyArray<{ readonly url: string; readonly type: Provider }> = [
  { url: GITLAB_COM, type: 'gitlab' },
  { url: GITHUB_ACTIONS, type: 'github' },
];
/** Clock skew tolerated on exp, nbf and iat, in seconds. */
export const LEEWAY_S = 30;
/** Longer than any real CI token (GitLab's and GitHub's are 1-3 KB). */
export const MAX_JWT_LENGTH = 32 * 1024;

export interface IssuerInfo {
  /** null for the built-in issuers */
  id: number | null;
  url: string;
  type: Provider;
  allow_private_network: boolean;
  builtin: boolean;
  created_at: string | null;
}

export interface PublisherInfo {
  id: number;
  repo_id: number;
  provider: Provider;
  issuer: string;
  /** GitLab: group/project; GitHub: owner/repository */
  project: string;
  /** GitLab: the CI configuration path; GitHub: the workflow file name */
  workflow: string;
  environment: string | null;
  namespace_id: string | null;
  project_id: string | null;
  owner_id: string | null;
  created_at: string;
  last_used_at: string | null;
}

export interface ExchangeResult {
  /** the publishers that accept the token, at most one per repository (ordered by repository id) */
  publishers: PublisherInfo[];
  /** the CI identity; publisher_id is publishers[0].id (use `{ ...identity, publisher_id: p.id }` for the others) */
  identity: CiIdentity;
  /** the token's issuer */
  issuer: string;
  /** when the CI token expires (Unix ms) */
  expiresAt: number;
}

const iso = (t: number | null) => (t === null ? null : new Date(Number(t)).toISOString());

function publisherInfo(r: PublisherRow): PublisherInfo {
  return {
    id: r.id,
    repo_id: r.repo_id,
    provider: r.provider,
    issuer: r.issuer,
    project: r.project,
    workflow: r.workflow,
    environment: r.environment,
    namespace_id: r.namespace_id,
    project_id: r.project_id,
    owner_id: r.owner_id,
    created_at: iso(r.created_at)!,
    last_used_at: iso(r.last_used_at),
  };
}

const PATH_CHARS = /^[A-Za-z0-9._~-]+$/;

/** `https://host[:port][/path]` without a trailing slash, exactly as tokens spell `iss`; throws ISSUER_INVALID. */
export function normaliseIssuerUrl(input: string): string {
  const bad = (why: string) => new WharfError('ISSUER_INVALID', [why]);
  if (typeof input !== 'string' || input.trim() === '') throw bad('give the issuer URL, such as https://gitlab.example.com');
  const raw = input.trim();
  if (raw.length > 500) throw bad('the URL is longer than 500 characters');
  if (raw.includes('?') || raw.includes('#')) throw bad(`${quote(raw)} has a query or fragment: give the URL exactly as the tokens' iss claim`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw bad(`${quote(raw)} is not a URL: give it as https://HOST[:PORT][/PATH]`);
  }
  if (u.protocol !== 'https:') throw bad(`${quote(raw)} is not https: only https issuers are accepted`);
  if (u.username || u.password || raw.slice(0, raw.indexOf(u.host)).includes('@')) throw bad(`${quote(raw)} contains a user name or password: remove them`);
  if (!u.hostname) throw bad(`${quote(raw)} has no host`);
  let path = u.pathname;
  while (path.endsWith('/')) path = path.slice(0, -1);
  if (path !== '' && !path.slice(1).split('/').every((s) => PATH_CHARS.test(s))) throw bad(`the path of ${quote(raw)} is not a plain path (letters, digits, ".", "_", "~", "-")`);
  return `https://${u.host}${path}`;
}

export class TrustedPublishing {
  readonly #db: Db;
  readonly #audience: string;
  readonly #log: Logger;
  readonly #jti: JtiStore;
  readonly #now: () => number;
  readonly #keys: IssuerKeyCache;

  constructor(opts: { db: Db; audience: string; log: Logger; jti?: JtiStore; extraCa?: string[]; now?: () => number }) {
    if (!opts.audience) throw new Error('TrustedPublishing needs an audience');
    this.#db = opts.db;
    this.#audience = opts.audience;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#jti = opts.jti ?? new SqlJtiStore(opts.db, this.#now);
    this.#keys = new IssuerKeyCache({ log: opts.log, now: this.#now, extraCa: opts.extraCa });
  }

  /** The audience CI jobs must request (GitLab `id_tokens: X: aud:`, GitHub `getIDToken(audience)`). */
  get audience(): string {
    return this.#audience;
  }

  // ---- Issuers ----

  async addIssuer(o: { url: string; type: 'gitlab' | 'github'; allowPrivateNetwork: boolean }): Promise<IssuerInfo> {
    if (o.type !== 'gitlab' && o.type !== 'github') throw new WharfError('ISSUER_INVALID', [`type ${quote(o.type)} is not gitlab or github`]);
    const url = normaliseIssuerUrl(o.url);
    if (BUILTIN_ISSUERS.some((b) => b.url === url)) throw new WharfError('ISSUER_EXISTS', [url, ' (it is built in)']);
    const existing = await this.#db.selectFrom('oidc_issuers').select('id').where('url', '=', url).executeTakeFirst();
    if (existing) throw new WharfError('ISSUER_EXISTS', [url, `: remove issuer ${existing.id} first to change it`]);
    const now = this.#now();
    try {
      const row = await this.#db
        .insertInto('oidc_issuers')
        .values({ url, type: o.type, allow_private_network: o.allowPrivateNetwork ? 1 : 0, created_at: now })
        .returning('id')
        .executeTakeFirstOrThrow();
      this.#keys.forget(url);
      return { id: row.id, url, type: o.type, allow_private_network: !!o.allowPrivateNetwork, builtin: false, created_at: iso(now) };
    } catch (e) {
      if (isUniqueViolation(e)) throw new WharfError('ISSUER_EXISTS', [url, '']);
      throw e;
    }
  }

  async listIssuers(): Promise<IssuerInfo[]> {
    const rows = await this.#db.selectFrom('oidc_issuers').selectAll().orderBy('url').execute();
    return [
      ...BUILTIN_ISSUERS.map((b) => ({ id: null, url: b.url, type: b.type, allow_private_network: false, builtin: true, created_at: null })),
      ...rows.map((r) => ({ id: r.id, url: r.url, type: r.type, allow_private_network: r.allow_private_network === 1, builtin: false, created_at: iso(r.created_at) })),
    ];
  }

  async removeIssuer(id: number): Promise<void> {
    const row = await this.#db.selectFrom('oidc_issuers').select(['id', 'url']).where('id', '=', id).executeTakeFirst();
    if (!row) throw new WharfError('ISSUER_NOT_FOUND', [`#${id}`]);
    const used = await this.#db.selectFrom('trusted_publishers').select((eb) => eb.fn.countAll<number>().as('n')).where('issuer', '=', row.url).executeTakeFirstOrThrow();
    if (Number(used.n) > 0) throw new WharfError('ISSUER_IN_USE', [row.url, used.n]);
    await this.#db.deleteFrom('oidc_issuers').where('id', '=', id).execute();
    this.#keys.forget(row.url);
  }

  async #issuer(url: string): Promise<(IssuerRef & { type: Provider }) | undefined> {
    const b = BUILTIN_ISSUERS.find((i) => i.url === url);
    if (b) return { url: b.url, type: b.type, allowPrivateNetwork: false };
    if (url.length > 512) return undefined;
    const row = await this.#db.selectFrom('oidc_issuers').selectAll().where('url', '=', url).executeTakeFirst();
    return row ? { url: row.url, type: row.type, allowPrivateNetwork: row.allow_private_network === 1 } : undefined;
  }

  // ---- Publishers ----

  async addPublisher(
    repoId: number,
    o: { provider: 'gitlab' | 'github'; project: string; workflow: string; environment?: string; issuer?: string; ownerId?: string },
  ): Promise<PublisherInfo> {
    const provider = o.provider;
    if (provider !== 'gitlab' && provider !== 'github') throw new WharfError('PUBLISHER_INVALID', [`provider ${quote(provider)} is not gitlab or github`]);
    const project = validateProject(provider, o.project);
    const workflow = validateWorkflow(provider, o.workflow);
    const environment = validateEnvironment(o.environment);
    const ownerId = validateOwnerId(provider, o.ownerId);
    const issuerUrl = o.issuer === undefined || o.issuer === '' ? (provider === 'gitlab' ? GITLAB_COM : GITHUB_ACTIONS) : normaliseIssuerUrl(o.issuer);
    const issuer = await this.#issuer(issuerUrl);
    if (!issuer) throw new WharfError('ISSUER_NOT_FOUND', [issuerUrl]);
    if (issuer.type !== provider) throw new WharfError('PUBLISHER_INVALID', [`the issuer ${issuerUrl} is a ${issuer.type} issuer, not ${provider}: choose the matching provider or issuer`]);
    const repo = await this.#db.selectFrom('repos').select('id').where('id', '=', repoId).executeTakeFirst();
    if (!repo) throw new WharfError('NOT_FOUND', [`Repository #${repoId}`]);
    const existing = await this.#db
      .selectFrom('trusted_publishers')
      .select(['id', 'environment'])
      .where('repo_id', '=', repoId)
      .where('issuer', '=', issuerUrl)
      .where(sql<string>`lower(project)`, '=', project.toLowerCase())
      .where('workflow', '=', workflow)
      .execute();
    if (existing.some((e) => (e.environment ?? '').toLowerCase() === (environment ?? '').toLowerCase())) {
      throw new WharfError('PUBLISHER_EXISTS', [`${project} ${workflow}${environment ? ` (environment ${environment})` : ''} from ${issuerUrl}`]);
    }
    const now = this.#now();
    const row = await this.#db
      .insertInto('trusted_publishers')
      .values({
        repo_id: repoId,
        provider,
        issuer: issuerUrl,
        project,
        workflow,
        environment,
        namespace_id: null,
        project_id: null,
        owner_id: ownerId,
        created_at: now,
        last_used_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return publisherInfo(row);
  }

  async listPublishers(repoId: number): Promise<PublisherInfo[]> {
    const rows = await this.#db.selectFrom('trusted_publishers').selectAll().where('repo_id', '=', repoId).orderBy('id').execute();
    return rows.map(publisherInfo);
  }

  async removePublisher(repoId: number, id: number): Promise<void> {
    const r = await this.#db.deleteFrom('trusted_publishers').where('id', '=', id).where('repo_id', '=', repoId).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new WharfError('PUBLISHER_NOT_FOUND', [`#${id}`]);
  }

  // ---- The exchange ----

  /** Verifies a CI token and returns the matching publishers (at least one) and the CI identity; throws OidcError. */
  /**
   * `narrow`, when given, picks among the repositories whose publishers match (the caller's "repository" choice) and
   * throws OidcError to refuse. It runs before the token's jti is consumed, so a CI job that names the wrong
   * repository can fix it and retry with the same token.
   */
  async exchange(jwt: string, narrow?: (repoIds: number[]) => Promise<number[]>): Promise<ExchangeResult> {
    try {
      const result = await this.#exchange(jwt, narrow);
      this.#log.info(
        { issuer: result.issuer, project: result.identity.project, publishers: result.publishers.map((p) => p.id), run_id: result.identity.run_id },
        'trusted publishing token accepted',
      );
      return result;
    } catch (e) {
      if (e instanceof OidcError) this.#log.debug({ code: e.code, reason: e.description }, 'trusted publishing token refused');
      throw e;
    }
  }

  async #exchange(jwt: string, narrow?: (repoIds: number[]) => Promise<number[]>): Promise<ExchangeResult> {
    // 1. Shape and issuer, from the unverified token: nothing is fetched for an issuer that is not allowed.
    if (typeof jwt !== 'string' || jwt.length === 0) throw new OidcError('invalid-payload', 'No token given: send the CI job\'s OIDC id token');
    if (jwt.length > MAX_JWT_LENGTH) throw new OidcError('invalid-payload', `The token is longer than ${MAX_JWT_LENGTH} bytes: send the CI job's OIDC id token`);
    if (jwt.split('.').length !== 3) throw new OidcError('invalid-payload', 'The token is not a signed JWT (three base64url parts separated by dots): send the CI job\'s OIDC id token');
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(jwt);
      unverified = decodeJwt(jwt);
    } catch {
      throw new OidcError('invalid-payload', 'The token is not a decodable JWT: send the CI job\'s OIDC id token unchanged');
    }
    if (typeof unverified.iss !== 'string' || unverified.iss === '') throw new OidcError('invalid-payload', 'The token has no iss (issuer) claim');
    const issuer = await this.#issuer(unverified.iss);
    if (!issuer) {
      throw new OidcError(
        'invalid-payload',
        `Tokens from the issuer ${quote(unverified.iss)} are not accepted here: the built-in issuers are ${GITLAB_COM} and ${GITHUB_ACTIONS}; a Wharf admin can allow a self-hosted GitLab or GitHub Enterprise issuer`,
      );
    }

    // 2. The header.
    const alg = header.alg;
    if (typeof alg !== 'string' || !ASYMMETRIC_ALGS.includes(alg)) {
      throw new OidcError('invalid-token', `The token is signed with ${quote(alg ?? 'no algorithm')}: only asymmetric signatures (${ASYMMETRIC_ALGS.join(', ')}) are accepted`);
    }
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) throw new OidcError('invalid-token', 'The token header has no kid (key id): Wharf needs it to pick the issuer\'s key');

    // 3. The issuer's key, and the algorithms it advertises.
    const { jwk, algs } = await this.#keys.key(issuer, kid);
    if (!algs.includes(alg)) throw new OidcError('invalid-token', `The token is signed with ${alg}, which ${issuer.url} does not advertise (${algs.join(', ')})`);
    if (jwk.alg !== undefined && jwk.alg !== alg) throw new OidcError('invalid-token', `The token is signed with ${alg} but the issuer's key ${quote(kid)} is for ${jwk.alg}`);
    let key: Awaited<ReturnType<typeof importJWK>>;
    try {
      key = await importJWK(jwk, alg);
    } catch {
      throw new OidcError('invalid-token', `The issuer's key ${quote(kid)} cannot verify ${alg} signatures`);
    }

    // 4. Signature and standard claims.
    const now = this.#now();
    let payload: Claims;
    try {
      ({ payload } = await jwtVerify(jwt, key, {
        algorithms: [alg],
        issuer: issuer.url,
        clockTolerance: LEEWAY_S,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'iat', 'jti', 'aud'],
      }));
    } catch (e) {
      throw verifyError(e);
    }
    const aud = payload.aud;
    if (typeof aud !== 'string') {
      throw new OidcError('invalid-token', `The token's aud (audience) must be the single string ${quote(this.#audience)}, not a list: request the token with exactly that audience`);
    }
    if (aud !== this.#audience) {
      throw new OidcError(
        'invalid-token',
        `The token's audience is not this server's: request the token with the audience ${quote(this.#audience)} (GitLab: id_tokens: NAME: aud: ${this.#audience}; GitHub: core.getIDToken('${this.#audience}'))`,
      );
    }
    const iat = payload.iat as number;
    if (iat > now / 1000 + LEEWAY_S) throw new OidcError('invalid-token', 'The token was issued in the future (iat): check the clocks of the issuer and of Wharf');
    const jti = payload.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new OidcError('invalid-token', 'The token\'s jti (token id) is missing or malformed');
    const exp = payload.exp as number;

    // 5. The CI claims against the publishers of this project.
    const provider = issuer.type;
    const project = tokenProject(provider, payload);
    const candidates = await this.#db
      .selectFrom('trusted_publishers')
      .selectAll()
      .where('issuer', '=', issuer.url)
      .where('provider', '=', provider)
      .where(sql<string>`lower(project)`, '=', project.toLowerCase())
      .orderBy('repo_id')
      .orderBy('id')
      .execute();
    const what = provider === 'gitlab' ? `GitLab project ${quote(project)}` : `GitHub repository ${quote(project)}`;
    if (candidates.length === 0) {
      throw new OidcError('invalid-publisher', `No repository here trusts the ${what} (issuer ${issuer.url}): a repository admin adds it as a trusted publisher`);
    }
    const reasons: string[] = [];
    const matching: PublisherRow[] = [];
    for (const p of candidates) {
      const reason = this.#match(provider, p, payload, issuer.url);
      if (reason === null) matching.push(p);
      else if (!reasons.includes(reason)) reasons.push(reason);
    }
    if (matching.length === 0) {
      const shown = reasons.slice(0, 3).join('; ') + (reasons.length > 3 ? `; and ${reasons.length - 3} more` : '');
      throw new OidcError('invalid-publisher', `The token does not match any trusted publisher of the ${what}: ${shown}`);
    }
    // Per repository, a publisher bound to the job's environment wins over one without environment (Warehouse).
    const chosen: PublisherRow[] = [];
    let repoIds = [...new Set(matching.map((p) => p.repo_id))];
    if (narrow) repoIds = await narrow(repoIds);
    for (const repoId of repoIds) {
      const rows = matching.filter((p) => p.repo_id === repoId);
      const withEnv = rows.filter((p) => p.environment !== null);
      chosen.push(...(withEnv.length > 0 ? withEnv : rows));
    }

    // 6. Single use.
    if (!(await this.#jti.claim(issuer.url, jti, exp * 1000 + LEEWAY_S * 1000))) {
      throw new OidcError('invalid-reuse-token', 'This token was already exchanged: each CI token can be used once; request a new one');
    }

    // 7. Ids bound on first use, then re-checked (a concurrent first use may have bound others).
    const bound: PublisherRow[] = [];
    for (const p of chosen) bound.push(await this.#bind(provider, p, payload, issuer.url, now));

    return {
      publishers: bound.map(publisherInfo),
      identity: ciIdentity(provider, issuer.url, payload, bound[0]!),
      issuer: issuer.url,
      expiresAt: exp * 1000,
    };
  }

  #match(provider: Provider, p: PublisherRow, c: Claims, issuerUrl: string): string | null {
    return provider === 'gitlab' ? matchGitLab(p, c, issuerUrl) : matchGitHub(p, c);
  }

  async #bind(provider: Provider, p: PublisherRow, c: Claims, issuerUrl: string, now: number): Promise<PublisherRow> {
    const db = this.#db;
    if (provider === 'gitlab') {
      if (p.namespace_id === null) {
        await db.updateTable('trusted_publishers').set({ namespace_id: claimString(c, 'namespace_id')! }).where('id', '=', p.id).where('namespace_id', 'is', null).execute();
      }
      if (p.project_id === null) {
        await db.updateTable('trusted_publishers').set({ project_id: claimString(c, 'project_id')! }).where('id', '=', p.id).where('project_id', 'is', null).execute();
      }
    } else if (p.owner_id === null) {
      await db.updateTable('trusted_publishers').set({ owner_id: claimString(c, 'repository_owner_id')! }).where('id', '=', p.id).where('owner_id', 'is', null).execute();
    }
    await db.updateTable('trusted_publishers').set({ last_used_at: now }).where('id', '=', p.id).execute();
    const row = await db.selectFrom('trusted_publishers').selectAll().where('id', '=', p.id).executeTakeFirst();
    if (!row) throw new OidcError('invalid-publisher', 'The trusted publisher was removed during the exchange');
    const reason = this.#match(provider, row, c, issuerUrl);
    if (reason !== null) throw new OidcError('invalid-publisher', `The token does not match the trusted publisher: ${reason}`);
    return row;
  }
}

/** jose's verification errors as OidcErrors that say what to do. */
function verifyError(e: unknown): OidcError {
  if (e instanceof errors.JWTExpired) {
    return new OidcError('invalid-token', 'The token has expired: exchange the CI token while it is valid (request it right before publishing)');
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === 'missing') return new OidcError('invalid-token', `The token lacks the ${e.claim} claim`);
    if (e.claim === 'nbf') return new OidcError('invalid-token', 'The token is not valid yet (nbf is in the future): check the clocks of the issuer and of Wharf');
    return new OidcError('invalid-token', `The token's ${e.claim} claim is invalid`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return new OidcError('invalid-token', 'The token\'s signature does not verify with the issuer\'s key: the token was altered or not signed by this issuer');
  }
  if (e instanceof errors.JOSEError) return new OidcError('invalid-token', `The token is malformed or cannot be verified (${e.code})`);
  return new OidcError('invalid-token', 'The token cannot be verified');
}
