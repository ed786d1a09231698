// The database schema as Kysely sees it. Times are Unix milliseconds (integers) so SQLite and PostgreSQL agree.
import type { Generated, Insertable, Selectable } from 'kysely';

export interface OrgTable {
  id: Generated<number>;
  name: string;
  created_at: number;
}

export interface RepoTable {
  id: Generated<number>;
  org_id: number;
  name: string;
  private: number; // 0 or 1
  /** 1: RPMs are re-signed with the package key on upload (the default); 0: stored as uploaded */
  sign_packages: Generated<number>;
  created_at: number;
}

export interface DistributionTable {
  id: Generated<number>;
  repo_id: number;
  /** 'deb' (later also 'rpm') */
  kind: string;
  os: string;
  name: string;
  created_at: number;
  /** metadata generation counter, bumped by each publish */
  generation: number;
  /** JSON of the last published state (see services/publish-apt.ts) or null */
  published_state: string | null;
  published_at: number | null;
  /** bumped by every stored or removed package, in the same transaction */
  changes: Generated<number>;
  /** the `changes` value the last publish included */
  published_changes: Generated<number>;
}

export interface DebPackageTable {
  id: Generated<number>;
  distribution_id: number;
  component: string;
  name: string;
  version: string;
  architecture: string;
  filename: string;
  /** storage key of the pool file */
  pool_key: string;
  size: number;
  md5: string;
  sha1: string;
  sha256: string;
  sha512: string;
  /** the Packages stanza for this file, rendered at upload */
  stanza: string;
  created_at: number;
  /** JSON: the CI identity of a trusted publish (see services/provenance.ts), null otherwise */
  provenance: Generated<string | null>;
}

export interface RpmPackageTable {
  id: Generated<number>;
  distribution_id: number;
  name: string;
  epoch: string;
  version: string;
  release: string;
  /** the package's arch: x86_64, noarch, src, ... */
  arch: string;
  filename: string;
  /** storage key of the canonical copy, relative to the OS directory (DIST/ARCH/Packages/x/NAME.rpm) */
  blob_key: string;
  size: number;
  /** of the stored (re-signed) file: the pkgid */
  sha256: string;
  /** of the file as uploaded: what an identical re-push is compared with */
  upload_sha256: string;
  /** the package's fragments of primary.xml, filelists.xml and other.xml, rendered at upload */
  primary_xml: string;
  filelists_xml: string;
  other_xml: string;
  created_at: number;
  /** JSON: the CI identity of a trusted publish (see services/provenance.ts), null otherwise */
  provenance: Generated<string | null>;
}

export interface TokenTable {
  id: Generated<number>;
  kind: string;
  name: string;
  /** SHA-256 (hex) of the secret: high-entropy secrets need no slow KDF, and lookups stay O(1) */
  secret_sha256: string;
  scopes: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  /** scope of a deploy token: an organisation, optionally narrowed to one repository; null for the server admin */
  org_id: number | null;
  repo_id: number | null;
  /** the HTTP Basic user name shown with the token */
  username: string | null;
  /** after a rotation, the old secret stays valid until previous_valid_until */
  previous_secret_sha256: string | null;
  previous_valid_until: number | null;
}

export interface SigningKeyTable {
  id: Generated<number>;
  purpose: string;
  fingerprint: string;
  public_armored: string;
  /** OpenPGP private key, encrypted with the signing passphrase */
  private_armored: string;
  created_at: number;
  active: number;
  /** null for server-wide keys (metadata); the repository of a repository key (RPM package key) */
  repo_id: number | null;
}

/** Files superseded by a publish, deleted once the retention period has passed. */
export interface RetiredFileTable {
  id: Generated<number>;
  distribution_id: number;
  key: string;
  retired_at: number;
}

/** Symmetric secrets (the URL-signing secret), encrypted with a key derived from the signing passphrase. */
export interface ServerSecretTable {
  id: Generated<number>;
  purpose: string;
  value_encrypted: string;
  created_at: number;
  active: number;
}

/** Every mutation: who (token or identity), what, when, from where. */
export interface AuditLogTable {
  id: Generated<number>;
  at: number;
  actor: string;
  ip: string | null;
  action: string;
  org_id: number | null;
  repo_id: number | null;
  target: string;
  details: string | null;
}

/** An OIDC issuer an admin allowed (`wharf issuer add`). */
export interface OidcIssuerTable {
  id: Generated<number>;
  /** https origin (plus optional path), no trailing slash: exactly the tokens' `iss` */
  url: string;
  type: 'gitlab' | 'github';
  /** 1: the issuer may resolve to private or loopback addresses */
  allow_private_network: number;
  created_at: number;
}

/** A trusted publisher: which CI workflow may publish to a repository. */
export interface TrustedPublisherTable {
  id: Generated<number>;
  repo_id: number;
  provider: 'gitlab' | 'github';
  /** the issuer URL (`iss`) */
  issuer: string;
  /** GitLab: namespace/project path; GitHub: owner/repository */
  project: string;
  /** GitLab: repository-relative CI config path (ci/release.yml); GitHub: workflow file name (release.yml) */
  workflow: string;
  environment: string | null;
  /** GitLab namespace_id / project_id, GitHub repository_owner_id: bound on first use */
  namespace_id: string | null;
  project_id: string | null;
  owner_id: string | null;
  created_at: number;
  last_used_at: number | null;
}

/** CI token ids already exchanged, kept until the token expires (replay defence). */
export interface OidcUsedJtiTable {
  issuer: string;
  jti: string;
  expires_at: number;
}

/** Keys that sign Wharf's JWTs (ES256). */
export interface JwtKeyTable {
  id: Generated<number>;
  kid: string;
  alg: string;
  /** public JWK (JSON) */
  public_jwk: string;
  /** PKCS#8 private key, AES-256-GCM sealed like the other server secrets (base64) */
  private_encrypted: string;
  state: 'published' | 'active' | 'retired';
  created_at: number;
  activated_at: number | null;
  retired_at: number | null;
}

export interface Database {
  orgs: OrgTable;
  repos: RepoTable;
  distributions: DistributionTable;
  deb_packages: DebPackageTable;
  rpm_packages: RpmPackageTable;
  tokens: TokenTable;
  signing_keys: SigningKeyTable;
  retired_files: RetiredFileTable;
  server_secrets: ServerSecretTable;
  audit_log: AuditLogTable;
  oidc_issuers: OidcIssuerTable;
  trusted_publishers: TrustedPublisherTable;
  oidc_used_jti: OidcUsedJtiTable;
  jwt_keys: JwtKeyTable;
}

export type Repo = Selectable<RepoTable>;
export type Distribution = Selectable<DistributionTable>;
export type DebPackage = Selectable<DebPackageTable>;
export type NewDebPackage = Insertable<DebPackageTable>;
