/**
 * deploy/kubernetes: every variant rendered (kubectl kustomize where kubectl is installed,
 * test/deploy/kustomize.ts everywhere, and the two compared where both exist), every object
 * checked against the Kubernetes schemas (test/deploy/k8s-schema.ts), the wiring between the
 * manifests and the sluice.yaml they carry checked, `sluice validate` run on that sluice.yaml
 * with exactly the environment the pod would have, and the base's config run for real against
 * the test run's Ceph RGW.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { decompress as zstdDecompress } from '@mongodb-js/zstd';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { metricSum, scrape, startDaemon, splitAddress, tempDir } from '../helpers/daemon.ts';
import { listIndexKeys, listKeys } from '../helpers/s3.ts';
import { rgwClient } from '../s3/rgw.ts';
import { schemaProblems, unknownFields } from './k8s-schema.ts';
import { kubectlKustomize, kubectlPath, podSpecOf, renderKustomization, type K8sObject } from './kustomize.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const K8S = join(ROOT, 'deploy/kubernetes');
const CLI = join(ROOT, 'apps/sluice/src/cli.ts');
const KUBECTL = kubectlPath();

/** A kustomization in a temp dir: an overlay plus the ServiceMonitor component, as docs/deploy.md shows. */
function withServiceMonitor(overlay: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kustomize-'));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    `resources: [${relative(dir, join(K8S, overlay))}]\ncomponents: [${relative(dir, join(K8S, 'components/servicemonitor'))}]\n`,
  );
  return dir;
}

const TARGETS: {
  name: string;
  dir: string;
  workload: 'DaemonSet' | 'Deployment';
  hostNetwork: boolean;
  serviceMonitor: boolean;
}[] = [
  { name: 'base', dir: join(K8S, 'base'), workload: 'DaemonSet', hostNetwork: false, serviceMonitor: false },
  {
    name: 'overlays/daemonset-hostnetwork',
    dir: join(K8S, 'overlays/daemonset-hostnetwork'),
    workload: 'DaemonSet',
    hostNetwork: true,
    serviceMonitor: false,
  },
  {
    name: 'overlays/aggregator',
    dir: join(K8S, 'overlays/aggregator'),
    workload: 'Deployment',
    hostNetwork: false,
    serviceMonitor: false,
  },
  {
    name: 'overlays/daemonset-hostnetwork + components/servicemonitor',
    dir: withServiceMonitor('overlays/daemonset-hostnetwork'),
    workload: 'DaemonSet',
    hostNetwork: true,
    serviceMonitor: true,
  },
  {
    name: 'overlays/aggregator + components/servicemonitor',
    dir: withServiceMonitor('overlays/aggregator'),
    workload: 'Deployment',
    hostNetwork: false,
    serviceMonitor: true,
  },
];

const byKey = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const sorted = (objs: K8sObject[]): K8sObject[] => [...objs].sort((a, b) => byKey(a).localeCompare(byKey(b)));

/** The objects of a target: kubectl's where it exists, else the test renderer's. */
function render(dir: string): K8sObject[] {
  return sorted(KUBECTL !== null ? kubectlKustomize(dir) : renderKustomization(dir));
}

type Container = {
  name: string;
  args?: string[];
  ports?: { name?: string; containerPort: number; hostPort?: number; protocol?: string }[];
  env?: { name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string }[];
};

/** Values the kubelet would put in the pod's environment; Secret values are stand-ins. */
const DOWNWARD: Record<string, string> = {
  'spec.nodeName': 'talos-worker-1',
  'metadata.name': 'sluice-abcde',
  'status.podIP': '10.244.1.7',
};

