// What a package file is, checked and described: the work on its bytes alone (no database, no storage, no keys),
// shared by a push (on the main thread, from the staged upload) and a directory import (on worker threads, from the
// file in place). What it returns is everything the distribution's row needs except where and when it was stored.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { WharfError } from '../errors.ts';
import type { ByteSource } from '../formats/byte-source.ts';
import type { FileDigests } from '../formats/digests.ts';
import { readRpm, type RpmReadLimits } from '../formats/rpm/header.ts';
import { rpmBaseArch } from '../formats/rpm/arch.ts';
import { rpmPackageMetadata } from '../formats/rpm/package.ts';
import type { RpmPackageMetadata } from '../formats/rpm/metadata.ts';
import { filelistsPackageXml, otherPackageXml, primaryPackageXml } from '../formats/rpm/repodata.ts';
import { inspectDeb } from '../formats/deb/inspect.ts';
import { getField } from '../formats/deb/control.ts';
import { renderPackagesStanza } from '../formats/deb/packages-stanza.ts';
import { poolDir } from './tree.ts';

/** The bytes of a package whose payload must be read: in memory, or streamed from `start` on (the very file checked). */
export interface PackageBytes {
  readonly size: number;
  readonly bytes?: Uint8Array;
  stream(start: number): AsyncIterable<Uint8Array>;
}

/** A local file's bytes from `start` on (a staged upload's scratch file). */
export async function* fileFrom(path: string | Promise<string>, start: number): AsyncGenerator<Uint8Array> {
  for await (const chunk of createReadStream(await path, { start })) yield chunk as Buffer;
}

// ---- RPM ----

/** Where a package lives inside its distribution: ARCH/Packages/x/FILE, SRPMS/Packages/x/FILE, noarch/Packages/x/FILE. */
export function rpmBlobDir(arch: string): string {
  return arch === 'src' || arch === 'nosrc' ? 'SRPMS' : rpmBaseArch(arch);
}

export function rpmLocation(filename: string): string {
  return `Packages/${filename[0]!.toLowerCase()}/${filename}`;
}

/** Directory names inside a distribution that no architecture may take. */
const RESERVED_ARCH_DIRS = new Set(['SRPMS', 'repodata', 'Packages']);

export type RpmFile = Awaited<ReturnType<typeof readRpm>>;

export interface CheckedRpm {
  readonly file: RpmFile;
  readonly meta: RpmPackageMetadata;
  /** the package's arch, 'src' for a source package */
  readonly arch: string;
  /** NAME-VERSION-RELEASE.ARCH.rpm: the file name in the distribution */
  readonly filename: string;
  /** name, EVR and arch, for messages */
  readonly identity: string;
}

function evr(r: { epoch: string; version: string; release: string }): string {
  return `${r.epoch !== '0' ? `${r.epoch}:` : ''}${r.version}-${r.release}`;
}

/**
 * Reads and checks an RPM (headers within `limits`, the payload's size and digest) and derives its architecture
 * directory and file name, refusing those a repository cannot hold.
 */
export async function checkRpm(src: ByteSource, pkg: PackageBytes, limits: RpmReadLimits): Promise<CheckedRpm> {
  const file = await readRpm(src, limits);
  await checkPayload(file, pkg);
  const meta = rpmPackageMetadata(file);
  const arch = meta.isSource ? 'src' : meta.arch;
  // The architecture names a directory of the tree (ARCH/Packages/...): letters, digits and _ as every real one
  // (x86_64, aarch64, ppc64le, i686, noarch); a binary package cannot claim the source packages' names.
  // (Nor a name every JavaScript object has, such as "constructor": directories are keys of the published state.)
  if (!meta.isSource && (!/^[A-Za-z0-9_]{1,32}$/.test(arch) || arch === 'src' || arch === 'nosrc' || RESERVED_ARCH_DIRS.has(arch) || arch in Object.prototype)) {
    throw new WharfError('RPM_BAD_HEADER', [`the architecture ${JSON.stringify(arch.slice(0, 40))} is not one a repository can hold: use letters, digits and _ (x86_64, aarch64, noarch)`]);
  }
  const filename = `${meta.name}-${meta.version}-${meta.release}.${arch}.rpm`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._+~^-]*\.rpm$/.test(filename) || filename.length > 255) {
    throw new WharfError('RPM_BAD_HEADER', [`the package name, version, release or arch make an unsafe file name: ${JSON.stringify(filename.slice(0, 100))}`]);
  }
  return { file, meta, arch, filename, identity: `${meta.name} ${evr(meta)} (${arch})` };
}

