/**
 * deploy/grafana/sluice.json against the code: it imports with a ${DS_PROMETHEUS} input, every
 * metric and label its queries use exists in the registry (so the dashboard cannot drift from
 * the code), and it covers what an operator watches.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { registeredMetrics, seriesIndex, type MetricDef } from '../helpers/metric-names.ts';

interface Target {
  expr: string;
  refId: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  __inputs: { name: string; type: string; pluginId: string }[];
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; datasource: { uid: string }; query: { query: string } | string }[] };
}

const DASH = JSON.parse(
  readFileSync(new URL('../../deploy/grafana/sluice.json', import.meta.url), 'utf8'),
) as Dashboard;
/** Labels Prometheus adds when it scrapes, and the histogram bucket label. */
const TARGET_LABELS = new Set([
  'instance',
  'job',
  'pod',
  'namespace',
  'node',
  'container',
  'service',
  'endpoint',
  'le',
]);

const queries = (): { where: string; expr: string }[] => [
  ...DASH.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })),
  ),
  ...DASH.templating.list.map((v) => ({
    where: `variable ${v.name}`,
    expr: typeof v.query === 'string' ? v.query : v.query.query,
  })),
];
const metricNames = (expr: string): string[] => [...expr.matchAll(/\bsluice_[a-z0-9_]+\b/g)].map((m) => m[0]);

describe('deploy/grafana/sluice.json', () => {
  it('imports with a Prometheus datasource input used by every panel, query and variable', () => {
    expect(DASH.__inputs).toEqual([
      expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }),
    ]);
    expect(DASH.uid).toBe('sluice-overview');
    for (const p of DASH.panels.filter((p) => p.type !== 'row')) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!)
        expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
    }
    for (const v of DASH.templating.list) expect(v.datasource.uid).toBe('${DS_PROMETHEUS}');
    const ids = DASH.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of DASH.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });

  it('every metric its queries use is registered, histograms are read through _bucket, and grouping labels exist', async () => {
    const series = seriesIndex(await registeredMetrics());
    for (const { where, expr } of queries()) {
      const names = metricNames(expr);
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
      let depth = 0;
      for (const c of expr) {
        depth += c === '(' ? 1 : c === ')' ? -1 : 0;
        expect(depth, `${where}: unbalanced parentheses in ${expr}`).toBeGreaterThanOrEqual(0);
      }
      expect(depth, `${where}: unbalanced parentheses in ${expr}`).toBe(0);
      const defs: MetricDef[] = [];
      for (const name of names) {
        const def = series.get(name);
        expect(def, `${where}: ${name} is not a registered metric`).toBeDefined();
        defs.push(def!);
        if (def!.type === 'histogram')
          expect(name, `${where}: read ${def!.name} through _bucket`).toBe(`${def!.name}_bucket`);
      }
      const known = new Set([...TARGET_LABELS, ...defs.flatMap((d) => d.labels)]);
      // Labels in `by (...)`, `on (...)`, selectors `{label=...}` and label_values(..., label).
      const used = [
        ...[...expr.matchAll(/\b(?:by|on|without|ignoring)\s*\(([^)]*)\)/g)].flatMap((m) =>
          m[1]!
            .split(',')
            .map((l) => l.trim())
            .filter((l) => l !== ''),
        ),
        ...[...expr.matchAll(/[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!),
        ...[...expr.matchAll(/label_values\([^,]+,\s*([a-z_]+)\)/g)].map((m) => m[1]!),
      ];
      for (const label of used)
        expect(known.has(label), `${where}: label ${label} is on none of ${names.join(', ')}`).toBe(true);
    }
  });

  it('covers ingest, drops, fill, workers, uploads, errors and the process', () => {
    const used = new Set(queries().flatMap((q) => metricNames(q.expr)));
    for (const name of [
      'sluice_source_received_events_total',
      'sluice_source_discarded_events_total',
      'sluice_sink_discarded_events_total',
      'sluice_source_kernel_dropped_datagrams_total',
      'sluice_ring_used_bytes',
      'sluice_sink_buffered_bytes',
      'sluice_worker_utilization_ratio',
      'sluice_worker_queue_depth',
      'sluice_worker_batch_duration_seconds_bucket',
      'sluice_sink_sent_events_total',
      'sluice_sink_parts_uploaded_total',
      'sluice_sink_upload_duration_seconds_bucket',
      'sluice_sink_failures_total',
      'sluice_sink_retries_total',
      'sluice_sink_last_object_timestamp_seconds',
      'sluice_process_resident_memory_bytes',
      'sluice_process_cpu_seconds_total',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });
});
