/** The aws_s3 store and its S3 client: importing this loads the AWS SDK. */
export { S3Store, type S3StoreOptions, type S3StoreLogger } from './aws-s3/s3-store.ts';
export {
  createS3Client,
  s3StoreFromConfig,
  PatientRetryStrategy,
  type S3ClientOptions,
  type S3StoreHooks,
  type RetryNotice,
  type RequestNotice,
} from './aws-s3/config-to-client.ts';
export { abortIncompleteUploads } from './aws-s3/orphan-uploads.ts';
