// scratch: times an HTTP import (no CLI) and profiles the server
import { startWharf, createRepo, cliImport } from './wharf.ts';
import { cpuSeconds } from './util.ts';
import { readdirSync, rmSync, mkdirSync } from 'node:fs';
const pool = '/tmp/wharf-bench-rpm-10000/pool';
const prof = process.argv.includes('--prof');
const profDir = '/tmp/x/prof';
rmSync(profDir, { recursive: true, force: true });
mkdirSync(profDir, { recursive: true });
const runs = Number(process.env.RUNS ?? 3);
for (let k = 0; k < runs; k++) {
  const s = await startWharf(`/tmp/x/data-${k}`, { env: { WHARF_IMPORT_ROOTS: '/tmp/wharf-bench-rpm-10000' }, extraNodeArgs: prof && k === 0 ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [] });
  const target = { org: 'bench', repo: 'rpm', os: 'el', dist: '9' };
  await createRepo(s, target, ['--no-package-signing']);
  await new Promise((r) => setTimeout(r, 300));
  const c0 = cpuSeconds(s.pid);
  const t0 = performance.now();
  if (process.argv.includes('--cli')) {
    await cliImport(s, pool, true, target);
  } else {
    const r = await fetch(`${s.url}/api/v1/repos/bench/rpm/distributions/el/9/import`, { method: 'POST', headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ path: pool, link: true }) });
    const body = await r.text();
    if (r.status >= 300) throw new Error(body.slice(0, 500));
  }
  const wall = (performance.now() - t0) / 1000;
  console.log(`run ${k}: wall ${wall.toFixed(3)} s, server CPU ${(cpuSeconds(s.pid) - c0).toFixed(2)} s`);
  await s.stop();
}
if (prof) console.log(readdirSync(profDir));
