export type { ObjectMeta, ObjectStore, ObjectStoreCheck, ObjectUpload } from './object-store.ts';
export { freeNow } from './free-now.ts';
export {
  type Codec,
  contentEncodingFor,
  extensionFor,
  NDJSON_CONTENT_TYPE,
  newUniqueId,
  objectKey,
} from './object-writer/keys.ts';
export {
  type Frame,
  type IndexFailure,
  type IndexWritten,
  type ObjectError,
  type ObjectInfo,
  ObjectWriter,
  type ObjectWriterEvents,
  type ObjectWriterOptions,
  type ObjectWriterStats,
  type UnfinishedObject,
} from './object-writer/object-writer.ts';
export { FileStore, type FileStoreCheck, type FileStoreOptions } from './file/file-store.ts';
export {
  DISK_RETRY_FIRST_MS,
  DISK_RETRY_MAX_MS,
  diskRetryDelayMs,
  DiskStall,
  retryableDiskError,
  type DiskHooks,
  type DiskNotice,
  type DiskTarget,
} from './file/disk-retry.ts';
// The aws_s3 store's values live in '@sluice/sinks/aws-s3': loading them loads the AWS SDK
// (~33 MiB resident), which a daemon without an aws_s3 sink never needs. Types cost nothing.
export type { S3Store, S3StoreOptions, S3StoreLogger } from './aws-s3/s3-store.ts';
export type { S3ClientOptions, S3StoreHooks, RetryNotice, RequestNotice } from './aws-s3/config-to-client.ts';
export * from './aws-s3/errors.ts';
export {
  cloneFacts,
  decodeIndex,
  encodeIndex,
  INDEX_MAX_BYTES,
  INDEX_VERSION,
  type IndexFacts,
  indexKeyOf,
  isIndexKey,
  mergeFacts,
  writeIndex,
} from './object-writer/object-index.ts';
