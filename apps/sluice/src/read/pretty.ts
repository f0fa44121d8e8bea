/**
 * `--format pretty`: one line per record, the way `talosctl logs` reads:
 *   2024-05-01T12:00:00.123Z 10.5.0.2 machined info: starting etcd
 * time, host, service, level, message; `-` for what a record does not have. Colour only when
 * asked (stdout is a TTY and NO_COLOR is unset).
 */
import { recordTime } from './match.ts';

/** Where the host may be: the HEC envelope's `host`, and the names host_key is usually given. */
const HOST_FIELDS = ['host', 'hostname', 'node', 'nodename', '__host', 'talos-host', 'source_ip'];
const SERVICE_FIELDS = ['talos-service', 'service', 'app', 'source', 'sourcetype'];
const LEVEL_FIELDS = ['talos-level', 'level', 'severity', 'lvl'];
const MESSAGE_FIELDS = ['msg', 'message', 'event', 'log'];

const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
const BOLD = '\x1b[1m';
const CYAN = '\x1b[36m';

function levelColour(level: string): string {
  const l = level.toLowerCase();
  if (/^(err|error|crit|critical|fatal|panic|emerg|alert)$/.test(l)) return '\x1b[31m';
  if (/^(warn|warning)$/.test(l)) return '\x1b[33m';
  if (/^(info|notice)$/.test(l)) return '\x1b[32m';
  return DIM;
}

function pick(rec: Record<string, unknown>, fields: readonly string[]): unknown {
  for (const f of fields) {
    const v = rec[f];
    if (v !== undefined && v !== null && v !== '') return v;
  }
  return undefined;
}

function text(v: unknown): string {
  if (v === undefined) return '-';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  // One line per record, whatever the message holds.
  return s.replace(/\r?\n|\r/g, '\\n');
}

/** The pretty line (with its newline) of a parsed record, or of a line that is not JSON. */
export function formatPretty(rec: unknown, keyTime: string | undefined, colour: boolean): string {
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return `${text(rec)}\n`;
  const r = rec as Record<string, unknown>;
  const t = recordTime(r, keyTime);
  const time = t === undefined ? '-' : `${t.slice(0, 23)}Z`;
  // A HEC event that is an object carries its own message and level inside.
  const event = r['event'];
  const inner =
    typeof event === 'object' && event !== null && !Array.isArray(event)
      ? (event as Record<string, unknown>)
      : undefined;
  const host = text(pick(r, HOST_FIELDS));
  const service = text(pick(r, SERVICE_FIELDS));
  const level = text(pick(r, LEVEL_FIELDS) ?? (inner !== undefined ? pick(inner, LEVEL_FIELDS) : undefined));
  const message = text(inner !== undefined ? (pick(inner, MESSAGE_FIELDS) ?? inner) : (pick(r, MESSAGE_FIELDS) ?? r));
  if (!colour) return `${time} ${host} ${service} ${level}: ${message}\n`;
  return `${DIM}${time}${RESET} ${CYAN}${host}${RESET} ${BOLD}${service}${RESET} ${levelColour(level)}${level}${RESET}: ${message}\n`;
}
