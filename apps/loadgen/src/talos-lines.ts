/**
 * Seeded Talos log lines, shaped as Talos's json_lines sender writes them (keys sorted,
 * because the sender marshals a Go map): service lines with msg / talos-level /
 * talos-service / talos-time plus a service's own fields, and kernel lines with clock /
 * facility / msg / priority / seq / talos-level / talos-time. 150 to 300 bytes, varied text.
 */

import { mulberry32 } from '@sluice/testkit';

/** The seeded PRNG every generator here takes (mulberry32). */
export const prng = mulberry32;

const SERVICES = ['machined', 'apid', 'containerd', 'cri', 'etcd', 'kubelet', 'trustd', 'udevd', 'syslogd'];
const LEVELS = ['debug', 'info', 'info', 'info', 'warn', 'error'];
const WORDS = [
  'task', 'phase', 'done', 'started', 'waiting', 'for', 'service', 'health', 'check', 'successful', 'apply', 'config',
  'request', 'immediate', 'reboot', 'controller', 'reconcile', 'volume', 'mount', 'network', 'link', 'address', 'route',
  'certificate', 'renewed', 'etcd', 'member', 'lease', 'kubelet', 'pod', 'sandbox', 'container', 'image', 'pulled',
  'timeout', 'retrying', 'connection', 'refused', 'ok', 'déjà', 'vu', 'ключ', '日志', 'ünïcödé',
];
const FACILITIES = ['kern', 'user', 'daemon', 'auth', 'syslog', 'cron', 'local0', 'local7'];
const PRIORITIES: [string, string][] = [
  ['err', 'error'], ['warning', 'warn'], ['notice', 'info'], ['info', 'info'], ['info', 'info'], ['debug', 'debug'],
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
  const nanos = String(Math.floor(rand() * 1e9)).padStart(9, '0').replace(/0+$/, '');
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
