/**
 * Rendering deploy/kubernetes: `kubectl kustomize` where kubectl is installed, and otherwise a
 * small renderer of the kustomize subset these manifests use, so the manifests are rendered
 * and validated on every machine. Where kubectl exists, manifests.test.ts also checks that
 * this renderer gives the same objects as kubectl, which keeps it honest.
 *
 * The subset (anything else throws, naming the field, so a new feature cannot slip through
 * unrendered):
 * - Kustomization / Component: `resources` (files and directories), `components`,
 *   `namespace`, `configMapGenerator` (files, literals; behavior create | merge | replace),
 *   `patches` (inline RFC 6902 lists with a `target`, and strategic-merge `$patch: delete`).
 * - Order as kustomize's KustTarget: resources, generators, components, then transformers
 *   (patches before namespace); at the top level only, generated ConfigMaps get their content
 *   hash suffix (kustomize's hasher) and references to them are rewritten, only where the
 *   referrer is in the ConfigMap's namespace (as kustomize's nameref does).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
};

interface Resource {
  obj: K8sObject;
  /** Name before the hash suffix; set for generated ConfigMaps. */
  generatedName?: string;
}

const KUSTOMIZATION_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'components',
  'namespace',
  'configMapGenerator',
  'patches',
]);
const GENERATOR_FIELDS = new Set(['name', 'files', 'literals', 'behavior']);
/** Kinds without a namespace that these manifests can contain. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PriorityClass',
]);

/** kubectl on PATH, or null. SLUICE_TEST_NO_KUBECTL=1 pretends it is missing (to exercise that path). */
export function kubectlPath(): string | null {
  if (process.env['SLUICE_TEST_NO_KUBECTL'] === '1') return null;
  const r = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : null;
}

/** `kubectl kustomize DIR`, parsed. */
export function kubectlKustomize(dir: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseDocs(out, `kubectl kustomize ${dir}`);
}

/** Render a kustomization directory with the renderer below. */
export function renderKustomization(dir: string): K8sObject[] {
  const resources = accumulate(resolve(dir), [], false);
  addHashSuffixes(resources);
  fixConfigMapReferences(resources);
  return resources.map((r) => r.obj);
}

function parseDocs(text: string, where: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors[0]!.message}`);
    const v = doc.toJS() as K8sObject | null;
    if (v !== null) out.push(v);
  }
  return out;
}

function readKustomization(dir: string): Record<string, unknown> {
  const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization']
    .map((f) => join(dir, f))
    .find((f) => existsSync(f));
  if (file === undefined) throw new Error(`${dir}: no kustomization.yaml`);
  const k = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const key of Object.keys(k))
    if (!KUSTOMIZATION_FIELDS.has(key)) throw new Error(`${file}: the test renderer does not support \`${key}\``);
  return k;
}

function accumulate(dir: string, into: Resource[], isComponent: boolean): Resource[] {
  const k = readKustomization(dir);
  const kind = (k['kind'] as string | undefined) ?? 'Kustomization';
  if (isComponent !== (kind === 'Component'))
    throw new Error(`${dir}: expected a ${isComponent ? 'Component' : 'Kustomization'}, found ${kind}`);
  const resources = isComponent ? into : [...into];
  for (const entry of (k['resources'] as string[] | undefined) ?? []) {
    const path = resolve(dir, entry);
    if (statSync(path).isDirectory()) resources.push(...accumulate(path, [], false));
    else for (const obj of parseDocs(readFileSync(path, 'utf8'), path)) resources.push({ obj });
  }
  for (const gen of (k['configMapGenerator'] as Record<string, unknown>[] | undefined) ?? [])
    generateConfigMap(dir, gen, resources);
  for (const entry of (k['components'] as string[] | undefined) ?? []) accumulate(resolve(dir, entry), resources, true);
  for (const patch of (k['patches'] as Record<string, unknown>[] | undefined) ?? []) applyPatch(patch, resources, dir);
  const namespace = k['namespace'] as string | undefined;
  if (namespace !== undefined) {
    for (const r of resources) if (!CLUSTER_SCOPED.has(r.obj.kind)) r.obj.metadata.namespace = namespace;
  }
  return resources;
}

