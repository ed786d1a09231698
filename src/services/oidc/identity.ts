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
  /** the trusted publisher that accepted the token */
  publisher_id: number;
}
