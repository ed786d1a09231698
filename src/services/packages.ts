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
import { ImportWorkers, importName, listImportFiles, verifiedFile, type ImportChecked, type ImportCheckRequest, type ImportWorkerResult } from './import.ts';
import { mapLimit, Semaphore } from './async.ts';
import { repoTreePrefix } from './tree.ts';
import type { BlobStore } from '../storage/blob-store.ts';
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
        const kind = await this.#kindFor(repo, os, dist, sniffPackageKind(staged.head), undefined, found);
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
    const batch = new BatchIngest(this.#d, ref, repo, os, dist);
    try {
      const entries = readTarStream(body, { maxEntries: PackageService.MAX_BATCH_FILES, maxEntryBytes: this.#d.config.maxUploadBytes });
      // The archive is read in order; each package is checked while the next ones are read, and checked packages are
      // stored a chunk at a time while the following ones are checked.
      const inFlight = new Set<Promise<void>>();
      try {
        for await (const entry of entries) {
          if (batch.failure) break;
          const index = batch.entry(entry.name);
          const staged = await stageUpload(entry.body, { dir: join(this.#d.config.dataDir, 'tmp'), maxBytes: this.#d.config.maxUploadBytes });
          const task = (async () => {
            let handedOver = false;
            try {
              const sniffed = sniffPackageKind(staged.head);
              let k = batch.kind !== undefined && sniffed === batch.kind ? batch.kind : await this.#kindFor(repo, os, dist, sniffed, batch.kind);
              batch.kind ??= k;
              // Two first packages of different formats checked at once: the one that set the batch's format wins.
              if (k !== batch.kind) k = await this.#kindFor(repo, os, dist, sniffed, batch.kind);
              const prepared =
                k === 'deb'
                  ? await this.#d.apt.prepare(ref, repo, os, dist, staged, opts.provenance)
                  : await this.#d.rpm.prepare(ref, repo, os, dist, staged, opts.provenance);
              handedOver = true;
              // an RPM re-signed in memory is held twice
              batch.add(index, prepared, () => staged.dispose(), staged.bytes ? staged.size * (k === 'rpm' ? 2 : 1) : 0);
            } catch (e) {
              batch.refuse(index, e);
            } finally {
              if (!handedOver) await staged.dispose();
            }
          })();
          inFlight.add(task);
          void task.finally(() => inFlight.delete(task));
          if (inFlight.size >= PackageService.BATCH_CONCURRENCY) await Promise.race(inFlight);
          // Checking runs ahead of storing by at most one chunk (memory: about two chunks of packages).
          await batch.backpressure(inFlight.size);
        }
      } catch (e) {
        // The archive could not be read on (malformed, or the upload broke off): the packages checked before the
        // break are still stored and published, then this is the answer.
        batch.readFailure = e;
      } finally {
        // Also when reading the archive failed: nothing of this batch is still running when it answers.
        await Promise.allSettled(inFlight);
        await batch.drain();
      }
    } finally {
      ingested();
    }
    return batch.publish(label, opts.wait !== false);
  }

  /**
   * Imports the package files of a directory on the server (under one of the configured import roots) into OS/DIST,
   * as a batch push of those files would: each file checked and reported on its own, one publish for all. `link`:
   * hard-link the files into the tree instead of copying them (where the tree is on their filesystem, and the
   * package is stored as it is: an RPM re-signed on upload is always written anew).
   */
  async importDirectory(ref: RepoRef, os: string, dist: string, request: { path: string; link?: boolean; recursive?: boolean }, opts: Pick<PushOptions, 'repo' | 'wait'> = {}): Promise<BatchResult> {
    validateDistRef(os, dist);
    const { config } = this.#d;
    if (config.importRoots.length > 0) this.#workers.warm();
    const { dir, files, roots } = await listImportFiles(config.importRoots, request.path, request.recursive !== false);
    const repo = opts.repo ?? (await this.#d.repos.get(ref));
    const label = `${ref.org}/${ref.repo}/${os}/${dist}`;
    const ingested = this.#d.uploads.begin(label);
    const batch = new BatchIngest(this.#d, ref, repo, os, dist);
    const link = request.link === true;
    const copies = new Semaphore(IMPORT_COPIES_IN_FLIGHT);
    const req: ImportCheckRequest = {
      roots,
      dist,
      maxBytes: config.maxUploadBytes,
      rpmLimits: this.#d.rpm.limits,
      resign: repo.sign_packages,
      keepBytes: !link,
    };
    const treePrefix = repoTreePrefix(ref.org, ref.repo, repo.private);
    try {
      // Windows of files are checked on the workers (a few ahead) while the ones before them are stored. A copy holds
      // the bytes of small files: one window ahead then (memory: the window checked ahead, the one being turned into
      // packages, and two chunks waiting to be or being stored, each up to 64 MiB).
      const windows: Promise<ImportWorkerResult[]>[] = [];
      let nextWindow = 0;
      const ahead = req.keepBytes ? 1 : IMPORT_WINDOWS_AHEAD;
      const refill = () => {
        while (windows.length < ahead && nextWindow < files.length && !batch.failure) {
          const w = this.#workers.check(files.slice(nextWindow, nextWindow + IMPORT_WINDOW), req);
          w.catch(() => {});
          windows.push(w);
          nextWindow += IMPORT_WINDOW;
        }
      };
      for (let i = 0; i < files.length && !batch.failure; i += IMPORT_WINDOW) {
        refill();
        const paths = files.slice(i, i + IMPORT_WINDOW);
        const indexes = paths.map((p) => batch.entry(importName(dir, p)));
        const results = await windows.shift()!;
        refill();
        await mapLimit(results.map((r, j) => [r, j] as const), PackageService.BATCH_CONCURRENCY, async ([r, j]) => {
          const index = indexes[j]!;
          const path = paths[j]!;
          try {
            if ('error' in r) throw (r.error.status < 500 && WharfError.restore(r.error)) || new Error(r.error.message);
            let k = batch.kind !== undefined && r.kind === batch.kind ? batch.kind : await this.#kindFor(repo, os, dist, r.kind, batch.kind);
            batch.kind ??= k;
            // Two first files of different formats checked at once: the one that set the import's format wins.
            if (k !== batch.kind) k = await this.#kindFor(repo, os, dist, r.kind, batch.kind);
            if (r.kind === 'rpm' && req.resign) {
              // Re-signed here, as a push is, from a staged copy of exactly the bytes the worker checked: those it
              // read, or the file's, hashed again as they are copied (a file replaced since is refused).
              const staged = await stageUpload(r.bytes ? oneChunk(r.bytes) : verifiedFile(path, r.sha256, r.size), { dir: join(config.dataDir, 'tmp'), maxBytes: config.maxUploadBytes }).catch((e: unknown) => {
                throw missingFile(e);
              });
              try {
                batch.add(index, await this.#d.rpm.prepare(ref, repo, os, dist, staged), () => staged.dispose(), r.size * 2);
              } catch (e) {
                await staged.dispose();
                throw e;
              }
              return;
            }
            batch.add(index, importedPackage(r, path, `${treePrefix}/${os}/${r.relKey}`, link, copies), async () => {}, r.bytes ? r.size : 0);
          } catch (e) {
            batch.refuse(index, e);
          }
        });
        // Storing keeps up: one chunk stored while the next waits (the windows checked ahead are the other memory).
        await batch.stored(1);
      }
      await Promise.allSettled(windows);
    } catch (e) {
      batch.readFailure = e;
    } finally {
      await batch.drain();
      ingested();
    }
    return batch.publish(label, opts.wait !== false);
  }

  readonly #workers = new ImportWorkers();

  /** Stops the import workers. */
  close(): Promise<void> {
    return this.#workers.close();
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
  async #kindFor(repo: RepositoryInfo, os: string, dist: string, kind: PackageKind | undefined, batchKind?: PackageKind, found?: { id?: number }): Promise<PackageKind> {
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

/** Files of an import handed to the workers together, and how many such windows are checked ahead of storing. */
const IMPORT_WINDOW = 256;
const IMPORT_WINDOWS_AHEAD = 4;
/** Files an import copies at once (those it cannot link included). */
const IMPORT_COPIES_IN_FLIGHT = 16;

const WRITE = { sync: 'deferred', exactStat: false, concurrent: true } as const;

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** A file gone between its check and its copy or link: that file's refusal, not the import's failure. */
function missingFile(e: unknown): unknown {
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT' ? new WharfError('IMPORT_FILE_SKIPPED', ['removed while the import ran']) : e;
}

/** A checked file of an import, stored as it lies: linked when asked and possible, else copied. */
function importedPackage(r: ImportChecked, path: string, key: string, link: boolean, copies: Semaphore): PreparedRpm | PreparedDeb {
  const row = { ...r.fields, ...(r.digests ?? {}), size: r.size, sha256: r.sha256, created_at: Date.now(), provenance: null };
  if (r.kind === 'rpm') Object.assign(row, { upload_sha256: r.sha256 });
  const write = async (store: BlobStore) => {
    try {
      // Linked only when asked, possible here, and when no one but this server's user can change the file.
      if (link && r.linkable && store.linkFile) {
        const done = await store.linkFile(key, path, { ...WRITE, expect: r.identity });
        if (done === 'linked') return;
        if (done === 'changed') throw new WharfError('IMPORT_FILE_CHANGED', [path.slice(-200)]);
      }
      // A copy of exactly the bytes that were checked: those the worker read, or the file's, verified as they stream.
      // (A chunk's links are all asked for at once: copies where a link cannot be made keep to a few at a time.)
      await copies.run(() => store.put(key, r.bytes ?? verifiedFile(path, r.sha256, r.size), WRITE));
    } catch (e) {
      throw missingFile(e);
    }
  };
  return {
    filename: r.filename!,
    identity: r.identityText!,
    uploadSha256: r.sha256,
    key,
    write,
    links: link && r.linkable,
    dispose: async () => {},
    row: row as never,
  };
}

interface BatchDeps {
  readonly apt: AptPackageService;
  readonly rpm: RpmPackageService;
}

/**
 * The storing half of a batch (a tar archive pushed, or a directory imported): checked packages are collected into
 * chunks and stored a chunk at a time (one lock statement, one lookup, one transaction each) while the next ones are
 * checked; each file gets its own result; one publish lists them all.
 */
class BatchIngest {
  readonly results: BatchEntryResult[] = [];
  /** the batch's format: its first package's (checked against the distribution); every other must match it */
  kind: PackageKind | undefined;
  distributionId: number | undefined;
  target: number | undefined;
  unchanged = false;
  failure: unknown;
  /** reading the input failed part way: what was checked before is still stored and published */
  readFailure: unknown;
  #pending: { index: number; prepared: PreparedDeb | PreparedRpm; release: () => Promise<void> }[] = [];
  #pendingBytes = 0;
  #storing: Promise<void> = Promise.resolve();
  #chunksQueued = 0;
  readonly #d: BatchDeps;
  readonly #ref: RepoRef;
  readonly #repo: RepositoryInfo;
  readonly #os: string;
  readonly #dist: string;

  constructor(deps: BatchDeps, ref: RepoRef, repo: RepositoryInfo, os: string, dist: string) {
    this.#d = deps;
    this.#ref = ref;
    this.#repo = repo;
    this.#os = os;
    this.#dist = dist;
  }

  /** A new file of the batch: its index (refused until it is stored). */
  entry(file: string): number {
    this.results.push({ file, status: 'refused' });
    return this.results.length - 1;
  }

  fail(e: unknown): void {
    this.failure ??= e;
  }

  /** A bad package is this file's problem; anything else (storage, database) ends the batch. */
  refuse(index: number, e: unknown): void {
    if (!isWharfError(e) || e.status >= 500) this.fail(e);
    else this.results[index] = { file: this.results[index]!.file, status: 'refused', error: { code: e.code, message: e.message } };
  }

  /** A checked package, to be stored with its chunk; `release` once stored (or refused). */
  add(index: number, prepared: PreparedDeb | PreparedRpm, release: () => Promise<void>, bytes: number): void {
    this.#pending.push({ index, prepared, release });
    this.#pendingBytes += bytes;
    if (this.#pending.length >= PackageService.BATCH_CHUNK || this.#pendingBytes >= PackageService.BATCH_CHUNK_BYTES) this.#flush();
  }

  /** Waits while checking runs more than a chunk ahead of storing (memory: about two chunks of packages). */
  async backpressure(inFlight: number): Promise<void> {
    if (this.#chunksQueued >= 1 && this.#pending.length + inFlight >= PackageService.BATCH_CHUNK) await this.#storing;
  }

  /** Waits until at most `chunks` chunks wait to be stored (an import, whose windows are checked ahead anyway). */
  async stored(chunks: number): Promise<void> {
    while (this.#chunksQueued > chunks && !this.failure) await this.#storing;
  }

  /** Stores what is pending, and waits until every chunk is stored. */
  async drain(): Promise<void> {
    this.#flush();
    await this.#storing;
    if (this.readFailure !== undefined) this.fail(this.readFailure);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const chunk = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#chunksQueued++;
    this.#storing = this.#storing.then(() => this.#storeChunk(chunk));
  }

  async #storeChunk(chunk: { index: number; prepared: PreparedDeb | PreparedRpm; release: () => Promise<void> }[]): Promise<void> {
    try {
      if (this.failure) return;
      const storeOpts = this.distributionId !== undefined ? { distributionId: this.distributionId } : {};
      const [ref, repo, os, dist] = [this.#ref, this.#repo, this.#os, this.#dist];
      const r =
        this.kind === 'rpm'
          ? await this.#d.rpm.store(ref, repo, os, dist, chunk.map((c) => c.prepared as PreparedRpm), storeOpts)
          : await this.#d.apt.store(ref, repo, os, dist, chunk.map((c) => c.prepared as PreparedDeb), storeOpts);
      this.distributionId = r.distributionId;
      if (r.target !== undefined) this.target = Math.max(this.target ?? 0, r.target);
      r.results.forEach((res, j) => {
        const index = chunk[j]!.index;
        if (res instanceof WharfError) this.refuse(index, res);
        else {
          this.results[index] = { file: this.results[index]!.file, ...res };
          if (res.status === 'unchanged') this.unchanged = true;
        }
      });
    } catch (e) {
      // A refusal of the whole chunk (the distribution is of the other format, say) is each file's answer; a
      // storage or database failure ends the batch.
      if (isWharfError(e) && e.status < 500) for (const c of chunk) this.refuse(c.index, e);
      else this.fail(e);
    } finally {
      this.#chunksQueued--;
      await Promise.allSettled(chunk.map(async (c) => ('dispose' in c.prepared ? c.prepared.dispose() : undefined)));
      await Promise.allSettled(chunk.map((c) => c.release()));
    }
  }

  /**
   * One publish for the whole batch; also when the batch failed half way: what was stored is published (and the
   * failure reported after it). `wait` false: answered once stored (and durable), the publish follows.
   */
  async publish(label: string, wait: boolean): Promise<BatchResult> {
    const { results, distributionId, target, unchanged, failure } = this;
    if (distributionId === undefined) {
      if (failure) throw failure;
      return { results };
    }
    const service = this.kind === 'rpm' ? this.#d.rpm : this.#d.apt;
    if (!wait && !failure) {
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
}