function generateConfigMap(dir: string, gen: Record<string, unknown>, resources: Resource[]): void {
  for (const key of Object.keys(gen))
    if (!GENERATOR_FIELDS.has(key))
      throw new Error(`${dir}: configMapGenerator.${key} is not supported by the test renderer`);
  const name = gen['name'] as string;
  const data: Record<string, string> = {};
  for (const f of (gen['files'] as string[] | undefined) ?? []) {
    const eq = f.indexOf('=');
    const [key, path] = eq >= 0 ? [f.slice(0, eq), f.slice(eq + 1)] : [basename(f), f];
    data[key] = readFileSync(resolve(dir, path), 'utf8');
  }
  for (const l of (gen['literals'] as string[] | undefined) ?? []) {
    const eq = l.indexOf('=');
    data[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const behavior = (gen['behavior'] as string | undefined) ?? 'create';
  const existing = resources.find((r) => r.generatedName === name);
  if (behavior === 'create') {
    if (existing !== undefined) throw new Error(`${dir}: ConfigMap ${name} is generated twice`);
    resources.push({ obj: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data }, generatedName: name });
    return;
  }
  if (existing === undefined)
    throw new Error(`${dir}: configMapGenerator ${name} has behavior ${behavior} but no base generates it`);
  if (behavior === 'merge') existing.obj['data'] = { ...(existing.obj['data'] as Record<string, string>), ...data };
  else if (behavior === 'replace') existing.obj['data'] = data;
  else throw new Error(`${dir}: configMapGenerator behavior ${behavior} is not supported`);
}

function applyPatch(patch: Record<string, unknown>, resources: Resource[], dir: string): void {
  for (const key of Object.keys(patch))
    if (key !== 'patch' && key !== 'target')
      throw new Error(`${dir}: patches[].${key} is not supported by the test renderer`);
  const body = parseYaml(patch['patch'] as string) as unknown;
  if (Array.isArray(body)) {
    const target = patch['target'] as Record<string, string> | undefined;
    if (target === undefined) throw new Error(`${dir}: a JSON 6902 patch needs a target`);
    for (const key of Object.keys(target))
      if (key !== 'kind' && key !== 'name')
        throw new Error(`${dir}: patch target.${key} is not supported by the test renderer`);
    const matches = resources.filter(
      (r) => r.obj.kind === target['kind'] && (target['name'] === undefined || r.obj.metadata.name === target['name']),
    );
    if (matches.length === 0) throw new Error(`${dir}: patch target ${JSON.stringify(target)} matches nothing`);
    for (const r of matches) for (const op of body as Record<string, unknown>[]) applyJsonPatchOp(r.obj, op);
    return;
  }
  const smp = body as Record<string, unknown> & K8sObject;
  if (
    smp['$patch'] !== 'delete' ||
    Object.keys(smp).some((k) => !['apiVersion', 'kind', 'metadata', '$patch'].includes(k))
  ) {
    throw new Error(`${dir}: the test renderer supports strategic-merge patches of the form \`$patch: delete\` only`);
  }
  const i = resources.findIndex((r) => r.obj.kind === smp.kind && r.obj.metadata.name === smp.metadata.name);
  if (i < 0) throw new Error(`${dir}: $patch: delete of ${smp.kind}/${smp.metadata.name} matches nothing`);
  resources.splice(i, 1);
}

/** One RFC 6902 operation (add, remove, replace, test) on obj, in place. */
function applyJsonPatchOp(obj: unknown, op: Record<string, unknown>): void {
  const path = (op['path'] as string)
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = path.pop();
  if (last === undefined) throw new Error('a patch of the whole document is not supported');
  let parent = obj as Record<string, unknown> | unknown[];
  for (const seg of path) {
    const next = Array.isArray(parent) ? parent[Number(seg)] : parent[seg];
    if (typeof next !== 'object' || next === null)
      throw new Error(`patch path ${String(op['path'])}: ${seg} does not exist`);
    parent = next as Record<string, unknown> | unknown[];
  }
  const kind = op['op'];
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length)
      throw new Error(`patch path ${String(op['path'])}: bad index`);
    if (kind === 'add') parent.splice(index, 0, op['value']);
    else if (kind === 'remove' || kind === 'replace') {
      if (index >= parent.length) throw new Error(`patch path ${String(op['path'])}: no such element`);
      if (kind === 'remove') parent.splice(index, 1);
      else parent[index] = op['value'];
    } else if (kind === 'test') {
      if (JSON.stringify(parent[index]) !== JSON.stringify(op['value']))
        throw new Error(`patch test failed at ${String(op['path'])}`);
    } else throw new Error(`patch op ${String(kind)} is not supported`);
    return;
  }
  if (kind === 'add') parent[last] = op['value'];
  else if (kind === 'remove' || kind === 'replace') {
    if (!(last in parent)) throw new Error(`patch path ${String(op['path'])}: ${last} does not exist`);
    if (kind === 'remove') delete parent[last];
    else parent[last] = op['value'];
  } else if (kind === 'test') {
    if (JSON.stringify(parent[last]) !== JSON.stringify(op['value']))
      throw new Error(`patch test failed at ${String(op['path'])}`);
  } else throw new Error(`patch op ${String(kind)} is not supported`);
}

