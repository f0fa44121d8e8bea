/**
 * Seeded Talos log lines, the one generator of Talos json_lines for Sluice's tests, benchmarks
 * and load generator. Both shapes are as Talos's json_lines sender writes them (keys sorted,
 * because the sender marshals a Go map; RFC 3339 times with nanoseconds, trailing zeros trimmed):
 *
 * - serviceLine / kernelLine: one line per call with an id in it (`req=<id>`, `kseq=<id>`), so a
 *   test finds every line exactly once; varied words, 150 to 300 bytes.
 * - TalosLineGenerator: a realistic stream (per-service message templates, pods, UIDs, container
 *   IDs that repeat as real logs do), for what depends on the text itself: compression, scanning.
 *
 * Seeded (mulberry32): the same seed gives the same lines everywhere, so benchmark figures and
 * test expectations stay put.
 */

import { mulberry32 } from './prng.ts';

const SERVICES = ['machined', 'apid', 'containerd', 'cri', 'etcd', 'kubelet', 'trustd', 'udevd', 'syslogd'];
const LEVELS = ['debug', 'info', 'info', 'info', 'warn', 'error'];
const WORDS = [
  'task',
  'phase',
  'done',
  'started',
  'waiting',
  'for',
  'service',
  'health',
  'check',
  'successful',
  'apply',
  'config',
  'request',
  'immediate',
  'reboot',
  'controller',
  'reconcile',
  'volume',
  'mount',
  'network',
  'link',
  'address',
  'route',
  'certificate',
  'renewed',
  'etcd',
  'member',
  'lease',
  'kubelet',
  'pod',
  'sandbox',
  'container',
  'image',
  'pulled',
  'timeout',
  'retrying',
  'connection',
  'refused',
  'ok',
  'déjà',
  'vu',
  'ключ',
  '日志',
  'ünïcödé',
];
const FACILITIES = ['kern', 'user', 'daemon', 'auth', 'syslog', 'cron', 'local0', 'local7'];
const PRIORITIES: [string, string][] = [
  ['err', 'error'],
  ['warning', 'warn'],
  ['notice', 'info'],
  ['info', 'info'],
  ['info', 'info'],
  ['debug', 'debug'],
];

function sentence(rand: () => number, minBytes: number, maxBytes: number): string {
  const target = minBytes + Math.floor(rand() * (maxBytes - minBytes));
  let s = '';
  while (s.length < target) s += (s.length === 0 ? '' : ' ') + WORDS[Math.floor(rand() * WORDS.length)];
  return s;
}

function talosTime(ms: number, rand: () => number): string {
  // RFC 3339 with nanoseconds, trailing zeros trimmed (0 to 9 fractional digits), as Talos writes it.
  const iso = new Date(ms).toISOString().slice(0, 19);
  const nanos = String(Math.floor(rand() * 1e9))
    .padStart(9, '0')
    .replace(/0+$/, '');
  return nanos.length > 0 ? `${iso}.${nanos}Z` : `${iso}Z`;
}

export interface LineOptions {
  /** A unique marker, so tests can find every line exactly once. */
  id: number;
  rand: () => number;
  baseTimeMs?: number;
}

/** One Talos service log line (no newline). */
export function serviceLine({ id, rand, baseTimeMs = 1_763_800_000_000 }: LineOptions): string {
  const msg = `[talos] ${sentence(rand, 40, 128)} req=${id}`;
  const obj: Record<string, unknown> = {};
  if (rand() < 0.3) obj['component'] = 'controller-runtime';
  obj['msg'] = msg;
  obj['talos-level'] = LEVELS[Math.floor(rand() * LEVELS.length)];
  obj['talos-service'] = SERVICES[Math.floor(rand() * SERVICES.length)];
  obj['talos-time'] = talosTime(baseTimeMs + id, rand);
  return JSON.stringify(obj);
}

