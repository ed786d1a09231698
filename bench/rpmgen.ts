// Synthetic .rpm files for the benchmarks, written byte by byte (lead + signature header + main header + gzip'd newc
// cpio payload): rpmbuild would take far too long for 10,000 packages. The output is a normal v4 binary package,
// unsigned, with the header digests rpmbuild writes (SHA256, SHA1, MD5, sizes, payload digest); the setup checks a few
// with rpm -qpi / -qpl, rpmkeys --checksig and rpm2cpio.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { existsSync, mkdirSync, readdirSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface SyntheticRpm {
  index: number;
  name: string;
  version: string;
  release: string;
  arch: string;
  filename: string;
  /** no dependencies outside the generated set (installable into an empty root: the end-to-end tests) */
  standalone?: boolean;
  /** this many more bytes of README, incompressible (the tests' packages larger than what is checked in memory) */
  extraBytes?: number;
}

/** `n` bytes that gzip cannot shrink, the same for the same seed: a SHA-256 chain. */
function noise(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < n; off += 32) {
    block.copy(out, off, 0, Math.min(32, n - off));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** Package number i (1-based): bench-rpm-00001 1.0.1-1.el9; every tenth package is noarch. */
export function rpmMeta(i: number): SyntheticRpm {
  const name = `bench-rpm-${String(i).padStart(5, '0')}`;
  const version = `1.0.${i}`;
  const release = '1.el9';
  const arch = i % 10 === 0 ? 'noarch' : 'x86_64';
  return { index: i, name, version, release, arch, filename: `${name}-${version}-${release}.${arch}.rpm` };
}

const BUILD_TIME = 1_700_000_000;

// Data types (rpm include/rpm/rpmtag.h)
const INT16 = 3;
const INT32 = 4;
const STRING = 6;
const BIN = 7;
const STRING_ARRAY = 8;
const I18NSTRING = 9;

interface Entry {
  tag: number;
  type: number;
  count: number;
  data: Buffer;
}

const str = (tag: number, s: string, type = STRING): Entry => ({ tag, type, count: 1, data: Buffer.from(s + '\0', 'utf8') });
const strs = (tag: number, a: readonly string[]): Entry => ({ tag, type: STRING_ARRAY, count: a.length, data: Buffer.from(a.map((s) => s + '\0').join(''), 'utf8') });
const i32 = (tag: number, a: readonly number[]): Entry => {
  const b = Buffer.alloc(4 * a.length);
  a.forEach((v, k) => b.writeUInt32BE(v >>> 0, 4 * k));
  return { tag, type: INT32, count: a.length, data: b };
};
const i16 = (tag: number, a: readonly number[]): Entry => {
  const b = Buffer.alloc(2 * a.length);
  a.forEach((v, k) => b.writeUInt16BE(v & 0xffff, 2 * k));
  return { tag, type: INT16, count: a.length, data: b };
};
const bin = (tag: number, data: Buffer): Entry => ({ tag, type: BIN, count: data.length, data });

const ALIGN: Record<number, number> = { [INT16]: 2, [INT32]: 4 };

/**
 * A header blob as rpm writes it: magic, il, dl, index (region entry first, then by tag), data in tag order aligned
 * per type, and the 16-byte region trailer {region, BIN, -(il*16), 16} at the end of the data, covering everything.
 */
function headerBlob(region: number, entries: Entry[]): Buffer {
  const sorted = [...entries].sort((a, b) => a.tag - b.tag);
  const il = sorted.length + 1;
  const offsets: number[] = [];
  let dl = 0;
  for (const e of sorted) {
    const a = ALIGN[e.type] ?? 1;
    dl = Math.ceil(dl / a) * a;
    offsets.push(dl);
    dl += e.data.length;
  }
  const trailerOffset = dl;
  dl += 16;
  const out = Buffer.alloc(16 + 16 * il + dl);
  out.set([0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0], 0);
  out.writeUInt32BE(il, 8);
  out.writeUInt32BE(dl, 12);
  const data = 16 + 16 * il;
  out.writeUInt32BE(region, 16);
  out.writeUInt32BE(BIN, 20);
  out.writeUInt32BE(trailerOffset, 24);
  out.writeUInt32BE(16, 28);
  sorted.forEach((e, k) => {
    const p = 16 + 16 * (k + 1);
    out.writeUInt32BE(e.tag, p);
    out.writeUInt32BE(e.type, p + 4);
    out.writeUInt32BE(offsets[k]!, p + 8);
    out.writeUInt32BE(e.count, p + 12);
    e.data.copy(out, data + offsets[k]!);
  });
  const t = data + trailerOffset;
  out.writeUInt32BE(region, t);
  out.writeUInt32BE(BIN, t + 4);
  out.writeInt32BE(-(il * 16), t + 8);
  out.writeUInt32BE(16, t + 12);
  return out;
}

/** One newc cpio entry (header, NUL-terminated name and data, each padded to 4 bytes). */
function cpioEntry(name: string, mode: number, data: Buffer, ino: number, nlink: number): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const nameBytes = Buffer.from(name + '\0', 'utf8');
  const head = Buffer.from(
    '070701' + [ino, mode, 0, 0, nlink, BUILD_TIME, data.length, 0, 0, 0, 0, nameBytes.length, 0].map(hex).join(''),
    'latin1',
  );
  const pad1 = (4 - ((head.length + nameBytes.length) % 4)) % 4;
  const pad2 = (4 - (data.length % 4)) % 4;
  return Buffer.concat([head, nameBytes, Buffer.alloc(pad1), data, Buffer.alloc(pad2)]);
}

