/**
 * S3Store: an ObjectStore over an S3 bucket (`aws_s3` sink), any S3-compatible server.
 *
 * Each object is one MultipartUpload (multipart.ts), streamed as it is written:
 *
 *   write(chunk) ──copy──► part buffer of partSizeBytes ──► UploadPart x queueSize
 *                          (a part leaves as soon as it is full)  (retried by the client)
 *   close() ──► end ──► last part + CompleteMultipartUpload ──► HEAD (size check) ──► resolve
 *                       (an object under one part is a single PutObject instead)
 *
 * so memory follows the part size and the queue, never the upload period or the object size;
 * a part's buffer is freed as soon as S3 stored it.
 *
 * Backpressure: the store counts the bytes written to any of its uploads and not yet stored
 * by S3 (a part counts as stored once its UploadPart answered). write() returns
 * false while that count is above maxBufferedBytes, and 'drain' follows once it is back
 * under. One exception keeps it from deadlocking: an upload holding no more than one part is
 * never told to wait, since its bytes cannot leave before the part is full. So the bound
 * holds to within one part per open upload.
 *
 * Failures: the client retries transient errors for a long time (config-to-client.ts), so a
 * failure that reaches us is final: the upload aborts the multipart upload, close() rejects
 * with SLUICE_ERR_S3_UPLOAD naming the sink and the key, and write() discards from then on
 * (emitting any 'drain' it owes). Messages never contain credentials.
 *
 * Ceph RGW quirk: CompleteMultipartUpload answers an empty ETag (docs/wire.md, "S3 and Ceph RGW"),
 * so success is judged by a HEAD of the object, whose size must be the bytes written. A
 * completion whose answer was lost and whose retry finds NoSuchUpload counts as done when the
 * HEAD agrees (Ceph itself answers such a retry 200).
 *
 * abort() waits for the parts in flight, then makes sure neither the object nor the multipart
 * upload remains (even when the completion won the race). What it cannot reach during an
 * outage longer than the retry budget stays as an incomplete multipart upload: buckets should
 * carry an AbortIncompleteMultipartUpload lifecycle rule as the safety net.
 */
import { EventEmitter } from 'node:events';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { MultipartUpload } from './multipart.ts';
import { abortIncompleteUploads } from './orphan-uploads.ts';
import {
  ERR_CONFIG,
  ERR_S3_CHECK,
  ERR_S3_CREDENTIALS,
  ERR_S3_NO_BUCKET,
  ERR_S3_UNREACHABLE,
  ERR_S3_UPLOAD,
  ERR_SINK_STATE,
  SluiceError,
  type SluiceErrorCode,
} from '@sluice/schema';
import type { ObjectMeta, ObjectStore, ObjectUpload } from '../object-store.ts';
import { describeError, errorName, httpStatusOf, withFailureReason } from './errors.ts';

/** The part of a pino logger the store uses. */
export interface S3StoreLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface S3StoreOptions {
  /** The sink's id, named in every error. */
  sinkId: string;
  /** From createS3Client(); shared by all uploads of the store. */
  client: S3Client;
  bucket: string;
  /** 5 MiB (S3's minimum part) to 5 GiB. */
  partSizeBytes: number;
  /** Parts of one object uploading at once. */
  queueSize: number;
  /** Bytes written to the store and not yet in S3 above which write() returns false. */
  maxBufferedBytes: number;
  logger?: S3StoreLogger;
  /** check() gives up after this long (connect, retries and all). Default 5 s. */
  checkTimeoutMs?: number;
}

const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
const DEFAULT_CHECK_TIMEOUT_MS = 5_000;

export class S3Store implements ObjectStore {
  readonly sinkId: string;
  readonly bucket: string;
  readonly partSizeBytes: number;
  readonly queueSize: number;
  readonly maxBufferedBytes: number;
  readonly client: S3Client;
  readonly logger: S3StoreLogger | undefined;
  /** write() copies into a part buffer (multipart.ts): the caller may free the chunk at once. */
  readonly copiesChunks = true;
  readonly #checkTimeoutMs: number;
  /** Bytes written to open uploads that S3 has not stored yet. */
  #buffered = 0;
  /** Uploads whose write() returned false and that are owed a 'drain'. */
  readonly #waiting = new Set<S3Upload>();
  #secret: string | undefined | null = null;

