// Adding and removing RPM packages in a distribution. Every package is re-signed on upload with the repository
// package key (a header signature, as rpmsign --addsign makes), so `rpm -K` and dnf's gpgcheck verify it.
// Packages are immutable: the same name, epoch, version, release and arch can only ever be the same uploaded bytes.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Db } from '../db/database.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Config } from '../config.ts';
import { WharfError } from '../errors.ts';
import { validateDistRef, type RepoRef } from '../names.ts';
import type { RpmReadLimits } from '../formats/rpm/header.ts';
import { signRpm } from '../formats/rpm/sign.ts';
import { checkRpm, fileFrom, rpmBlobDir, rpmRowFields } from './package-check.ts';

export { rpmBlobDir, rpmLocation } from './package-check.ts';
import { stagedByteSource, type StagedUpload } from './upload.ts';
import { repoTreePrefix } from './tree.ts';
import { bumpChanges } from './distributions.ts';
import type { Locks } from './locks.ts';
import type { WriteBatcher } from './write-batcher.ts';
import type { PublishRequestOptions, PublishResult } from './publish-queue.ts';
import type { IngestOptions } from './apt-packages.ts';
import type { RepositoryInfo, RepositoryService } from './repositories.ts';
import { parseProvenance, type PushResult, type DebPackageInfo, type Provenance } from './apt-packages.ts';
import type { RpmPublisher } from './rpm-publisher.ts';
import type { KeyService } from './keys.ts';
import { ingestLockName, publishStored, storeInDistribution, type PackageTable, type PreparedPackage } from './ingest.ts';
import type { Insertable, Selectable } from 'kysely';
import type { RpmPackageTable } from '../db/schema.ts';

export interface RpmPackageServiceDeps {
  readonly db: Db;
  readonly store: BlobStore;
  readonly config: Config;
  readonly repos: RepositoryService;
  readonly keys: KeyService;
  readonly publisher: RpmPublisher;
  /** the 'ingest' lock serialises check-store-insert per distribution (across nodes) */
  readonly locks: Locks;
  /** small write transactions committed together */
  readonly writes: WriteBatcher;
}

