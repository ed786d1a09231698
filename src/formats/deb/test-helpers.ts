// Helpers shared by the .deb tests (not a test file itself).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { isWharfError, type ErrorCode } from '../../errors.ts';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/deb');

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-deb-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Builds a real .deb with dpkg-deb from a control file text and a few data files. */
export function buildDeb(
  control: string,
  opts: { compression?: 'gzip' | 'xz' | 'zstd' | 'none'; files?: Record<string, string>; extraControl?: Record<string, string> } = {},
): Uint8Array {
  const { dir, cleanup } = tempDir();
  try {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'DEBIAN'), { recursive: true });
    writeFileSync(join(root, 'DEBIAN/control'), control);
    for (const [name, content] of Object.entries(opts.extraControl ?? {})) writeFileSync(join(root, 'DEBIAN', name), content, { mode: 0o755 });
    for (const [path, content] of Object.entries(opts.files ?? { 'usr/share/doc/x/README': 'hello\n' })) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    const out = join(dir, 'out.deb');
    execFileSync('dpkg-deb', ['--root-owner-group', `-Z${opts.compression ?? 'gzip'}`, '--build', root, out], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(out));
  } finally {
    cleanup();
  }
}

export interface ArInput {
  name: string;
  data: Uint8Array | string;
  /** Raw 16-byte name field (overrides name). */
  rawName?: string;
}

/** Builds an ar archive by hand (GNU-style names with trailing '/' unless rawName is given). */
export function makeAr(members: ArInput[], opts: { pad?: boolean } = {}): Uint8Array {
  const parts: Buffer[] = [Buffer.from('!<arch>\n', 'latin1')];
  for (const m of members) {
    const data = typeof m.data === 'string' ? Buffer.from(m.data, 'utf8') : Buffer.from(m.data);
    const h =
      (m.rawName ?? m.name).padEnd(16, ' ') +
      '0'.padEnd(12, ' ') + '0'.padEnd(6, ' ') + '0'.padEnd(6, ' ') + '100644'.padEnd(8, ' ') +
      String(data.length).padEnd(10, ' ') + '`\n';
    assert.equal(h.length, 60);
    parts.push(Buffer.from(h, 'latin1'), data);
    if (data.length % 2 === 1 && opts.pad !== false) parts.push(Buffer.from('\n'));
  }
  return new Uint8Array(Buffer.concat(parts));
}

/** Asserts that `fn` rejects with a WharfError of the given code. */
export async function rejectsWith(fn: () => unknown, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(async () => fn(), (e: unknown) => {
    assert.ok(isWharfError(e), `expected WharfError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** Compares `actual` with a golden file; WHARF_UPDATE_GOLDEN=1 rewrites it. */
export function assertGolden(name: string, actual: string): void {
  const path = join(FIXTURES, name);
  if (process.env.WHARF_UPDATE_GOLDEN === '1' || !existsSync(path)) {
    if (process.env.WHARF_UPDATE_GOLDEN !== '1') assert.fail(`golden file ${path} is missing (run with WHARF_UPDATE_GOLDEN=1)`);
    writeFileSync(path, actual);
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `output differs from golden file ${name}`);
}

export function readFixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}