function lead(name: string): Buffer {
  const b = Buffer.alloc(96);
  b.set([0xed, 0xab, 0xee, 0xdb, 3, 0], 0);
  b.writeUInt16BE(0, 6); // type: binary
  b.writeUInt16BE(1, 8); // archnum (rpm ignores the lead's arch)
  b.write(name.slice(0, 65), 10, 'latin1');
  b.writeUInt16BE(1, 76); // osnum: Linux
  b.writeUInt16BE(5, 78); // signature type: header-style
  return b;
}

const RPMSENSE_LESS = 1 << 1;
const RPMSENSE_GREATER = 1 << 2;
const RPMSENSE_EQUAL = 1 << 3;
const RPMSENSE_RPMLIB = 1 << 24;

export function buildRpmBytes(m: SyntheticRpm): Buffer {
  const nvr = `${m.name}-${m.version}-${m.release}`;
  const dir = `/usr/share/doc/${m.name}/`;
  const text = Buffer.from(`${nvr}\nSynthetic package for benchmarks (${m.index}).\n`, 'utf8');
  const content = m.extraBytes ? Buffer.concat([text, noise(nvr, m.extraBytes)]) : text;
  const cpio = Buffer.concat([
    cpioEntry(`.${dir}README`, 0o100644, content, 1, 1),
    cpioEntry('TRAILER!!!', 0, Buffer.alloc(0), 0, 1),
  ]);
  const payload = gzipSync(cpio, { level: 6 });
  const payloadSha256 = createHash('sha256').update(payload).digest('hex');
  const fileSha256 = createHash('sha256').update(content).digest('hex');
  const groups = ['Applications/System', 'Development/Libraries', 'System Environment/Base', 'Applications/Internet'];

  const provides: [string, number, string][] = [[m.name, RPMSENSE_EQUAL, `${m.version}-${m.release}`]];
  if (m.arch !== 'noarch') provides.push([`${m.name}(x86-64)`, RPMSENSE_EQUAL, `${m.version}-${m.release}`]);
  const requires: [string, number, string][] = [
    ...(m.standalone
      ? []
      : ([
          ['glibc', RPMSENSE_GREATER | RPMSENSE_EQUAL, '2.34'],
          ['openssl-libs', RPMSENSE_GREATER | RPMSENSE_EQUAL, '1:3.0.0'],
        ] as [string, number, string][])),
    ['rpmlib(CompressedFileNames)', RPMSENSE_RPMLIB | RPMSENSE_LESS | RPMSENSE_EQUAL, '3.0.4-1'],
    ['rpmlib(FileDigests)', RPMSENSE_RPMLIB | RPMSENSE_LESS | RPMSENSE_EQUAL, '4.6.0-1'],
    ['rpmlib(PayloadFilesHavePrefix)', RPMSENSE_RPMLIB | RPMSENSE_LESS | RPMSENSE_EQUAL, '4.0-1'],
  ];
  if (m.index > 1) requires.splice(m.standalone ? 0 : 2, 0, [`bench-rpm-${String(m.index - 1).padStart(5, '0')}`, RPMSENSE_GREATER | RPMSENSE_EQUAL, '1.0']);

  const main = headerBlob(63, [
    strs(100, ['C']), // HEADERI18NTABLE
    str(1000, m.name),
    str(1001, m.version),
    str(1002, m.release),
    str(1004, `synthetic benchmark package number ${m.index}`, I18NSTRING),
    str(1005, `This package was generated for the Wharf RPM publishing benchmark.\nIt contains a single README file and declares a few dependencies\nso that its primary.xml entry is about as long as a typical one.`, I18NSTRING),
    i32(1006, [BUILD_TIME]),
    str(1007, 'bench.example.org'),
    i32(1009, [content.length]),
    str(1014, 'MIT'),
    str(1016, groups[m.index % groups.length]!, I18NSTRING),
    str(1020, `https://example.org/projects/${m.name}`),
    str(1021, 'linux'),
    str(1022, m.arch),
    i32(1028, [content.length]), // FILESIZES
    i16(1030, [0o100644]), // FILEMODES
    i16(1033, [0xffff]), // FILERDEVS
    i32(1034, [BUILD_TIME]), // FILEMTIMES
    strs(1035, [fileSha256]), // FILEDIGESTS
    strs(1036, ['']), // FILELINKTOS
    i32(1037, [2]), // FILEFLAGS: %doc
    strs(1039, ['root']), // FILEUSERNAME
    strs(1040, ['root']), // FILEGROUPNAME
    str(1044, `${nvr}.src.rpm`), // SOURCERPM
    strs(1047, provides.map((p) => p[0])),
    i32(1048, requires.map((r) => r[1])),
    strs(1049, requires.map((r) => r[0])),
    strs(1050, requires.map((r) => r[2])),
    i32(1080, [BUILD_TIME - 86400]), // CHANGELOGTIME
    strs(1081, [`Wharf Bench <bench@example.org> - ${m.version}-${m.release}`]),
    strs(1082, ['- Synthetic build']),
    str(1064, '4.18.0'), // RPMVERSION
    i32(1095, [1]), // FILEDEVICES
    i32(1096, [1]), // FILEINODES
    strs(1097, ['']), // FILELANGS
    i32(1112, provides.map((p) => p[1])),
    strs(1113, provides.map((p) => p[2])),
    i32(1116, [0]), // DIRINDEXES
    strs(1117, ['README']), // BASENAMES
    strs(1118, [dir]), // DIRNAMES
    str(1124, 'cpio'), // PAYLOADFORMAT
    str(1125, 'gzip'), // PAYLOADCOMPRESSOR
    str(1126, '9'), // PAYLOADFLAGS
    i32(5011, [8]), // FILEDIGESTALGO: SHA256
    strs(5092, [payloadSha256]), // PAYLOADDIGEST
    i32(5093, [8]), // PAYLOADDIGESTALGO: SHA256
  ]);

  const sig = headerBlob(62, [
    str(269, createHash('sha1').update(main).digest('hex')), // SHA1
    str(273, createHash('sha256').update(main).digest('hex')), // SHA256
    i32(1000, [main.length + payload.length]), // SIZE
    bin(1004, createHash('md5').update(main).update(payload).digest()), // MD5
    i32(1007, [cpio.length]), // PAYLOADSIZE
  ]);
  const sigPad = Buffer.alloc((8 - (sig.readUInt32BE(12) % 8)) % 8);
  return Buffer.concat([lead(nvr), sig, sigPad, main, payload]);
}