/** The rpm_packages columns a checked RPM determines (the stored file's digest and size given). */
export function rpmRowFields(checked: Pick<CheckedRpm, 'meta' | 'arch' | 'filename'>, dist: string, stored: { sha256: string; size: number; uploadSha256: string; fileTime: number }) {
  const { meta, arch, filename } = checked;
  const location = rpmLocation(filename);
  const facts = { sha256: stored.sha256, size: stored.size, fileTime: stored.fileTime, location };
  return {
    name: meta.name,
    epoch: meta.epoch,
    version: meta.version,
    release: meta.release,
    arch,
    filename,
    blob_key: `${dist}/${rpmBlobDir(arch)}/${location}`,
    size: stored.size,
    sha256: stored.sha256,
    upload_sha256: stored.uploadSha256,
    primary_xml: primaryPackageXml(meta, facts),
    filelists_xml: filelistsPackageXml(meta, facts),
    other_xml: otherPackageXml(meta, facts),
  };
}

const SIGTAG_SIZE = 1000;
const SIGTAG_LONGSIZE = 270;
const RPMTAG_PAYLOADDIGEST = 5092;
const RPMTAG_PAYLOADDIGESTALGO = 5093;
const PGP_HASH: Record<number, string> = { 1: 'md5', 2: 'sha1', 8: 'sha256', 9: 'sha384', 10: 'sha512', 11: 'sha224' };

/**
 * The headers are only part of a package: a payload cut short or altered in transit would be published and then
 * fail at install time. Checks the size the signature header records and the payload digest the main header
 * records (rpm >= 4.14), streaming the payload once.
 */
async function checkPayload(file: RpmFile, pkg: PackageBytes): Promise<void> {
  const recorded = file.signature.number(SIGTAG_LONGSIZE) ?? file.signature.number(SIGTAG_SIZE);
  const actual = pkg.size - file.headerRange.start;
  if (recorded !== undefined && recorded !== actual) {
    throw new WharfError(recorded > actual ? 'RPM_TRUNCATED' : 'RPM_BAD_HEADER', [
      `the header and payload are ${actual} bytes, but the signature header says ${recorded} (a truncated or altered upload?)`,
    ]);
  }
  const digest = file.header.strings(RPMTAG_PAYLOADDIGEST)?.[0];
  if (!digest) return;
  const algo = PGP_HASH[file.header.number(RPMTAG_PAYLOADDIGESTALGO) ?? 8];
  if (!algo) return;
  const h = createHash(algo);
  if (pkg.bytes) h.update(pkg.bytes.subarray(file.payloadOffset));
  else for await (const chunk of pkg.stream(file.payloadOffset)) h.update(chunk);
  if (h.digest('hex') !== digest.toLowerCase()) {
    throw new WharfError('RPM_BAD_HEADER', ['the payload does not match the payload digest in the header (a truncated or altered upload?)']);
  }
}

// ---- Debian ----

/** The one component Wharf's Debian distributions have. */
export const DEB_COMPONENT = 'main';

/** The deb_packages columns a checked .deb determines, with its file name and pool path. */
export interface CheckedDeb {
  readonly filename: string;
  /** pool/DIST/main/x/SOURCE/FILE, relative to the OS directory */
  readonly poolKey: string;
  readonly identity: string;
  readonly fields: { component: string; name: string; version: string; architecture: string; filename: string; pool_key: string; stanza: string };
}

/** Reads and checks a .deb and renders its Packages stanza (with the file's digests) for distribution `dist`. */
export async function checkDeb(src: ByteSource, digests: FileDigests, dist: string): Promise<CheckedDeb> {
  const deb = await inspectDeb(src);
  const source = (getField(deb.control, 'Source') ?? deb.package).split(/\s/)[0]!;
  if (!/^[a-z0-9][a-z0-9+.-]+$/.test(source)) throw new WharfError('DEB_BAD_FIELD', [`Source "${source.slice(0, 100)}" is not a valid source package name`]);
  const filename = deb.canonicalFilename;
  const poolKey = `${poolDir(dist, DEB_COMPONENT, source)}/${filename}`;
  const stanza = renderPackagesStanza(deb.control, {
    filename: poolKey,
    size: digests.size,
    md5: digests.md5,
    sha1: digests.sha1,
    sha256: digests.sha256,
    sha512: digests.sha512,
  });
  return {
    filename,
    poolKey,
    identity: `${deb.package} ${deb.version} (${deb.architecture})`,
    fields: { component: DEB_COMPONENT, name: deb.package, version: deb.version, architecture: deb.architecture, filename, pool_key: poolKey, stanza },
  };
}
