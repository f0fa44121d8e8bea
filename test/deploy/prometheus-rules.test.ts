/**
 * deploy/prometheus/rules.yaml: `promtool check rules` passes, its unit tests
 * (deploy/prometheus/*test*.yaml) pass under `promtool test rules`, every alert fires in one of
 * them, every metric and label its expressions use exists in the registry, every alert links
 * its section of docs/alerts.md, and the PrometheusRule of components/prometheusrule carries
 * exactly its groups (written by scripts/prometheusrule.ts) and validates as a PrometheusRule.
 * promtool comes from Debian's prometheus package (scripts/ensure-prometheus.sh installs it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { PROMETHEUS_RULE, prometheusRuleYaml, RULES } from '../../scripts/prometheusrule.ts';
import { registeredMetrics, seriesIndex } from '../helpers/metric-names.ts';
import { prometheusBinaries } from '../helpers/prometheus.ts';
import { schemaProblems, unknownFields } from './k8s-schema.ts';
import { renderKustomization } from './kustomize.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const DIR = join(ROOT, 'deploy/prometheus');
const K8S = join(ROOT, 'deploy/kubernetes');
const RULES_TEXT = readFileSync(RULES, 'utf8');

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}
const GROUPS = (parseYaml(RULES_TEXT) as { groups: Group[] }).groups;
const RULE_LIST = GROUPS.flatMap((g) => g.rules);
const TEST_FILES = readdirSync(DIR)
  .filter((f) => /test.*\.ya?ml$/.test(f))
  .map((f) => join(DIR, f));
/** Labels Prometheus adds when it scrapes. */
const TARGET_LABELS = new Set(['instance', 'job']);

let promtool = '';
beforeAll(() => {
  promtool = prometheusBinaries().promtool;
}, 600_000);

