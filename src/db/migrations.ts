// One migration history for every SQL dialect (SQLite, PostgreSQL). Migrations use only portable column types:
// integer, bigint (times in Unix ms, sizes), varchar(n), char(n), text; booleans are integer 0/1. Where a dialect
// needs different DDL, a helper asks capabilities(db) (generated primary keys: identity()). Never change what an
// applied migration does on SQLite: existing wharf.db files recorded it as done; add a new migration instead.
import { sql, type Kysely, type Migration } from 'kysely';
import { identity } from './capabilities.ts';

export const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('orgs')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('name', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('repos')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('org_id', 'integer', (c) => c.notNull().references('orgs.id'))
        .addColumn('name', 'varchar(64)', (c) => c.notNull())
        .addColumn('private', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('repos_org_name', ['org_id', 'name'])
        .execute();
      await db.schema
        .createTable('distributions')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('repo_id', 'integer', (c) => c.notNull().references('repos.id'))
        .addColumn('kind', 'varchar(8)', (c) => c.notNull())
        .addColumn('os', 'varchar(64)', (c) => c.notNull())
        .addColumn('name', 'varchar(64)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('published_state', 'text')
        .addColumn('published_at', 'bigint')
        .addUniqueConstraint('distributions_repo_os_name', ['repo_id', 'os', 'name'])
        .execute();
      await db.schema
        .createTable('deb_packages')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('distribution_id', 'integer', (c) => c.notNull().references('distributions.id'))
        .addColumn('component', 'varchar(64)', (c) => c.notNull())
        .addColumn('name', 'varchar(128)', (c) => c.notNull())
        .addColumn('version', 'varchar(256)', (c) => c.notNull())
        .addColumn('architecture', 'varchar(64)', (c) => c.notNull())
        .addColumn('filename', 'varchar(512)', (c) => c.notNull())
        .addColumn('pool_key', 'varchar(1024)', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('md5', 'char(32)', (c) => c.notNull())
        .addColumn('sha1', 'char(40)', (c) => c.notNull())
        .addColumn('sha256', 'char(64)', (c) => c.notNull())
        .addColumn('sha512', 'char(128)', (c) => c.notNull())
        .addColumn('stanza', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('deb_packages_identity', ['distribution_id', 'name', 'version', 'architecture'])
        .addUniqueConstraint('deb_packages_filename', ['distribution_id', 'filename'])
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('kind', 'varchar(32)', (c) => c.notNull())
        .addColumn('name', 'varchar(128)', (c) => c.notNull())
        .addColumn('secret_sha256', 'char(64)', (c) => c.notNull().unique())
        .addColumn('scopes', 'varchar(256)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema
        .createTable('signing_keys')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('purpose', 'varchar(32)', (c) => c.notNull())
        .addColumn('fingerprint', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('public_armored', 'text', (c) => c.notNull())
        .addColumn('private_armored', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema
        .createTable('retired_files')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('distribution_id', 'integer', (c) => c.notNull().references('distributions.id'))
        .addColumn('key', 'varchar(1024)', (c) => c.notNull())
        .addColumn('retired_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('retired_files_retired_at').on('retired_files').column('retired_at').execute();
      await sql`select 1`.execute(db);
    },
  },
  '0002_rpm': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('rpm_packages')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('distribution_id', 'integer', (c) => c.notNull().references('distributions.id'))
        .addColumn('name', 'varchar(256)', (c) => c.notNull())
        .addColumn('epoch', 'varchar(16)', (c) => c.notNull())
        .addColumn('version', 'varchar(256)', (c) => c.notNull())
        .addColumn('release', 'varchar(256)', (c) => c.notNull())
        .addColumn('arch', 'varchar(64)', (c) => c.notNull())
        .addColumn('filename', 'varchar(512)', (c) => c.notNull())
        .addColumn('blob_key', 'varchar(1024)', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'char(64)', (c) => c.notNull())
        .addColumn('upload_sha256', 'char(64)', (c) => c.notNull())
        .addColumn('primary_xml', 'text', (c) => c.notNull())
        .addColumn('filelists_xml', 'text', (c) => c.notNull())
        .addColumn('other_xml', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('rpm_packages_identity', ['distribution_id', 'name', 'epoch', 'version', 'release', 'arch'])
        .addUniqueConstraint('rpm_packages_filename', ['distribution_id', 'filename'])
        .execute();
    },
  },
  '0003_repo_package_signing': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('repos').addColumn('sign_packages', 'integer', (c) => c.notNull().defaultTo(1)).execute();
    },
  },
  '0004_repository_keys': {
    async up(db: Kysely<any>) {
      // null: a server-wide key (metadata); set: a key of one repository (its RPM package key)
      await db.schema.alterTable('signing_keys').addColumn('repo_id', 'integer', (c) => c.references('repos.id')).execute();
    },
  },
  '0005_deploy_tokens': {
    async up(db: Kysely<any>) {
      // What a token may reach: a whole organisation (repo_id null) or one repository; null org: the server admin.
      await db.schema.alterTable('tokens').addColumn('org_id', 'integer', (c) => c.references('orgs.id')).execute();
      await db.schema.alterTable('tokens').addColumn('repo_id', 'integer', (c) => c.references('repos.id')).execute();
      await db.schema.alterTable('tokens').addColumn('username', 'varchar(128)').execute();
      // Rotation: the previous secret stays valid until previous_valid_until.
      await db.schema.alterTable('tokens').addColumn('previous_secret_sha256', 'char(64)').execute();
      await db.schema.alterTable('tokens').addColumn('previous_valid_until', 'bigint').execute();
      await db.schema.createIndex('tokens_previous_secret').on('tokens').column('previous_secret_sha256').execute();
    },
  },
  '0006_server_secrets': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('server_secrets')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('purpose', 'varchar(64)', (c) => c.notNull())
        .addColumn('value_encrypted', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
    },
  },
  '0007_audit_log': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'varchar(256)', (c) => c.notNull())
        .addColumn('ip', 'varchar(64)')
        .addColumn('action', 'varchar(64)', (c) => c.notNull())
        .addColumn('org_id', 'integer')
        .addColumn('repo_id', 'integer')
        .addColumn('target', 'varchar(1024)', (c) => c.notNull())
        .addColumn('details', 'text')
        .execute();
      await db.schema.createIndex('audit_log_org').on('audit_log').columns(['org_id', 'id']).execute();
    },
  },
  '0008_trusted_publishing': {
    async up(db: Kysely<any>) {
      // OIDC issuers an admin allowed besides the built-in ones (gitlab.com, GitHub Actions).
      await db.schema
        .createTable('oidc_issuers')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('url', 'varchar(512)', (c) => c.notNull().unique())
        .addColumn('type', 'varchar(16)', (c) => c.notNull())
        .addColumn('allow_private_network', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      // Who may publish to a repository from CI, without a stored secret.
      await db.schema
        .createTable('trusted_publishers')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('repo_id', 'integer', (c) => c.notNull().references('repos.id'))
        .addColumn('provider', 'varchar(16)', (c) => c.notNull())
        .addColumn('issuer', 'varchar(512)', (c) => c.notNull())
        .addColumn('project', 'varchar(512)', (c) => c.notNull())
        .addColumn('workflow', 'varchar(512)', (c) => c.notNull())
        .addColumn('environment', 'varchar(256)')
        // Bound on registration or first successful use (defence against deleted and re-created namespaces).
        .addColumn('namespace_id', 'varchar(64)')
        .addColumn('project_id', 'varchar(64)')
        .addColumn('owner_id', 'varchar(64)')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema.createIndex('trusted_publishers_repo').on('trusted_publishers').column('repo_id').execute();
      // Single use of CI tokens: a (issuer, jti) pair is stored until the token expires.
      await db.schema
        .createTable('oidc_used_jti')
        .addColumn('issuer', 'varchar(512)', (c) => c.notNull())
        .addColumn('jti', 'varchar(256)', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('oidc_used_jti_pk', ['issuer', 'jti'])
        .execute();
      await db.schema.createIndex('oidc_used_jti_expires').on('oidc_used_jti').column('expires_at').execute();
      // Keys that sign Wharf's own JWTs. state: 'published' (in the JWKS, not signing yet), 'active' (signing),
      // 'retired' (in the JWKS so earlier tokens verify, no longer signing); trimmed keys are deleted.
      await db.schema
        .createTable('jwt_keys')
        .addColumn('id', 'integer', (c) => identity(db, c))
        .addColumn('kid', 'varchar(128)', (c) => c.notNull().unique())
        .addColumn('alg', 'varchar(16)', (c) => c.notNull())
        .addColumn('public_jwk', 'text', (c) => c.notNull())
        .addColumn('private_encrypted', 'text', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('activated_at', 'bigint')
        .addColumn('retired_at', 'bigint')
        .execute();
      // The CI identity a package was published from (JSON), for `ls --long` and provenance attestations.
      await db.schema.alterTable('deb_packages').addColumn('provenance', 'text').execute();
      await db.schema.alterTable('rpm_packages').addColumn('provenance', 'text').execute();
    },
  },
  '0009_distribution_changes': {
    async up(db: Kysely<any>) {
      // Every stored or removed package bumps `changes` in the transaction that writes the row; a publish records the
      // value it read before reading the rows as `published_changes`. Equal values mean the signed metadata already
      // holds every committed change, whichever node made it: a publish requested then has nothing to do (group commit
      // across nodes), and a difference that persists means a node died between storing and publishing.
      await db.schema.alterTable('distributions').addColumn('changes', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('distributions').addColumn('published_changes', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
    },
  },
};