/** One Talos kernel log line (no newline). `seq` is the id. */
export function kernelLine({ id, rand, baseTimeMs = 1_763_800_000_000 }: LineOptions): string {
  const [priority, level] = PRIORITIES[Math.floor(rand() * PRIORITIES.length)]!;
  return JSON.stringify({
    clock: 6_252_819 + id * 1000,
    facility: FACILITIES[Math.floor(rand() * FACILITIES.length)],
    msg: `${sentence(rand, 30, 115)} kseq=${id}\n`,
    priority,
    seq: id,
    'talos-level': level,
    'talos-time': talosTime(baseTimeMs + id, rand),
  });
}

const STREAM_SERVICES = [
  'machined',
  'kubelet',
  'kubelet',
  'etcd',
  'containerd',
  'cri',
  'apid',
  'trustd',
  'udevd',
] as const;
const STREAM_LEVELS = ['info', 'info', 'info', 'info', 'debug', 'warn', 'error'] as const;
const CONTROLLERS = [
  'k8s.NodeApplyController',
  'network.AddressSpecController',
  'runtime.KernelParamSpecController',
  'secrets.KubeletController',
  'etcd.SpecController',
  'cluster.MemberController',
  'network.RouteSpecController',
  'k8s.KubeletStaticPodController',
  'runtime.ExtensionStatusController',
  'time.SyncController',
];
const POD_PREFIXES = [
  'kube-proxy',
  'coredns',
  'kube-flannel',
  'cilium',
  'metrics-server',
  'ingress-nginx-controller',
  'cert-manager',
  'longhorn-manager',
];
const NAMESPACES = [
  'kube-system',
  'kube-system',
  'ingress-nginx',
  'cert-manager',
  'longhorn-system',
  'default',
  'monitoring',
];
const KUBELET_MSGS = [
  '"SyncLoop (PLEG): event for pod" pod="%P" event={"ID":"%U","Type":"ContainerStarted","Data":"%H"}',
  '"Probe failed" probeType="Readiness" pod="%P" podUID="%U" containerName="%C" probeResult="failure" output="Get \\"http://10.244.%N.%N:8080/ready\\": dial tcp 10.244.%N.%N:8080: connect: connection refused"',
  '"RemoveContainer" containerID="containerd://%H"',
  '"Volume detached for volume \\"kube-api-access-%S\\" (UniqueName: \\"kubernetes.io/projected/%U-kube-api-access-%S\\") on node \\"talos-%S\\" DevicePath \\"\\""',
  '"SyncLoop UPDATE" source="api" pods=["%P"]',
  '"Killing container with a grace period" pod="%P" podUID="%U" containerName="%C" containerID="containerd://%H" gracePeriod=30',
  '"Successfully pulled image" image="registry.k8s.io/%C:v1.%N.%N" duration="%Dms"',
];
const MACHINED_MSGS = [
  'reconcile failed',
  'controller failed',
  'updated node labels',
  'assigned address',
  'setting time',
  'adjusting time (slew)',
  'service[%C](Running): Health check successful',
  'service[%C](Waiting): Waiting for service "cri" to be "up"',
  'removed address',
  'kubelet certificates renewed',
  'node watch error',
];
const MACHINED_ERRORS = [
  'error getting node: Get "https://127.0.0.1:7445/api/v1/nodes/talos-%S?timeout=30s": dial tcp 127.0.0.1:7445: connect: connection refused',
  'error updating node: Operation cannot be fulfilled on nodes "talos-%S": the object has been modified; please apply your changes to the latest version and try again',
  'failed to lookup NTP server "time.cloudflare.com": lookup time.cloudflare.com on 10.96.0.10:53: read udp 10.5.0.%N:%N->10.96.0.10:53: i/o timeout',
];
const ETCD_MSGS = [
  'request stats',
  'finished scheduled compaction',
  'saved snapshot',
  'compacted Raft logs',
  'apply request took too long',
  'waiting for ReadIndex response took too long, retrying',
  'purged file',
  'published local member to cluster through raft',
];
const CONTAINERD_MSGS = [
  'shim disconnected',
  'cleaning up after shim disconnected',
  'StopPodSandbox for \\"%H\\" returns successfully',
  'TearDown network for sandbox \\"%H\\" successfully',
  'CreateContainer within sandbox \\"%H\\" for container &ContainerMetadata{Name:%C,Attempt:%N,}',
  'loading plugin \\"io.containerd.event.v1.publisher\\"...',
  'received exit event container_id:\\"%H\\" pid:%N exit_status:1',
];
const KERNEL_MSGS = [
  'eth%N: Link is Up - 10Gbps/Full - flow control rx/tx',
  'cni0: port %N(veth%S) entered forwarding state',
  'IPv6: ADDRCONF(NETDEV_CHANGE): veth%S: link becomes ready',
  'audit: type=1400 audit(%N.%N:%N): apparmor="DENIED" operation="open" profile="cri-containerd.apparmor.d" name="/proc/%N/mountinfo" pid=%N comm="%C"',
  'Memory cgroup out of memory: Killed process %N (%C) total-vm:%NkB, anon-rss:%NkB, file-rss:%NkB',
  'nf_conntrack: table full, dropping packet',
  'EXT4-fs (sda%N): mounted filesystem with ordered data mode. Quota mode: none.',
  '[talos] task startAllServices (1/1): waiting for %N services',
];
const STREAM_FACILITIES = ['kern', 'kern', 'kern', 'user', 'daemon', 'auth', 'syslog'] as const;
const STREAM_PRIORITIES = ['info', 'info', 'notice', 'warning', 'err', 'debug'] as const;
const KERNEL_LEVEL: Record<string, string> = {
  info: 'info',
  notice: 'info',
  warning: 'warn',
  err: 'error',
  debug: 'debug',
};

