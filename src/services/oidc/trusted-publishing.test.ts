// Trusted publishing end to end against real HTTPS OIDC issuers (test/helpers/oidc-issuer.ts) and a real SQLite
// database: management validations, successful exchanges, and each refusal with its Warehouse error code.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, base64url } from 'jose';
import { openDatabase, type Db } from '../../db/database.ts';
import { isWharfError, type ErrorCode } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { startOidcIssuer, type TestOidcIssuer } from '../../../test/helpers/oidc-issuer.ts';
import { OidcError, TrustedPublishing, type OidcErrorCode, type PublisherInfo } from './trusted-publishing.ts';

const AUDIENCE = 'wharf-test';
let clock = Date.now();
const now = () => clock;

let dir: string;
let db: Db;
let repoA: number;
let repoB: number;
/** GitLab-type issuer, private network allowed */
let gl: TestOidcIssuer;
/** GitHub-type issuer, private network allowed */
let gh: TestOidcIssuer;
/** GitLab-type issuer under a path (https://localhost:PORT/gitlab) */
let glPath: TestOidcIssuer;
/** allowed, but without allowPrivateNetwork: it resolves to loopback */
let loopback: TestOidcIssuer;
/** never allowed */
let stranger: TestOidcIssuer;

const warnings: string[] = [];
const log: Logger = { debug() {}, info() {}, warn: (_o, msg) => void warnings.push(msg ?? ''), error() {} };

function service(): TrustedPublishing {
  return new TrustedPublishing({ db, audience: AUDIENCE, log, now, extraCa: [gl, gh, glPath, loopback, stranger].map((i) => i.caPem) });
}

async function refused(tp: TrustedPublishing, jwt: string, code: OidcErrorCode, description?: RegExp): Promise<OidcError> {
  let caught: unknown;
  try {
    await tp.exchange(jwt);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof OidcError, `expected an OidcError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.description);
  if (description) assert.match(caught.description, description);
  // Never any token text in the description.
  for (const part of jwt.split('.')) if (part.length > 8) assert.ok(!caught.description.includes(part), 'the description echoes the token');
  return caught;
}

async function wharfError(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(isWharfError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

const hostOf = (i: TestOidcIssuer) => i.url.slice('https://'.length);

async function gitlabPublisher(tp: TrustedPublishing, extra: { environment?: string; workflow?: string; repo?: number; project?: string; issuer?: TestOidcIssuer } = {}): Promise<PublisherInfo> {
  return tp.addPublisher(extra.repo ?? repoA, {
    provider: 'gitlab',
    project: extra.project ?? 'acme/sub/tools',
    workflow: extra.workflow ?? '.gitlab-ci.yml',
    issuer: (extra.issuer ?? gl).url,
    ...(extra.environment ? { environment: extra.environment } : {}),
  });
}

async function githubPublisher(tp: TrustedPublishing, extra: { environment?: string; ownerId?: string; repo?: number } = {}): Promise<PublisherInfo> {
  return tp.addPublisher(extra.repo ?? repoA, {
    provider: 'github',
    project: 'acme/tools',
    workflow: 'release.yml',
    issuer: gh.url,
    ...(extra.environment ? { environment: extra.environment } : {}),
    ...(extra.ownerId ? { ownerId: extra.ownerId } : {}),
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-oidc-'));
  db = await openDatabase(join(dir, 'wharf.db'));
  const org = await db.insertInto('orgs').values({ name: 'acme', created_at: clock }).returning('id').executeTakeFirstOrThrow();
  repoA = (await db.insertInto('repos').values({ org_id: org.id, name: 'tools', private: 0, created_at: clock }).returning('id').executeTakeFirstOrThrow()).id;
  repoB = (await db.insertInto('repos').values({ org_id: org.id, name: 'extras', private: 0, created_at: clock }).returning('id').executeTakeFirstOrThrow()).id;
  [gl, gh, glPath, loopback, stranger] = await Promise.all([
    startOidcIssuer({ audience: AUDIENCE, now }),
    startOidcIssuer({ audience: AUDIENCE, now }),
    startOidcIssuer({ audience: AUDIENCE, now, path: '/gitlab' }),
    startOidcIssuer({ audience: AUDIENCE, now }),
    startOidcIssuer({ audience: AUDIENCE, now }),
  ]);
  const tp = service();
  await tp.addIssuer({ url: gl.url, type: 'gitlab', allowPrivateNetwork: true });
  await tp.addIssuer({ url: gh.url + '/', type: 'github', allowPrivateNetwork: true });
  await tp.addIssuer({ url: glPath.url, type: 'gitlab', allowPrivateNetwork: true });
  await tp.addIssuer({ url: loopback.url, type: 'gitlab', allowPrivateNetwork: false });
  await tp.addIssuer({ url: `https://127.0.0.1:${loopback.port}`, type: 'gitlab', allowPrivateNetwork: false });
});

