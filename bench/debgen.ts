// Synthetic .deb files for the benchmarks, written byte by byte (ar + ustar + gzip): dpkg-deb --build would take
// minutes for 10,000 packages. The output is a normal Debian binary package (checked with dpkg-deb in the setup).
import { gzipSync } from 'node:zlib';
import { existsSync, mkdirSync, readdirSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

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

export function buildDebBytes(m: SyntheticDeb): Buffer {
  const control = tar([{ path: './' }, { path: './control', data: controlText(m) }]);
  const doc = `./usr/share/doc/${m.name}/`;
  const data = tar([
    { path: './' },
    { path: './usr/' },
    { path: './usr/share/' },
    { path: './usr/share/doc/' },
    { path: doc },
    { path: `${doc}README`, data: `${m.name} ${m.version}\nSynthetic package for benchmarks (${m.index}).\n` },
  ]);
  return Buffer.concat([
    Buffer.from('!<arch>\n', 'latin1'),
    arMember('debian-binary', Buffer.from('2.0\n')),
    arMember('control.tar.gz', gzipSync(control, { level: 6 })),
    arMember('data.tar.gz', gzipSync(data, { level: 6 })),
  ]);
}

/**
 * Makes sure `dir/pool` holds packages 1..n and `dir/extra` packages n+1..n+extra. Reuses a complete earlier run
 * (marked by dir/.complete). Returns the file lists (absolute paths).
 */
export function ensureDebs(dir: string, n: number, extra: number, log: (s: string) => void): { pool: string[]; extra: string[]; generated: boolean; seconds: number } {
  const marker = join(dir, `.complete-${n}-${extra}`);
  const poolDir = join(dir, 'pool');
  const extraDir = join(dir, 'extra');
  const pool = Array.from({ length: n }, (_, k) => join(poolDir, debMeta(k + 1).filename));
  const extras = Array.from({ length: extra }, (_, k) => join(extraDir, debMeta(n + k + 1).filename));
  if (existsSync(marker) && readdirSync(poolDir).length === n && readdirSync(extraDir).length === extra) {
    log(`reusing ${n} + ${extra} synthetic debs in ${dir}`);
    return { pool, extra: extras, generated: false, seconds: 0 };
  }
  const t0 = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(poolDir, { recursive: true });
  mkdirSync(extraDir, { recursive: true });
  for (let k = 0; k < n; k++) writeFileSync(pool[k]!, buildDebBytes(debMeta(k + 1)));
  for (let k = 0; k < extra; k++) writeFileSync(extras[k]!, buildDebBytes(debMeta(n + k + 1)));
  writeFileSync(marker + '.tmp', new Date().toISOString() + '\n');
  renameSync(marker + '.tmp', marker);
  const seconds = (performance.now() - t0) / 1000;
  log(`generated ${n} + ${extra} synthetic debs in ${dir} (${seconds.toFixed(1)} s)`);
  return { pool, extra: extras, generated: true, seconds };
}
