/**
 * What every sink's options share (inputs, key layout, compression, rotation, spool), and the
 * shape of a sink type's definition: type id, option table, build step, and the store its
 * objects go to. docs/internals.md, "Adding a component", walks through a new one.
 */
import {
  boolean,
  childPath,
  def,
  integer,
  oneOf,
  opt,
  rangeMessage,
  report,
  req,
  string,
  stringList,
  type ComponentType,
  type Compression,
  type Ctx,
  type Invalid,
  type Values,
  type WhenFull,
} from '@sluice/schema';
import type { ObjectReader, ReadPathOptions } from './object-reader.ts';
import type { ObjectStore } from './object-store.ts';
import type { S3StoreHooks } from './aws-s3/config-to-client.ts';
import type { S3StoreLogger } from './aws-s3/s3-store.ts';
import type { DiskHooks } from './file/disk-retry.ts';

const MIB = 1024 * 1024;

export interface SinkBase {
  /** The key this sink has under `sinks`. */
  readonly id: string;
  readonly inputs: readonly string[];
  readonly key_prefix: string;
  readonly compression: Compression;
  /** null exactly when `compression` is `none`. */
  readonly compression_level: number | null;
  readonly upload_period_secs: number;
  readonly max_object_bytes: number;
  /** Write-ahead spool under `<data_dir>/spool/<id>/`. */
  readonly spool: boolean;
  readonly max_spool_bytes: number;
  readonly spool_sync: 'per_batch' | 'interval';
  readonly spool_sync_interval_ms: number;
  /** While the sink cannot take more (slow store, blocked disk, full spool): hold the sources back, or drop and count. */
  readonly when_full: WhenFull;
  /** Write an index beside every object (its record-time range and field values) for `sluice read`. */
  readonly index: boolean;
}

export const COMPRESSION_LEVELS: {
  readonly [C in Exclude<Compression, 'none'>]: { min: number; max: number; default: number };
} = {
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
  // An index beside every object, so `sluice read` skips what cannot match. The native scan
  // gathers its facts as it validates (~50 ns a line, +15 % of a worker's batch on
  // bench/parse-tag.bench.ts; docs/benchmarks.md, "Object index facts").
  index: def(boolean(), true),
};

/** Fields every sink config has; settles compression_level against the codec. */
export function commonSink(v: Values<typeof sinkOptions>, id: string, path: string, ctx: Ctx): SinkBase | Invalid {
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
  const {
    inputs,
    key_prefix,
    compression,
    upload_period_secs,
    max_object_bytes,
    spool,
    max_spool_bytes,
    spool_sync,
    spool_sync_interval_ms,
    when_full,
    index,
  } = v;
  return {
    id,
    inputs,
    key_prefix,
    compression,
    compression_level: level,
    upload_period_secs,
    max_object_bytes,
    spool,
    max_spool_bytes,
    spool_sync,
    spool_sync_interval_ms,
    when_full,
    index,
  };
}

/** What the daemon lends a sink's store when it builds one. */
export interface SinkStoreContext {
  /** The sink's child logger. */
  logger?: S3StoreLogger;
  /** See every retry and request of a remote store (metrics, rate-limited logs). */
  hooks?: S3StoreHooks;
  /** See every write a local disk refuses, and its recovery (metrics, rate-limited logs). */
  diskHooks?: DiskHooks;
}

/** One sink type: type id, option table, build step, and its store. */
export interface SinkDefinition<C extends SinkBase & { readonly type: string }> extends ComponentType<C> {
  readonly type: C['type'];
  /** The store its objects go to. Heavy modules (an SDK) load here, only when configured. */
  store(config: C, ctx: SinkStoreContext): Promise<ObjectStore>;
  /** Where its objects go, for people: a directory, `s3://bucket`. */
  location(config: C): string;
  /** How long its objects may take to complete at shutdown; null = only the daemon's deadline. */
  shutdownTimeoutSecs(config: C): number | null;
  /** Said after the keys of objects given up at shutdown (what they may leave behind), or ''. */
  readonly abandonedNote: string;
  /** Reads its objects back (`sluice read`): its location, key_prefix and credentials. */
  reader(config: C): Promise<ObjectReader>;
  /**
   * The options of a sink of this type whose objects are at `path` (`sluice read --path`), for
   * its option table to check, or undefined when the path is not of its kind (`s3://` is).
   */
  readPath(path: string, opts: ReadPathOptions): Record<string, unknown> | undefined;
}
