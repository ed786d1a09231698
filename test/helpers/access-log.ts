// The server's access lines (JSON, "msg":"request"), and the check that private package files went through Wharf's
// 302 and were then fetched from the signed URL. Shared by the end-to-end tests of private repositories.
import assert from 'node:assert/strict';
import type { WharfInstance } from './wharf.ts';

export interface AccessLine {
  method: string;
  path: string;
  status: number;
}

/** Every access line the server printed so far. */
export function requestLog(w: WharfInstance): AccessLine[] {
  return w
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l));
}

/**
 * Asserts that at least two files under `prefix` ending in `ext`, requested since line `since`, answered 302 and were
 * then downloaded (200) from the signed URL, and that no signed download was refused. Access lines are written
 * asynchronously after each response, so it first waits (at most 5 s, for a loaded machine) for the downloads' lines.
 */
export async function assertSignedDownloads(w: WharfInstance, prefix: string, ext: string, since: number): Promise<void> {
  const lines = () =>
    requestLog(w)
      .slice(since)
      .filter((l) => l.path.startsWith(prefix) && l.path.endsWith(ext));
  for (let i = 0; i < 100 && lines().filter((l) => l.status === 200).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  const files = lines();
  assert.ok(files.filter((l) => l.status === 302).length >= 2, `no 302 for the ${ext} files in the log: ${JSON.stringify(files)}`);
  assert.ok(files.filter((l) => l.status === 200).length >= 2, `no signed ${ext} downloads in the log: ${JSON.stringify(files)}`);
  // (libcurl in zypper first asks without credentials and answers the 401 challenge: a 401 is normal here.)
  assert.ok(!files.some((l) => l.status === 403), `a signed ${ext} download was refused: ${JSON.stringify(files)}`);
}
