export type { ObjectMeta, ObjectStore, ObjectStoreCheck, ObjectUpload } from './object-store.ts';
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
export { DISK_RETRY_FIRST_MS, DISK_RETRY_MAX_MS, diskRetryDelayMs, DiskStall, retryableDiskError, type DiskHooks, type DiskNotice, type DiskTarget } from './file/disk-retry.ts';
export { S3Store, type S3StoreOptions, type S3StoreLogger } from './aws-s3/s3-store.ts';
export { createS3Client, s3StoreFromConfig, PatientRetryStrategy, type S3ClientOptions, type S3StoreHooks, type RetryNotice, type RequestNotice } from './aws-s3/config-to-client.ts';
export * from './aws-s3/errors.ts';
export { abortIncompleteUploads } from './aws-s3/orphan-uploads.ts';
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
