/**
 * Every metric Sluice registers, read from the code (a fresh Metrics, plus the spool's and the disk's), for
 * tests that keep docs and dashboards in step with it.
 */
import { DiskMetrics, Metrics, SpoolMetrics } from '@sluice/telemetry';

export interface MetricDef {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  labels: string[];
}

export async function registeredMetrics(): Promise<Map<string, MetricDef>> {
  const metrics = new Metrics('test');
  new SpoolMetrics(metrics.registry);
  new DiskMetrics(metrics.registry);
  const out = new Map<string, MetricDef>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const labels = (
      (metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ?? []
    ).filter((l) => l !== 'le');
    out.set(m.name, { name: m.name, type: String(m.type) as MetricDef['type'], labels: [...labels].sort() });
  }
  return out;
}

/** The series names a metric exposes: a histogram's _bucket, _sum and _count. */
function seriesOf(def: MetricDef): string[] {
  return def.type === 'histogram' ? [`${def.name}_bucket`, `${def.name}_sum`, `${def.name}_count`] : [def.name];
}

/** Series name → its metric. */
export function seriesIndex(defs: Map<string, MetricDef>): Map<string, MetricDef> {
  const out = new Map<string, MetricDef>();
  for (const def of defs.values()) for (const s of seriesOf(def)) out.set(s, def);
  return out;
}
