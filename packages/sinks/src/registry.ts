/**
 * Every sink type Sluice knows, by type id. The config reads `sinks:` through this table and
 * the daemon builds each sink's store through it; neither names a type. A new sink type is a
 * folder beside these with its config.ts, and one line here (docs/internals.md).
 *
 * Importing this module loads only the definitions (and the file store): a remote store's SDK
 * loads when a sink of its type is built.
 */
import { resolve as resolvePath } from 'node:path';
import { ConfigError, INVALID, readSection, type Ctx } from '@sluice/schema';
import { awsS3Sink, type AwsS3SinkConfig } from './aws-s3/config.ts';
import type { SinkDefinition } from './config.ts';
import { fileSink, type FileSinkConfig } from './file/config.ts';
import { FileStore } from './file/file-store.ts';
import type { ObjectReader, ReadPathOptions } from './object-reader.ts';
import type { ObjectStore } from './object-store.ts';
import type { DiskHooks } from './file/disk-retry.ts';

export type SinkConfig = FileSinkConfig | AwsS3SinkConfig;
export type SinkType = SinkConfig['type'];

export const sinkTypes: { readonly [T in SinkType]: SinkDefinition<Extract<SinkConfig, { type: T }>> } = {
  file: fileSink,
  aws_s3: awsS3Sink,
};

/** The dead-letter directory (`dead_letter:`): a file store, labelled as a file sink in metrics. */
export const deadLetterSink = {
  type: fileSink.type,
  store: (path: string, diskHooks?: DiskHooks): ObjectStore =>
    new FileStore({ path: resolvePath(path), ...(diskHooks === undefined ? {} : { diskHooks }) }),
};

/** The definition of a configured sink. */
export function sinkDefinition<C extends SinkConfig>(config: C): SinkDefinition<C> {
  return sinkTypes[config.type] as unknown as SinkDefinition<C>;
}

/**
 * A reader for `sluice read --path`: the sink type whose kind of path it is (a directory,
 * `s3://bucket/prefix`) checks it with its own option table, as if it were configured.
 * @throws ConfigError naming the bad part (`bucket: "A" is not a valid S3 bucket name ...`).
 */
export async function readerForPath(path: string, opts: ReadPathOptions): Promise<ObjectReader> {
  for (const def of Object.values(sinkTypes) as SinkDefinition<SinkConfig>[]) {
    const raw = def.readPath(path, opts);
    if (raw === undefined) continue;
    const ctx: Ctx = { env: {}, issues: [] };
    const read = readSection({ ...raw, inputs: ['read'] }, '', def.options, ctx);
    const config = read === INVALID || !read.ok ? INVALID : def.build(read.values, 'read', '', ctx);
    if (config === INVALID || ctx.issues.length > 0) throw new ConfigError(ctx.issues);
    return def.reader(config);
  }
  throw new ConfigError([
    { path: '--path', message: `${JSON.stringify(path)} is neither a directory nor a URL of a store Sluice reads` },
  ]);
}

export type { AwsS3SinkConfig, FileSinkConfig };
export type { ListedObject, ObjectReader, ReadPathOptions } from './object-reader.ts';
export { checkBucket, checkEndpoint } from './aws-s3/config.ts';
export { COMPRESSION_LEVELS, type SinkBase, type SinkDefinition, type SinkStoreContext } from './config.ts';
export {
  decodeIndex,
  INDEX_MAX_BYTES,
  INDEX_VERSION,
  type IndexFacts,
  indexKeyOf,
  isIndexKey,
} from './object-writer/object-index.ts';
