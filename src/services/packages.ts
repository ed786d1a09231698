// The one entry point for pushes: stages the upload, recognises the format, checks it against the distribution,
// and hands it to the Debian or the RPM service.
import { join } from 'node:path';
import type { Db } from '../db/database.ts';
import type { Config } from '../config.ts';
import { WharfError } from '../errors.ts';
import { distributionKindOf, validateDistRef, type RepoRef } from '../names.ts';
import { sniffPackageKind, stageUpload, type PackageKind } from './upload.ts';
import type { RepositoryService } from './repositories.ts';
import type { AptPackageService, DebPackageInfo, PreparedDeb, Provenance, PushResult } from './apt-packages.ts';
import type { PreparedRpm, RpmPackageService } from './rpm-packages.ts';
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

export interface PushOptions {
  /** the CI identity of a trusted publish, kept with the package (an identical re-push keeps the first one) */
  provenance?: Provenance;
  /** the repository `ref` names, when the caller has just read it (the API, checking permissions) */
  repo?: RepositoryInfo;
  /**
   * false: answer once the package is stored (its file flushed, its row committed), and publish in the background
   * with the pushes around it (an asynchronous push, `Prefer: respond-async`). Default: answer once the metadata
   * lists it.
   */
  wait?: boolean;
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
  async push(ref: RepoRef, os: string, dist: string, body: AsyncIterable<Uint8Array>, opts: PushOptions = {}): Promise<PushResult> {
    validateDistRef(os, dist);
    const repo = opts.repo ?? (await this.#d.repos.get(ref));
    const ingested = this.#d.uploads.begin(`${ref.org}/${ref.repo}/${os}/${dist}`);
    try {
      const staged = await stageUpload(body, { dir: join(this.#d.config.dataDir, 'tmp'), maxBytes: this.#d.config.maxUploadBytes });
      try {
        const found: { id?: number } = {};
        const kind = await this.#kindFor(repo, os, dist, staged, undefined, found);
        // The distribution was just looked up: the ingest does not look it up again.
        const ingestOpts = { ...(found.id !== undefined ? { distributionId: found.id } : {}), ...(opts.wait === false ? { publish: 'background' as const } : {}) };
        return kind === 'deb'
          ? await this.#d.apt.ingest(ref, repo, os, dist, staged, ingested, opts.provenance, ingestOpts)
          : await this.#d.rpm.ingest(ref, repo, os, dist, staged, ingested, opts.provenance, ingestOpts);
      } finally {
        await staged.dispose();
      }
    } finally {
      ingested();
    }
  }

  /** Most files one batch may carry (a client sends more as several batches). */
  static readonly MAX_BATCH_FILES = 20_000;
  /** Packages of one batch checked at once. */
  static readonly BATCH_CONCURRENCY = 8;
  /** Checked packages stored together: one lock statement, one lookup, one transaction. */
  static readonly BATCH_CHUNK = 256;
  /** ... or fewer, when their bytes held in memory reach this (small packages are checked and stored from memory). */
  static readonly BATCH_CHUNK_BYTES = 32 * 1024 * 1024;

  /**
   * Stores every package of a tar archive (plain files, as `wharf push` sends several) and then waits for one
   * publish that lists them all: a bulk import costs one metadata generation, not one per package. Each file is
   * checked like a single push; a refused file is reported in its result and the others are still stored.
   */
  async pushBatch(ref: RepoRef, os: string, dist: string, body: AsyncIterable<Uint8Array>, opts: PushOptions = {}): Promise<BatchResult> {
    validateDistRef(os, dist);
    const repo = opts.repo ?? (await this.#d.repos.get(ref));
    const label = `${ref.org}/${ref.repo}/${os}/${dist}`;
    const ingested = this.#d.uploads.begin(label);
    const results: BatchEntryResult[] = [];
    /** the batch's format: its first package's (checked against the distribution); every other must match it */
    let kind: PackageKind | undefined;
    let distributionId: number | undefined;
    let target: number | undefined;
    let unchanged = false;
    let failure: unknown;
    let readFailure: unknown;
    const fail = (e: unknown) => (failure ??= e);
    const refuse = (index: number, e: unknown) => {
      // A bad package is this file's problem; anything else (storage, database) ends the batch.
      if (!isWharfError(e) || e.status >= 500) fail(e);
      else results[index] = { file: results[index]!.file, status: 'refused', error: { code: e.code, message: e.message } };
    };

    interface Checked {
      index: number;
      staged: StagedUpload;
      prepared: PreparedDeb | PreparedRpm;
    }
    let pending: Checked[] = [];
    let pendingBytes = 0;
    let storing: Promise<void> = Promise.resolve();
    let chunksQueued = 0;
    const release = async (chunk: Checked[]) => {
      await Promise.allSettled(chunk.map(async (c) => ('dispose' in c.prepared ? c.prepared.dispose() : undefined)));
      await Promise.allSettled(chunk.map((c) => c.staged.dispose()));
    };
    const storeChunk = async (chunk: Checked[]) => {
      try {
        if (failure) return;
        const storeOpts = distributionId !== undefined ? { distributionId } : {};
        const r =
          kind === 'rpm'
            ? await this.#d.rpm.store(ref, repo, os, dist, chunk.map((c) => c.prepared as PreparedRpm), storeOpts)
            : await this.#d.apt.store(ref, repo, os, dist, chunk.map((c) => c.prepared as PreparedDeb), storeOpts);
        distributionId = r.distributionId;
        if (r.target !== undefined) target = Math.max(target ?? 0, r.target);
        r.results.forEach((res, j) => {
          const index = chunk[j]!.index;
          if (res instanceof WharfError) refuse(index, res);
          else {
            results[index] = { file: results[index]!.file, ...res };
            if (res.status === 'unchanged') unchanged = true;
          }
        });
      } catch (e) {
        // A refusal of the whole chunk (the distribution is of the other format, say) is each file's answer; a
        // storage or database failure ends the batch.
        if (isWharfError(e) && e.status < 500) for (const c of chunk) refuse(c.index, e);
        else fail(e);
      } finally {
        chunksQueued--;
        await release(chunk);
      }
    };
    const flush = () => {
      if (pending.length === 0) return;
      const chunk = pending;
      pending = [];
      pendingBytes = 0;
      chunksQueued++;
      storing = storing.then(() => storeChunk(chunk));
    };

    try {
      const entries = readTarStream(body, { maxEntries: PackageService.MAX_BATCH_FILES, maxEntryBytes: this.#d.config.maxUploadBytes });
      // The archive is read in order; each package is checked while the next ones are read, and checked packages are
      // stored a chunk at a time while the following ones are checked.
      const inFlight = new Set<Promise<void>>();
      try {
        for await (const entry of entries) {
          if (failure) break;
          const index = results.length;
          results.push({ file: entry.name, status: 'refused' });
          const staged = await stageUpload(entry.body, { dir: join(this.#d.config.dataDir, 'tmp'), maxBytes: this.#d.config.maxUploadBytes });
          const task = (async () => {
            let handedOver = false;
            try {
              const sniffed = sniffPackageKind(staged.head);
              let k = kind !== undefined && sniffed === kind ? kind : await this.#kindFor(repo, os, dist, staged, kind);
              kind ??= k;
              // Two first packages of different formats checked at once: the one that set the batch's format wins.
              if (k !== kind) k = await this.#kindFor(repo, os, dist, staged, kind);
              const prepared =
                k === 'deb'
                  ? await this.#d.apt.prepare(ref, repo, os, dist, staged, opts.provenance)
                  : await this.#d.rpm.prepare(ref, repo, os, dist, staged, opts.provenance);
              pending.push({ index, staged, prepared });
              handedOver = true;
              pendingBytes += staged.bytes ? staged.size * (k === 'rpm' ? 2 : 1) : 0; // an RPM re-signed in memory is held twice
              if (pending.length >= PackageService.BATCH_CHUNK || pendingBytes >= PackageService.BATCH_CHUNK_BYTES) flush();
            } catch (e) {
              refuse(index, e);
            } finally {
              if (!handedOver) await staged.dispose();
            }
          })();
          inFlight.add(task);
          void task.finally(() => inFlight.delete(task));
          if (inFlight.size >= PackageService.BATCH_CONCURRENCY) await Promise.race(inFlight);
          // Checking runs ahead of storing by at most one chunk (memory: about two chunks of packages).
          if (chunksQueued >= 1 && pending.length + inFlight.size >= PackageService.BATCH_CHUNK) await storing;
        }
      } catch (e) {
        // The archive could not be read on (malformed, or the upload broke off): the packages checked before the
        // break are still stored and published, then this is the answer.
        readFailure = e;
      } finally {
        // Also when reading the archive failed: nothing of this batch is still running when it answers.
        await Promise.allSettled(inFlight);
        flush();
        await storing;
      }
      if (readFailure !== undefined) fail(readFailure);
    } finally {
      ingested();
    }
    // One publish for the whole batch; also when the batch failed half way: what was stored is published (and the
    // failure reported after it).
    if (distributionId === undefined) {
      if (failure) throw failure;
      return { results };
    }
    const service = kind === 'rpm' ? this.#d.rpm : this.#d.apt;
    if (opts.wait === false && !failure) {
      // Asynchronous: stored (and durable) is the answer; the publish follows (the queue logs a failure, the
      // reconciler publishes what is left unpublished).
      await service.flushStored();
      if (target !== undefined || unchanged) service.publish(distributionId, { label, coalesce: true, ...(target !== undefined ? { target } : {}) }).catch(() => {});
      return { results };
    }
    if (failure) {
      if (target !== undefined) await service.publish(distributionId, { label, coalesce: true, target }).catch(() => {}); // else the reconciler will
      throw failure;
    }
    const published =
      target !== undefined
        ? await service.publish(distributionId, { label, coalesce: true, target })
        : unchanged
          ? await service.publish(distributionId, { label, coalesce: true })
          : undefined;
    return { results, ...(published ? { generation: published.generation } : {}) };
  }

  /**
   * A distribution's id and kind. Both are fixed once the distribution exists (distributions are never deleted or
   * converted), so a found one is remembered on this node; a missing one is asked again next time.
   */
  async #distribution(repoId: number, os: string, dist: string): Promise<{ id: number; kind: string } | undefined> {
    const key = `${repoId}/${os}/${dist}`;
    const hit = this.#distributions.get(key);
    if (hit) return hit;
    const row = await this.#d.db.selectFrom('distributions').select(['id', 'kind']).where('repo_id', '=', repoId).where('os', '=', os).where('name', '=', dist).executeTakeFirst();
    if (row) {
      if (this.#distributions.size >= 10_000) this.#distributions.clear();
      this.#distributions.set(key, row);
    }
    return row;
  }

  readonly #distributions = new Map<string, { id: number; kind: string }>();

  /**
   * The format of a staged upload, checked against the distribution's (or the one its OS name implies, or the one
   * the rest of its batch has).
   */
  async #kindFor(repo: RepositoryInfo, os: string, dist: string, staged: StagedUpload, batchKind?: PackageKind, found?: { id?: number }): Promise<PackageKind> {
    const kind = sniffPackageKind(staged.head);
    const existing = batchKind === undefined ? await this.#distribution(repo.id, os, dist) : { kind: batchKind };
    if (found && existing && 'id' in existing) found.id = existing.id;
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
