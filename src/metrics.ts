// Prometheus metrics in the text exposition format. Labels are low-cardinality by construction (route classes, not
// paths), so no repository or package name ever appears in a metric.

type Labels = Record<string, string>;

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function key(labels: Labels): string {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',');
}

class Counter {
  readonly values = new Map<string, number>();
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  inc(labels?: Labels, by = 1): void {
    this.incKey(labels ? key(labels) : '', by);
  }
  /** inc() with the label key already rendered by key() (Metrics.request keeps the keys it has rendered). */
  incKey(k: string, by = 1): void {
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`);
    return lines.join('\n');
  }
}

interface HistogramSeries {
  counts: number[];
  sum: number;
  count: number;
}

function observeInto(s: HistogramSeries, seconds: number): void {
  for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) s.counts[i]!++;
  s.sum += seconds;
  s.count++;
}

class Histogram {
  readonly series = new Map<string, HistogramSeries>();
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  observe(labels: Labels, seconds: number): void {
    observeInto(this.seriesOf(key(labels)), seconds);
  }
  /** The series for a rendered label key, created empty when new. */
  seriesOf(k: string): HistogramSeries {
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
    return s;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : '';
      BUCKETS.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`, `${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`, `${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines.join('\n');
  }
}

export class Metrics {
  readonly requests = new Counter('wharf_http_requests_total', 'HTTP requests by route class, method and status');
  readonly requestDuration = new Histogram('wharf_http_request_duration_seconds', 'HTTP request latency by route class');
  readonly publishDuration = new Histogram('wharf_publish_duration_seconds', 'Time to publish one metadata generation, by format');
  readonly authFailures = new Counter('wharf_auth_failures_total', 'Requests with credentials that did not authenticate');
  readonly redirects = new Counter('wharf_signed_url_redirects_total', 'Private package downloads redirected to a signed URL');

  /** Per route class: its histogram series and its request counter keys by method and status, rendered once. */
  readonly #perRoute = new Map<string, { duration: HistogramSeries; keys: Map<string, Map<number, string>> }>();

  /** One finished HTTP request: wharf_http_requests_total and wharf_http_request_duration_seconds. */
  request(route: string, method: string, status: number, seconds: number): void {
    let r = this.#perRoute.get(route);
    if (!r) this.#perRoute.set(route, (r = { duration: this.requestDuration.seriesOf(key({ route })), keys: new Map() }));
    let byStatus = r.keys.get(method);
    if (!byStatus) r.keys.set(method, (byStatus = new Map()));
    let k = byStatus.get(status);
    if (k === undefined) byStatus.set(status, (k = key({ route, method, status: String(status) })));
    this.requests.incKey(k);
    observeInto(r.duration, seconds);
  }

  render(): string {
    return [this.requests, this.requestDuration, this.publishDuration, this.authFailures, this.redirects].map((m) => m.render()).join('\n') + '\n';
  }
}

/** A route class for labels: never the path itself. */
export function routeClass(path: string): string {
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return path.slice(1);
  if (path.startsWith('/api/')) return 'api';
  if (path.endsWith('.deb') || path.endsWith('.rpm')) return 'package';
  if (path.includes('/by-hash/') || (path.includes('/repodata/') && /\/repodata\/[0-9a-f]{64}-/.test(path))) return 'metadata-immutable';
  return 'metadata';
}
