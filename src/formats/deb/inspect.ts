// Reads the control information of a .deb (dpkg src/deb/extract.c) without touching the data archive.
import { spawn } from 'node:child_process';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { WharfError } from '../../errors.ts';
import type { ByteSource } from '../byte-source.ts';
import { listArMembers, type ArMember } from './ar.ts';
import { findControlFile } from './tar.ts';
import { getField, parseControl, type ControlStanza } from './control.ts';
import { parseDebVersion } from './version.ts';
import { XzCorruptError, XzTooLargeError, decodeXz } from '../xz-decode.ts';

export interface InspectDebOptions {
  /** Largest accepted control.tar member as stored (compressed). Default 16 MiB. */
  maxControlArchiveBytes?: number;
  /** Largest accepted control.tar once decompressed. Default 64 MiB. */
  maxControlBytes?: number;
}

export interface DebInfo {
  control: ControlStanza;
  package: string;
  version: string;
  architecture: string;
  /** `${package}_${version without epoch}_${architecture}.deb` */
  canonicalFilename: string;
}

export const DEFAULT_MAX_CONTROL_ARCHIVE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_CONTROL_BYTES = 64 * 1024 * 1024;

type Compression = 'none' | 'gzip' | 'xz' | 'zstd';
const CONTROL_MEMBERS: Record<string, Compression> = {
  'control.tar': 'none',
  'control.tar.gz': 'gzip',
  'control.tar.xz': 'xz',
  'control.tar.zst': 'zstd',
};
const DATA_MEMBERS = new Set(['data.tar', 'data.tar.gz', 'data.tar.xz', 'data.tar.zst', 'data.tar.bz2', 'data.tar.lzma']);

/** Checks the member layout and returns the control archive member. */
export function checkDebMembers(members: readonly ArMember[]): { control: ArMember; compression: Compression; data: ArMember } {
  if (members.length === 0) throw new WharfError('DEB_BAD_MEMBER', ['the archive has no members']);
  if (members[0]!.name !== 'debian-binary') {
    throw new WharfError('DEB_BAD_MEMBER', [`the first member is "${members[0]!.name}", expected "debian-binary"`]);
  }
  let control: ArMember | undefined;
  let compression: Compression = 'none';
  let data: ArMember | undefined;
  for (const m of members.slice(1)) {
    if (m.name.startsWith('_')) continue; // non-critical members
    if (m.name.startsWith('control.tar')) {
      if (control || data) throw new WharfError('DEB_BAD_MEMBER', [`unexpected member "${m.name}"`]);
      const c = CONTROL_MEMBERS[m.name];
      if (!c) throw new WharfError('DEB_BAD_MEMBER', [`member "${m.name}" uses an unsupported compression`]);
      control = m;
      compression = c;
    } else if (m.name.startsWith('data.tar')) {
      if (!control) throw new WharfError('DEB_BAD_MEMBER', [`member "${m.name}" comes before the control archive`]);
      if (data) throw new WharfError('DEB_BAD_MEMBER', [`unexpected member "${m.name}" after "${data.name}"`]);
      if (!DATA_MEMBERS.has(m.name)) throw new WharfError('DEB_BAD_MEMBER', [`member "${m.name}" uses an unsupported compression`]);
      data = m;
    } else {
      throw new WharfError('DEB_BAD_MEMBER', [`unexpected member "${m.name}"`]);
    }
  }
  if (!control) throw new WharfError('DEB_BAD_MEMBER', ['no control.tar member']);
  if (!data) throw new WharfError('DEB_BAD_MEMBER', ['no data.tar member']);
  return { control, compression, data };
}

function isCapError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof RangeError || code === 'ERR_BUFFER_TOO_LARGE';
}