  /** @throws SluiceError SLUICE_ERR_CONFIG on sizes S3 would refuse. */
  constructor(opts: S3StoreOptions) {
    this.sinkId = opts.sinkId;
    this.bucket = opts.bucket;
    this.client = opts.client;
    this.partSizeBytes = opts.partSizeBytes;
    this.queueSize = opts.queueSize;
    this.maxBufferedBytes = opts.maxBufferedBytes;
    this.logger = opts.logger;
    this.#checkTimeoutMs = opts.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
    const bad = (what: string) => new SluiceError(ERR_CONFIG, `sinks.${this.sinkId}: ${what}`);
    if (
      !Number.isInteger(opts.partSizeBytes) ||
      opts.partSizeBytes < MIN_PART_BYTES ||
      opts.partSizeBytes > MAX_PART_BYTES
    ) {
      throw bad(
        `part_size_bytes must be between ${MIN_PART_BYTES} (5 MiB, S3's minimum part) and ${MAX_PART_BYTES}, got ${opts.partSizeBytes}`,
      );
    }
    if (!Number.isInteger(opts.queueSize) || opts.queueSize < 1) {
      throw bad(`queue_size must be at least 1, got ${opts.queueSize}`);
    }
    if (!(opts.maxBufferedBytes >= opts.partSizeBytes)) {
      throw bad(
        `max_buffered_bytes must be at least part_size_bytes (${opts.partSizeBytes}), got ${opts.maxBufferedBytes}`,
      );
    }
  }

  /** Bytes written and not yet stored by S3, over all open uploads (for metrics and tests). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Starts the upload at once; never throws: failures surface from close(). */
  open(key: string, meta: ObjectMeta): ObjectUpload {
    return new S3Upload(this, key, meta);
  }

  /** Abort the incomplete multipart uploads of exactly `key` (orphan-uploads.ts). */
  abortIncompleteUploads(key: string): Promise<number> {
    return abortIncompleteUploads(this, key);
  }

  /** Close the client's keep-alive sockets. */
  release(): void {
    this.client.destroy();
  }

  /**
   * HeadBucket, within checkTimeoutMs.
   * @throws SluiceError SLUICE_ERR_S3_NO_BUCKET | SLUICE_ERR_S3_CREDENTIALS |
   *   SLUICE_ERR_S3_UNREACHABLE | SLUICE_ERR_S3_CHECK, naming the sink, bucket and endpoint.
   */
  async check(): Promise<void> {
    const signal = AbortSignal.timeout(this.#checkTimeoutMs);
    const cmd = new HeadBucketCommand({ Bucket: this.bucket });
    // An abort reports only "Request aborted": keep what the last try ran into
    // (ECONNREFUSED, a connect timeout) for the message. Inside the retry middleware
    // (same step, lower priority), so it sees every try. A try cut short by the timeout
    // itself fails with the abort: the try before it says more.
    let lastTry: unknown;
    cmd.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          if (!signal.aborted || lastTry === undefined) lastTry = err;
          throw err;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'sluiceCheckLastTry' },
    );
    try {
      await this.client.send(cmd, { abortSignal: signal });
    } catch (err) {
      throw await this.#checkError(err, lastTry, signal.aborted);
    }
  }

  async #checkError(err: unknown, lastTry: unknown, timedOut: boolean): Promise<SluiceError> {
    const where = await this.where();
    const sink = `sink ${this.sinkId}`;
    const cause = lastTry ?? err;
    const status = httpStatusOf(cause);
    const name = errorName(cause);
    let code: SluiceErrorCode;
    let message: string;
    if (name === 'CredentialsProviderError') {
      code = ERR_S3_CREDENTIALS;
      message = `${sink}: no S3 credentials found for ${where} (${describeError(cause)}); set access_key_id and secret_access_key, or configure the AWS default credential chain`;
    } else if (status === 404 || name === 'NoSuchBucket') {
      code = ERR_S3_NO_BUCKET;
      message = `${sink}: bucket "${this.bucket}" does not exist at ${where}; create it or fix the sink's bucket`;
    } else if (status === 401 || status === 403) {
      code = ERR_S3_CREDENTIALS;
      message = `${sink}: ${where} refused the credentials for bucket "${this.bucket}" (${describeError(cause)}); check access_key_id and secret_access_key, and that they may read and write the bucket`;
    } else if (status === undefined) {
      code = ERR_S3_UNREACHABLE;
      const why = timedOut ? `no answer within ${this.#checkTimeoutMs} ms` : 'no answer';
      message = `${sink}: cannot reach ${where}: ${why} (${describeError(cause)}); check the endpoint and the network`;
    } else {
      code = ERR_S3_CHECK;
      const hint = status === 301 || status === 400 ? '; check region, endpoint and force_path_style' : '';
      message = `${sink}: HeadBucket "${this.bucket}" at ${where} failed: ${describeError(cause)}${hint}`;
    }
    return new SluiceError(code, await this.redact(message), { cause: err });
  }

  /** "endpoint http://host:port" or "AWS region eu-west-1", for messages (never credentials). */
  async where(): Promise<string> {
    try {
      const cfg = this.client.config;
      if (cfg.endpoint !== undefined && cfg.isCustomEndpoint !== false) {
        const ep = await cfg.endpoint();
        const port = ep.port !== undefined ? `:${ep.port}` : '';
        return `endpoint ${ep.protocol}//${ep.hostname}${port}${ep.path === '/' ? '' : ep.path}`;
      }
      return `AWS region ${await cfg.region()}`;
    } catch {
      return 'the S3 endpoint';
    }
  }

  /** Belt and braces: no message of ours may carry the secret key, whatever an error said. */
  async redact(message: string): Promise<string> {
    if (this.#secret === null) {
      try {
        this.#secret = (await this.client.config.credentials()).secretAccessKey;
      } catch {
        this.#secret = undefined;
      }
    }
    const secret = this.#secret;
    return secret !== undefined && secret.length >= 8 ? message.replaceAll(secret, '***') : message;
  }

  /** @internal An upload buffered `n` more bytes; true = it must wait for 'drain'. */
  addBuffered(upload: S3Upload, n: number): boolean {
    this.#buffered += n;
    if (!this.#mustWait(upload)) return false;
    this.#waiting.add(upload);
    return true;
  }

  /** @internal S3 stored `n` bytes (or an upload ended): wake whoever may go on. */
  releaseBuffered(n: number): void {
    this.#buffered -= n;
    for (const upload of this.#waiting) {
      if (!this.#mustWait(upload)) {
        this.#waiting.delete(upload);
        upload.emit('drain');
      }
    }
  }

  /** @internal An upload ended: pay the 'drain' it owes, since its caller may be waiting. */
  forget(upload: S3Upload): void {
    if (this.#waiting.delete(upload)) upload.emit('drain');
  }

  #mustWait(upload: S3Upload): boolean {
    return this.#buffered > this.maxBufferedBytes && upload.pendingBytes > this.partSizeBytes;
  }
}