/**
 * Realistic Talos json_lines records (docs/talos.md: fields and framing): keys sorted as Go
 * marshals a map, RFC 3339 nano timestamps with trailing zeros trimmed, klog-style kubelet
 * messages with escaped quotes, etcd zap fields, kernel records with a trailing "\n" in msg.
 * Messages come from per-service templates with variable parts (pods from a fixed cluster,
 * UIDs, container IDs, numbers), the way real logs repeat.
 */
export class TalosLineGenerator {
  readonly #rand: () => number;
  readonly #pods: string[];
  readonly #uids: string[];
  readonly #containers: string[];
  #clock = 6_252_819;
  #seq = 700;
  #timeMs = Date.UTC(2024, 3, 22, 12, 34, 56);

  constructor(seed: number) {
    this.#rand = mulberry32(seed);
    this.#pods = Array.from(
      { length: 40 },
      () => `${this.#pick(NAMESPACES)}/${this.#pick(POD_PREFIXES)}-${this.#hex(5)}`,
    );
    this.#uids = Array.from(
      { length: 40 },
      () => `${this.#hex(8)}-${this.#hex(4)}-${this.#hex(4)}-${this.#hex(4)}-${this.#hex(12)}`,
    );
    this.#containers = Array.from({ length: 60 }, () => this.#hex(64));
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#rand() * xs.length)]!;
  }

  #hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(this.#rand() * 16).toString(16);
    return s;
  }

  /** Fill a template: %P pod, %U pod UID, %H container ID, %C container name, %S short id, %N number, %D duration. */
  #fill(template: string): string {
    let out = '';
    for (let i = 0; i < template.length; i++) {
      const c = template[i]!;
      if (c !== '%' || i + 1 >= template.length) {
        out += c;
        continue;
      }
      const k = template[++i];
      if (k === 'P') out += this.#pick(this.#pods);
      else if (k === 'U') out += this.#pick(this.#uids);
      else if (k === 'H') out += this.#pick(this.#containers);
      else if (k === 'C') out += this.#pick(POD_PREFIXES);
      else if (k === 'S') out += this.#hex(5);
      else if (k === 'N') out += String(Math.floor(this.#rand() ** 3 * 5000));
      else if (k === 'D') out += (this.#rand() * 3000).toFixed(3);
      else out += `%${k}`;
    }
    return out;
  }

  #time(): string {
    this.#timeMs += Math.floor(this.#rand() * 40);
    const iso = new Date(this.#timeMs).toISOString().slice(0, 19);
    const frac = String(Math.floor(this.#rand() * 1e9))
      .padStart(9, '0')
      .replace(/0+$/, '');
    return frac === '' ? `${iso}Z` : `${iso}.${frac}Z`;
  }

  /** One record as a JSON string. About 1 in 8 is a kernel record. */
  next(): string {
    if (this.#rand() < 0.125) return this.kernel();
    return this.service();
  }

  kernel(): string {
    this.#clock += Math.floor(this.#rand() * 100_000);
    this.#seq += 1;
    const priority = this.#pick(STREAM_PRIORITIES);
    return JSON.stringify({
      clock: this.#clock,
      facility: this.#pick(STREAM_FACILITIES),
      msg: `${this.#fill(this.#pick(KERNEL_MSGS))}\n`,
      priority,
      seq: this.#seq,
      'talos-level': KERNEL_LEVEL[priority],
      'talos-time': this.#time(),
    });
  }

  service(): string {
    const service = this.#pick(STREAM_SERVICES);
    const level = this.#pick(STREAM_LEVELS);
    const time = this.#time();
    if (service === 'kubelet') {
      const t = new Date(this.#timeMs).toISOString();
      const klog = `${level === 'error' ? 'E' : level === 'warn' ? 'W' : 'I'}0422 ${t.slice(11, 23)}${String(Math.floor(this.#rand() * 1000)).padStart(3, '0')}`;
      return JSON.stringify({
        msg: `${klog}    ${1000 + Math.floor(this.#rand() * 40)} ${this.#pick(['kubelet.go', 'prober.go', 'pod_workers.go', 'scope.go'])}:${Math.floor(this.#rand() * 3000)}] ${this.#fill(this.#pick(KUBELET_MSGS))}`,
        'talos-level': level,
        'talos-service': service,
        'talos-time': time,
      });
    }
    if (service === 'etcd') {
      return JSON.stringify({
        caller: `${this.#pick(['etcdserver/server.go', 'mvcc/kvstore_compaction.go', 'wal/wal.go', 'fileutil/purge.go'])}:${Math.floor(this.#rand() * 3000)}`,
        level,
        msg: this.#pick(ETCD_MSGS),
        revision: 1_000_000 + Math.floor(this.#rand() * 50_000),
        'talos-level': level,
        'talos-service': service,
        'talos-time': time,
        took: `${(this.#rand() * 200).toFixed(6)}ms`,
        ts: time,
      });
    }
    if (service === 'machined') {
      return JSON.stringify({
        component: 'controller-runtime',
        controller: this.#pick(CONTROLLERS),
        error: level === 'error' || level === 'warn' ? this.#fill(this.#pick(MACHINED_ERRORS)) : undefined,
        msg: this.#fill(this.#pick(MACHINED_MSGS)),
        'talos-level': level,
        'talos-service': service,
        'talos-time': time,
      });
    }
    if (service === 'containerd' || service === 'cri') {
      return JSON.stringify({
        msg: `time="${time}" level=${level} msg="${this.#fill(this.#pick(CONTAINERD_MSGS))}"`,
        'talos-level': level,
        'talos-service': service,
        'talos-time': time,
      });
    }
    return JSON.stringify({
      msg: `[talos] ${this.#fill(this.#pick(['sending request %N', 'apid: connection from 10.5.0.%N:%N', 'trustd: certificate issued for talos-%S', 'udevd: processing event %N for /dev/sda%N']))}`,
      'talos-level': level,
      'talos-service': service,
      'talos-time': time,
    });
  }
}
