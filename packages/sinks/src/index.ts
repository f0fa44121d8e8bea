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
  type ObjectError,
  type ObjectInfo,
  ObjectWriter,
  type ObjectWriterEvents,
  type ObjectWriterOptions,
  type ObjectWriterStats,
} from './object-writer/object-writer.ts';
export { FileStore, type FileStoreCheck, type FileStoreOptions } from './file/file-store.ts';
// aws_s3 exports are added by its author