after(async () => {
  await Promise.all([gl, gh, glPath, loopback, stranger].filter(Boolean).map((i) => i.close()));
  await db?.destroy();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await db.deleteFrom('trusted_publishers').execute();
  await db.deleteFrom('oidc_used_jti').execute();
  for (const i of [gl, gh, glPath, loopback, stranger]) i.misbehave = {};
});

describe('management', () => {
  test('issuers: https only, normalised, no duplicates, built-ins listed, removal', async () => {
    const tp = service();
    await wharfError(tp.addIssuer({ url: 'http://gitlab.example.com', type: 'gitlab', allowPrivateNetwork: false }), 'ISSUER_INVALID', /only https/);
    await wharfError(tp.addIssuer({ url: 'https://gitlab.example.com/?x=1', type: 'gitlab', allowPrivateNetwork: false }), 'ISSUER_INVALID', /query or fragment/);
    await wharfError(tp.addIssuer({ url: 'https://gitlab.example.com#top', type: 'gitlab', allowPrivateNetwork: false }), 'ISSUER_INVALID', /query or fragment/);
    await wharfError(tp.addIssuer({ url: 'https://user:pw@gitlab.example.com', type: 'gitlab', allowPrivateNetwork: false }), 'ISSUER_INVALID', /user name or password/);
    await wharfError(tp.addIssuer({ url: 'not a url', type: 'gitlab', allowPrivateNetwork: false }), 'ISSUER_INVALID', /not a URL/);
    await wharfError(tp.addIssuer({ url: 'https://gitlab.example.com', type: 'bitbucket' as 'gitlab', allowPrivateNetwork: false }), 'ISSUER_INVALID', /gitlab or github/);
    await wharfError(tp.addIssuer({ url: 'https://gitlab.com/', type: 'gitlab', allowPrivateNetwork: false }), 'ISSUER_EXISTS', /built in/);
    await wharfError(tp.addIssuer({ url: gl.url + '/', type: 'gitlab', allowPrivateNetwork: true }), 'ISSUER_EXISTS');

    const added = await tp.addIssuer({ url: 'https://GitLab.Example.com:443/gitlab/', type: 'gitlab', allowPrivateNetwork: false });
    assert.equal(added.url, 'https://gitlab.example.com/gitlab');
    assert.equal(added.builtin, false);
    assert.equal(added.allow_private_network, false);

    const list = await tp.listIssuers();
    assert.deepEqual(
      list.filter((i) => i.builtin).map((i) => [i.url, i.type, i.id]),
      [
        ['https://gitlab.com', 'gitlab', null],
        ['https://token.actions.githubusercontent.com', 'github', null],
      ],
    );
    assert.ok(list.some((i) => i.url === gh.url && i.type === 'github' && i.allow_private_network), 'the trailing slash was removed');
    assert.ok(list.some((i) => i.url === 'https://gitlab.example.com/gitlab'));

    await tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/tools', workflow: '.gitlab-ci.yml', issuer: added.url });
    await wharfError(tp.removeIssuer(added.id!), 'ISSUER_IN_USE', /1 trusted publisher/);
    await db.deleteFrom('trusted_publishers').execute();
    await tp.removeIssuer(added.id!);
    await wharfError(tp.removeIssuer(added.id!), 'ISSUER_NOT_FOUND');
    assert.ok(!(await tp.listIssuers()).some((i) => i.url === added.url));
  });

  test('publishers: validation, defaults, duplicates, list and remove', async () => {
    const tp = service();
    await wharfError(tp.addPublisher(repoA, { provider: 'gitlab', project: 'tools', workflow: '.gitlab-ci.yml' }), 'PUBLISHER_INVALID', /group\/project/);
    await wharfError(tp.addPublisher(repoA, { provider: 'github', project: 'acme/sub/tools', workflow: 'release.yml' }), 'PUBLISHER_INVALID', /owner\/repository/);
    await wharfError(tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/tools', workflow: '../x/.gitlab-ci.yml' }), 'PUBLISHER_INVALID', /no "\.\."/);
    await wharfError(tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/tools', workflow: 'ci/release.txt' }), 'PUBLISHER_INVALID', /\.yml or \.yaml/);
    await wharfError(tp.addPublisher(repoA, { provider: 'github', project: 'acme/tools', workflow: '.github/workflows/release.yml' }), 'PUBLISHER_INVALID', /no directory/);
    await wharfError(tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/tools', workflow: '.gitlab-ci.yml', ownerId: '5' }), 'PUBLISHER_INVALID', /GitHub publishers only/);
    await wharfError(tp.addPublisher(repoA, { provider: 'github', project: 'acme/tools', workflow: 'release.yml', ownerId: 'acme' }), 'PUBLISHER_INVALID', /numeric id/);
    await wharfError(tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/tools', workflow: '.gitlab-ci.yml', issuer: 'https://gitlab.unknown.example' }), 'ISSUER_NOT_FOUND', /an admin adds it/);
    await wharfError(tp.addPublisher(repoA, { provider: 'github', project: 'acme/tools', workflow: 'release.yml', issuer: gl.url }), 'PUBLISHER_INVALID', /gitlab issuer, not github/);
    await wharfError(tp.addPublisher(9999, { provider: 'gitlab', project: 'acme/tools', workflow: '.gitlab-ci.yml' }), 'NOT_FOUND');
    await wharfError(tp.addPublisher(repoA, { provider: 'gitlab' as const, project: 'acme/tools', workflow: '.gitlab-ci.yml', environment: ' prod' }), 'PUBLISHER_INVALID', /surrounding spaces/);

    const a = await tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/tools', workflow: '.gitlab-ci.yml' });
    assert.equal(a.issuer, 'https://gitlab.com');
    assert.equal(a.environment, null);
    const b = await tp.addPublisher(repoA, { provider: 'github', project: 'acme/tools', workflow: 'release.yml', environment: 'production', ownerId: '1001' });
    assert.equal(b.issuer, 'https://token.actions.githubusercontent.com');
    assert.equal(b.owner_id, '1001');
    await wharfError(tp.addPublisher(repoA, { provider: 'gitlab', project: 'ACME/Tools', workflow: '.gitlab-ci.yml' }), 'PUBLISHER_EXISTS');
    // Another environment is another publisher; another repository may trust the same project.
    await tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/tools', workflow: '.gitlab-ci.yml', environment: 'production' });
    await tp.addPublisher(repoB, { provider: 'gitlab', project: 'acme/tools', workflow: '.gitlab-ci.yml' });

    assert.deepEqual((await tp.listPublishers(repoA)).map((p) => p.id).length, 3);
    assert.equal((await tp.listPublishers(repoB)).length, 1);
    await wharfError(tp.removePublisher(repoB, a.id), 'PUBLISHER_NOT_FOUND');
    await tp.removePublisher(repoA, a.id);
    await wharfError(tp.removePublisher(repoA, a.id), 'PUBLISHER_NOT_FOUND');
    assert.equal((await tp.listPublishers(repoA)).length, 2);
  });
});

describe('GitLab', () => {
  test('accepted with ci_config_ref_uri @ref_path: identity, ids bound on first use', async () => {
    const tp = service();
    const pub = await gitlabPublisher(tp);
    const jwt = await gl.mintGitLab();
    const r = await tp.exchange(jwt);
    assert.deepEqual(
      r.publishers.map((p) => p.id),
      [pub.id],
    );
    assert.equal(r.issuer, gl.url);
    const exp = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).exp;
    assert.equal(r.expiresAt, exp * 1000);
    assert.deepEqual(r.identity, {
      provider: 'gitlab',
      issuer: gl.url,
      project: 'acme/sub/tools',
      ref: 'refs/heads/main',
      sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
      run_id: '574',
      job_id: '302',
      workflow: '.gitlab-ci.yml',
      workflow_ref: `${hostOf(gl)}/acme/sub/tools//.gitlab-ci.yml@refs/heads/main`,
      environment: 'production',
      event: 'push',
      runner_environment: 'gitlab-hosted',
      project_id: '20',
      owner_id: '72',
      actor: 'alice',
      workflow_sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
      runner_id: '1',
      token_id: JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).jti,
      publisher_id: pub.id,
    });
    assert.equal(r.publishers[0]!.namespace_id, '72');
    assert.equal(r.publishers[0]!.project_id, '20');
    assert.equal(r.publishers[0]!.last_used_at, new Date(clock).toISOString());
  });

  test('accepted with ci_config_ref_uri @sha, a nested CI path, and project case differences', async () => {
    const tp = service();
    await gitlabPublisher(tp, { workflow: 'ci/release.yml', project: 'ACME/Sub/Tools' });
    const sha = '0123456789abcdef0123456789abcdef01234567';
    const r = await tp.exchange(
      await gl.mintGitLab({
        claims: {
          project_path: 'acme/sub/tools',
          sha,
          ci_config_ref_uri: `${hostOf(gl).toUpperCase()}/Acme/Sub/Tools//ci/release.yml@${sha}`,
        },
      }),
    );
    assert.equal(r.identity.workflow, 'ci/release.yml');
    assert.equal(r.identity.sha, sha);
  });

  test('an issuer under a path: ci_config_ref_uri starts with host:port/path', async () => {
    const tp = service();
    await gitlabPublisher(tp, { issuer: glPath });
    assert.ok(glPath.url.endsWith('/gitlab'));
    const r = await tp.exchange(await glPath.mintGitLab({ claims: { ci_config_ref_uri: `${hostOf(glPath)}/acme/sub/tools//.gitlab-ci.yml@refs/heads/main` } }));
    assert.equal(r.issuer, glPath.url);
    // The uri must carry the path: without it the CI file is not identified.
    await refused(tp, await glPath.mintGitLab({ claims: { ci_config_ref_uri: `localhost:${glPath.port}/acme/sub/tools//.gitlab-ci.yml@refs/heads/main` } }), 'invalid-publisher', /not of the form/);
  });

  test('environment: exact and case-sensitive; an environment publisher is preferred; one per repository', async () => {
    const tp = service();
    const plain = await gitlabPublisher(tp);
    const prod = await gitlabPublisher(tp, { environment: 'production' });
    const other = await gitlabPublisher(tp, { repo: repoB });
    let r = await tp.exchange(await gl.mintGitLab());
    assert.deepEqual(
      r.publishers.map((p) => p.id),
      [prod.id, other.id],
    );
    assert.equal(r.identity.publisher_id, prod.id);
    r = await tp.exchange(await gl.mintGitLab({ claims: { environment: 'staging' } }));
    assert.deepEqual(
      r.publishers.map((p) => p.id),
      [plain.id, other.id],
    );
    await db.deleteFrom('trusted_publishers').where('id', 'in', [plain.id, other.id]).execute();
    await refused(tp, await gl.mintGitLab({ claims: { environment: 'staging' } }), 'invalid-publisher', /environment "staging" is not the publisher's "production"/);
    await refused(tp, await gl.mintGitLab({ claims: { environment: 'Production' } }), 'invalid-publisher', /"Production" is not the publisher's "production"/);
    await refused(tp, await gl.mintGitLab({ claims: { environment: undefined } }), 'invalid-publisher', /no environment but the publisher requires/);
  });

  test('refused: wrong project, wrong CI file, ref mismatch, null or absent ci_config_ref_uri', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    await refused(
      tp,
      await gl.mintGitLab({ claims: { project_path: 'acme/other', sub: 'project_path:acme/other:ref_type:branch:ref:main', ci_config_ref_uri: `${hostOf(gl)}/acme/other//.gitlab-ci.yml@refs/heads/main` } }),
      'invalid-publisher',
      /No repository here trusts the GitLab project "acme\/other"/,
    );
    await refused(tp, await gl.mintGitLab({ claims: { sub: 'project_path:acme/other:ref_type:branch:ref:main' } }), 'invalid-publisher', /sub does not start with/);
    await refused(
      tp,
      await gl.mintGitLab({ claims: { ci_config_ref_uri: `${hostOf(gl)}/acme/sub/tools//ci/other.yml@refs/heads/main` } }),
      'invalid-publisher',
      /runs the CI configuration "ci\/other.yml" but the publisher trusts ".gitlab-ci.yml"/,
    );
    // The configuration of another project (included from elsewhere) is refused even when the file name matches.
    await refused(tp, await gl.mintGitLab({ claims: { ci_config_ref_uri: `${hostOf(gl)}/evil/tools//.gitlab-ci.yml@refs/heads/main` } }), 'invalid-publisher', /from the project "evil\/tools"/);
    await refused(tp, await gl.mintGitLab({ claims: { ci_config_ref_uri: `${hostOf(gl)}/acme/sub/tools//.gitlab-ci.yml@refs/heads/feature` } }), 'invalid-publisher', /neither the job's ref_path/);
    await refused(tp, await gl.mintGitLab({ claims: { ci_config_ref_uri: `gitlab.com/acme/sub/tools//.gitlab-ci.yml@refs/heads/main` } }), 'invalid-publisher', /not of the form/);
    await refused(tp, await gl.mintGitLab({ claims: { ci_config_ref_uri: null } }), 'invalid-publisher', /no ci_config_ref_uri.*defined outside the project/);
    await refused(tp, await gl.mintGitLab({ claims: { ci_config_ref_uri: undefined } }), 'invalid-publisher', /no ci_config_ref_uri/);
    await refused(tp, await gl.mintGitLab({ claims: { ref_path: undefined } }), 'invalid-publisher', /lacks the ref_path claim/);
    await refused(tp, await gl.mintGitLab({ claims: { sha: '' } }), 'invalid-publisher', /lacks the sha claim/);
    // A GitHub-shaped token from a GitLab issuer has none of GitLab's claims.
    await refused(tp, await gl.mintGitHub(), 'invalid-publisher', /lacks the project_path claim/);
  });

  test('refused: namespace or project id changed after first use', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    await tp.exchange(await gl.mintGitLab());
    await refused(tp, await gl.mintGitLab({ claims: { namespace_id: '99' } }), 'invalid-publisher', /namespace id changed since this publisher was first used \(72 then, 99 now\)/);
    await refused(tp, await gl.mintGitLab({ claims: { project_id: '21' } }), 'invalid-publisher', /project id changed/);
    await tp.exchange(await gl.mintGitLab());
  });
});

describe('GitHub', () => {
  test('accepted: identity, owner id bound on first use, environment case-insensitive', async () => {
    const tp = service();
    const pub = await githubPublisher(tp, { environment: 'Production' });
    const ghJwt = await gh.mintGitHub();
    const r = await tp.exchange(ghJwt);
    assert.deepEqual(r.identity, {
      provider: 'github',
      issuer: gh.url,
      project: 'acme/tools',
      ref: 'refs/heads/main',
      sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
      run_id: '9876543210',
      run_attempt: '1',
      workflow: '.github/workflows/release.yml',
      workflow_ref: 'acme/tools/.github/workflows/release.yml@refs/heads/main',
      environment: 'production',
      event: 'push',
      runner_environment: 'github-hosted',
      project_id: '2002',
      owner_id: '1001',
      actor: 'octocat',
      workflow_sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
      token_id: JSON.parse(Buffer.from(ghJwt.split('.')[1]!, 'base64url').toString()).jti,
      publisher_id: pub.id,
    });
    assert.equal(r.publishers[0]!.owner_id, '1001');
    // Bound now: a re-created account with the same name has another id.
    await refused(tp, await gh.mintGitHub({ claims: { repository_owner_id: '666' } }), 'invalid-publisher', /repository_owner_id is 666 but the publisher is bound to owner id 1001/);
    // Case differences in the repository are fine; a ref given as sha too.
    await tp.exchange(
      await gh.mintGitHub({
        claims: { repository: 'Acme/Tools', repository_owner: 'Acme', job_workflow_ref: 'Acme/Tools/.github/workflows/release.yml@714a629c0b401fdce83e847fc9589983fc6f46bc' },
      }),
    );
  });

  test('refused: owner id registered up front differs', async () => {
    const tp = service();
    await githubPublisher(tp, { ownerId: '4242' });
    await refused(tp, await gh.mintGitHub(), 'invalid-publisher', /bound to owner id 4242/);
  });

  test('refused: pull_request_target and workflow_run, other workflow, reusable workflow, environment, empty ref and sha', async () => {
    const tp = service();
    await githubPublisher(tp, { environment: 'production' });
    await refused(tp, await gh.mintGitHub({ claims: { event_name: 'pull_request_target' } }), 'invalid-publisher', /pull_request_target cannot publish/);
    await refused(tp, await gh.mintGitHub({ claims: { event_name: 'workflow_run' } }), 'invalid-publisher', /workflow_run cannot publish/);
    await refused(tp, await gh.mintGitHub({ claims: { job_workflow_ref: 'acme/tools/.github/workflows/ci.yml@refs/heads/main' } }), 'invalid-publisher', /is not the workflow acme\/tools\/.github\/workflows\/release.yml/);
    await refused(tp, await gh.mintGitHub({ claims: { job_workflow_ref: 'evil/actions/.github/workflows/release.yml@refs/heads/main' } }), 'invalid-publisher', /is not the workflow/);
    await refused(tp, await gh.mintGitHub({ claims: { job_workflow_ref: 'acme/tools/.github/workflows/release.yml@refs/heads/other' } }), 'invalid-publisher', /neither the job's ref nor its sha/);
    await refused(tp, await gh.mintGitHub({ claims: { environment: 'staging' } }), 'invalid-publisher', /environment "staging"/);
    await refused(tp, await gh.mintGitHub({ claims: { repository_owner: 'evil' } }), 'invalid-publisher', /repository_owner "evil"/);
    await refused(tp, await gh.mintGitHub({ claims: { ref: '', sha: '' } }), 'invalid-publisher', /ref and sha claims are both empty/);
    await refused(tp, await gh.mintGitHub({ claims: { repository: 'acme/other' } }), 'invalid-publisher', /No repository here trusts the GitHub repository "acme\/other"/);
    await tp.exchange(await gh.mintGitHub({ claims: { environment: 'PRODUCTION' } }));
  });
});

describe('token verification', () => {
  test('refused before any fetch: unlisted issuer, malformed tokens, alg none, HS256 with the public key, missing kid', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    const before = gl.stats.requests;

    await refused(tp, await stranger.mintGitLab(), 'invalid-payload', /not accepted here/);
    assert.equal(stranger.stats.requests, 0, 'nothing was fetched from an unlisted issuer');
    await refused(tp, await gl.mintGitLab({ claims: { iss: 'https://evil.example' } }), 'invalid-payload', /"https:\/\/evil.example" are not accepted/);
    await refused(tp, await gl.mintGitLab({ claims: { iss: gl.url + '/' } }), 'invalid-payload');
    await refused(tp, await gl.mintGitLab({ claims: { iss: undefined } }), 'invalid-payload', /no iss/);
    await refused(tp, '', 'invalid-payload');
    await refused(tp, 'not-a-jwt', 'invalid-payload', /not a signed JWT/);
    await refused(tp, 'e30.e30.e30.e30.e30', 'invalid-payload');
    await refused(tp, '!!!.@@@.###', 'invalid-payload', /not a decodable JWT/);

    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const none = `${enc({ alg: 'none', kid: gl.current.kid })}.${enc(gl.gitlabClaims())}.`;
    await refused(tp, none, 'invalid-token', /"none".*only asymmetric/);

    const pem = await gl.publicKeyPem();
    const hs = await new SignJWT(gl.gitlabClaims()).setProtectedHeader({ alg: 'HS256', kid: gl.current.kid }).sign(new TextEncoder().encode(pem));
    await refused(tp, hs, 'invalid-token', /"HS256".*only asymmetric/);

    await refused(tp, await gl.mintGitLab({ header: { kid: undefined } }), 'invalid-token', /no kid/);
    assert.equal(gl.stats.requests, before, 'nothing was fetched for tokens refused on their header');
  });

  test('refused: audience as a list, audience mismatch', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    await refused(tp, await gl.mintGitLab({ audience: [AUDIENCE] }), 'invalid-token', /single string "wharf-test", not a list/);
    await refused(tp, await gl.mintGitLab({ audience: [AUDIENCE, 'other'] }), 'invalid-token', /not a list/);
    await refused(tp, await gl.mintGitLab({ audience: 'https://gitlab.com' }), 'invalid-token', /audience "wharf-test"/);
    await refused(tp, await gl.mintGitLab({ claims: { aud: undefined } }), 'invalid-token', /lacks the aud claim/);
  });

  test('time claims: expired, nbf in the future, iat in the future, 30 s leeway, exp and iat required', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    const s = Math.floor(clock / 1000);
    await refused(tp, await gl.mintGitLab({ claims: { iat: s - 600, nbf: s - 600, exp: s - 31 } }), 'invalid-token', /expired/);
    await refused(tp, await gl.mintGitLab({ claims: { nbf: s + 120 } }), 'invalid-token', /not valid yet/);
    await refused(tp, await gl.mintGitLab({ claims: { iat: s + 120, nbf: undefined } }), 'invalid-token', /issued in the future/);
    await refused(tp, await gl.mintGitLab({ claims: { exp: undefined } }), 'invalid-token', /lacks the exp claim/);
    await refused(tp, await gl.mintGitLab({ claims: { iat: undefined } }), 'invalid-token', /lacks the iat claim/);
    await refused(tp, await gl.mintGitLab({ claims: { jti: undefined } }), 'invalid-token', /lacks the jti claim/);
    // Within the leeway.
    await tp.exchange(await gl.mintGitLab({ claims: { iat: s - 600, nbf: s + 20, exp: s - 20 } }));
  });

  test('refused: replayed jti (the same token, or another token with the same jti)', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    const jwt = await gl.mintGitLab();
    await tp.exchange(jwt);
    await refused(tp, jwt, 'invalid-reuse-token', /already exchanged/);
    const jti = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).jti;
    await refused(tp, await gl.mintGitLab({ claims: { jti } }), 'invalid-reuse-token');
    // Another issuer may use the same jti.
    await gitlabPublisher(tp, { issuer: glPath });
    await tp.exchange(await glPath.mintGitLab({ claims: { jti, ci_config_ref_uri: `${hostOf(glPath)}/acme/sub/tools//.gitlab-ci.yml@refs/heads/main` } }));
    // Concurrent exchanges of one token: exactly one wins.
    const twice = await gl.mintGitLab();
    const results = await Promise.allSettled([tp.exchange(twice), tp.exchange(twice), tp.exchange(twice)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as OidcError).code, 'invalid-reuse-token');
    const row = await db.selectFrom('oidc_used_jti').selectAll().where('jti', '=', jti).where('issuer', '=', gl.url).executeTakeFirstOrThrow();
    const exp = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).exp;
    assert.equal(row.expires_at, exp * 1000 + 30_000);
  });

  test('refused: tampered payload or signature, and a key the issuer does not publish', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    const jwt = await gl.mintGitLab({ claims: { project_path: 'acme/other' } });
    const [h, , sig] = jwt.split('.');
    const forged = `${h}.${base64url.encode(JSON.stringify(gl.gitlabClaims()))}.${sig}`;
    await refused(tp, forged, 'invalid-token', /signature does not verify/);
    const good = (await gl.mintGitLab()).split('.');
    const flipped = good[2]!.slice(0, 10) + (good[2]![10] === 'A' ? 'B' : 'A') + good[2]!.slice(11);
    await refused(tp, `${good[0]}.${good[1]}.${flipped}`, 'invalid-token', /signature does not verify/);
    // Signed with an unpublished key under the published kid.
    const rogue = await gl.newKey();
    await refused(tp, await gl.mintGitLab({ key: rogue, header: { kid: gl.current.kid } }), 'invalid-token', /signature does not verify/);
  });

  test('unknown kid: one refetch per 60 s cooldown; a rotated key is picked up after it', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    const start = { ...gl.stats };
    await tp.exchange(await gl.mintGitLab());
    assert.equal(gl.stats.jwks - start.jwks, 1);
    assert.equal(gl.stats.discovery - start.discovery, 1);

    const unpublished = await gl.newKey();
    await refused(tp, await gl.mintGitLab({ key: unpublished }), 'invalid-token', /publishes no signing key with kid/);
    assert.equal(gl.stats.jwks - start.jwks, 2, 'the unknown kid triggered one refetch');
    await refused(tp, await gl.mintGitLab({ key: unpublished }), 'invalid-token');
    await refused(tp, await gl.mintGitLab({ key: await gl.newKey() }), 'invalid-token');
    assert.equal(gl.stats.jwks - start.jwks, 2, 'no further refetch within the cooldown');

    // The issuer rotates; within the cooldown the new kid is still unknown, after it one refetch finds it.
    await gl.rotateKey();
    clock += 30_000;
    await refused(tp, await gl.mintGitLab(), 'invalid-token');
    assert.equal(gl.stats.jwks - start.jwks, 2);
    clock += 31_000;
    await tp.exchange(await gl.mintGitLab());
    assert.equal(gl.stats.jwks - start.jwks, 3);
    await tp.exchange(await gl.mintGitLab());
    assert.equal(gl.stats.jwks - start.jwks, 3, 'known keys are served from the cache');
  });

  test('key set age: refetched after 24 h; on failure the old set serves up to 48 h; empty sets are never stored', async () => {
    const tp = service();
    await gitlabPublisher(tp);
    const start = gl.stats.jwks;
    await tp.exchange(await gl.mintGitLab());
    clock += 24 * 3600_000 + 1000;
    await tp.exchange(await gl.mintGitLab());
    assert.equal(gl.stats.jwks - start, 2, 'refetched after the maximum age');

    gl.misbehave = { status: 503 };
    warnings.length = 0;
    clock += 25 * 3600_000;
    await tp.exchange(await gl.mintGitLab());
    assert.ok(warnings.some((w) => /outdated OIDC key set/.test(w)));
    clock += 24 * 3600_000;
    await refused(tp, await gl.mintGitLab(), 'invalid-token', /could not fetch the signing keys of .*HTTP 503/);

    // An empty key set is a failure, not a set.
    gl.misbehave = { jwks: { keys: [] } };
    clock += 11_000;
    await refused(tp, await gl.mintGitLab(), 'invalid-token', /no usable signing key/);
    gl.misbehave = { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: gl.current.kid }] } };
    clock += 11_000;
    await refused(tp, await gl.mintGitLab(), 'invalid-token', /no usable signing key/);
    gl.misbehave = {};
    clock += 11_000;
    await tp.exchange(await gl.mintGitLab());
  });

  test('discovery checks: jwks_uri on another origin, another issuer, no asymmetric algorithm, oversized key set', async () => {
    await gitlabPublisher(service());
    const jwks = gl.stats.jwks;
    gl.misbehave = { jwksUri: `https://127.0.0.1:${gl.port}/oauth/discovery/keys` };
    await refused(service(), await gl.mintGitLab(), 'invalid-token', /jwks_uri .* is not on the issuer's origin/);
    assert.equal(gl.stats.jwks, jwks, 'the foreign jwks_uri was not fetched');
    gl.misbehave = { discoveryIssuer: 'https://gitlab.com' };
    await refused(service(), await gl.mintGitLab(), 'invalid-token', /names the issuer "https:\/\/gitlab.com"/);
    gl.misbehave = { algs: ['HS256', 'none'] };
    await refused(service(), await gl.mintGitLab(), 'invalid-token', /no asymmetric signing algorithm/);
    gl.misbehave = { algs: ['ES256'] };
    await refused(service(), await gl.mintGitLab(), 'invalid-token', /signed with RS256, which .* does not advertise \(ES256\)/);
    gl.misbehave = { jwksPadding: 1024 * 1024 + 1 };
    await refused(service(), await gl.mintGitLab(), 'invalid-token', /larger than 1048576 bytes/);
    gl.misbehave = {};
    await service().exchange(await gl.mintGitLab());
  });

  test('issuer resolving to loopback without allowPrivateNetwork: refused, nothing reaches it', async () => {
    const tp = service();
    await gitlabPublisher(tp, { issuer: loopback });
    await refused(tp, await loopback.mintGitLab(), 'invalid-token', /localhost resolves to .*non-public address/);
    // The same server named by its IP literal.
    const literal = `https://127.0.0.1:${loopback.port}`;
    await tp.addPublisher(repoA, { provider: 'gitlab', project: 'acme/sub/tools', workflow: '.gitlab-ci.yml', issuer: literal });
    await refused(tp, await loopback.mintGitLab({ claims: { iss: literal } }), 'invalid-token', /127\.0\.0\.1 is a private, loopback/);
    assert.equal(loopback.stats.requests, 0);
  });
});