/**
 * kustomize's ConfigMap name hash (api/hasher): sha256 of Go's json.Marshal of
 * {data, kind, name} (keys sorted; <, > and & escaped), first 10 hex digits with 0 1 3 a e
 * replaced by g h k m t. The name hashed is empty: that is what kustomize 5.5 (kubectl 1.32)
 * produces, checked against `kubectl kustomize` in manifests.test.ts.
 */
function configMapHash(data: Record<string, string>): string {
  const sorted = Object.fromEntries(
    Object.keys(data)
      .sort()
      .map((k) => [k, data[k]]),
  );
  const json = JSON.stringify({ data: sorted, kind: 'ConfigMap', name: '' })
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  const hex = createHash('sha256').update(json).digest('hex').slice(0, 10);
  return hex.replace(/[013ae]/g, (c) => ({ '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' })[c]!);
}

function addHashSuffixes(resources: Resource[]): void {
  for (const r of resources) {
    if (r.generatedName === undefined) continue;
    r.obj.metadata.name = `${r.generatedName}-${configMapHash(r.obj['data'] as Record<string, string>)}`;
  }
}

/** Where a pod template names a ConfigMap (kustomize's namereference config for ConfigMap, the parts used here). */
function fixConfigMapReferences(resources: Resource[]): void {
  const generated = resources.filter((r) => r.generatedName !== undefined);
  const rename = (name: string, namespace: string | undefined): string =>
    generated.find((g) => g.generatedName === name && g.obj.metadata.namespace === namespace)?.obj.metadata.name ??
    name;
  for (const r of resources) {
    const spec = podSpecOf(r.obj);
    if (spec === undefined) continue;
    const ns = r.obj.metadata.namespace;
    for (const v of (spec['volumes'] as Record<string, Record<string, string>>[] | undefined) ?? []) {
      if (v['configMap'] !== undefined) v['configMap']['name'] = rename(v['configMap']['name']!, ns);
    }
    const containers = [
      ...((spec['containers'] as Record<string, unknown>[] | undefined) ?? []),
      ...((spec['initContainers'] as Record<string, unknown>[] | undefined) ?? []),
    ];
    for (const c of containers) {
      for (const e of (c['envFrom'] as Record<string, Record<string, string>>[] | undefined) ?? []) {
        if (e['configMapRef'] !== undefined) e['configMapRef']['name'] = rename(e['configMapRef']['name']!, ns);
      }
      for (const e of (c['env'] as { valueFrom?: { configMapKeyRef?: { name: string } } }[] | undefined) ?? []) {
        const ref = e.valueFrom?.configMapKeyRef;
        if (ref !== undefined) ref.name = rename(ref.name, ns);
      }
    }
  }
}

/** The pod spec of a workload, or undefined. */
export function podSpecOf(obj: K8sObject): Record<string, unknown> | undefined {
  if (obj.kind === 'Pod') return obj['spec'] as Record<string, unknown>;
  const spec = obj['spec'] as { template?: { spec?: Record<string, unknown> } } | undefined;
  return spec?.template?.spec;
}
