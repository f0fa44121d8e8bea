import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: string;
  format: 'json' | 'pretty';
}

/** Keys whose values never reach a log line, whatever a caller passes. */
const REDACT = [
  'secret_access_key',
  'secretAccessKey',
  'access_key_id',
  'accessKeyId',
  'authorization',
  '*.secret_access_key',
  '*.secretAccessKey',
  '*.authorization',
  'valid_tokens',
  '*.valid_tokens',
];

/**
 * The root engine logger. JSON to stdout by default (one object a line, what log shippers
 * want); `pretty` renders the same records readably for a terminal.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const base = { level: opts.level, redact: { paths: REDACT, censor: '(redacted)' }, base: { service: 'sluice' } };
  if (opts.format === 'pretty') {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY === true, translateTime: 'SYS:standard', ignore: 'pid,hostname,service' } } });
  }
  return pino(base);
}

/**
 * Rate-limits a repeated error per key: the first occurrence is logged, then at most one line
 * per `intervalMs` with the number suppressed in between. A flood of bad peers costs one line
 * a minute, not one per packet.
 */
export class RateLimitedLog {
  private readonly seen = new Map<string, { last: number; suppressed: number }>();
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly maxKeys: number;

  constructor(logger: Logger, intervalMs = 60_000, maxKeys = 1024) {
    this.logger = logger;
    this.intervalMs = intervalMs;
    this.maxKeys = maxKeys;
  }

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    let entry = this.seen.get(key);
    if (entry === undefined) {
      if (this.seen.size >= this.maxKeys) this.seen.clear();
      entry = { last: 0, suppressed: 0 };
      this.seen.set(key, entry);
    }
    if (now - entry.last < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry.suppressed;
    entry.last = now;
    entry.suppressed = 0;
    this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
}
