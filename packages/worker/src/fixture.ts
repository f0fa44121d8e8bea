/**
 * Test and bench fixtures: the ring's record format, built by hand so the worker's tests do
 * not depend on @sluice/ring, and a seeded generator of realistic Talos json_lines records.
 *
 * Ring record format (docs/internals.md, packages/ring):
 *
 * ```
 *  u32 LE len | payload (len bytes) | zero padding to a 4-byte boundary
 *  payload = u8 peerLen | peer (peerLen bytes, ASCII) | raw line bytes
 * ```
 *
 * Not on any hot path: allocation here is fine.
 */

const encoder = new TextEncoder();

/** Bytes one record of payload length `len` occupies in a ring span (same as @sluice/ring). */
export function recordSpan(len: number): number {
  return 4 + ((len + 3) & ~3);
}

/** `u8 peerLen | peer | line`. `line` may be any bytes (tests feed malformed input). */
export function encodePayload(peer: string, line: Uint8Array | string): Uint8Array {
  const peerBytes = encoder.encode(peer);
  if (peerBytes.length > 255) throw new RangeError(`peer longer than 255 bytes: ${peer}`);
  const lineBytes = typeof line === 'string' ? encoder.encode(line) : line;
  const out = new Uint8Array(1 + peerBytes.length + lineBytes.length);
  out[0] = peerBytes.length;
  out.set(peerBytes, 1);
  out.set(lineBytes, 1 + peerBytes.length);
  return out;
}

/** Lay payloads out exactly as a ring span does. Padding bytes are filled with `pad` (tests use 0xff to catch over-reads). */
export function buildBatch(payloads: readonly Uint8Array[], pad = 0): Uint8Array {
  let total = 0;
  for (const p of payloads) total += recordSpan(p.length);
  const out = new Uint8Array(total).fill(pad);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const p of payloads) {
    view.setUint32(o, p.length, true);
    out.set(p, o + 4);
    o += recordSpan(p.length);
  }
  return out;
}

/** Iterate a span in the ring record format. Test helper; BatchProcessor inlines the same loop. */
export function forEachPayload(buf: Uint8Array, length: number, fn: (payload: Uint8Array) => void): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  while (o + 4 <= length) {
    const len = view.getUint32(o, true);
    fn(buf.subarray(o + 4, o + 4 + len));
    o += recordSpan(len);
  }
}

/** mulberry32: small, fast, seeded; good enough for test data. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SERVICES = ['machined', 'kubelet', 'etcd', 'containerd', 'cri', 'apid', 'trustd', 'udevd'] as const;
const LEVELS = ['info', 'info', 'info', 'info', 'debug', 'warn', 'error'] as const;
const WORDS = (
  'reconcile failed controller node pod sandbox container started stopped volume mount ' +
  'certificate renewed lease acquired watch closed request timeout retrying connection refused ' +
  'health check successful apply config etcd member snapshot compaction leader elected ' +
  'image pulled network interface link up route added address assigned kubelet sync loop'
).split(' ');
const CONTROLLERS = [
  'k8s.NodeApplyController', 'network.AddressSpecController', 'runtime.KernelParamSpecController',
  'secrets.KubeletController', 'etcd.SpecController', 'cluster.MemberController',
];
const FACILITIES = ['kern', 'user', 'daemon', 'auth', 'syslog'] as const;
const PRIORITIES = ['info', 'notice', 'warning', 'err', 'debug'] as const;
const KERNEL_LEVEL: Record<string, string> = { info: 'info', notice: 'info', warning: 'warn', err: 'error', debug: 'debug' };

/**
 * Realistic Talos json_lines records (wire-contracts.md sections 1 and 2): keys sorted as Go
 * marshals a map, RFC 3339 nano timestamps with trailing zeros trimmed, klog-style kubelet
 * messages with escaped quotes, etcd zap fields, kernel records with a trailing "\n" in msg.
 */
export class TalosLineGenerator {
  readonly #rand: () => number;
  #clock = 6_252_819;
  #seq = 700;
  #timeMs = Date.UTC(2024, 3, 22, 12, 34, 56);

  constructor(seed: number) {
    this.#rand = mulberry32(seed);
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#rand() * xs.length)]!;
  }

  #words(n: number): string {
    let s = this.#pick(WORDS);
    for (let i = 1; i < n; i++) s += ' ' + this.#pick(WORDS);
    return s;
  }

  #hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(this.#rand() * 16).toString(16);
    return s;
  }

  #time(): string {
    this.#timeMs += Math.floor(this.#rand() * 40);
    const iso = new Date(this.#timeMs).toISOString().slice(0, 19);
    const frac = String(Math.floor(this.#rand() * 1e9)).padStart(9, '0').replace(/0+$/, '');
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
    const priority = this.#pick(PRIORITIES);
    return JSON.stringify({
      clock: this.#clock,
      facility: this.#pick(FACILITIES),
      msg: `eth${Math.floor(this.#rand() * 4)}: ${this.#words(3 + Math.floor(this.#rand() * 8))}\n`,
      priority,
      seq: this.#seq,
      'talos-level': KERNEL_LEVEL[priority],
      'talos-time': this.#time(),
    });
  }

  service(): string {
    const service = this.#pick(SERVICES);
    const level = this.#pick(LEVELS);
    const time = this.#time();
    if (service === 'kubelet') {
      const pod = `kube-system/${this.#pick(['kube-proxy', 'coredns', 'kube-flannel'])}-${this.#hex(5)}`;
      return JSON.stringify({
        msg: `I0422 12:34:56.${this.#hex(6)}    ${1000 + Math.floor(this.#rand() * 9000)} kubelet.go:${Math.floor(this.#rand() * 3000)}] "${this.#words(4)}" pod="${pod}" event=${this.#hex(8)}`,
        'talos-level': level,
        'talos-service': service,
        'talos-time': time,
      });
    }
    if (service === 'etcd') {
      return JSON.stringify({
        caller: `etcdserver/server.go:${Math.floor(this.#rand() * 3000)}`,
        level,
        msg: this.#words(3 + Math.floor(this.#rand() * 6)),
        'revision': Math.floor(this.#rand() * 1e7),
        'talos-level': level,
        'talos-service': service,
        'talos-time': time,
        ts: time,
      });
    }
    if (service === 'machined') {
      return JSON.stringify({
        component: 'controller-runtime',
        controller: this.#pick(CONTROLLERS),
        error: this.#rand() < 0.3 ? `error ${this.#words(3)}: "talos-cp-${Math.floor(this.#rand() * 9)}" ${this.#words(2)}` : undefined,
        msg: this.#words(2 + Math.floor(this.#rand() * 4)),
        'talos-level': level,
        'talos-service': service,
        'talos-time': time,
      });
    }
    return JSON.stringify({
      msg: `[talos] ${this.#words(4 + Math.floor(this.#rand() * 10))} ${this.#hex(12)}`,
      'talos-level': level,
      'talos-service': service,
      'talos-time': time,
    });
  }

  /** Records until their payloads (with `peer`) fill about `bytes` of ring span. */
  batch(peer: string, bytes: number): { payloads: Uint8Array[]; lines: string[] } {
    const payloads: Uint8Array[] = [];
    const lines: string[] = [];
    let total = 0;
    while (total < bytes) {
      const line = this.next();
      const p = encodePayload(peer, line);
      total += recordSpan(p.length);
      payloads.push(p);
      lines.push(line);
    }
    return { payloads, lines };
  }
}
