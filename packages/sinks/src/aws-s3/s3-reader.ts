/**
 * Reading an aws_s3 sink's bucket back (`sluice read`): ListObjectsV2 (which returns keys in
 * UTF-8 byte order) and streaming GetObject. Retries are short: a reader at a terminal wants
 * "cannot reach" in seconds, not the sink's 15 minutes of patience.
 */
import {
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  ERR_S3_CHECK,
  ERR_S3_CREDENTIALS,
  ERR_S3_NO_BUCKET,
  ERR_S3_UNREACHABLE,
  SluiceError,
  type SluiceErrorCode,
} from '@sluice/schema';
import type { ListedObject, ObjectReader } from '../object-reader.ts';
import type { AwsS3SinkConfig } from './config.ts';
import { createS3Client } from './config-to-client.ts';
import { describeError, errorName, httpStatusOf } from './errors.ts';

/** Retry a failing request this long: ECONNREFUSED answers in ~10 s instead of 15 min. */
const READ_RETRY_MS = 10_000;

export class S3Reader implements ObjectReader {
  readonly location: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #where: string;
  readonly #secret: string | null;

  constructor(
    c: Pick<
      AwsS3SinkConfig,
      'endpoint' | 'region' | 'access_key_id' | 'secret_access_key' | 'force_path_style' | 'bucket' | 'key_prefix'
    >,
  ) {
    this.#client = createS3Client({
      endpoint: c.endpoint,
      region: c.region,
      accessKeyId: c.access_key_id,
      secretAccessKey: c.secret_access_key,
      forcePathStyle: c.force_path_style,
      maxRetryDurationMs: READ_RETRY_MS,
      maxRetryDelayMs: 2_000,
    });
    this.#bucket = c.bucket;
    this.#prefix = c.key_prefix;
    this.#secret = c.secret_access_key;
    this.location = `s3://${c.bucket}/${c.key_prefix}`;
    this.#where = c.endpoint !== null ? `endpoint ${new URL(c.endpoint).origin}` : `AWS region ${c.region}`;
  }

  async *list(startAfter: string | undefined, signal: AbortSignal): AsyncIterable<ListedObject> {
    let token: string | undefined;
    do {
      let res: ListObjectsV2CommandOutput;
      try {
        res = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: this.#prefix,
            ...(token !== undefined
              ? { ContinuationToken: token }
              : startAfter !== undefined
                ? { StartAfter: startAfter }
                : {}),
          }),
          { abortSignal: signal },
        );
      } catch (err) {
        signal.throwIfAborted();
        throw this.#listError(err);
      }
      for (const o of res.Contents ?? []) {
        if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0 };
      }
      token = res.IsTruncated === true ? res.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async *read(key: string, signal: AbortSignal): AsyncIterable<Uint8Array> {
    let body: AsyncIterable<Uint8Array>;
    try {
      const res = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }), {
        abortSignal: signal,
      });
      body = res.Body as unknown as AsyncIterable<Uint8Array>;
    } catch (err) {
      throw new Error(this.#redact(describeError(err)), { cause: err });
    }
    yield* body;
  }

  release(): void {
    this.#client.destroy();
  }

  #redact(message: string): string {
    const secret = this.#secret;
    return secret !== null && secret.length >= 8 ? message.replaceAll(secret, '***') : message;
  }

  /** One line naming the problem and what to change, as `validate --check-connectivity` says it. */
  #listError(cause: unknown): SluiceError {
    const status = httpStatusOf(cause);
    const name = errorName(cause);
    const where = this.#where;
    let code: SluiceErrorCode;
    let message: string;
    if (name === 'CredentialsProviderError') {
      code = ERR_S3_CREDENTIALS;
      message = `no S3 credentials found for ${where} (${describeError(cause)}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile, or read through --config/--sink`;
    } else if (status === 404 || name === 'NoSuchBucket') {
      code = ERR_S3_NO_BUCKET;
      message = `bucket "${this.#bucket}" does not exist at ${where}`;
    } else if (status === 401 || status === 403) {
      code = ERR_S3_CREDENTIALS;
      message = `${where} refused the credentials for bucket "${this.#bucket}" (${describeError(cause)}); check them and that they may list and read the bucket`;
    } else if (status === undefined) {
      code = ERR_S3_UNREACHABLE;
      message = `cannot reach ${where} (${describeError(cause)}); check --endpoint and the network`;
    } else {
      code = ERR_S3_CHECK;
      const hint = status === 301 || status === 400 ? '; check --region and --endpoint' : '';
      message = `listing s3://${this.#bucket}/${this.#prefix} at ${where} failed: ${describeError(cause)}${hint}`;
    }
    return new SluiceError(code, this.#redact(message), { cause });
  }
}
