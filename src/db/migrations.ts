// One migration history for every SQL dialect. Migrations use only portable column types.
import { sql, type Kysely, type Migration } from 'kysely';

export const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('orgs')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('name', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('repos')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('org_id', 'integer', (c) => c.notNull().references('orgs.id'))
        .addColumn('name', 'varchar(64)', (c) => c.notNull())
        .addColumn('private', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('repos_org_name', ['org_id', 'name'])
        .execute();
      await db.schema
        .createTable('distributions')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
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
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
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
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
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
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('purpose', 'varchar(32)', (c) => c.notNull())
        .addColumn('fingerprint', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('public_armored', 'text', (c) => c.notNull())
        .addColumn('private_armored', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema
        .createTable('retired_files')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
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
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
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
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
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
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
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
};