function podEnv(objs: K8sObject[], c: Container, secretRefs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  const configMap = (name: string): Record<string, string> => {
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
    if (cm === undefined) throw new Error(`ConfigMap ${name} is referenced but not rendered`);
    return cm['data'] as Record<string, string>;
  };
  for (const ef of c.envFrom ?? []) {
    if (ef.configMapRef !== undefined) Object.assign(env, configMap(ef.configMapRef.name));
    else throw new Error(`envFrom ${JSON.stringify(ef)} is not expected`);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.['fieldRef'] !== undefined) env[e.name] = DOWNWARD[e.valueFrom['fieldRef']['fieldPath']!]!;
    else if (e.valueFrom?.['secretKeyRef'] !== undefined) {
      secretRefs.push(`${e.valueFrom['secretKeyRef']['name']}/${e.valueFrom['secretKeyRef']['key']}`);
      env[e.name] = `stand-in-${e.valueFrom['secretKeyRef']['key']}`;
    } else if (e.valueFrom?.['configMapKeyRef'] !== undefined) {
      const v = configMap(e.valueFrom['configMapKeyRef']['name']!)[e.valueFrom['configMapKeyRef']['key']!];
      if (v === undefined) throw new Error(`${e.name}: key missing in its ConfigMap`);
      env[e.name] = v;
    } else throw new Error(`env ${e.name}: unexpected source`);
  }
  return env;
}

function mebibytes(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (m === null) throw new Error(`quantity ${q}: write it in Mi or Gi`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

/** Everything about one rendered target that the checks below need. */
function inspect(objs: K8sObject[], workloadKind: string) {
  const workload = objs.find((o) => o.kind === workloadKind);
  if (workload === undefined) throw new Error(`no ${workloadKind} rendered`);
  const spec = podSpecOf(workload)!;
  const container = (spec['containers'] as Container[])[0]!;
  const configVolume = (spec['volumes'] as { name: string; configMap?: { name: string } }[]).find(
    (v) => v.name === container.volumeMounts!.find((m) => m.mountPath === '/etc/sluice')!.name,
  )!;
  const configMap = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === configVolume.configMap!.name)!;
  const yaml = (configMap['data'] as Record<string, string>)['sluice.yaml']!;
  const secretRefs: string[] = [];
  const env = podEnv(objs, container, secretRefs);
  const config = parseConfig(yaml, 'sluice.yaml', env);
  const template = (
    workload['spec'] as {
      template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> } };
    }
  ).template.metadata;
  return { workload, spec, container, yaml, env, config, secretRefs, template };
}

const portOf = (c: Container, name: string) => c.ports!.find((p) => p.name === name);

describe('deploy/kubernetes renders', () => {
  for (const t of TARGETS) {
    it.skipIf(KUBECTL === null)(
      `${t.name}: kubectl kustomize and test/deploy/kustomize.ts give the same objects${KUBECTL === null ? ' (NOT RUN: kubectl is not installed here; the checks below use test/deploy/kustomize.ts)' : ''}`,
      () => {
        expect(sorted(renderKustomization(t.dir))).toEqual(sorted(kubectlKustomize(t.dir)));
      },
    );
  }
});

describe('deploy/kubernetes is valid against the Kubernetes schemas', () => {
  for (const t of TARGETS) {
    it(`${t.name}: every object validates (kubernetes-models) and has no unknown field`, async () => {
      const objs = render(t.dir);
      expect(objs.length).toBeGreaterThan(0);
      const problems: string[] = [];
      for (const o of objs) problems.push(...(await schemaProblems(o)), ...unknownFields(o));
      expect(problems).toEqual([]);
      expect(objs.some((o) => o.kind === 'ServiceMonitor')).toBe(t.serviceMonitor);
    });
  }

  it('the checks catch what they claim: a typo and a wrong type are reported', async () => {
    const ds = render(join(K8S, 'base')).find((o) => o.kind === 'DaemonSet')!;
    const spec = podSpecOf(ds)!;
    spec['hostNetwerk'] = true;
    (spec['containers'] as Container[])[0]!.ports![0]!.containerPort = '5170' as unknown as number;
    expect(unknownFields(ds)).toEqual(['DaemonSet/sluice: unknown field .spec.template.spec.hostNetwerk']);
    expect((await schemaProblems(ds)).join()).toMatch(/containerPort must be integer/);
  });
});