/** Decompresses `input` with output capped at `cap` bytes; DEB_CONTROL_TOO_LARGE past the cap. */
export async function decompressCapped(input: Uint8Array, compression: Compression, cap: number): Promise<Uint8Array> {
  const tooLarge = () => new WharfError('DEB_CONTROL_TOO_LARGE', [cap]);
  switch (compression) {
    case 'none':
      if (input.byteLength > cap) throw tooLarge();
      return input;
    case 'gzip':
    case 'zstd':
      try {
        return compression === 'gzip' ? gunzipSync(input, { maxOutputLength: cap }) : zstdDecompressSync(input, { maxOutputLength: cap });
      } catch (e) {
        if (isCapError(e)) throw tooLarge();
        throw new WharfError('DEB_BAD_CONTROL_ARCHIVE', [`${compression} decompression failed: ${(e as Error).message}`]);
      }
    case 'xz':
      // In process (LZMA2, what dpkg-deb writes), when small: the decoder runs on the event loop at ~20 MB/s, so a
      // large or hostile archive goes to the xz program, like what the decoder does not implement (other filters).
      if (input.byteLength <= IN_PROCESS_XZ_INPUT) {
        try {
          return decodeXz(input, Math.min(cap, IN_PROCESS_XZ_OUTPUT));
        } catch (e) {
          if (e instanceof XzTooLargeError) {
            if (cap <= IN_PROCESS_XZ_OUTPUT) throw tooLarge();
          } else if (e instanceof XzCorruptError) {
            throw new WharfError('DEB_BAD_CONTROL_ARCHIVE', [`xz decompression failed: ${e.message}`]);
          }
          // XzUnsupportedError, or anything unexpected from the decoder: the xz program decides
        }
      }
      return xzDecompressCapped(input, cap);
  }
}

/**
 * The largest control.tar.xz decoded in process, and the most it may produce there: about 50 ms on the event loop
 * at most (a hostile 256 KiB of tiny chunks included). Real ones are a few kilobytes; those of packages with many
 * thousand files (their md5sums) go to the xz program, ~5 ms more.
 */
const IN_PROCESS_XZ_INPUT = 256 * 1024;
const IN_PROCESS_XZ_OUTPUT = 1024 * 1024;

function xzDecompressCapped(input: Uint8Array, cap: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    // (Its own process group, as in compress.ts: a Ctrl-C stops the server gracefully, and this push finishes.)
    const child = spawn('xz', ['-dc', '-q'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const chunks: Buffer[] = [];
    let total = 0;
    let over = false;
    let stderr = '';
    let settled = false;
    const finish = (err: Error | null, out?: Uint8Array) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(out!);
    };
    child.on('error', (e) => finish(new WharfError('DEB_BAD_CONTROL_ARCHIVE', [`cannot run xz: ${e.message}`])));
    child.stdin.on('error', () => {}); // EPIPE when xz exits early (or is killed past the cap)
    child.stdout.on('data', (c: Buffer) => {
      if (over) return;
      total += c.length;
      if (total > cap) {
        over = true;
        child.kill('SIGKILL');
        finish(new WharfError('DEB_CONTROL_TOO_LARGE', [cap]));
        return;
      }
      chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 2000) stderr += c.toString('utf8');
    });
    child.on('close', (code) => {
      if (over) return;
      if (code !== 0) {
        finish(new WharfError('DEB_BAD_CONTROL_ARCHIVE', [`xz decompression failed: ${stderr.trim() || `exit code ${code}`}`]));
        return;
      }
      finish(null, Buffer.concat(chunks, total));
    });
    child.stdin.end(input);
  });
}

/** Reads and validates the control information of a .deb. */
export async function inspectDeb(src: ByteSource, opts: InspectDebOptions = {}): Promise<DebInfo> {
  const maxArchive = opts.maxControlArchiveBytes ?? DEFAULT_MAX_CONTROL_ARCHIVE_BYTES;
  const maxControl = opts.maxControlBytes ?? DEFAULT_MAX_CONTROL_BYTES;
  const members = await listArMembers(src);
  const { control, compression } = checkDebMembers(members);

  const db = members[0]!;
  if (db.size > 40) throw new WharfError('DEB_BAD_MEMBER', ['debian-binary is too long']);
  const formatText = new TextDecoder('latin1').decode(await src.read(db.offset, db.size));
  if (!/^2\.[0-9]+\n/.test(formatText)) {
    throw new WharfError('DEB_BAD_MEMBER', [`unsupported package format version "${formatText.split('\n')[0]}" (expected 2.x)`]);
  }

  if (control.size > maxArchive) throw new WharfError('DEB_CONTROL_TOO_LARGE', [maxArchive]);
  const raw = await src.read(control.offset, control.size);
  const tar = await decompressCapped(raw, compression, maxControl);
  const controlBytes = findControlFile(tar);
  const stanza = parseControl(controlBytes);
  const pkg = getField(stanza, 'Package')!;
  const version = getField(stanza, 'Version')!;
  const architecture = getField(stanza, 'Architecture')!;
  const v = parseDebVersion(version);
  const noEpoch = v.revision ? `${v.upstream}-${v.revision}` : v.upstream;
  return { control: stanza, package: pkg, version, architecture, canonicalFilename: `${pkg}_${noEpoch}_${architecture}.deb` };
}
