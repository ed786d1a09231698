// Compression of Packages index chunks for publishing Packages.gz and Packages.xz.
//
// The index is split into chunks (runs of whole stanzas); each chunk is compressed once and cached:
//   - gzip: one gzip member per chunk; the published Packages.gz is the plain concatenation of the members
//     (RFC 1952 allows several members; gzip -d, zcat, zlib's gzread and therefore apt's FileFd read them all).
//   - xz: each chunk is compressed by the system `xz` binary into a one-stream file, which is split into its blocks
//     and index records (parseXzStream); the published Packages.xz is ONE stream assembled from the blocks of all
//     chunks (assembleXz) so that every xz reader sees a single multi-block stream.

import { spawn } from 'node:child_process';
import { gzip, gzipSync } from 'node:zlib';
import { availableParallelism } from 'node:os';
import { assembleXz, parseXzStream, type XzPart } from './xz.ts';

export { assembleXz, parseXzStream };
export type { XzPart, XzRecord } from './xz.ts';

/**
 * gzip level used by default. Measured in Node on 256 KiB Packages chunks (real Debian data and synthetic): level 9
 * is 0.9-2.4 % smaller than level 6 for +0.3-3 ms (5.8 vs 5.5 ms, 8.0 vs 6.5 ms). A chunk is compressed once and
 * cached, so 9 is worth it.
 */
export const DEFAULT_GZIP_LEVEL = 9;

/**
 * xz preset used by default. Measured in Node (including the ~6 ms process spawn) on 256 KiB Packages chunks, 2 busy
 * cores: presets 1-3 take ~25-37 ms, preset 4 ~45-63 ms (~9 % smaller than 3), preset 6 ~70-100 ms (~12-16 %
 * smaller). Preset 3 is the largest that keeps one 256 KiB chunk at ~30 ms; use a higher preset with smaller chunks.
 */
export const DEFAULT_XZ_PRESET = 3;

/** Dictionary size of each xz preset (xz(1)); the dictionary is capped to the chunk size, see xzArgs. */
const PRESET_DICT = [256 << 10, 1 << 20, 2 << 20, 4 << 20, 4 << 20, 8 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20];

/** Limit given to `xz -d` so a hostile header cannot make it reserve a huge dictionary (xz -9e needs 65 MiB). */
const XZ_DECOMPRESS_MEMLIMIT = '256MiB';

const MAX_STDERR = 4096;

export type CompressionErrorCode = 'XZ_NOT_FOUND' | 'XZ_FAILED' | 'OUTPUT_TOO_LARGE';

export class CompressionError extends Error {
  readonly code: CompressionErrorCode;

  constructor(code: CompressionErrorCode, message: string) {
    super(message);
    this.name = 'CompressionError';
    this.code = code;
  }
}

/**
 * Compress `data` into one gzip member. Deterministic: Node's zlib writes mtime 0, no file name and no comment; the
 * OS byte is forced to 3 (Unix) so the output does not depend on the platform either.
 */
export function gzipMember(data: Uint8Array, level: number = DEFAULT_GZIP_LEVEL): Uint8Array {
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`Invalid gzip level ${level}: expected 0-9`);
  const out = new Uint8Array(gzipSync(data, { level }));
  out[9] = 3;
  return out;
}

/**
 * Concatenate gzip members into one multi-member .gz file. This is plain concatenation: RFC 1952 defines a gzip file
 * as a series of members, and gzip -d, zcat, zlib's gzread (used by apt) and Node's gunzip decode all of them in
 * order. (`gzip -l` only reports the last member's size, which does not matter for serving.) No members gives an
 * empty file, which is NOT a valid .gz: publish gzipMember(new Uint8Array(0)) for an empty index.
 */
export function concatGzip(members: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const m of members) total += m.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const m of members) {
    out.set(m, off);
    off += m.length;
  }
  return out;
}