describe('deploy/kubernetes wiring', () => {
  for (const t of TARGETS.filter((x) => !x.serviceMonitor)) {
    describe(t.name, () => {
      const objs = render(t.dir);
      const w = inspect(objs, t.workload);

      it('the ConfigMap sluice.yaml passes `sluice validate` with exactly the pod environment', () => {
        const dir = tempDir('sluice-deploy-');
        const file = join(dir, 'sluice.yaml');
        writeFileSync(file, w.yaml);
        // Only the pod's variables (and PATH): a ${VAR} the manifest does not set fails here.
        const r = spawnSync(process.execPath, [CLI, 'validate', '--config', file], {
          env: { PATH: process.env['PATH'] ?? '', ...w.env },
          encoding: 'utf8',
        });
        expect(r.stderr).toBe('');
        expect(r.stdout).toMatch(/OK \(2 sources, 1 sinks\)/);
        expect(r.status).toBe(0);
      });

      it('runs `sluice run --config /etc/sluice/sluice.yaml`, mounted from the ConfigMap', () => {
        expect(w.container.args).toEqual(['run', '--config', '/etc/sluice/sluice.yaml']);
        expect(w.config.sinks['s3']?.type).toBe('aws_s3');
      });

      it('container ports match the addresses in sluice.yaml: tcp 5170, udp 6050, HEC 8088, API 9598', () => {
        const src = w.config.sources as Record<string, { type: string; port: number; host: string }>;
        expect(portOf(w.container, 'talos-tcp')).toMatchObject({
          containerPort: src['talos_service']!.port,
          protocol: 'TCP',
        });
        expect(src['talos_service']!.type).toBe('tcp');
        expect(portOf(w.container, 'talos-udp')).toMatchObject({
          containerPort: src['talos_kernel']!.port,
          protocol: 'UDP',
        });
        expect(src['talos_kernel']!.type).toBe('udp');
        expect(portOf(w.container, 'hec')).toMatchObject({ containerPort: 8088, protocol: 'TCP' });
        const api = w.config.api as unknown as { enabled: boolean; port: number; host: string };
        expect(api.enabled).toBe(true);
        expect(portOf(w.container, 'api')).toMatchObject({ containerPort: api.port, protocol: 'TCP' });
        // The kubelet probes the pod address: the API must not be on loopback only.
        expect(api.host).toBe('0.0.0.0');
        expect(w.template.annotations).toMatchObject({
          'prometheus.io/scrape': 'true',
          'prometheus.io/port': String(api.port),
          'prometheus.io/path': '/metrics',
        });
      });

      it('liveness on /healthz, readiness on /readyz, both on the API port', () => {
        expect(w.container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'api' });
        expect(w.container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'api' });
      });

      it('terminationGracePeriodSeconds is above shutdown_timeout_secs and every sink deadline', () => {
        const grace = w.spec['terminationGracePeriodSeconds'] as number;
        expect(grace).toBeGreaterThan(w.config.shutdown_timeout_secs);
        for (const s of Object.values(w.config.sinks) as { shutdown_timeout_secs?: number }[])
          expect(grace).toBeGreaterThan(s.shutdown_timeout_secs ?? 0);
      });

      it('S3 credentials come from the Secret sluice-s3 through env, never from the ConfigMap', () => {
        expect(w.secretRefs.sort()).toEqual(['sluice-s3/access_key_id', 'sluice-s3/secret_access_key']);
        const s3 = w.config.sinks['s3'] as unknown as { access_key_id: string; secret_access_key: string };
        expect(s3.access_key_id).toBe('stand-in-access_key_id');
        expect(s3.secret_access_key).toBe('stand-in-secret_access_key');
        expect(w.yaml).toMatch(/access_key_id: \$\{S3_ACCESS_KEY_ID\}/);
        expect(w.yaml).toMatch(/secret_access_key: \$\{S3_SECRET_ACCESS_KEY\}/);
        expect(objs.some((o) => o.kind === 'Secret')).toBe(false);
      });

      it('resources: requests and a memory limit that hold the measured RSS plus rings and S3 buffers', () => {
        const res = w.container.resources!;
        expect(res.requests?.['cpu']).toBeDefined();
        // Measured (docs/deploy.md, Sizing, "Memory"): idle with an aws_s3 sink and one worker
        // thread running; each further thread under load; garbage between collections.
        const IDLE_MIB = 89;
        const THREAD_MIB = 20;
        const GARBAGE_MIB = 20;
        expect(mebibytes(res.requests!['memory']!)).toBeGreaterThanOrEqual(IDLE_MIB);
        const rings = Object.values(w.config.sources).reduce(
          (n, s) => n + ((s as { ring_bytes: number }).ring_bytes ?? 0),
          0,
        );
        const sinks = Object.values(w.config.sinks) as { max_buffered_bytes?: number; part_size_bytes?: number }[];
        const buffers = sinks.reduce((n, s) => n + (s.max_buffered_bytes ?? 0) + (s.part_size_bytes ?? 0), 0);
        expect(w.config.workers.threads).toBe(2);
        const worst = IDLE_MIB + w.config.workers.threads * THREAD_MIB + GARBAGE_MIB + (rings + buffers) / 2 ** 20;
        expect(mebibytes(res.limits!['memory']!)).toBeGreaterThanOrEqual(worst);
      });

      it('runs as the image user, non-root, no privilege escalation, every capability dropped, read-only root', () => {
        const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
        const user = /^USER (\d+):(\d+)$/m.exec(dockerfile)!;
        expect(w.spec['securityContext']).toMatchObject({
          runAsNonRoot: true,
          runAsUser: Number(user[1]),
          runAsGroup: Number(user[2]),
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(w.container.securityContext).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(w.spec['automountServiceAccountToken']).toBe(false);
      });

      it('data_dir is on a volume (emptyDir today: docs/deploy.md says what the disk spool changes)', () => {
        const mount = w.container.volumeMounts!.find((m) => m.mountPath === w.config.data_dir)!;
        expect(mount).toBeDefined();
        const vol = (w.spec['volumes'] as Record<string, unknown>[]).find((v) => v['name'] === mount.name)!;
        expect(vol['emptyDir']).toEqual({ sizeLimit: '1Gi' });
      });

      it('Services select the pods and name ports the container has', () => {
        for (const svc of objs.filter((o) => o.kind === 'Service')) {
          const s = svc['spec'] as {
            selector: Record<string, string>;
            ports: { targetPort: string; protocol: string }[];
          };
          for (const [k, v] of Object.entries(s.selector)) expect(w.template.labels[k]).toBe(v);
          for (const p of s.ports) expect(portOf(w.container, p.targetPort)?.protocol).toBe(p.protocol);
        }
      });

      if (t.workload === 'DaemonSet') {
        it('NODE_NAME from the downward API is the node tag of both Talos sources (kernel logs carry no node identity)', () => {
          expect(w.container.env!.find((e) => e.name === 'NODE_NAME')?.valueFrom).toEqual({
            fieldRef: { fieldPath: 'spec.nodeName' },
          });
          const src = w.config.sources as Record<string, { extra_tags: Record<string, string> }>;
          expect(src['talos_kernel']!.extra_tags['node']).toBe('talos-worker-1');
          expect(src['talos_service']!.extra_tags['node']).toBe('talos-worker-1');
        });

        it('tolerates every taint (control-plane nodes have logs too), one node at a time on update', () => {
          expect(w.spec['tolerations']).toEqual([{ operator: 'Exists' }]);
          expect((w.workload['spec'] as { updateStrategy: unknown }).updateStrategy).toEqual({
            type: 'RollingUpdate',
            rollingUpdate: { maxUnavailable: 1 },
          });
        });

        it('the namespace allows hostPort/hostNetwork under Pod Security Admission (Talos enforces baseline)', () => {
          const ns = objs.find((o) => o.kind === 'Namespace')!;
          expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
        });
      }

      if (t.workload === 'DaemonSet' && !t.hostNetwork) {
        it('base: hostPort 5170/tcp and 6050/udp on the node address, pod network', () => {
          expect(portOf(w.container, 'talos-tcp')?.hostPort).toBe(5170);
          expect(portOf(w.container, 'talos-udp')?.hostPort).toBe(6050);
          expect(portOf(w.container, 'hec')?.hostPort).toBeUndefined();
          expect(w.spec['hostNetwork']).toBeUndefined();
          expect((w.config.sources['talos_service'] as unknown as { host: string }).host).toBe('0.0.0.0');
        });
      }

      if (t.hostNetwork) {
        it('hostNetwork, ClusterFirstWithHostNet, sources on 127.0.0.1 as the Talos guide runs Filebeat', () => {
          expect(w.spec['hostNetwork']).toBe(true);
          expect(w.spec['dnsPolicy']).toBe('ClusterFirstWithHostNet');
          for (const s of Object.values(w.config.sources) as unknown as { host: string }[])
            expect(s.host).toBe('127.0.0.1');
          for (const p of w.container.ports!) expect(p.hostPort).toBeUndefined();
        });
      }

      if (t.workload === 'Deployment') {
        it('aggregator: several replicas, no DaemonSet, a Service for Talos and HEC, a PodDisruptionBudget', () => {
          expect((w.workload['spec'] as { replicas: number }).replicas).toBeGreaterThanOrEqual(2);
          expect(objs.some((o) => o.kind === 'DaemonSet')).toBe(false);
          const ingest = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'sluice-ingest')!;
          expect(
            (ingest['spec'] as { ports: { name: string; port: number }[] }).ports.map((p) => `${p.name}:${p.port}`),
          ).toEqual(['talos-tcp:5170', 'talos-udp:6050', 'hec:8088']);
          expect(objs.some((o) => o.kind === 'PodDisruptionBudget')).toBe(true);
        });

        it('aggregator: the node comes from the peer address (host_key), not from NODE_NAME of the replica', () => {
          expect(w.env['NODE_NAME']).toBeUndefined();
          for (const s of Object.values(w.config.sources) as unknown as {
            host_key: string | null;
            extra_tags: Record<string, string>;
          }[]) {
            expect(s.host_key).toBe('__host');
            expect(s.extra_tags['node']).toBeUndefined();
          }
        });

        it('aggregator: the pod meets the `restricted` Pod Security Standard its namespace enforces', () => {
          const ns = objs.find((o) => o.kind === 'Namespace')!;
          expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
          expect(w.spec['hostNetwork']).toBeUndefined();
          for (const p of w.container.ports!) expect(p.hostPort).toBeUndefined();
          for (const v of w.spec['volumes'] as Record<string, unknown>[]) expect(v['hostPath']).toBeUndefined();
        });
      }
    });
  }
});

