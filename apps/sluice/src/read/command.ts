/**
 * `sluice read`: arguments → a read. Bad arguments, an unreadable config and a location that
 * cannot be listed exit 1 with one line naming the problem; objects that cannot be read are
 * named one per line and exit 2 (runRead). Usage: docs/reading.md.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile, SluiceError } from '@sluice/config';
import { readerForPath, sinkDefinition, type ObjectReader } from '@sluice/sinks/registry';
import { parseWhere, type WhereClause } from './match.ts';
import { SidecarIndex } from './object-index.ts';
import { runRead } from './read.ts';
import { Filter } from './scan.ts';
import { parseTimeArg } from './time.ts';

const READ_USAGE = `sluice read --path DIR | s3://BUCKET/PREFIX [--endpoint URL] [--region R]
            [--since TIME] [--until TIME] [--where KEY=VALUE]... [--grep REGEX]
            [--limit N] [--format ndjson|pretty] [--follow] [--stats]
sluice read --config FILE --sink ID [the same filters]`;

/** With --path: objects are assumed to stay open at most this long (the index's margin). */
const DEFAULT_SPAN_MS = 60 * 60_000;
/** 4 objects at once kept libuv's 4 threads decompressing on bench/read.bench.ts. */
const PARALLEL_OBJECTS = 4;
const FOLLOW_POLL_MS = 1000;
/** Scan workers: one per core (the main thread's share, reading and writing, is small). */
const SCAN_THREADS = Math.max(1, Math.min(availableParallelism(), 8));

class UsageError extends Error {}

function usage(message: string): never {
  throw new UsageError(message);
}

interface Parsed {
  location: { path: string; endpoint?: string; region?: string } | { config: string; sink: string | undefined };
  since: string | null;
  until: string | null;
  where: WhereClause[];
  grep: RegExp | null;
  limit: number | null;
  format: 'ndjson' | 'pretty';
  follow: boolean;
  stats: boolean;
}

const TEXT = { type: 'string' } as const;
const FLAG = { type: 'boolean' } as const;
/** `sluice read`'s options (parseArgs). */
const READ_OPTIONS = {
  path: TEXT,
  endpoint: TEXT,
  region: TEXT,
  config: { ...TEXT, short: 'c' },
  sink: TEXT,
  since: TEXT,
  until: TEXT,
  where: { ...TEXT, multiple: true },
  grep: TEXT,
  limit: TEXT,
  format: TEXT,
  follow: { ...FLAG, short: 'f' },
  stats: FLAG,
} as const;

function readOptions(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: false, strict: true, options: READ_OPTIONS }).values;
  } catch (err) {
    return usage((err as Error).message.split('\n')[0]!);
  }
}

function parseReadArgs(argv: string[], nowMs: number): Parsed {
  const values = readOptions(argv);
  let location: Parsed['location'];
  if (values.path !== undefined) {
    if (values.config !== undefined || values.sink !== undefined)
      usage('give either --path or --config/--sink, not both');
    location = {
      path: values.path,
      ...(values.endpoint !== undefined ? { endpoint: values.endpoint } : {}),
      ...(values.region !== undefined ? { region: values.region } : {}),
    };
  } else if (values.config !== undefined) {
    if (values.endpoint !== undefined || values.region !== undefined)
      usage('--endpoint and --region go with --path; with --config the sink has its own');
    location = { config: values.config, sink: values.sink };
  } else {
    usage(
      values.sink !== undefined
        ? '--sink needs --config FILE'
        : 'say where to read: --path DIR | s3://BUCKET/PREFIX, or --config FILE --sink ID',
    );
  }
  const time = (name: 'since' | 'until'): string | null => {
    const v = values[name];
    if (v === undefined) return null;
    const t = parseTimeArg(v, nowMs);
    if (typeof t !== 'string') usage(`--${name}: ${t.error}`);
    return t;
  };
  const since = time('since');
  const until = time('until');
  if (since !== null && until !== null && since >= until)
    usage(`--since (${values.since}) must be before --until (${values.until})`);
  const where: WhereClause[] = [];
  for (const w of values.where ?? []) {
    const c = parseWhere(w);
    if ('error' in c) usage(`--where: ${c.error}`);
    where.push(c);
  }
  let grep: RegExp | null = null;
  if (values.grep !== undefined) {
    try {
      grep = new RegExp(values.grep);
    } catch (err) {
      usage(`--grep: ${(err as Error).message}`);
    }
  }
  let limit: number | null = null;
  if (values.limit !== undefined) {
    if (!/^[1-9]\d*$/.test(values.limit) || !Number.isSafeInteger(Number(values.limit)))
      usage(`--limit must be a whole number of records, at least 1, got ${JSON.stringify(values.limit)}`);
    limit = Number(values.limit);
  }
  const format = values.format ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'pretty')
    usage(`--format must be ndjson or pretty, got ${JSON.stringify(format)}`);
  return {
    location,
    since,
    until,
    where,
    grep,
    limit,
    format,
    follow: values.follow === true,
    stats: values.stats === true,
  };
}

