/** The `aws_s3` sink: objects into S3 or an S3-compatible store, as streaming multipart uploads. */
import {
  INVALID,
  boolean,
  childPath,
  componentType,
  def,
  integer,
  opt,
  report,
  req,
  secret,
  string,
  type Invalid,
} from '@sluice/schema';
import { commonSink, sinkOptions, type SinkBase, type SinkDefinition } from '../config.ts';

const MIB = 1024 * 1024;

export interface AwsS3SinkConfig extends SinkBase {
  readonly type: 'aws_s3';
  /** null = AWS. */
  readonly endpoint: string | null;
  readonly bucket: string;
  readonly region: string;
  /** Both null = the AWS default credential chain; otherwise both set. */
  readonly access_key_id: string | null;
  /** A secret: never log it. */
  readonly secret_access_key: string | null;
  readonly force_path_style: boolean;
  readonly part_size_bytes: number;
  readonly queue_size: number;
  readonly max_buffered_bytes: number;
  readonly shutdown_timeout_secs: number;
}

/** https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (the core of them). */
export function checkBucket(name: string): string | undefined {
  const ok =
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !name.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(name);
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

const awsS3Options = {
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

export const awsS3Sink: SinkDefinition<AwsS3SinkConfig> = {
  type: 'aws_s3',
  ...componentType(awsS3Options, (v, id, path, ctx): AwsS3SinkConfig | Invalid => {
    const common = commonSink(v, id, path, ctx);
    let ok = common !== INVALID;
    if ((v.access_key_id === null) !== (v.secret_access_key === null)) {
      const [given, missing] =
        v.access_key_id === null ? ['secret_access_key', 'access_key_id'] : ['access_key_id', 'secret_access_key'];
      report(
        ctx,
        childPath(path, missing),
        `is required when ${given} is given (give both, or neither to use the AWS default credential chain)`,
      );
      ok = false;
    }
    const maxBuffered = v.max_buffered_bytes ?? Math.max(64 * MIB, v.part_size_bytes);
    if (maxBuffered < v.part_size_bytes) {
      report(
        ctx,
        childPath(path, 'max_buffered_bytes'),
        `must be at least part_size_bytes (${v.part_size_bytes}), got ${maxBuffered}`,
      );
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
  async store(c, ctx) {
    // The AWS SDK is imported when an aws_s3 sink is built, not when the registry is.
    const { s3StoreFromConfig } = await import('./config-to-client.ts');
    return s3StoreFromConfig(c, ctx.logger, ctx.hooks);
  },
  location: (c) => `s3://${c.bucket}`,
  shutdownTimeoutSecs: (c) => c.shutdown_timeout_secs,
  abandonedNote:
    ". An incomplete multipart upload may remain until the next start or the bucket's lifecycle rule removes it",
  async reader(c) {
    const { S3Reader } = await import('./s3-reader.ts');
    return new S3Reader(c);
  },
  // s3://bucket/prefix; credentials from the AWS default chain (access_key_id left out).
  readPath(path, opts) {
    if (!path.startsWith('s3://')) return undefined;
    const rest = path.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const key_prefix = slash < 0 ? '' : rest.slice(slash + 1);
    return {
      bucket,
      key_prefix,
      ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
      ...(opts.region !== undefined ? { region: opts.region } : {}),
    };
  },
};
