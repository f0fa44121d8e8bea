/**
 * Writes deploy/kubernetes/components/prometheusrule/prometheusrule.yaml from
 * deploy/prometheus/rules.yaml: the rules have one source, and the Prometheus Operator gets
 * them as a PrometheusRule whose spec.groups are that file's groups, unchanged.
 * test/deploy/prometheus-rules.test.ts fails when the two differ; run this to fix it:
 *   node scripts/prometheusrule.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

export const RULES = fileURLToPath(new URL('../deploy/prometheus/rules.yaml', import.meta.url));
export const PROMETHEUS_RULE = fileURLToPath(
  new URL('../deploy/kubernetes/components/prometheusrule/prometheusrule.yaml', import.meta.url),
);

const HEADER = `# Generated from deploy/prometheus/rules.yaml by scripts/prometheusrule.ts: edit that file,
# then run \`node scripts/prometheusrule.ts\`. What each alert means: docs/alerts.md.
`;

/** The PrometheusRule manifest for the text of a Prometheus rules file. */
export function prometheusRuleYaml(rulesText: string): string {
  const { groups } = parse(rulesText) as { groups: unknown[] };
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'sluice', namespace: 'sluice', labels: { 'app.kubernetes.io/name': 'sluice' } },
    spec: { groups },
  };
  return HEADER + stringify(rule, { lineWidth: 0 });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(PROMETHEUS_RULE, prometheusRuleYaml(readFileSync(RULES, 'utf8')));
  console.log(`wrote ${PROMETHEUS_RULE}`);
}