type State = 'open' | 'closing' | 'aborting' | 'done';

/** One object being uploaded. Created by S3Store.open(). */
class S3Upload extends EventEmitter implements ObjectUpload {
  readonly key: string;
  readonly #store: S3Store;
  readonly #upload: MultipartUpload;
  #state: State = 'open';
  #written = 0;
  /** Bytes S3 has stored (parts that answered). */
  #stored = 0;
  /** Settles when the upload is done, one way or the other; never rejects. */
  readonly #outcome: Promise<SluiceError | undefined>;
  #closing: Promise<void> | undefined;
  #aborting: Promise<void> | undefined;
  /** S3 has the whole object (the upload finished, or a lost completion was verified). */
  #complete = false;

  constructor(store: S3Store, key: string, meta: ObjectMeta) {
    super();
    this.#store = store;
    this.key = key;
    this.#upload = new MultipartUpload({
      client: store.client,
      bucket: store.bucket,
      key,
      contentType: meta.contentType,
      ...(meta.contentEncoding !== undefined ? { contentEncoding: meta.contentEncoding } : {}),
      partSizeBytes: store.partSizeBytes,
      queueSize: store.queueSize,
      onStored: (bytes) => {
        if (this.#state === 'done') return;
        const n = Math.min(bytes, this.#written - this.#stored);
        this.#stored += n;
        this.#store.releaseBuffered(n);
      },
    });
    this.#outcome = this.#upload
      .done()
      .then(
        () => this.#verify(),
        (err: unknown) => this.#recover(err),
      )
      .then(
        (error) => error,
        (error: unknown) => this.#fail('failed', error),
      )
      .then((error) => this.#settle(error));
  }

  /** Bytes written to this upload and not yet stored by S3. */
  get pendingBytes(): number {
    return this.#written - this.#stored;
  }

  write(chunk: Uint8Array): boolean {
    if (this.#state === 'closing' || this.#closing !== undefined) {
      throw new SluiceError(
        ERR_SINK_STATE,
        `sink ${this.#store.sinkId}: write() on s3://${this.#store.bucket}/${this.key} after close()`,
      );
    }
    // Failed or aborted: discard; close() reports the failure.
    if (this.#state !== 'open') return true;
    const n = chunk.byteLength;
    if (n === 0) return true;
    this.#written += n;
    this.#upload.write(chunk);
    return !this.#store.addBuffered(this, n);
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    if (this.#aborting !== undefined) {
      this.#closing = Promise.reject(this.#error('close() after abort(): the object was thrown away'));
      return this.#closing;
    }
    if (this.#state === 'open') {
      this.#state = 'closing';
      this.#upload.end();
    }
    this.#closing = this.#outcome.then((error) => {
      if (error !== undefined) throw error;
    });
    return this.#closing;
  }

