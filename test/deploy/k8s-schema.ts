/**
 * Kubernetes schema checks for rendered manifests, two ways:
 *
 * 1. `kubernetes-models` (and `@kubernetes-models/prometheus-operator` for ServiceMonitor and PrometheusRule):
 *    each object is constructed as its model and `validate()`d against the OpenAPI schema
 *    compiled into the package (types, required fields, formats, enums).
 * 2. Unknown fields. Those compiled schemas accept any extra key (`hostNetwerk: true` passes),
 *    while the API server's strict field validation (the default of `kubectl apply` since 1.27)
 *    rejects it. So every key of every object is looked up in the model's TypeScript
 *    declaration with the TypeScript type checker: a key the type does not declare is an error.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import type { K8sObject } from './kustomize.ts';

/** apiVersion/kind → module and exported interface of its model. */
const MODELS: Record<string, { module: string; iface: string }> = {
  'v1/Namespace': { module: 'kubernetes-models/v1/Namespace', iface: 'INamespace' },
  'v1/ConfigMap': { module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'v1/Secret': { module: 'kubernetes-models/v1/Secret', iface: 'ISecret' },
  'v1/Service': { module: 'kubernetes-models/v1/Service', iface: 'IService' },
  'v1/ServiceAccount': { module: 'kubernetes-models/v1/ServiceAccount', iface: 'IServiceAccount' },
  'apps/v1/DaemonSet': { module: 'kubernetes-models/apps/v1/DaemonSet', iface: 'IDaemonSet' },
  'apps/v1/Deployment': { module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  'policy/v1/PodDisruptionBudget': {
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget',
    iface: 'IPodDisruptionBudget',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
    iface: 'IServiceMonitor',
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
    iface: 'IPrometheusRule',
  },
};

const keyOf = (obj: K8sObject): string => `${obj.apiVersion}/${obj.kind}`;

/** Problems of one object against its schema: [] when it is valid. */
export async function schemaProblems(obj: K8sObject): Promise<string[]> {
  const model = MODELS[keyOf(obj)];
  if (model === undefined) return [`${keyOf(obj)}: no model known to test/deploy/k8s-schema.ts`];
  const mod = (await import(model.module)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[obj.kind]!;
  try {
    new Model(structuredClone(obj)).validate();
    return [];
  } catch (err) {
    return [`${obj.kind}/${obj.metadata.name}: ${err instanceof Error ? err.message : String(err)}`];
  }
}

let checker: { tc: ts.TypeChecker; types: Map<string, ts.Type> } | undefined;

/** One TypeScript program over the model declarations, built once (~1 s). */
function modelTypes(): { tc: ts.TypeChecker; types: Map<string, ts.Type> } {
  if (checker !== undefined) return checker;
  const here = dirname(createRequire(import.meta.url).resolve('kubernetes-models/package.json'));
  const file = join(here, '..', '..', 'test', 'deploy', '__k8s_models__.ts');
  const entries = Object.entries(MODELS);
  const source = entries
    .map(([, m], i) => `import type { ${m.iface} as T${i} } from '${m.module}';\nexport type M${i} = T${i};`)
    .join('\n');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const tc = program.getTypeChecker();
  const sf = program.getSourceFile(file)!;
  const diagnostics = ts.getPreEmitDiagnostics(program, sf);
  if (diagnostics.length > 0)
    throw new Error(`model declarations: ${ts.flattenDiagnosticMessageText(diagnostics[0]!.messageText, '\n')}`);
  const types = new Map<string, ts.Type>();
  for (const stmt of sf.statements) {
    if (!ts.isTypeAliasDeclaration(stmt)) continue;
    const i = Number(stmt.name.text.slice(1));
    types.set(entries[i]![0], tc.getTypeAtLocation(stmt));
  }
  checker = { tc, types };
  return checker;
}

/** Keys of obj (at any depth) that its model's type does not declare. */
export function unknownFields(obj: K8sObject): string[] {
  const { tc, types } = modelTypes();
  const root = types.get(keyOf(obj));
  if (root === undefined) return [`${keyOf(obj)}: no model known`];
  const out: string[] = [];
  const walk = (value: unknown, type: ts.Type, path: string): void => {
    if (value === null || typeof value !== 'object') return; // scalars: the schema validator's job
    const t = tc.getNonNullableType(type);
    const members = t.isUnion() ? t.types : [t];
    if (Array.isArray(value)) {
      const arrayType = members.find((m) => tc.isArrayType(m));
      if (arrayType === undefined) return;
      const element = tc.getTypeArguments(arrayType as ts.TypeReference)[0]!;
      value.forEach((v, i) => {
        walk(v, element, `${path}[${i}]`);
      });
      return;
    }
    const objects = members.filter((m) => (m.flags & ts.TypeFlags.Object) !== 0 && !tc.isArrayType(m));
    if (objects.length === 0) return;
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      let found: ts.Type | undefined;
      for (const m of objects) {
        const prop = tc.getPropertyOfType(m, key);
        if (prop !== undefined) {
          found = tc.getTypeOfSymbol(prop);
          break;
        }
        const index = tc.getIndexTypeOfType(m, ts.IndexKind.String);
        if (index !== undefined) {
          found = index;
          break;
        }
      }
      if (found === undefined) out.push(`${obj.kind}/${obj.metadata.name}: unknown field ${path}.${key}`);
      else walk(v, found, `${path}.${key}`);
    }
  };
  walk(obj, root, '');
  return out;
}
