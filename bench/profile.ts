// Summarises a V8 .cpuprofile (from node --cpu-prof): self time per function and inclusive time of selected frames.
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface ProfileSummary {
  totalSeconds: number;
  self: { fn: string; seconds: number; pct: number }[];
  inclusive: { fn: string; seconds: number; pct: number }[];
  /** self time by source file (src/..., node_modules/<package>, node:<internal>, or the VM's own entries) */
  byFile: { fn: string; seconds: number; pct: number }[];
  /** sampled time spent idle (the "(idle)" node): totalSeconds minus this is CPU time */
  idleSeconds: number;
}

function label(n: Node): string {
  const url = n.callFrame.url.replace(/^file:\/\/.*?\/(src|node_modules)\//, '$1/');
  return `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
}

function fileOf(n: Node): string {
  const url = n.callFrame.url;
  if (!url) return n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : '(native)';
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m) return `node_modules/${m[1]}`;
  return url.replace(/^file:\/\/.*?\/src\//, 'src/');
}

/**
 * `window` (microseconds on the profile's clock, CLOCK_MONOTONIC: process.hrtime.bigint() / 1000n in any process on
 * the machine) keeps only the samples taken inside it.
 */
export function summariseProfile(
  path: string,
  top = 25,
  inclusiveFilter: (label: string) => boolean = (k) => k.includes('src/'),
  window?: { fromUs: number; toUs: number },
): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const selfByFn = new Map<string, number>();
  const selfByFile = new Map<string, number>();
  let idleUs = 0;
  const inclByFn = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    selfByFn.set(label(n), (selfByFn.get(label(n)) ?? 0) + us);
    if (n.callFrame.functionName === '(idle)') idleUs += us;
    const file = fileOf(n);
    selfByFile.set(file, (selfByFile.get(file) ?? 0) + us);
    // inclusive: count each distinct function once per stack
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      inclByFn.set(l, (inclByFn.get(l) ?? 0) + us);
    }
  }
  const rank = (m: Map<string, number>, filter: (k: string) => boolean) =>
    [...m]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ fn, seconds: us / 1e6, pct: (100 * us) / total }));
  return {
    totalSeconds: total / 1e6,
    self: rank(selfByFn, () => true),
    inclusive: rank(inclByFn, inclusiveFilter),
    byFile: rank(selfByFile, () => true),
    idleSeconds: idleUs / 1e6,
  };
}