function run(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(promtool, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('deploy/prometheus/rules.yaml', () => {
  it('passes promtool check rules', () => {
    const r = run(['check', 'rules', RULES]);
    expect(r, r.output).toMatchObject({ status: 0 });
    expect(r.output).toContain(`SUCCESS: ${RULE_LIST.length} rules found`);
  });

  it('passes its unit tests (promtool test rules), and each alert fires in one of them', () => {
    expect(TEST_FILES.length).toBeGreaterThan(0);
    for (const file of TEST_FILES) {
      const r = run(['test', 'rules', file]);
      expect(r, r.output).toMatchObject({ status: 0 });
      expect(r.output).toContain('SUCCESS');
    }
    const fired = new Set<string>();
    for (const file of TEST_FILES) {
      const t = parseYaml(readFileSync(file, 'utf8')) as {
        rule_files: string[];
        tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
      };
      expect(t.rule_files).toEqual(['rules.yaml']);
      for (const test of t.tests)
        for (const a of test.alert_rule_test ?? []) if ((a.exp_alerts ?? []).length > 0) fired.add(a.alertname);
    }
    const alerts = RULE_LIST.flatMap((r) => (r.alert === undefined ? [] : [r.alert]));
    expect(
      alerts.filter((a) => !fired.has(a)),
      'alerts no unit test sees firing',
    ).toEqual([]);
  });

  it('uses only registered metrics (or its own recorded series) and their labels', async () => {
    const series = seriesIndex(await registeredMetrics());
    const recorded = new Map<string, Set<string>>();
    for (const rule of RULE_LIST) {
      const names = [...rule.expr.matchAll(/\b[a-z_]*:?sluice_[a-z0-9_:]+\b/g)].map((m) => m[0]);
      expect(names.length, rule.expr).toBeGreaterThan(0);
      const labels = new Set(TARGET_LABELS);
      for (const name of names) {
        if (name.includes(':')) {
          expect(recorded.has(name), `${name} is used before it is recorded (or never is)`).toBe(true);
          for (const l of recorded.get(name)!) labels.add(l);
          continue;
        }
        const def = series.get(name);
        expect(def, `${rule.alert ?? rule.record}: ${name} is not a registered metric`).toBeDefined();
        for (const l of def!.labels) labels.add(l);
      }
      const used = [
        ...[...rule.expr.matchAll(/\b(?:by|on|without|ignoring)\s*\(([^)]*)\)/g)].flatMap((m) =>
          m[1]!
            .split(',')
            .map((l) => l.trim())
            .filter((l) => l !== ''),
        ),
        ...[...rule.expr.matchAll(/[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!),
      ];
      for (const label of used)
        expect(
          labels.has(label),
          `${rule.alert ?? rule.record}: label ${label} is on none of ${names.join(', ')}`,
        ).toBe(true);
      if (rule.record !== undefined) {
        const by = /^\s*\w+ by \(([^)]*)\)/.exec(rule.expr);
        expect(by, `${rule.record}: aggregates by named labels`).not.toBeNull();
        recorded.set(rule.record, new Set(by![1]!.split(',').map((l) => l.trim())));
      }
    }
  });

  it('every alert has a severity, a summary and a description linking its section of docs/alerts.md', () => {
    const doc = readFileSync(join(ROOT, 'docs/alerts.md'), 'utf8');
    const anchors = new Set(
      [...doc.matchAll(/^#+ (.+)$/gm)].map((m) =>
        m[1]!
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    for (const rule of RULE_LIST.filter((r) => r.alert !== undefined)) {
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.['severity']);
      expect(rule.annotations?.['summary'], rule.alert).toMatch(/\{\{ \$labels\.instance \}\}/);
      const link = /docs\/alerts\.md#([a-z0-9-]+)/.exec(rule.annotations?.['description'] ?? '');
      expect(link?.[1], `${rule.alert}: description links docs/alerts.md#${rule.alert!.toLowerCase()}`).toBe(
        rule.alert!.toLowerCase(),
      );
      expect(anchors.has(link![1]!), `docs/alerts.md has no section ${rule.alert}`).toBe(true);
    }
  });
});

describe('components/prometheusrule', () => {
  it('is what scripts/prometheusrule.ts writes from rules.yaml (run `node scripts/prometheusrule.ts` after editing the rules)', () => {
    expect(readFileSync(PROMETHEUS_RULE, 'utf8')).toBe(prometheusRuleYaml(RULES_TEXT));
  });

  it('renders with an overlay into one valid PrometheusRule whose groups are those of rules.yaml', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-kustomize-'));
    const components = ['components/servicemonitor', 'components/prometheusrule'].map((c) =>
      relative(dir, join(K8S, c)),
    );
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `resources: [${relative(dir, join(K8S, 'overlays/daemonset-hostnetwork'))}]\ncomponents: [${components.join(', ')}]\n`,
    );
    const objs = renderKustomization(dir);
    const rules = objs.filter((o) => o.kind === 'PrometheusRule');
    expect(rules).toHaveLength(1);
    const pr = rules[0]!;
    expect(pr.metadata).toMatchObject({ name: 'sluice', namespace: 'sluice' });
    expect((pr['spec'] as { groups: Group[] }).groups).toEqual(GROUPS);
    expect(await schemaProblems(pr)).toEqual([]);
    expect(unknownFields(pr)).toEqual([]);
    // The same groups pass promtool as a rules file of their own, as the operator hands them to Prometheus.
    const file = join(dir, 'groups.yaml');
    writeFileSync(file, JSON.stringify({ groups: (pr['spec'] as { groups: Group[] }).groups }));
    const r = run(['check', 'rules', file]);
    expect(r, r.output).toMatchObject({ status: 0 });
  });

  it('the base and overlays alone contain no PrometheusRule', () => {
    for (const overlay of ['base', 'overlays/daemonset-hostnetwork', 'overlays/aggregator']) {
      expect(renderKustomization(join(K8S, overlay)).map((o) => o.kind)).not.toContain('PrometheusRule');
    }
  });
});
