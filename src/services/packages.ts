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
import type { StagedUpload } from './upload.ts';
import type { RepositoryInfo } from './repositories.ts';
import { readTarStream } from '../formats/tar-stream.ts';
import { isWharfError } from '../errors.ts';

export interface BatchEntryResult {
  file: string;
  status: 'created' | 'unchanged' | 'refused';
  package?: DebPackageInfo;
  error?: { code: string; message: string };
}

export interface BatchResult {
  results: BatchEntryResult[];
  /** the metadata generation that lists the batch (absent when nothing was stored) */
  generation?: number;
}

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
        const kind = await this.#kindFor(repo, os, dist, staged);
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

  /** Most files one batch may carry (a client sends more as several batches). */
  static readonly MAX_BATCH_FILES = 20_000;
  /** Packages of one batch checked and stored at once. */
  static readonly BATCH_CONCURRENCY = 8;

  /**
   * Stores every package of a tar archive (plain files, as `wharf push` sends several) and then waits for one
   * publish that lists them all: a bulk import costs one metadata generation, not one per package. Each file is
   * checked like a single push; a refused file is reported in its result and the others are still stored.
   */
  async pushBatch(ref: RepoRef, os: string, dist: string, body: AsyncIterable<Uint8Array>, opts: { provenance?: Provenance } = {}): Promise<BatchResult> {
    validateDistRef(os, dist);
    const repo = await this.#d.repos.get(ref);
    const label = `${ref.org}/${ref.repo}/${os}/${dist}`;
    const ingested = this.#d.uploads.begin(label);
    const results: BatchEntryResult[] = [];
    let distributionId: number | undefined;
    let target: number | undefined;
    let unchanged = false;
    let kindStored: PackageKind | undefined;
    try {
      const entries = readTarStream(body, { maxEntries: PackageService.MAX_BATCH_FILES, maxEntryBytes: this.#d.config.maxUploadBytes });
      // The archive is read in order, but each package's checks and storage run while the next ones are read: a
      // package is mostly waiting for the filesystem or storage, so a few in flight keep the process busy.
      const inFlight = new Set<Promise<void>>();
      let failure: unknown;
      try {
        for await (const entry of entries) {
          if (failure) break;
          const index = results.length;
          results.push({ file: entry.name, status: 'refused' });
          const staged = await stageUpload(entry.body, { dir: join(this.#d.config.dataDir, 'tmp'), maxBytes: this.#d.config.maxUploadBytes });
          const task = (async () => {
            try {
              // Once the batch stored a package, the distribution exists and its kind is fixed: no lookups per package.
              const sniffed = sniffPackageKind(staged.head);
              const kind = kindStored !== undefined && sniffed === kindStored ? kindStored : await this.#kindFor(repo, os, dist, staged);
              const ingestOpts = {
                publish: false,
                ...(kindStored === kind && distributionId !== undefined ? { distributionId } : {}),
                onStored: (id: number, t: number | undefined) => {
                  distributionId = id;
                  kindStored = kind;
                  if (t === undefined) unchanged = true;
                  else target = Math.max(target ?? 0, t);
                },
              };
              const none = () => {};
              const r =
                kind === 'deb'
                  ? await this.#d.apt.ingest(ref, repo, os, dist, staged, none, opts.provenance, ingestOpts)
                  : await this.#d.rpm.ingest(ref, repo, os, dist, staged, none, opts.provenance, ingestOpts);
              results[index] = { file: entry.name, ...r };
            } catch (e) {
              // A bad package is this file's problem; anything else (storage, database) ends the batch.
              if (!isWharfError(e) || e.status >= 500) failure ??= e;
              else results[index] = { file: entry.name, status: 'refused', error: { code: e.code, message: e.message } };
            } finally {
              await staged.dispose();
            }
          })();
          inFlight.add(task);
          void task.finally(() => inFlight.delete(task));
          if (inFlight.size >= PackageService.BATCH_CONCURRENCY) await Promise.race(inFlight);
        }
      } finally {
        // Also when reading the archive failed: nothing of this batch is still running when it answers.
        await Promise.allSettled(inFlight);
      }
      if (failure) throw failure;
    } finally {
      ingested();
    }
    // One publish for the whole batch (also when the batch failed half way: what was stored is published).
    if (distributionId === undefined) return { results };
    const service = kindStored === 'rpm' ? this.#d.rpm : this.#d.apt;
    const published =
      target !== undefined
        ? await service.publish(distributionId, { label, coalesce: true, target })
        : unchanged
          ? await service.publish(distributionId, { label, coalesce: true })
          : undefined;
    return { results, ...(published ? { generation: published.generation } : {}) };
  }

  /** The format of a staged upload, checked against the distribution's (or the one its OS name implies). */
  async #kindFor(repo: RepositoryInfo, os: string, dist: string, staged: StagedUpload): Promise<PackageKind> {
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
    return kind;
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
