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
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: {
          colorize: process.stdout.isTTY === true,
          translateTime: 'SYS:standard',
          ignore: 'pid,hostname,service',
        },
      },
    });
  }
  return pino(base);
}

/** The part of a pino logger RateLimitedLog writes to (a child logger, or a store's logger). */
export interface LevelLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Rate-limits a repeated error per key: the first occurrence is logged, then at most one line
 * per `intervalMs` with the number suppressed in between (`suppressed`). A flood of bad peers
 * costs one line a minute per key, not one per packet. Keys come from a fixed set in the code
 * (an error code, a rejection reason), never from input, so the map stays small; `maxKeys`
 * bounds it anyway.
 */
export class RateLimitedLog {
  readonly #seen = new Map<string, { last: number; suppressed: number }>();
  readonly #logger: LevelLogger;
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor(logger: LevelLogger, intervalMs = 60_000, maxKeys = 1024, now: () => number = Date.now) {
    this.#logger = logger;
    this.#intervalMs = intervalMs;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    this.#write('warn', key, fields, msg);
  }

  error(key: string, fields: Record<string, unknown>, msg: string): void {
    this.#write('error', key, fields, msg);
  }

  #write(level: 'warn' | 'error', key: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.#now();
    let entry = this.#seen.get(key);
    if (entry === undefined) {
      if (this.#seen.size >= this.#maxKeys) this.#seen.clear();
      entry = { last: -Infinity, suppressed: 0 };
      this.#seen.set(key, entry);
    }
    if (now - entry.last < this.#intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry.suppressed;
    entry.last = now;
    entry.suppressed = 0;
    this.#logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
}
