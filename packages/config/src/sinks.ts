/** Option tables for sinks. A new sink type is one entry in `sinkTypes`. */
import { componentType, type ComponentType } from './components.ts';
import {
  INVALID,
  boolean,
  childPath,
  def,
  integer,
  oneOf,
  opt,
  rangeMessage,
  report,
  req,
  secret,
  string,
  stringList,
  type Ctx,
  type Invalid,
  type Values,
} from './schema.ts';
import type { AwsS3SinkConfig, Compression, FileSinkConfig, SinkConfig, SinkType } from './types.ts';

const MIB = 1024 * 1024;

export const COMPRESSION_LEVELS: { readonly [C in Exclude<Compression, 'none'>]: { min: number; max: number; default: number } } = {
  zstd: { min: 1, max: 19, default: 1 },
  gzip: { min: 1, max: 9, default: 6 },
};

/** Options every sink has. */
export const sinkOptions = {
  inputs: req(stringList()),
  key_prefix: def(string({ allowEmpty: true }), ''),
  compression: def(oneOf(['zstd', 'gzip', 'none']), 'zstd'),
  // The range depends on the codec: checked in commonSink().
  compression_level: opt(integer()),
  upload_period_secs: def(integer(1, 86_400), 60),
  max_object_bytes: def(integer(1024, 5_497_558_138_880), 256 * MIB),
  // Write-ahead spool (packages/spool): on by default for aws_s3 (below), where a crash or an
  // outage would otherwise lose what is in memory; off for file, which writes to local disk anyway.
  spool: def(boolean(), false),
  max_spool_bytes: def(integer(65_536, 1_125_899_906_842_624), 1024 * MIB),
  // interval: 176-179 MiB/s vs per_batch 47-55 MiB/s of 64 KiB frames on bench/spool.bench.ts (3.2-3.8x).
  spool_sync: def(oneOf(['per_batch', 'interval']), 'interval'),
  spool_sync_interval_ms: def(integer(10, 60_000), 1000),
  // What the sink does while it cannot take more: its store is slow or its disk blocked (full,
  // read-only, failing), or its spool is full. block holds the sources back; drop_newest drops
  // and counts new batches. Every sink has it: a local disk fills up as surely as S3 slows down.
  when_full: def(oneOf(['block', 'drop_newest']), 'block'),
};

export const fileOptions = {
  ...sinkOptions,
  path: req(string()),
};

/** https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (the core of them). */
export function checkBucket(name: string): string | undefined {
  const ok =
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) &&
    !name.includes('..') &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(name);
  if (ok) return undefined;
  return `${JSON.stringify(name)} is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, no "..", not an IP address)`;
}

export function checkEndpoint(text: string): string | undefined {
  // Text with an `@` may carry credentials: never quote it.
  const notUrl = `${text.includes('@') ? 'value' : JSON.stringify(text)} is not an http(s) URL`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return notUrl;
  }
  if (url.username !== '' || url.password !== '') {
    return 'must not contain credentials; use access_key_id and secret_access_key';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return notUrl;
  return undefined;
}

export const awsS3Options = {
  ...sinkOptions,
  spool: def(boolean(), true),
  endpoint: opt(string({ doc: 'http(s) URL', check: checkEndpoint })),
  bucket: req(string({ doc: 'S3 bucket name', check: checkBucket })),
  region: def(string(), 'us-east-1'),
  access_key_id: opt(string()),
  secret_access_key: secret(opt(string())),
  force_path_style: def(boolean(), true),
  // S3's minimum part, as lib-storage and Fluent Bit default to: peak RSS under a 1,000,000-line
  // burst 176-183 vs 187-189 MiB for 8 MiB parts (bench/e2e.bench.ts tcp-s3, alternated runs).
  part_size_bytes: def(integer(5_242_880, 5_368_709_120), 5 * MIB),
  queue_size: def(integer(1, 64), 4),
  // Default max(64 MiB, part_size_bytes); must hold one part: checked in the build step.
  max_buffered_bytes: opt(integer(5_242_880)),
  shutdown_timeout_secs: def(integer(1, 3600), 30),
};

type CommonSink = Omit<FileSinkConfig, 'type' | 'path'>;

/** Fields every sink config has; settles compression_level against the codec. */
function commonSink(v: Values<typeof sinkOptions>, id: string, path: string, ctx: Ctx): CommonSink | Invalid {
  const levelPath = childPath(path, 'compression_level');
  let level: number | null = null;
  if (v.compression === 'none') {
    if (v.compression_level !== null) return report(ctx, levelPath, 'has no effect with compression none; remove it');
  } else {
    const range = COMPRESSION_LEVELS[v.compression];
    level = v.compression_level ?? range.default;
    if (level < range.min || level > range.max) {
      return report(ctx, levelPath, rangeMessage(range.min, range.max, level, ` for ${v.compression}`));
    }
  }
  const { inputs, key_prefix, compression, upload_period_secs, max_object_bytes, spool, max_spool_bytes, spool_sync, spool_sync_interval_ms, when_full } = v;
  return { id, inputs, key_prefix, compression, compression_level: level, upload_period_secs, max_object_bytes, spool, max_spool_bytes, spool_sync, spool_sync_interval_ms, when_full };
}

export const sinkTypes: { readonly [T in SinkType]: ComponentType<Extract<SinkConfig, { type: T }>> } = {
  file: componentType(fileOptions, (v, id, path, ctx): FileSinkConfig | Invalid => {
    const common = commonSink(v, id, path, ctx);
    if (common === INVALID) return INVALID;
    return { ...common, type: 'file', path: v.path };
  }),
  aws_s3: componentType(awsS3Options, (v, id, path, ctx): AwsS3SinkConfig | Invalid => {
    const common = commonSink(v, id, path, ctx);
    let ok = common !== INVALID;
    if ((v.access_key_id === null) !== (v.secret_access_key === null)) {
      const [given, missing] = v.access_key_id === null ? ['secret_access_key', 'access_key_id'] : ['access_key_id', 'secret_access_key'];
      report(ctx, childPath(path, missing), `is required when ${given} is given (give both, or neither to use the AWS default credential chain)`);
      ok = false;
    }
    const maxBuffered = v.max_buffered_bytes ?? Math.max(64 * MIB, v.part_size_bytes);
    if (maxBuffered < v.part_size_bytes) {
      report(ctx, childPath(path, 'max_buffered_bytes'), `must be at least part_size_bytes (${v.part_size_bytes}), got ${maxBuffered}`);
      ok = false;
    }
    if (!ok || common === INVALID) return INVALID;
    return {
      ...common,
      type: 'aws_s3',
      endpoint: v.endpoint,
      bucket: v.bucket,
      region: v.region,
      access_key_id: v.access_key_id,
      secret_access_key: v.secret_access_key,
      force_path_style: v.force_path_style,
      part_size_bytes: v.part_size_bytes,
      queue_size: v.queue_size,
      max_buffered_bytes: maxBuffered,
      shutdown_timeout_secs: v.shutdown_timeout_secs,
    };
  }),
};