describe('components/servicemonitor', () => {
  for (const t of TARGETS.filter((x) => x.serviceMonitor)) {
    it(`${t.name}: selects exactly one Service, whose api port reaches the pods`, () => {
      const objs = render(t.dir);
      const sm = objs.find((o) => o.kind === 'ServiceMonitor')!;
      const spec = sm['spec'] as {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; path: string }[];
      };
      const selected = objs.filter(
        (o) =>
          o.kind === 'Service' &&
          Object.entries(spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v),
      );
      expect(selected.map((s) => s.metadata.name)).toEqual(['sluice']);
      expect(sm.metadata.namespace).toBe(selected[0]!.metadata.namespace);
      expect((selected[0]!['spec'] as { ports: { name: string }[] }).ports.map((p) => p.name)).toContain(
        spec.endpoints[0]!.port,
      );
      expect(spec.endpoints[0]!.path).toBe('/metrics');
    });
  }

  it('the base and overlays alone contain no ServiceMonitor (clusters without the CRD apply them)', () => {
    for (const t of TARGETS.filter((x) => !x.serviceMonitor))
      expect(render(t.dir).map((o) => o.kind)).not.toContain('ServiceMonitor');
  });
});

describe('the DaemonSet config runs: Talos lines into S3 (Ceph RGW) with the node tag', () => {
  const s3 = inject('s3');
  const client = rgwClient(s3);
  afterAll(() => client.destroy());

  it('base sluice.yaml with the pod environment (ports moved to free ones): tcp and udp lines land under talos/<cluster>/ tagged with the node', async () => {
    const w = inspect(render(join(K8S, 'base')), 'DaemonSet');
    const bucket = `deploy-${Date.now().toString(36)}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    // The fixed ports of a pod (5170, 6050, 9598) may be taken on a test machine: port 0 instead.
    const yaml = w.yaml.replace(':5170', ':0').replace(':6050', ':0').replace('0.0.0.0:9598', '127.0.0.1:0');
    expect(yaml).not.toBe(w.yaml);
    const env = {
      ...w.env,
      SLUICE_LISTEN_HOST: '127.0.0.1',
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_BUCKET: bucket,
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    };
    const daemon = await startDaemon(yaml, { env });
    const service = Array.from({ length: 1000 }, (_, i) =>
      JSON.stringify({
        msg: `svc ${i}`,
        'talos-level': 'info',
        'talos-service': 'machined',
        'talos-time': '2026-11-22T10:00:00Z',
      }),
    );
    const kernel = Array.from({ length: 100 }, (_, i) =>
      JSON.stringify({
        clock: i,
        facility: 'kern',
        msg: `kmsg ${i}`,
        priority: 'info',
        seq: i,
        'talos-level': 'info',
        'talos-time': '2026-11-22T10:00:00Z',
      }),
    );
    const tcp = splitAddress(daemon.sources['talos_service']![0]!);
    const sock = connect(tcp);
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    await new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.end(`${service.join('\n')}\n`);
    });
    const udp = splitAddress(daemon.sources['talos_kernel']![0]!);
    const u = createSocket('udp4');
    for (const line of kernel)
      await new Promise<void>((resolve, reject) =>
        u.send(line, udp.port, udp.host, (err) => (err ? reject(err) : resolve())),
      );
    u.close();
    // UDP has no close handshake: stop once the daemon has the last datagrams.
    const kernelReceived = async (): Promise<number> =>
      metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total', { component_id: 'talos_kernel' });
    await vi.waitFor(async () => expect(await kernelReceived(), 'every datagram received').toBe(kernel.length), {
      timeout: 30_000,
      interval: 100,
    });
    expect(await daemon.stop('SIGTERM')).toBe(0);

    const keys = await listKeys(client, bucket);
    expect(keys.length).toBeGreaterThan(0);
    // The image's config indexes its objects (the default): one sidecar per object.
    expect((await listIndexKeys(client, bucket)).length).toBe(keys.length);
    const lines: Record<string, unknown>[] = [];
    for (const key of keys) {
      expect(key).toMatch(/^talos\/talos\/\d{4}\/\d{2}\/\d{2}\/\d{2}:\d{2}:\d{2}-[0-9a-f]{16}-\d{6}\.ndjson\.zst$/);
      const body = await (
        await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      ).Body!.transformToByteArray();
      const text = (await zstdDecompress(Buffer.from(body))).toString('utf8');
      for (const l of text.split('\n').filter((x) => x !== '')) lines.push(JSON.parse(l) as Record<string, unknown>);
    }
    expect(lines.length).toBe(service.length + kernel.length);
    for (const rec of lines) expect(rec).toMatchObject({ node: 'talos-worker-1', cluster: 'talos' });
    expect(new Set(lines.filter((r) => 'seq' in r).map((r) => r['seq'])).size).toBe(kernel.length);
    expect(new Set(lines.filter((r) => !('seq' in r)).map((r) => r['msg'])).size).toBe(service.length);
  });
});

/** Guards against the renderer silently passing: the config test above must have parsed real YAML. */
describe('sluice.yaml files of deploy/', () => {
  it('deploy/docker/sluice.yaml (the image default) passes `sluice validate`', () => {
    const out = execFileSync(process.execPath, [CLI, 'validate', '--config', join(ROOT, 'deploy/docker/sluice.yaml')], {
      env: { PATH: process.env['PATH'] ?? '' },
      encoding: 'utf8',
    });
    expect(out).toMatch(/OK \(2 sources, 1 sinks\)/);
  });

  it('parseConfig sees the tags the DaemonSet promises', () => {
    const c: SluiceConfig = parseConfig(readFileSync(join(K8S, 'base/sluice.yaml'), 'utf8'), 'base/sluice.yaml', {
      NODE_NAME: 'n1',
      CLUSTER_NAME: 'c1',
      S3_ENDPOINT: 'http://s3.test',
      S3_BUCKET: 'logs',
      S3_ACCESS_KEY_ID: 'a',
      S3_SECRET_ACCESS_KEY: 'b',
    });
    expect((c.sources['talos_kernel'] as unknown as { extra_tags: Record<string, string> }).extra_tags).toEqual({
      node: 'n1',
      cluster: 'c1',
    });
  });
});
