// The one entry point for pushes: stages the upload, recognises the format, checks it against the distribution,
// and hands it to the Debian or the RPM service.
import { join } from 'node:path';
import type { Db } from '../db/database.ts';
import type { Config } from '../config.ts';
import { WharfError } from '../errors.ts';
import { distributionKindOf, validateDistRef, type RepoRef } from '../names.ts';
import { sniffPackageKind, stageUpload, type PackageKind } from './upload.ts';
import type { RepositoryService } from './repositories.ts';
import type { AptPackageService, DebPackageInfo, Provenance, PushResult } from './apt-packages.ts';
import type { RpmPackageService } from './rpm-packages.ts';
import type { UploadTracker } from './upload-tracker.ts';

export interface PackageServiceDeps {
  readonly db: Db;
  readonly config: Config;
  readonly repos: RepositoryService;
  readonly apt: AptPackageService;
  readonly rpm: RpmPackageService;
  readonly uploads: UploadTracker;
}

const EXAMPLE: Record<PackageKind, string> = { deb: 'debian/bookworm', rpm: 'el/9' };
const NAME: Record<PackageKind, string> = { deb: 'Debian package (.deb)', rpm: 'RPM package' };

export class PackageService {
  readonly #d: PackageServiceDeps;
  constructor(deps: PackageServiceDeps) {
    this.#d = deps;
  }

  /**
   * Stores one uploaded package and waits until the signed metadata lists it. `provenance`: the CI identity of a
   * trusted publish, kept with the package (an identical re-push keeps the first one).
   */
  async push(ref: RepoRef, os: string, dist: string, body: AsyncIterable<Uint8Array>, opts: { provenance?: Provenance } = {}): Promise<PushResult> {
    validateDistRef(os, dist);
    const repo = await this.#d.repos.get(ref);
    const ingested = this.#d.uploads.begin(`${ref.org}/${ref.repo}/${os}/${dist}`);
    try {
      const staged = await stageUpload(body, { dir: join(this.#d.config.dataDir, 'tmp'), maxBytes: this.#d.config.maxUploadBytes });
      try {
        const kind = sniffPackageKind(staged.head);
        const existing = await this.#d.db
          .selectFrom('distributions')
          .select('kind')
          .where('repo_id', '=', repo.id)
          .where('os', '=', os)
          .where('name', '=', dist)
          .executeTakeFirst();
        const known = (existing?.kind as PackageKind | undefined) ?? distributionKindOf(os);
        if (!kind) {
          throw new WharfError('UNSUPPORTED_PACKAGE', [
            known === 'rpm'
              ? 'The upload is not an RPM package: it does not start with the RPM lead magic ED AB EE DB'
              : known === 'deb'
                ? 'The upload is not a Debian package (.deb): it does not start with the ar archive magic "!<arch>"'
                : 'The upload is neither a Debian package (.deb, starting with the ar magic "!<arch>") nor an RPM package (lead magic ED AB EE DB)',
          ]);
        }
        const expected = known ?? kind;
        if (expected !== kind) {
          throw new WharfError('UNSUPPORTED_PACKAGE', [
            `${os}/${dist} is ${expected === 'rpm' ? 'an RPM' : 'a Debian'} distribution, but the upload is ${kind === 'rpm' ? 'an' : 'a'} ${NAME[kind]}: push it to ${kind === 'rpm' ? 'an RPM' : 'a Debian'} distribution such as ${EXAMPLE[kind]}`,
          ]);
        }
        return kind === 'deb'
          ? await this.#d.apt.ingest(ref, repo, os, dist, staged, ingested, opts.provenance)
          : await this.#d.rpm.ingest(ref, repo, os, dist, staged, ingested, opts.provenance);
      } finally {
        await staged.dispose();
      }
    } finally {
      ingested();
    }
  }

  /** Every package of a repository (Debian and RPM), optionally of one distribution. */
  async list(ref: RepoRef, filter?: { os: string; dist: string }): Promise<DebPackageInfo[]> {
    if (filter) validateDistRef(filter.os, filter.dist);
    const repo = await this.#d.repos.get(ref);
    const [deb, rpm] = await Promise.all([this.#d.apt.list(ref, filter), this.#d.rpm.list(repo.id, filter)]);
    return [...deb, ...rpm].sort((a, b) => (a.distribution < b.distribution ? -1 : a.distribution > b.distribution ? 1 : 0));
  }

  async yank(ref: RepoRef, os: string, dist: string, filename: string): Promise<DebPackageInfo> {
    validateDistRef(os, dist);
    const repo = await this.#d.repos.get(ref);
    const d = await this.#d.db
      .selectFrom('distributions')
      .select(['id', 'kind'])
      .where('repo_id', '=', repo.id)
      .where('os', '=', os)
      .where('name', '=', dist)
      .executeTakeFirst();
    if (d?.kind === 'rpm') {
      const removed = await this.#d.rpm.yank(ref, repo, d.id, os, dist, filename);
      if (!removed) throw new WharfError('PACKAGE_NOT_FOUND', [String(filename).slice(0, 200), `${ref.org}/${ref.repo}/${os}/${dist}`]);
      return removed;
    }
    return this.#d.apt.yank(ref, os, dist, filename);
  }
}
