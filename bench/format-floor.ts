// What Wharf's own format code costs per package, with nothing around it: the checks and index entry of a push, in
// this process, on one thread, for files already in memory. No upload, storage, database, compression or signing.
// Printed next to the storage floor (bench/util.ts): the two together are the least Wharf's push path can spend
// before anything else it does, which tells whether a cold-publish target is a matter of tuning or out of reach.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { createHash } from 'node:crypto';
import { bufferSource } from '../src/formats/byte-source.ts';
import { inspectDeb } from '../src/formats/deb/inspect.ts';
import { renderPackagesStanza } from '../src/formats/deb/packages-stanza.ts';
import { readRpm } from '../src/formats/rpm/header.ts';
import { rpmPackageMetadata } from '../src/formats/rpm/package.ts';
import { filelistsPackageXml, otherPackageXml, primaryPackageXml } from '../src/formats/rpm/repodata.ts';

export interface FormatFloor {
  /** seconds of the timed work summed over the files (reading them is not timed) */
  seconds: number;
  /** the same, split by step */
  steps: Record<string, number>;
}

/** Times `steps` on each file's bytes; the file is read before the clock starts. */
async function timeSteps<T>(files: readonly string[], steps: readonly [string, (bytes: Buffer, prev: T, file: string) => T | Promise<T>][]): Promise<FormatFloor> {
  const totals: Record<string, number> = Object.fromEntries(steps.map(([name]) => [name, 0]));
  // One pass first, untimed: the JIT compiles the parsers (the server has done that long before its thousandth push).
  for (const f of files.slice(0, Math.min(200, files.length))) {
    let v = undefined as T;
    const bytes = readFileSync(f);
    for (const [, step] of steps) v = await step(bytes, v, f);
  }
  for (const f of files) {
    const bytes = readFileSync(f);
    let v = undefined as T;
    for (const [name, step] of steps) {
      const t0 = performance.now();
      v = await step(bytes, v, f);
      totals[name]! += performance.now() - t0;
    }
  }
  const steps_ = Object.fromEntries(Object.entries(totals).map(([k, ms]) => [k, ms / 1000]));
  return { seconds: Object.values(steps_).reduce((a, b) => a + b, 0), steps: steps_ };
}

const hex = (algo: string, bytes: Buffer) => createHash(algo).update(bytes).digest('hex');

/** A push of a .deb: inspect (ar, control.tar, control stanza), the four digests, the Packages stanza. */
export function debFormatFloor(files: readonly string[]): Promise<FormatFloor> {
  type S = { info?: Awaited<ReturnType<typeof inspectDeb>>; digests?: { md5: string; sha1: string; sha256: string; sha512: string } };
  return timeSteps<S>(files, [
    ['parse', async (bytes) => ({ info: await inspectDeb(bufferSource(bytes)) })],
    ['digests', (bytes, s) => ({ ...s, digests: { md5: hex('md5', bytes), sha1: hex('sha1', bytes), sha256: hex('sha256', bytes), sha512: hex('sha512', bytes) } })],
    ['index entry', (bytes, s) => {
      renderPackagesStanza(s.info!.control, { filename: `pool/main/b/${s.info!.package}/${s.info!.canonicalFilename}`, size: bytes.byteLength, ...s.digests! });
      return s;
    }],
  ]);
}

/** A push of an RPM (not re-signed): headers and their bounds, the metadata, SHA-256, the three XML fragments. */
export function rpmFormatFloor(files: readonly string[]): Promise<FormatFloor> {
  type S = { meta?: ReturnType<typeof rpmPackageMetadata>; sha256?: string };
  return timeSteps<S>(files, [
    ['parse', async (bytes) => ({ meta: rpmPackageMetadata(await readRpm(bufferSource(bytes))) })],
    ['digests', (bytes, s) => ({ ...s, sha256: hex('sha256', bytes) })],
    ['index entry', (bytes, s, file) => {
      const facts = { sha256: s.sha256!, size: bytes.byteLength, fileTime: 1_700_000_000, location: `Packages/${basename(file)}` };
      primaryPackageXml(s.meta!, facts);
      filelistsPackageXml(s.meta!, facts);
      otherPackageXml(s.meta!, facts);
      return s;
    }],
  ]);
}

export const fmtFloorSteps = (f: FormatFloor) => Object.entries(f.steps).map(([k, s]) => `${k} ${s.toFixed(2)} s`).join(', ');
