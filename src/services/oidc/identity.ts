// The CI identity behind a trusted publish, recorded as the provenance of what it uploads.

export interface CiIdentity {
  provider: 'gitlab' | 'github';
  /** the token's `iss` */
  issuer: string;
  /** GitLab project_path / GitHub repository, as the token spells it */
  project: string;
  /** the full ref: GitLab ref_path (refs/heads/main), GitHub ref */
  ref: string;
  /** the commit */
  sha: string;
  /** GitLab pipeline_id / GitHub run_id */
  run_id: string;
  /** GitHub run_attempt */
  run_attempt?: string;
  /** GitLab job_id */
  job_id?: string;
  /** the CI configuration path in the repository: GitLab's CI config path, GitHub's .github/workflows/FILE */
  workflow: string;
  /** GitLab ci_config_ref_uri / GitHub job_workflow_ref */
  workflow_ref: string;
  environment: string | null;
  /** GitLab pipeline_source / GitHub event_name */
  event?: string;
  /** gitlab-hosted, github-hosted or self-hosted */
  runner_environment?: string;
  /** GitLab project_id / GitHub repository_id: stable across renames */
  project_id?: string;
  /** GitLab namespace_id / GitHub repository_owner_id */
  owner_id?: string;
  /** who started the job: GitLab user_login / GitHub actor */
  actor?: string;
  /** the commit of the CI configuration: GitLab ci_config_sha / GitHub job_workflow_sha */
  workflow_sha?: string;
  /** GitLab runner_id (the builder, for a SLSA provenance's runDetails) */
  runner_id?: string;
  /** the `jti` of the CI token that was exchanged */
  token_id?: string;
  /** the trusted publisher that accepted the token */
  publisher_id: number;
}
