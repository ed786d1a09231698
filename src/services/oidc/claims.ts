// The CI claims of GitLab and GitHub id tokens checked against a trusted publisher, and the validation of what a
// publisher is registered with. Parsing is by index and slice (no regular expression runs on a token's claims), so a
// crafted claim cannot cause catastrophic backtracking.
import type { Selectable } from 'kysely';
import type { TrustedPublisherTable } from '../../db/schema.ts';
import { WharfError } from '../../errors.ts';
import { OidcError, quote } from './errors.ts';
import type { CiIdentity } from './identity.ts';

export type Provider = 'gitlab' | 'github';
export type PublisherRow = Selectable<TrustedPublisherTable>;
export type Claims = Record<string, unknown>;

/** GitHub events whose workflows run with a base repository's privileges on code an outsider controls (crates.io). */
export const REFUSED_GITHUB_EVENTS: readonly string[] = ['pull_request_target', 'workflow_run'];

const lower = (s: string) => s.toLowerCase();

/** A claim as a string: strings as they are, integers (some issuers type ids as numbers) in decimal; else undefined. */
export function claimString(c: Claims, name: string): string | undefined {
  const v = c[name];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  return undefined;
}

function required(c: Claims, name: string, provider: Provider): string {
  const v = claimString(c, name);
  if (v === undefined || v === '') {
    throw new OidcError('invalid-publisher', `The ${provider === 'gitlab' ? 'GitLab' : 'GitHub'} token lacks the ${name} claim, which trusted publishing needs: use a current ${provider === 'gitlab' ? 'GitLab (id_tokens)' : 'GitHub Actions (id-token: write)'} token`);
  }
  return v;
}

// ---- Token-level checks (before any publisher is looked at) ----

/** The project the token speaks for (GitLab project_path, GitHub repository); checks the claims every publisher needs. */
export function tokenProject(provider: Provider, c: Claims): string {
  if (provider === 'gitlab') {
    const project = required(c, 'project_path', provider);
    required(c, 'sub', provider);
    required(c, 'namespace_id', provider);
    required(c, 'project_id', provider);
    required(c, 'ref_path', provider);
    required(c, 'sha', provider);
    const uri = c.ci_config_ref_uri;
    if (uri === undefined || uri === null) {
      throw new OidcError(
        'invalid-publisher',
        'The token has no ci_config_ref_uri: the pipeline configuration was defined outside the project (another project, a remote URL or a policy), so Wharf cannot tell which CI file runs. Keep the CI configuration in the project\'s repository (GitLab 16.2 or later)',
      );
    }
    if (typeof uri !== 'string' || uri === '') throw new OidcError('invalid-publisher', 'The token\'s ci_config_ref_uri claim is malformed');
    return project;
  }
  const project = required(c, 'repository', provider);
  required(c, 'repository_owner', provider);
  required(c, 'repository_owner_id', provider);
  required(c, 'job_workflow_ref', provider);
  const event = claimString(c, 'event_name');
  if (event !== undefined && REFUSED_GITHUB_EVENTS.includes(event)) {
    throw new OidcError(
      'invalid-publisher',
      `Workflows triggered by ${event} cannot publish: they run with the repository's privileges on code from a pull request or another workflow. Publish from a push, tag, release or workflow_dispatch workflow`,
    );
  }
  if (!claimString(c, 'ref') && !claimString(c, 'sha')) throw new OidcError('invalid-publisher', 'The token\'s ref and sha claims are both empty');
  return project;
}

// ---- Publisher checks: null when the publisher accepts the claims, else the reason it does not ----

/** The issuer URL without its scheme, as GitLab starts ci_config_ref_uri with it (host[:port][/relative root]). */
export function gitlabServerFqdn(issuerUrl: string): string {
  return issuerUrl.startsWith('https://') ? issuerUrl.slice('https://'.length) : issuerUrl;
}

/** Splits `<fqdn>/<project>//<path>@<ref>`; undefined when the shape is wrong. */
export function parseCiConfigRefUri(uri: string, fqdn: string): { project: string; path: string; ref: string } | undefined {
  const prefix = fqdn + '/';
  if (uri.length <= prefix.length || lower(uri.slice(0, prefix.length)) !== lower(prefix)) return undefined;
  const rest = uri.slice(prefix.length);
  const sep = rest.indexOf('//');
  if (sep <= 0) return undefined;
  const tail = rest.slice(sep + 2);
  // A registered path has no '@' (validateWorkflow), so the first '@' ends the path; a ref may contain '@'.
  const at = tail.indexOf('@');
  if (at <= 0) return undefined;
  return { project: rest.slice(0, sep), path: tail.slice(0, at), ref: tail.slice(at + 1) };
}

function environmentMismatch(p: PublisherRow, c: Claims, caseSensitive: boolean): string | null {
  if (p.environment === null) return null;
  const env = claimString(c, 'environment');
  if (!env) return `the job has no environment but the publisher requires the environment ${quote(p.environment)}`;
  const same = caseSensitive ? env === p.environment : lower(env) === lower(p.environment);
  return same ? null : `the job's environment ${quote(env)} is not the publisher's ${quote(p.environment)}`;
}