/** The reader and the longest an object stays open, from --path or a configured sink. */
async function openLocation(loc: Parsed['location']): Promise<{ reader: ObjectReader; spanMs: number }> {
  if ('path' in loc) return { reader: await readerForPath(loc.path, loc), spanMs: DEFAULT_SPAN_MS };
  let config: ReturnType<typeof loadConfigFile>;
  try {
    config = loadConfigFile(loc.config);
  } catch (err) {
    if (err instanceof ConfigError)
      usage(`invalid configuration in ${loc.config}: ${err.message.split('\n').join('; ')}`);
    throw err;
  }
  const ids = Object.keys(config.sinks);
  const id =
    loc.sink ??
    (ids.length === 1 ? ids[0]! : usage(`--sink ID is required: ${loc.config} has sinks ${ids.join(', ')}`));
  const sink = config.sinks[id];
  if (sink === undefined) usage(`${loc.config} has no sink ${JSON.stringify(id)} (it has ${ids.join(', ')})`);
  return { reader: await sinkDefinition(sink).reader(sink), spanMs: sink.upload_period_secs * 1000 };
}

/** Runs `sluice read` with its arguments; resolves the exit code. */
export async function readCommand(argv: string[]): Promise<number> {
  let reader: ObjectReader | undefined;
  const ac = new AbortController();
  const onSignal = (): void => ac.abort();
  try {
    const args = parseReadArgs(argv, Date.now());
    const opened = await openLocation(args.location);
    reader = opened.reader;
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const color = args.format === 'pretty' && process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined;
    const { code } = await runRead({
      reader,
      index: new SidecarIndex(reader, { since: args.since, until: args.until, where: args.where }, opened.spanMs),
      filter: new Filter({
        where: args.where,
        grep: args.grep,
        since: args.since,
        until: args.until,
        format: args.format,
        color,
      }),
      limit: args.limit,
      follow: args.follow,
      pollMs: FOLLOW_POLL_MS,
      stats: args.stats,
      parallel: PARALLEL_OBJECTS,
      threads: SCAN_THREADS,
      stdout: process.stdout,
      stderr: process.stderr,
      progress: process.stderr.isTTY === true,
      signal: ac.signal,
    });
    return code;
  } catch (err) {
    const message =
      err instanceof UsageError
        ? err.message
        : err instanceof ConfigError
          ? `--path: ${err.message.split('\n').join('; ')}`
          : err instanceof SluiceError
            ? `${err.message} (${err.code})`
            : err instanceof Error
              ? err.message
              : String(err);
    process.stderr.write(`sluice read: ${message.split('\n')[0]}\n`);
    // A usage mistake also gets the synopsis, so the fix is on the screen.
    if (err instanceof UsageError) process.stderr.write(`usage: ${READ_USAGE}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    reader?.release();
  }
}