/** Where the publisher links a noarch package (blob key DIST/noarch/Packages/x/FILE) in architecture directory `dir`. */
export function noarchCopyKey(blobKey: string, dir: string): string {
  return blobKey.replace(/^([^/]+)\/noarch\//, `$1/${dir}/`);
}

/**
 * Where a binary package's file is served: its blob key, or, for a row stored before architectures were mapped to
 * dnf's $basearch (DIST/i686/Packages/...), the same path in the directory its architecture now publishes to, which
 * the publisher links it to. Undefined when the key is already there.
 */
export function relocatedKey(blobKey: string, arch: string): string | undefined {
  const dir = rpmBlobDir(arch);
  const m = /^([^/]+)\/([^/]+)\/(Packages\/.+)$/.exec(blobKey);
  return arch !== 'noarch' && m && m[2] !== dir ? `${m[1]}/${dir}/${m[3]}` : undefined;
}

/** The noarch package a key in an architecture directory may be a copy of (undefined for any other key). */
export function noarchOriginKey(key: string): string | undefined {
  const m = /^([^/]+)\/([^/]+)\/(Packages\/[^/]\/[^/]+\.noarch\.rpm)$/.exec(key);
  return m && m[2] !== 'noarch' ? `${m[1]}/noarch/${m[3]}` : undefined;
}

/** Where a too-large header's error says the limit comes from. */
export const RPM_HEADER_LIMIT_SOURCE = "the server's maxRpmHeaderBytes (WHARF_MAX_RPM_HEADER_BYTES)";

const WRITE = { sync: 'deferred', exactStat: false } as const;

/** An rpm_packages row before it has a distribution. */
export type RpmRow = Omit<Insertable<RpmPackageTable>, 'distribution_id'> & { created_at: number; provenance: string | null; size: number; sha256: string };
type RpmExisting = Selectable<RpmPackageTable>;

/** The rpm_packages table, for storeInDistribution. */
const RPM_PACKAGES_TABLE: PackageTable<RpmRow, RpmExisting, DebPackageInfo> = {
  kind: 'rpm',
  table: 'rpm_packages',
  uploadSha256Of: (e) => e.upload_sha256,
  info: (distribution, r) => info(distribution, r),
};

/** A checked (and re-signed) RPM, ready to store. */
export interface PreparedRpm extends PreparedPackage<RpmRow> {
  /** removes its scratch file, if it still has one */
  dispose(): Promise<void>;
}

export class RpmPackageService {
  readonly #d: RpmPackageServiceDeps;

  constructor(deps: RpmPackageServiceDeps) {
    this.#d = deps;
  }

  /** Makes the package files stored so far durable (an asynchronous push answers before any publish does it). */
  flushStored(): Promise<void> {
    return this.#d.store.flush();
  }

  /**
   * Adds a staged RPM to a distribution (re-signed unless the repository opts out) and, unless told otherwise,
   * waits for the publish that lists it. `ingested` is called once the package is stored.
   */
  async ingest(
    ref: RepoRef,
    repo: RepositoryInfo,
    os: string,
    dist: string,
    staged: StagedUpload,
    ingested: () => void,
    provenance?: Provenance,
    opts: IngestOptions = {},
  ): Promise<PushResult> {
    const prepared = await this.prepare(ref, repo, os, dist, staged, provenance);
    try {
      const { distributionId, target, results } = await this.store(ref, repo, os, dist, [prepared], opts);
      ingested();
      const result = results[0]!;
      if (result instanceof WharfError) throw result;
      opts.onStored?.(distributionId, target);
      await publishStored(this.#d, `${ref.org}/${ref.repo}/${os}/${dist}`, distributionId, target, opts.publish);
      return result;
    } finally {
      await prepared.dispose();
    }
  }

  /**
   * Checks a staged RPM (headers, payload size and digest), re-signs it when the repository signs packages, and
   * derives its metadata fragments and row. dispose() the result once stored (it may hold a scratch file).
   */
  async prepare(ref: RepoRef, repo: RepositoryInfo, os: string, dist: string, staged: StagedUpload, provenance?: Provenance): Promise<PreparedRpm> {
    const src = await stagedByteSource(staged);
    let signedPath: string | undefined;
    try {
      const checked = await checkRpm(src, { size: staged.size, ...(staged.bytes ? { bytes: staged.bytes } : {}), stream: (start) => fileFrom(staged.localPath(), start) }, this.limits);
      let sha256 = staged.sha256;
      let size = staged.size;
      let signedMeta = checked.meta;
      let signedBytes: Uint8Array | undefined;
      if (repo.sign_packages) {
        // Re-signed with the package key: lead + new signature header + the original rest (in memory when small,
        // else into a second scratch file).
        const key = await this.#d.keys.packageKey(repo.id);
        const signed = await signRpm(src, (data) => key.detachSignBinaryPacket(data), 'rsa');
        if (staged.bytes) {
          signedBytes = Buffer.concat([staged.bytes.subarray(0, 96), signed.signatureHeader, staged.bytes.subarray(signed.headerStart)]);
          sha256 = createHash('sha256').update(signedBytes).digest('hex');
          size = signedBytes.byteLength;
        } else {
          signedPath = join(this.#d.config.dataDir, 'tmp', `signed-${randomBytes(12).toString('hex')}`);
          ({ sha256, size } = await writeSigned(signedPath, await staged.localPath(), signed.signatureHeader, signed.headerStart));
        }
        const headerStart = 96 + signed.signatureHeader.byteLength;
        signedMeta = { ...checked.meta, headerStart, headerEnd: headerStart + (signed.headerEnd - signed.headerStart) };
      }
      const fields = rpmRowFields({ ...checked, meta: signedMeta }, dist, { sha256, size, uploadSha256: staged.sha256, fileTime: Math.floor(Date.now() / 1000) });
      // Durable with the publish that lists it (the publisher flushes the store before repomd.xml).
      const key = `${repoTreePrefix(ref.org, ref.repo, repo.private)}/${os}/${fields.blob_key}`;
      const body = signedBytes ?? (signedPath ? undefined : staged.bytes);
      const scratch = signedPath;
      signedPath = undefined;
      let moved = false;
      return {
        filename: checked.filename,
        uploadSha256: staged.sha256,
        key,
        identity: checked.identity,
        write: async (store, opts) => {
          // A small package never touched the disk: written straight into place.
          if (body) await store.put(key, body, opts?.concurrent ? { ...WRITE, concurrent: true } : WRITE);
          else {
            await store.putFile(key, scratch ?? (await staged.localPath()), WRITE);
            moved = scratch !== undefined; // consumed by putFile only when it succeeded
          }
        },
        dispose: async () => {
          if (scratch && !moved) await rm(scratch, { force: true });
        },
        row: { ...fields, created_at: Date.now(), provenance: provenance ? JSON.stringify(provenance) : null },
      };
    } finally {
      await src.close();
      if (signedPath) await rm(signedPath, { force: true });
    }
  }

  /** The header limits a package is read with (the server's maxRpmHeaderBytes). */
  get limits(): RpmReadLimits {
    return { maxHeaderData: this.#d.config.maxRpmHeaderBytes, maxHeaderDataSource: RPM_HEADER_LIMIT_SOURCE };
  }

  /**
   * Stores prepared packages in the distribution (created if new), without publishing: one result per package, in
   * order (a refused one as its error), and the change number a publish must reach to list what was stored.
   */
  async store(
    ref: RepoRef,
    repo: RepositoryInfo,
    os: string,
    dist: string,
    items: readonly PreparedRpm[],
    opts: { distributionId?: number } = {},
  ): Promise<{ distributionId: number; target: number | undefined; results: (PushResult | WharfError)[] }> {
    return storeInDistribution(
      this.#d,
      RPM_PACKAGES_TABLE,
      { repoId: repo.id, label: `${ref.org}/${ref.repo}/${os}/${dist}`, os, dist, ...(opts.distributionId !== undefined ? { distributionId: opts.distributionId } : {}) },
      items,
    );
  }

  /** Publishes the distribution (a batch push stores many packages, then asks once). */
  publish(distributionId: number, opts: PublishRequestOptions): Promise<PublishResult> {
    return this.#d.publisher.request(distributionId, opts);
  }

  async list(repoId: number, filter?: { os: string; dist: string }): Promise<DebPackageInfo[]> {
    let q = this.#d.db
      .selectFrom('rpm_packages')
      .innerJoin('distributions', 'distributions.id', 'rpm_packages.distribution_id')
      .select([
        'distributions.os',
        'distributions.name as dist',
        'rpm_packages.name',
        'rpm_packages.epoch',
        'rpm_packages.version',
        'rpm_packages.release',
        'rpm_packages.arch',
        'rpm_packages.filename',
        'rpm_packages.size',
        'rpm_packages.sha256',
        'rpm_packages.created_at',
        'rpm_packages.provenance',
      ])
      .where('distributions.repo_id', '=', repoId);
    if (filter) q = q.where('distributions.os', '=', filter.os).where('distributions.name', '=', filter.dist);
    const rows = await q.orderBy('distributions.os').orderBy('distributions.name').orderBy('rpm_packages.name').orderBy('rpm_packages.id').execute();
    return rows.map((r) => info(`${r.os}/${r.dist}`, r));
  }

  /** Removes a package (by file name) and republishes; its file stays downloadable for the retention period. */
  async yank(ref: RepoRef, repo: RepositoryInfo, distributionId: number, os: string, dist: string, filename: string): Promise<DebPackageInfo | undefined> {
    validateDistRef(os, dist);
    const distLabel = `${ref.org}/${ref.repo}/${os}/${dist}`;
    const removed = await this.#d.locks.run('ingest', ingestLockName(distLabel, filename), async () => {
      const row = await this.#d.db
        .selectFrom('rpm_packages')
        .selectAll()
        .where('distribution_id', '=', distributionId)
        .where('filename', '=', filename)
        .executeTakeFirst();
      if (!row) return undefined;
      const treePrefix = repoTreePrefix(ref.org, ref.repo, repo.private);
      const target = await this.#d.db.transaction().execute(async (tx) => {
        await tx.deleteFrom('rpm_packages').where('id', '=', row.id).execute();
        const keys = [row.blob_key];
        const relocated = relocatedKey(row.blob_key, row.arch);
        if (relocated) keys.push(relocated);
        if (row.arch === 'noarch') {
          // A noarch package is linked into every architecture directory: those copies go with it (a directory
          // with no copy makes a deletion of nothing).
          // The directories it was published in (the last publish's), and any the next publish may have.
          const arches = await tx.selectFrom('rpm_packages').select('arch').distinct().where('distribution_id', '=', distributionId).execute();
          const published = await tx.selectFrom('distributions').select('published_state').where('id', '=', distributionId).executeTakeFirst();
          const publishedDirs = published?.published_state ? Object.keys((JSON.parse(published.published_state) as { dirs?: Record<string, unknown> }).dirs ?? {}) : [];
          const dirs = new Set([...publishedDirs, ...this.#d.config.defaultRpmArchitectures, ...arches.map((a) => a.arch).filter((a) => a !== 'noarch').map(rpmBlobDir)]);
          dirs.delete('SRPMS');
          for (const d of [...dirs].sort()) keys.push(noarchCopyKey(row.blob_key, d));
        }
        const retiredAt = Date.now();
        await tx.insertInto('retired_files').values(keys.map((k) => ({ distribution_id: distributionId, key: `${treePrefix}/${os}/${k}`, retired_at: retiredAt }))).execute();
        return bumpChanges(tx, distributionId);
      });
      return { info: info(`${os}/${dist}`, row), target };
    });
    if (removed) await this.#d.publisher.request(distributionId, { coalesce: true, target: removed.target });
    return removed?.info;
  }

}

/** Writes lead + signature header + original[headerStart..] to `path`; returns sha256 and size of the result. */
async function writeSigned(path: string, original: string, signatureHeader: Uint8Array, headerStart: number): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const out = await open(path, 'wx', 0o600);
  let size = 0;
  const write = async (b: Uint8Array) => {
    hash.update(b);
    size += b.byteLength;
    let off = 0;
    while (off < b.byteLength) off += (await out.write(b, off)).bytesWritten;
  };
  try {
    const lead = await readRange(original, 0, 96);
    await write(lead);
    await write(signatureHeader);
    for await (const chunk of createReadStream(original, { start: headerStart })) await write(chunk as Buffer);
  } finally {
    await out.close();
  }
  return { sha256: hash.digest('hex'), size };
}

async function readRange(path: string, start: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, start);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function evr(r: { epoch: string; version: string; release: string }): string {
  return `${r.epoch !== '0' ? `${r.epoch}:` : ''}${r.version}-${r.release}`;
}

function info(
  distribution: string,
  r: { name: string; epoch: string; version: string; release: string; arch: string; filename: string; size: number; sha256: string; created_at: number; provenance: string | null },
): DebPackageInfo {
  return {
    distribution,
    name: r.name,
    version: evr(r),
    architecture: r.arch,
    filename: r.filename,
    size: Number(r.size),
    sha256: r.sha256,
    created_at: new Date(Number(r.created_at)).toISOString(),
    provenance: parseProvenance(r.provenance),
  };
}