export function matchGitLab(p: PublisherRow, c: Claims, issuerUrl: string): string | null {
  const project = claimString(c, 'project_path')!;
  if (lower(project) !== lower(p.project)) return `project_path ${quote(project)} is not ${quote(p.project)}`;
  const sub = claimString(c, 'sub')!;
  const subPrefix = `project_path:${p.project}:`;
  if (sub.length < subPrefix.length || lower(sub.slice(0, subPrefix.length)) !== lower(subPrefix)) return `sub does not start with ${quote(subPrefix)}`;
  const uri = c.ci_config_ref_uri as string;
  const parsed = parseCiConfigRefUri(uri, gitlabServerFqdn(issuerUrl));
  if (!parsed) return `ci_config_ref_uri ${quote(uri)} is not of the form ${gitlabServerFqdn(issuerUrl)}/<project>//<CI config path>@<ref>`;
  if (lower(parsed.project) !== lower(p.project)) return `the CI configuration comes from the project ${quote(parsed.project)}, not ${quote(p.project)}`;
  if (parsed.path !== p.workflow) return `the pipeline runs the CI configuration ${quote(parsed.path)} but the publisher trusts ${quote(p.workflow)}`;
  const refPath = claimString(c, 'ref_path')!;
  const sha = claimString(c, 'sha')!;
  if (parsed.ref !== refPath && parsed.ref !== sha) return `ci_config_ref_uri names the ref ${quote(parsed.ref)}, which is neither the job's ref_path ${quote(refPath)} nor its sha`;
  const env = environmentMismatch(p, c, true);
  if (env) return env;
  const namespaceId = claimString(c, 'namespace_id')!;
  const projectId = claimString(c, 'project_id')!;
  if (p.namespace_id !== null && p.namespace_id !== namespaceId) {
    return `the namespace id changed since this publisher was first used (${p.namespace_id} then, ${namespaceId} now): the group may have been deleted and re-created by someone else. If the change is expected, remove and re-add the trusted publisher`;
  }
  if (p.project_id !== null && p.project_id !== projectId) {
    return `the project id changed since this publisher was first used (${p.project_id} then, ${projectId} now): the project may have been deleted and re-created. If the change is expected, remove and re-add the trusted publisher`;
  }
  return null;
}

export function matchGitHub(p: PublisherRow, c: Claims): string | null {
  const repository = claimString(c, 'repository')!;
  if (lower(repository) !== lower(p.project)) return `repository ${quote(repository)} is not ${quote(p.project)}`;
  const owner = claimString(c, 'repository_owner')!;
  const expectedOwner = p.project.slice(0, p.project.indexOf('/'));
  if (lower(owner) !== lower(expectedOwner)) return `repository_owner ${quote(owner)} is not ${quote(expectedOwner)}`;
  const jwr = claimString(c, 'job_workflow_ref')!;
  const prefix = `${p.project}/`;
  const base = `.github/workflows/${p.workflow}@`;
  const rest = jwr.slice(prefix.length);
  if (lower(jwr.slice(0, prefix.length)) !== lower(prefix) || !rest.startsWith(base)) {
    return `job_workflow_ref ${quote(jwr)} is not the workflow ${p.project}/.github/workflows/${p.workflow} (a reusable workflow from elsewhere, or another workflow file)`;
  }
  const ref = rest.slice(base.length);
  const claimedRef = claimString(c, 'ref');
  const sha = claimString(c, 'sha');
  if (ref === '' || (ref !== claimedRef && ref !== sha)) return `job_workflow_ref names the ref ${quote(ref)}, which is neither the job's ref nor its sha`;
  const env = environmentMismatch(p, c, false);
  if (env) return env;
  const ownerId = claimString(c, 'repository_owner_id')!;
  if (p.owner_id !== null && p.owner_id !== ownerId) {
    return `repository_owner_id is ${ownerId} but the publisher is bound to owner id ${p.owner_id}: the account ${quote(owner)} was deleted and its name taken by someone else, or the publisher was registered with the wrong id. If expected, remove and re-add the trusted publisher`;
  }
  return null;
}

// ---- The CI identity recorded as provenance ----

