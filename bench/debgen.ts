// Synthetic .deb files for the benchmarks, written byte by byte (ar + ustar + gzip): dpkg-deb --build would take
// minutes for 10,000 packages. The output is a normal Debian binary package (checked with dpkg-deb in the setup).
import { gzipSync } from 'node:zlib';
import { existsSync, mkdirSync, readdirSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { xorshift32 } from '../test/helpers/xorshift.ts';
import { assembleXz, parseXzStream, splitXzBlocks } from '../src/formats/compress.ts';
import { execFileSync } from 'node:child_process';

export interface SyntheticDeb {
  index: number;
  name: string;
  version: string;
  architecture: string;
  filename: string;
  /** no dependencies outside the generated set (installable into an empty root: the end-to-end tests) */
  standalone?: boolean;
}

/** Package number i (1-based): bench-pkg-00001 1.0.1-1; every tenth package is Architecture: all. */
export function debMeta(i: number): SyntheticDeb {
  const name = `bench-pkg-${String(i).padStart(5, '0')}`;
  const version = `1.0.${i}-1`;
  const architecture = i % 10 === 0 ? 'all' : 'amd64';
  return { index: i, name, version, architecture, filename: `${name}_${version}_${architecture}.deb` };
}

const FIXED_MTIME = 1_700_000_000;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar header + data (padded to 512). */
function tarEntry(path: string, data: Buffer | null, mode: number): Buffer {
  const h = Buffer.alloc(512);
  const isDir = data === null;
  h.write(path, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(isDir ? 0 : data.length, 12), 124, 'latin1');
  h.write(octal(FIXED_MTIME, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(isDir ? '5' : '0', 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  if (isDir) return h;
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([h, data, Buffer.alloc(pad)]);
}

function tar(entries: { path: string; data?: string; mode?: number }[]): Buffer {
  const parts = entries.map((e) =>
    tarEntry(e.path, e.data === undefined ? null : Buffer.from(e.data, 'utf8'), e.mode ?? (e.data === undefined ? 0o755 : 0o644)),
  );
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function tarBytes(entries: DataFile[]): Buffer {
  const parts = entries.map((e) => tarEntry(e.path, e.data, e.mode ?? (e.data === null ? 0o755 : 0o644)));
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function arMember(name: string, data: Buffer): Buffer {
  const h =
    name.padEnd(16, ' ') +
    String(FIXED_MTIME).padEnd(12, ' ') +
    '0'.padEnd(6, ' ') +
    '0'.padEnd(6, ' ') +
    '100644'.padEnd(8, ' ') +
    String(data.length).padEnd(10, ' ') +
    '`\n';
  return Buffer.concat([Buffer.from(h, 'latin1'), data, data.length % 2 ? Buffer.from('\n') : Buffer.alloc(0)]);
}

export function controlText(m: SyntheticDeb): string {
  const dep = m.index > 1 ? `, bench-pkg-${String(m.index - 1).padStart(5, '0')} (>= 1.0)` : '';
  const sections = ['utils', 'libs', 'net', 'admin', 'devel', 'python', 'web'];
  return [
    `Package: ${m.name}`,
    `Version: ${m.version}`,
    `Architecture: ${m.architecture}`,
    `Maintainer: Wharf Bench <bench@example.org>`,
    `Installed-Size: ${8 + (m.index % 500)}`,
    ...(m.standalone ? (dep ? [`Depends: ${dep.slice(2)}`] : []) : [`Depends: libc6 (>= 2.34), libssl3 (>= 3.0.0)${dep}`]),
    `Section: ${sections[m.index % sections.length]}`,
    `Priority: optional`,
    `Homepage: https://example.org/projects/${m.name}`,
    `Description: synthetic benchmark package number ${m.index}`,
    ` This package was generated for the Wharf APT publishing benchmark.`,
    ` It contains a single README file and declares a few dependencies`,
    ` so that its Packages stanza is about as long as a typical one.`,
    '',
  ].join('\n');
}

/**
 * The contents of the generated packages:
 * - 'tiny' (the default): one README file, ~700 bytes per .deb. Shows the per-package overhead of a publisher.
 * - 'typical' (`--deb-profile typical`): closer to packages in a real repository: 10 to 120 files per package in the
 *   usual directories (usr/bin, usr/lib, usr/share/doc, man pages, data files), executables and libraries that
 *   compress about 2.5:1, text that compresses more; ~44 KB per .deb on average. Measured here at 10,000 packages:
 *   aptly add + publish 17.8 s (5.2 s with 'tiny'), apt-ftparchive 8.1 s (4.6 s), Wharf 9.8 s (5.1 s): every tool
 *   pays per byte (hashing, writing), aptly most for its Contents indexes.
 */
export type DebProfile = 'tiny' | 'typical';

/** Deterministic bytes: a small xorshift generator seeded per package and file. */
const prng = (seed: number): (() => number) => xorshift32(seed ^ 0x9e3779b9);

const WORDS = ('the of and to in is for on with as by that this from at be are or an it not which have has ' +
  'package library data file system user config value default option error return function module version ' +
  'support build install update release server client network memory thread buffer stream format header').split(' ');

/** `len` bytes that compress about 2.5:1 with gzip, like machine code: random bytes interleaved with repeats. */
function binaryBytes(len: number, seed: number): Buffer {
  const next = prng(seed);
  const out = Buffer.allocUnsafe(len);
  let i = 0;
  while (i < len) {
    const r = next();
    if (r % 3 === 0 && i > 64) {
      // a repeat of earlier bytes (what makes code compressible)
      const back = 1 + ((r >>> 8) % Math.min(i, 4096));
      const n = Math.min(8 + ((r >>> 20) % 24), len - i);
      for (let k = 0; k < n; k++, i++) out[i] = out[i - back]!;
    } else {
      const n = Math.min(4, len - i);
      for (let k = 0; k < n; k++, i++) out[i] = (r >>> (8 * k)) & 0xff;
    }
  }
  return out;
}

/** `len` bytes of word text (compresses about 4:1). */
function textBytes(len: number, seed: number): Buffer {
  const next = prng(seed);
  const parts: string[] = [];
  let n = 0;
  while (n < len) {
    const r = next();
    const w = (r % 17 === 0 ? '\n' : '') + WORDS[r % WORDS.length]! + (r % 11 === 0 ? '. ' : ' ');
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('').slice(0, len), 'latin1');
}

interface DataFile {
  path: string;
  data: Buffer | null;
  mode?: number;
}

/** The data.tar entries of a 'typical' package. */
function typicalFiles(m: SyntheticDeb): DataFile[] {
  const next = prng(m.index * 7919);
  const files: DataFile[] = [];
  const dirs = new Set<string>();
  const add = (path: string, data: Buffer, mode = 0o644) => {
    const parts = path.split('/').slice(0, -1);
    for (let k = 1; k <= parts.length; k++) {
      const d = parts.slice(0, k).join('/') + '/';
      if (!dirs.has(d)) {
        dirs.add(d);
        files.push({ path: d, data: null });
      }
    }
    files.push({ path, data, mode });
  };
  const name = m.name;
  const doc = `./usr/share/doc/${name}`;
  add(`${doc}/copyright`, textBytes(1500 + (next() % 2000), m.index * 31 + 1));
  add(`${doc}/changelog.Debian.gz`, gzipSync(textBytes(800 + (next() % 3000), m.index * 31 + 2)));
  if (m.architecture !== 'all') {
    const bins = 1 + (next() % 3);
    for (let b = 0; b < bins; b++) add(`./usr/bin/${name}${b ? `-tool${b}` : ''}`, binaryBytes(4096 + (next() % 40960), m.index * 31 + 3 + b), 0o755);
    if (next() % 2 === 0) add(`./usr/lib/x86_64-linux-gnu/lib${name}.so.1.0.0`, binaryBytes(8192 + (next() % 65536), m.index * 31 + 7));
    add(`./usr/share/man/man1/${name}.1.gz`, gzipSync(textBytes(1000 + (next() % 4000), m.index * 31 + 8)));
  }
  // data files: mostly small text, a few directories deep; 10 to 120 files in all (mean ~60)
  const count = 5 + (next() % 110);
  for (let k = 0; k < count; k++) {
    const sub = ['', 'data/', 'data/locale/', 'templates/', 'examples/'][next() % 5]!;
    add(`./usr/share/${name}/${sub}file-${k}.${['txt', 'conf', 'json', 'xml'][k % 4]}`, textBytes(60 + (next() % 1500), m.index * 131 + k));
  }
  return files;
}

/** The two tar archives of a package, uncompressed. */
function debTars(m: SyntheticDeb, profile: DebProfile): { control: Buffer; data: Buffer } {
  const control = tar([{ path: './' }, { path: './control', data: controlText(m) }]);
  const doc = `./usr/share/doc/${m.name}/`;
  const data =
    profile === 'typical'
      ? tarBytes(typicalFiles(m))
      : tar([
          { path: './' },
          { path: './usr/' },
          { path: './usr/share/' },
          { path: './usr/share/doc/' },
          { path: doc },
          { path: `${doc}README`, data: `${m.name} ${m.version}\nSynthetic package for benchmarks (${m.index}).\n` },
        ]);
  return { control, data };
}

function arDeb(ext: string, control: Uint8Array, data: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from('!<arch>\n', 'latin1'),
    arMember('debian-binary', Buffer.from('2.0\n')),
    arMember(`control.tar.${ext}`, Buffer.from(control)),
    arMember(`data.tar.${ext}`, Buffer.from(data)),
  ]);
}

export function buildDebBytes(m: SyntheticDeb, profile: DebProfile = 'tiny'): Buffer {
  const { control, data } = debTars(m, profile);
  return arDeb('gz', gzipSync(control, { level: 6 }), gzipSync(data, { level: 6 }));
}

/**
 * How the members are compressed: xz as dpkg-deb writes by default (control.tar.xz and data.tar.xz, xz -6, CRC64), what
 * most packages built on Debian look like and the benchmark's default; or gzip (control.tar.gz, data.tar.gz), as
 * the benchmark's packages were until session 14. With xz every tool that reads control.tar pays for LZMA (aptly's
 * repo add, apt-ftparchive, Wharf's push), and aptly's Contents for decompressing every data.tar.xz.
 */
export type DebCompression = 'gzip' | 'xz';

/**
 * Packages `metas` with xz members as dpkg-deb writes them (liblzma preset 6: an 8 MiB dictionary, CRC64), each
 * member a stream of its own. One xz process compresses all members as the blocks of one stream (--block-list),
 * which are then cut into one stream per member: 20,000 process starts would take minutes.
 */
function buildXzDebs(metas: readonly SyntheticDeb[], profile: DebProfile): Buffer[] {
  const tars = metas.flatMap((m) => {
    const t = debTars(m, profile);
    return [t.control, t.data];
  });
  const packed = execFileSync('xz', ['-z', '-c', '-q', '-6', '-T1', '--check=crc64', `--block-list=${tars.map((t) => t.byteLength).join(',')}`], {
    input: Buffer.concat(tars),
    env: { ...process.env, XZ_OPT: '', XZ_DEFAULTS: '' },
    maxBuffer: 1 << 30,
  });
  const stream = parseXzStream(packed);
  if (stream.records.length !== tars.length) throw new Error(`xz --block-list made ${stream.records.length} blocks for ${tars.length} members`);
  const members = splitXzBlocks(stream).map((part) => assembleXz([part]));
  return metas.map((_, k) => arDeb('xz', members[2 * k]!, members[2 * k + 1]!));
}

/**
 * Makes sure `dir/pool` holds packages 1..n and `dir/extra` packages n+1..n+extra. Reuses a complete earlier run
 * (marked by dir/.complete). Returns the file lists (absolute paths).
 */
export async function ensureDebs(
  dir: string,
  n: number,
  extra: number,
  log: (s: string) => void,
  profile: DebProfile = 'tiny',
  compression: DebCompression = 'xz',
): Promise<{ pool: string[]; extra: string[]; generated: boolean; seconds: number }> {
  const marker = join(dir, `.complete-${n}-${extra}-${profile}-${compression}`);
  const poolDir = join(dir, 'pool');
  const extraDir = join(dir, 'extra');
  const pool = Array.from({ length: n }, (_, k) => join(poolDir, debMeta(k + 1).filename));
  const extras = Array.from({ length: extra }, (_, k) => join(extraDir, debMeta(n + k + 1).filename));
  const what = `${profile}${compression === 'gzip' ? '' : `, ${compression}`}`;
  if (existsSync(marker) && readdirSync(poolDir).length === n && readdirSync(extraDir).length === extra) {
    log(`reusing ${n} + ${extra} synthetic debs (${what}) in ${dir}`);
    return { pool, extra: extras, generated: false, seconds: 0 };
  }
  const t0 = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(poolDir, { recursive: true });
  mkdirSync(extraDir, { recursive: true });
  const all = [...pool.map((path, k) => ({ path, m: debMeta(k + 1) })), ...extras.map((path, k) => ({ path, m: debMeta(n + k + 1) }))];
  if (compression === 'gzip') for (const { path, m } of all) writeFileSync(path, buildDebBytes(m, profile));
  else {
    for (let i = 0; i < all.length; i += 1000) {
      const slice = all.slice(i, i + 1000);
      const built = buildXzDebs(slice.map((x) => x.m), profile);
      slice.forEach(({ path }, k) => writeFileSync(path, built[k]!));
    }
  }
  writeFileSync(marker + '.tmp', new Date().toISOString() + '\n');
  renameSync(marker + '.tmp', marker);
  const seconds = (performance.now() - t0) / 1000;
  log(`generated ${n} + ${extra} synthetic debs (${what}) in ${dir} (${seconds.toFixed(1)} s)`);
  return { pool, extra: extras, generated: true, seconds };
}
