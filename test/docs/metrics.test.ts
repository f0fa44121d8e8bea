/**
 * docs/metrics.md against the registry: every metric Sluice registers is in its tables with
 * its type and labels, every table row is a registered metric, every sluice_* name the
 * page mentions (PromQL included) exists, and the spool's drop reasons are the code's.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { registeredMetrics, seriesIndex } from '../helpers/metric-names.ts';
import { Metrics, SPOOL_DROP_REASONS, SpoolMetrics } from '@sluice/telemetry';

const DOC = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');

/** `| \`name\` | type | \`label\`, \`label\` | meaning |` rows of the metric tables. */
function documented(): Map<string, { type: string; labels: string[] }> {
  const out = new Map<string, { type: string; labels: string[] }>();
  for (const m of DOC.matchAll(/^\| `(sluice_[a-z0-9_]+)` \| (counter|gauge|histogram|summary) \|([^|]*)\|/gm)) {
    expect(out.has(m[1]!), `${m[1]} documented twice`).toBe(false);
    out.set(m[1]!, { type: m[2]!, labels: [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!).sort() });
  }
  return out;
}

describe('docs/metrics.md', () => {
  it('documents every registered metric, with its type and labels, and nothing else', async () => {
    const registered = await registeredMetrics();
    const docs = documented();
    expect(
      [...registered.keys()].filter((n) => !docs.has(n)),
      'registered but not in docs/metrics.md',
    ).toEqual([]);
    expect(
      [...docs.keys()].filter((n) => !registered.has(n)),
      'in docs/metrics.md but not registered',
    ).toEqual([]);
    for (const [name, def] of registered) {
      expect(docs.get(name), name).toEqual({ type: def.type, labels: def.labels });
    }
  });

  it('every sluice_* name it mentions, in prose and PromQL, is a registered metric or one of its series', async () => {
    const registered = await registeredMetrics();
    const series = seriesIndex(registered);
    // Prefixes (`sluice_process_*`) end with an underscore; the rest must be real names.
    const names = new Set([...DOC.matchAll(/\bsluice_[a-z0-9_]*[a-z0-9]\b/g)].map((m) => m[0]));
    expect([...names].filter((n) => !series.has(n) && !registered.has(n))).toEqual([]);
  });

  it('names every reason the spool counts records by, and its help text names those and no other', async () => {
    const metrics = new Metrics('test');
    new SpoolMetrics(metrics.registry);
    const name = 'sluice_spool_dropped_events_total';
    const help = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)?.help ?? '';
    expect(/by reason \(([^)]*)\)/.exec(help)?.[1]?.split(', ')).toEqual([...SPOOL_DROP_REASONS]);
    const row = DOC.split('\n').find((l) => l.startsWith(`| \`${name}\` |`)) ?? '';
    for (const reason of SPOOL_DROP_REASONS) expect(row, reason).toContain(`\`${reason}\``);
  });
});