export function ciIdentity(provider: Provider, issuer: string, c: Claims, publisher: PublisherRow): CiIdentity {
  const s = (name: string) => claimString(c, name);
  const put = <K extends keyof CiIdentity>(o: CiIdentity, k: K, v: CiIdentity[K] | undefined) => {
    if (v !== undefined && v !== '') o[k] = v;
  };
  if (provider === 'gitlab') {
    const uri = c.ci_config_ref_uri as string;
    const parsed = parseCiConfigRefUri(uri, gitlabServerFqdn(issuer));
    const id: CiIdentity = {
      provider,
      issuer,
      project: s('project_path')!,
      ref: s('ref_path')!,
      sha: s('sha')!,
      run_id: s('pipeline_id') ?? '',
      workflow: parsed?.path ?? publisher.workflow,
      workflow_ref: uri,
      environment: s('environment') || null,
      publisher_id: publisher.id,
    };
    put(id, 'job_id', s('job_id'));
    put(id, 'event', s('pipeline_source'));
    put(id, 'runner_environment', s('runner_environment'));
    put(id, 'project_id', s('project_id'));
    put(id, 'owner_id', s('namespace_id'));
    put(id, 'actor', s('user_login'));
    put(id, 'workflow_sha', s('ci_config_sha'));
    put(id, 'runner_id', s('runner_id'));
    put(id, 'token_id', s('jti'));
    return id;
  }
  const id: CiIdentity = {
    provider,
    issuer,
    project: s('repository')!,
    ref: s('ref') ?? '',
    sha: s('sha') ?? '',
    run_id: s('run_id') ?? '',
    workflow: `.github/workflows/${publisher.workflow}`,
    workflow_ref: s('job_workflow_ref')!,
    environment: s('environment') || null,
    publisher_id: publisher.id,
  };
  put(id, 'run_attempt', s('run_attempt'));
  put(id, 'event', s('event_name'));
  put(id, 'runner_environment', s('runner_environment'));
  put(id, 'project_id', s('repository_id'));
  put(id, 'owner_id', s('repository_owner_id'));
  put(id, 'actor', s('actor'));
  put(id, 'workflow_sha', s('job_workflow_sha'));
  put(id, 'token_id', s('jti'));
  return id;
}

// ---- Registration input ----

const CONTROL = /[\u0000-\u001f\u007f]/;
const GITLAB_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const GITHUB_OWNER = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const GITHUB_REPO = /^[A-Za-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._+~-]+$/;

const invalid = (msg: string) => new WharfError('PUBLISHER_INVALID', [msg]);
const isYaml = (name: string) => {
  const l = lower(name);
  return (l.endsWith('.yml') && l.length > 4) || (l.endsWith('.yaml') && l.length > 5);
};

/** GitLab: group/subgroup/project; GitHub: owner/repository. Returns the project as given. */
export function validateProject(provider: Provider, project: string): string {
  if (typeof project !== 'string' || project.length === 0 || project.length > 255) throw invalid('the project must be 1-255 characters');
  const parts = project.split('/');
  if (provider === 'gitlab') {
    if (parts.length < 2 || parts.length > 21 || !parts.every((s) => GITLAB_SEGMENT.test(s))) {
      throw invalid(`${quote(project)} is not a GitLab project path: expected group/project or group/subgroup/project (letters, digits, "_", "-", ".")`);
    }
    return project;
  }
  const [owner, repo] = parts;
  if (parts.length !== 2 || !owner || owner.length > 39 || !GITHUB_OWNER.test(owner) || !repo || repo.length > 100 || !GITHUB_REPO.test(repo) || repo === '.' || repo === '..') {
    throw invalid(`${quote(project)} is not a GitHub repository: expected owner/repository`);
  }
  return project;
}

/** GitLab: the repository-relative CI configuration path (.gitlab-ci.yml, ci/release.yml); GitHub: a workflow file name. */
export function validateWorkflow(provider: Provider, workflow: string): string {
  if (typeof workflow !== 'string' || workflow.length === 0 || workflow.length > 255) throw invalid('the workflow must be 1-255 characters');
  if (provider === 'github') {
    if (workflow.includes('/') || !PATH_SEGMENT.test(workflow) || !isYaml(workflow)) {
      throw invalid(`${quote(workflow)} is not a workflow file name: give the file name in .github/workflows, such as release.yml (no directory)`);
    }
    return workflow;
  }
  const segments = workflow.split('/');
  if (!segments.every((s) => s !== '.' && s !== '..' && PATH_SEGMENT.test(s)) || !isYaml(workflow)) {
    throw invalid(
      `${quote(workflow)} is not a CI configuration path: give the path relative to the repository root, ending in .yml or .yaml, such as .gitlab-ci.yml or ci/release.yml (no leading "/", no "..", no "@")`,
    );
  }
  return workflow;
}

export function validateEnvironment(environment: string | undefined | null): string | null {
  if (environment === undefined || environment === null || environment === '') return null;
  if (typeof environment !== 'string' || environment.length > 255 || CONTROL.test(environment) || environment.trim() !== environment) {
    throw invalid('the environment must be 1-255 characters without control characters or surrounding spaces');
  }
  return environment;
}

export function validateOwnerId(provider: Provider, ownerId: string | undefined | null): string | null {
  if (ownerId === undefined || ownerId === null || ownerId === '') return null;
  if (provider !== 'github') throw invalid('an owner id applies to GitHub publishers only (GitLab namespace and project ids are bound on first use)');
  if (typeof ownerId !== 'string' || ownerId.length > 20 || !/^[0-9]+$/.test(ownerId)) {
    throw invalid(`owner id ${quote(ownerId)} is not a GitHub account id: give the numeric id (https://api.github.com/users/OWNER shows it as "id")`);
  }
  return ownerId;
}