/**
 * Makes sure `dir/pool` holds packages 1..n and `dir/extra` packages n+1..n+extra. Reuses a complete earlier run
 * (marked by dir/.complete-N-EXTRA). Returns the file lists (absolute paths).
 */
export function ensureRpms(dir: string, n: number, extra: number, log: (s: string) => void): { pool: string[]; extra: string[]; generated: boolean; seconds: number } {
  const marker = join(dir, `.complete-${n}-${extra}`);
  const poolDir = join(dir, 'pool');
  const extraDir = join(dir, 'extra');
  const pool = Array.from({ length: n }, (_, k) => join(poolDir, rpmMeta(k + 1).filename));
  const extras = Array.from({ length: extra }, (_, k) => join(extraDir, rpmMeta(n + k + 1).filename));
  if (existsSync(marker) && readdirSync(poolDir).length === n && readdirSync(extraDir).length === extra) {
    log(`reusing ${n} + ${extra} synthetic rpms in ${dir}`);
    return { pool, extra: extras, generated: false, seconds: 0 };
  }
  const t0 = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(poolDir, { recursive: true });
  mkdirSync(extraDir, { recursive: true });
  for (let k = 0; k < n; k++) writeFileSync(pool[k]!, buildRpmBytes(rpmMeta(k + 1)));
  for (let k = 0; k < extra; k++) writeFileSync(extras[k]!, buildRpmBytes(rpmMeta(n + k + 1)));
  writeFileSync(marker + '.tmp', new Date().toISOString() + '\n');
  renameSync(marker + '.tmp', marker);
  const seconds = (performance.now() - t0) / 1000;
  log(`generated ${n} + ${extra} synthetic rpms in ${dir} (${seconds.toFixed(1)} s)`);
  return { pool, extra: extras, generated: true, seconds };
}