  /**
   * Throws the object away: stops the upload, aborts the multipart upload (so no parts stay
   * billed in the bucket), and deletes the object if it was completed meanwhile (a close()
   * in flight then rejects). In-flight parts finish first. A no-op after close() resolved.
   * @throws SluiceError SLUICE_ERR_S3_UPLOAD when the multipart upload could not be aborted.
   */
  abort(): Promise<void> {
    this.#aborting ??= this.#abort();
    return this.#aborting;
  }

  async #abort(): Promise<void> {
    if (this.#state === 'done') {
      // Settled before: a stored object is not partial (close() resolves or already did).
      if ((await this.#outcome) === undefined) return;
    } else {
      this.#state = 'aborting';
      this.#upload.abort(new Error('aborted'));
      await this.#outcome;
    }
    const { client, bucket } = this.#store;
    try {
      if (this.#complete) {
        // The completion was in flight and won the race: the object exists whole. Remove it.
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: this.key }));
      }
      // The upload aborts on its way out; this covers an abort of its own that failed.
      const uploadId = this.#upload.uploadId;
      if (uploadId !== undefined) {
        await client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: this.key, UploadId: uploadId }))
          .catch((err: unknown) => {
            if (errorName(err) !== 'NoSuchUpload' && httpStatusOf(err) !== 404) throw err;
          });
      }
    } catch (err) {
      throw await this.#fail('could not be thrown away (parts may remain until a lifecycle rule removes them)', err);
    }
  }

  /** The upload says done: check S3 has the whole object. */
  async #verify(): Promise<SluiceError | undefined> {
    this.#complete = true;
    if (this.#state === 'aborting') return undefined; // abort() deletes it
    const { client, bucket } = this.#store;
    let size: number | undefined;
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: this.key }));
      size = head.ContentLength;
      this.#store.logger?.debug({ key: this.key, bytes: size, etag: head.ETag }, 'object stored');
    } catch (err) {
      if (httpStatusOf(err) === 404) {
        this.#complete = false;
        return withFailureReason(await this.#fail('is missing right after its upload completed', err), 'verify');
      }
      // The upload itself succeeded; a HEAD that fails for good does not make it less durable.
      this.#store.logger?.warn(
        { key: this.key, error: describeError(err) },
        'object stored, but HEAD to verify it failed',
      );
      return undefined;
    }
    if (size !== this.#written) {
      // Never leave a reader a wrong object: close() rejects, so the object must go.
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: this.key })).catch(() => {});
      this.#complete = false;
      return withFailureReason(
        await this.#fail(`is ${size} bytes in S3 but ${this.#written} were written (deleted it)`, undefined),
        'verify',
      );
    }
    return undefined;
  }

  /** The upload failed (after the client's retries; it has aborted the multipart upload). */
  async #recover(err: unknown): Promise<SluiceError | undefined> {
    if (this.#state === 'aborting') return undefined; // #settle reports the abort
    // CompleteMultipartUpload that succeeded but whose answer was lost (a connection reset):
    // the retry finds no upload any more. The object is then there, whole.
    if (errorName(err) === 'NoSuchUpload' && this.#upload.uploadId !== undefined) {
      const verified = await this.#verify();
      if (verified === undefined) {
        this.#store.logger?.warn(
          { key: this.key },
          'CompleteMultipartUpload was retried after a lost answer; the object is whole',
        );
        return undefined;
      }
    }
    return this.#fail('failed', err);
  }

  #settle(error: SluiceError | undefined): SluiceError | undefined {
    if (this.#state === 'aborting') {
      // Whatever the upload made of it, the object is thrown away (abort() deletes it if needed).
      error = this.#error('was aborted');
    } else if (error !== undefined) {
      this.#store.logger?.warn({ key: this.key, error: error.message }, 'S3 upload failed');
    }
    this.#state = 'done';
    const unstored = this.#written - this.#stored;
    this.#stored = this.#written;
    this.#store.releaseBuffered(unstored);
    this.#store.forget(this);
    return error;
  }

  #error(what: string, cause?: unknown): SluiceError {
    const { sinkId, bucket } = this.#store;
    const detail = cause === undefined ? '' : `: ${describeError(cause)}`;
    return new SluiceError(
      ERR_S3_UPLOAD,
      `sink ${sinkId}: upload of s3://${bucket}/${this.key} ${what}${detail}`,
      cause === undefined ? undefined : { cause },
    );
  }

  async #fail(what: string, cause: unknown): Promise<SluiceError> {
    const error = this.#error(what, cause);
    const clean = await this.#store.redact(error.message);
    return clean === error.message ? error : new SluiceError(ERR_S3_UPLOAD, clean, { cause });
  }
}