function xzEnv(): NodeJS.ProcessEnv {
  // XZ_DEFAULTS / XZ_OPT would silently change the output (threads, presets, block sizes): drop them.
  const env = { ...process.env };
  delete env.XZ_DEFAULTS;
  delete env.XZ_OPT;
  return env;
}

function xzArgs(size: number, preset: number): string[] {
  // A dictionary larger than the input only costs initialisation time and decoder memory: cap it to the input size
  // (rounded up to a power of two, at least 4 KiB, the LZMA2 minimum). The compressed data is the same.
  let dict = 4096;
  while (dict < size && dict < PRESET_DICT[preset]!) dict *= 2;
  dict = Math.min(dict, PRESET_DICT[preset]!);
  // -T1: single-threaded mode, so the output is always exactly one stream; --check=crc32 so that blocks made in-process (storedXzPart, zlib's crc32) can join them.
  return ['-z', '-c', '-q', '-T1', '--check=crc32', `--lzma2=preset=${preset},dict=${dict}`];
}

interface RunResult {
  stdout: Uint8Array;
}

function runXz(args: string[], input: Uint8Array, maxOutput: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | null, result?: RunResult): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(result!);
    };

    // Its own process group: a Ctrl-C in the terminal (SIGINT to the foreground group) stops the server gracefully,
    // and must not kill the compressions of the publishes it finishes.
    const child = spawn('xz', args, { stdio: ['pipe', 'pipe', 'pipe'], env: xzEnv(), detached: true });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';

    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        settle(new CompressionError('XZ_NOT_FOUND', 'The xz program was not found on PATH: install xz-utils'));
      } else {
        settle(new CompressionError('XZ_FAILED', `Cannot run xz: ${err.message}`));
      }
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > maxOutput) {
        child.kill('SIGKILL');
        settle(new CompressionError('OUTPUT_TOO_LARGE', `xz output exceeds the limit of ${maxOutput} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < MAX_STDERR) stderr += s;
    });
    // EPIPE when xz exits early (bad input, killed past the cap): the exit status tells what happened.
    child.stdin.on('error', () => {});
    child.on('close', (code, signal) => {
      if (code !== 0) {
        const why = stderr.trim().slice(0, MAX_STDERR) || (signal ? `killed by ${signal}` : `exit status ${code}`);
        settle(new CompressionError('XZ_FAILED', `xz ${args.join(' ')} failed: ${why}`));
        return;
      }
      const out = new Uint8Array(size);
      let off = 0;
      for (const c of chunks) {
        out.set(c, off);
        off += c.length;
      }
      settle(null, { stdout: out });
    });
    child.stdin.end(input);
  });
}

/**
 * Compress `data` into a complete single-stream .xz file with the system `xz` binary (single-threaded, CRC32 check).
 * Rejects with a CompressionError (code XZ_NOT_FOUND or XZ_FAILED) if xz is missing or fails.
 */
export async function xzCompress(data: Uint8Array, opts: { preset?: number } = {}): Promise<Uint8Array> {
  const preset = opts.preset ?? DEFAULT_XZ_PRESET;
  if (!Number.isInteger(preset) || preset < 0 || preset > 9) throw new RangeError(`Invalid xz preset ${preset}: expected 0-9`);
  const { stdout } = await runXz(xzArgs(data.length, preset), data, Number.MAX_SAFE_INTEGER);
  return stdout;
}

/**
 * Decompress .xz data (one or more streams) with `xz -dc`. The output is capped at `maxOutput` bytes: past it xz is
 * killed and the promise rejects with a CompressionError whose `code` is 'OUTPUT_TOO_LARGE'. Corrupt input rejects
 * with code 'XZ_FAILED'.
 */
export async function xzDecompress(data: Uint8Array, maxOutput: number): Promise<Uint8Array> {
  if (!(maxOutput >= 0)) throw new RangeError(`Invalid maxOutput ${maxOutput}`);
  const { stdout } = await runXz(['-d', '-c', '-q', `--memlimit-decompress=${XZ_DECOMPRESS_MEMLIMIT}`], data, maxOutput);
  return stdout;
}

/**
 * gzipMember on the thread pool (the same bytes): several chunks compress in parallel, off the event loop.
 */
export async function gzipMemberAsync(data: Uint8Array, level: number = DEFAULT_GZIP_LEVEL): Promise<Uint8Array> {
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`Invalid gzip level ${level}: expected 0-9`);
  const buf = await new Promise<Buffer>((resolve, reject) => gzip(data, { level }, (e, r) => (e ? reject(e) : resolve(r))));
  const out = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  out[9] = 3;
  return out;
}

/** One XzPart per block of `stream`: each can be assembled alone (assembleXz) or with others. */
export function splitXzBlocks(stream: XzPart): XzPart[] {
  let off = 0;
  return stream.records.map((r): XzPart => {
    const len = r.unpaddedSize + ((4 - (r.unpaddedSize % 4)) % 4);
    const blocks = stream.blocks.subarray(off, off + len);
    off += len;
    return { checkType: stream.checkType, blocks, records: [r] };
  });
}

/**
 * Compresses each of `parts` into an xz block of its own (independent, as if each were compressed alone), with as
 * few xz processes as there are CPUs: each process gets a run of consecutive parts and `--block-list` with their
 * sizes, and its single stream is cut into one XzPart per input part. A publish that seals a hundred index chunks
 * then pays for two process starts, not a hundred, and keeps every core busy.
 */
export async function xzCompressParts(parts: readonly Uint8Array[], opts: { preset?: number; processes?: number } = {}): Promise<XzPart[]> {
  const preset = opts.preset ?? DEFAULT_XZ_PRESET;
  if (!Number.isInteger(preset) || preset < 0 || preset > 9) throw new RangeError(`Invalid xz preset ${preset}: expected 0-9`);
  if (parts.length === 0) return [];
  if (parts.some((p) => p.byteLength === 0)) throw new RangeError('xzCompressParts: parts must not be empty');
  // Consecutive runs of about equal size, one per process.
  const processes = Math.max(1, Math.min(opts.processes ?? availableParallelism(), parts.length));
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const groups: Uint8Array[][] = [];
  let group: Uint8Array[] = [];
  let size = 0;
  for (const p of parts) {
    group.push(p);
    size += p.byteLength;
    if (size >= (total / processes) * (groups.length + 1) && groups.length < processes - 1) {
      groups.push(group);
      group = [];
    }
  }
  if (group.length > 0) groups.push(group);
  const results = await Promise.all(
    groups.map(async (g) => {
      const largest = g.reduce((n, p) => Math.max(n, p.byteLength), 0);
      const args = [...xzArgs(largest, preset), `--block-list=${g.map((p) => p.byteLength).join(',')}`];
      const { stdout } = await runXz(args, Buffer.concat(g), Number.MAX_SAFE_INTEGER);
      const stream = parseXzStream(stdout);
      if (stream.records.length !== g.length || stream.records.some((r, i) => r.uncompressedSize !== g[i]!.byteLength)) {
        throw new CompressionError('XZ_FAILED', `xz --block-list made ${stream.records.length} blocks for ${g.length} parts`);
      }
      return splitXzBlocks(stream);
    }),
  );
  return results.flat();
}

export interface CompressedChunk {
  /** One gzip member: concatenate members with concatGzip. */
  gz: Uint8Array;
  /** The blocks and index records of the chunk's xz stream: assemble parts with assembleXz. */
  xz: XzPart;
}

/** Compress one index chunk both ways (gzip runs while xz works in its own process). */
export async function compressChunk(
  data: Uint8Array,
  opts: { gzipLevel?: number; xzPreset?: number } = {},
): Promise<CompressedChunk> {
  const xzPromise = xzCompress(data, { preset: opts.xzPreset });
  let gz: Uint8Array;
  try {
    gz = gzipMember(data, opts.gzipLevel);
  } catch (err) {
    xzPromise.catch(() => {});
    throw err;
  }
  return { gz, xz: parseXzStream(await xzPromise) };
}
