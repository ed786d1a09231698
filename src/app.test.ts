// Closing in a process with nothing else to do: every worker thread the app starts (digest, import, checkpoint) must
// keep the process alive until it has stopped, or close() never settles and what follows it (closing the database)
// never happens. Each case runs in a child process whose only work is that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = (p: string) => JSON.stringify(new URL(p, import.meta.url).href);

async function runAlone(dir: string, name: string, body: string): Promise<{ code: number | null; out: string }> {
  const script = join(dir, `${name}.mts`);
  await writeFile(script, `${body}\nconsole.log('closed');\n`);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('app.close() right after RPM pushes and an import settles and closes the database (its WAL removed)', { timeout: 120_000 }, async () => {
  // (Without the import, nothing else's close holds the process while the digest workers stop.)
  for (const withImport of [false, false, true]) await closeOnce(withImport);
});

async function closeOnce(withImport: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-close-'));
  try {
    const data = join(dir, 'data');
    const root = join(dir, 'root');
    const r = await runAlone(
      dir,
      'app',
      `import { mkdir, writeFile } from 'node:fs/promises';
       import { loadConfig } from ${url('./config.ts')};
       import { createApp } from ${url('./app.ts')};
       import { createLogger } from ${url('./log.ts')};
       import { buildRpmBytes, rpmMeta } from ${url('../bench/rpmgen.ts')};
       await mkdir(${JSON.stringify(root)}, { recursive: true });
       const app = await createApp(loadConfig({ data: ${JSON.stringify(data)}, 'signing-passphrase': 'test-passphrase', fsync: 'false', 'import-roots': ${JSON.stringify(root)} }, {}), { log: createLogger('silent') });
       const r = { org: 'acme', repo: 'close' };
       await app.repos.create(r, { private: false, signPackages: false });
       for (let i = 1; i <= 12; i++) {
         const bytes = buildRpmBytes({ ...rpmMeta(i), standalone: true });
         await app.packages.push(r, 'el', '9', (async function* () { yield bytes; })());
       }
       if (${JSON.stringify(withImport)}) {
         for (let i = 13; i <= 15; i++) await writeFile(${JSON.stringify(root)} + '/' + rpmMeta(i).filename, buildRpmBytes(rpmMeta(i)));
         await app.packages.importDirectory(r, 'el', '9', { path: ${JSON.stringify(root)}, link: true });
       }
       await app.close(); // at once: the digest workers still hash ahead for the next publish`,
    );
    assert.equal(r.code, 0, `exit ${r.code}: ${r.out}`);
    assert.match(r.out, /closed/);
    assert.ok(!existsSync(join(data, 'wharf.db-wal')), 'the database was not closed (its WAL is left)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('app.close() while an asynchronous push is still being published: no unhandled rejection ends the process', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-close-'));
  try {
    const r = await runAlone(
      dir,
      'inflight',
      `import { loadConfig } from ${url('./config.ts')};
       import { createApp } from ${url('./app.ts')};
       import { createLogger } from ${url('./log.ts')};
       import { buildRpmBytes, rpmMeta } from ${url('../bench/rpmgen.ts')};
       const app = await createApp(loadConfig({ data: ${JSON.stringify(join(dir, 'data'))}, 'signing-passphrase': 'test-passphrase', fsync: 'false' }, {}), { log: createLogger('silent') });
       const r = { org: 'acme', repo: 'inflight' };
       await app.repos.create(r, { private: false, signPackages: false });
       const push = (i, wait) => app.packages.push(r, 'el', '9', (async function* () { yield buildRpmBytes({ ...rpmMeta(i), standalone: true }); })(), { wait });
       for (let i = 1; i <= 5; i++) await push(i, true);
       await push(6, false); // answered once stored: its publish runs in the background
       await app.close();`,
    );
    assert.equal(r.code, 0, `exit ${r.code}: ${r.out}`);
    assert.match(r.out, /closed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
