/**
 * The S3Client an aws_s3 sink talks through: S3-compatible defaults (path style, no
 * aws-chunked bodies) and a patient retry strategy, so an S3 outage of a few minutes delays
 * objects instead of losing them.
 *
 * Why not the SDK's StandardRetryStrategy with a big maxAttempts (SDK 3.1169 /
 * @smithy/core 3.41, core/dist-cjs/submodules/retry):
 * - its retry quota is per client: 500 tokens, 14 per retry, refilled only by successes. All
 *   the uploads of a sink share the client, so an outage drains the quota after ~35 retries
 *   in total and every request after that fails at once ("No retry token available"): the
 *   quota protects a fleet from retry storms against a healthy service, but for one sink with
 *   a few parts in flight it turns a short outage into lost objects.
 * - its patience is counted in attempts, and the backoff (full jitter, 50 ms base, 20 s cap)
 *   makes the time an attempt count buys a matter of luck; we want "keep trying for 15 min".
 *
 * So PatientRetryStrategy keeps the SDK's error classification (the middleware hands us
 * TRANSIENT / THROTTLING / SERVER_ERROR / CLIENT_ERROR; see isRetryable) and its backoff
 * shape ("full jitter", https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/),
 * and replaces the quota and the attempt limit with a time budget per request. The middleware sleeps the
 * delay we return, racing the request's abortSignal, so an aborted request stops waiting.
 *
 * MultipartUpload (multipart.ts) sends every part (a Buffer, replayable) through client.send(), so a part
 * that fails transiently is retried on its own and the multipart upload goes on.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { ERR_CONFIG, SluiceError } from '@sluice/schema';
import type { AwsS3SinkConfig } from './config.ts';
import { describeError, failureReason, type FailureReason } from './errors.ts';
import { S3Store, type S3StoreLogger } from './s3-store.ts';

type RetryStrategyV2 = Extract<NonNullable<S3ClientConfig['retryStrategy']>, { recordSuccess: unknown }>;
type RetryToken = Awaited<ReturnType<RetryStrategyV2['acquireInitialRetryToken']>>;
type RetryErrorInfo = Parameters<RetryStrategyV2['refreshRetryTokenForRetry']>[1];

/** What the retry strategy reports about a retry (for a rate-limited log line). */
export interface RetryNotice {
  /** Retries of this request so far, this one included. */
  retry: number;
  delayMs: number;
  elapsedMs: number;
  errorType: RetryErrorInfo['errorType'];
  /** The error's class, for sluice_sink_retries_total{reason}. */
  reason: FailureReason;
  /** `name: message` of the error (never request headers, so never credentials). */
  error: string;
}

/** One S3 request as the caller saw it: every try and retry wait included. */
export interface RequestNotice {
  /** `UploadPartCommand`, `PutObjectCommand`, `CompleteMultipartUploadCommand`, ... */
  command: string;
  /** The request's object key, when it names one. */
  key?: string;
  ok: boolean;
  durationMs: number;
  /** Why it failed for good; null when ok. */
  reason: FailureReason | null;
}

export interface S3ClientOptions {
  /** http(s) URL of an S3-compatible endpoint; absent = AWS. */
  endpoint?: string | null;
  region: string;
  /** Both set, or both absent for the AWS default credential chain. */
  accessKeyId?: string | null;
  secretAccessKey?: string | null;
  forcePathStyle: boolean;
  /** Keep retrying a failing request this long before it fails for good. Default 15 min. */
  maxRetryDurationMs?: number;
  /** Longest wait between two tries. Default 20 s (the SDK's cap too). */
  maxRetryDelayMs?: number;
  /** Give up a TCP/TLS connect after this long (the try is then retried). Default 5 s. */
  connectTimeoutMs?: number;
  /** Give up a request whose socket stays silent this long (then retried). Default 60 s. */
  socketTimeoutMs?: number;
  /** Told about every retry; the caller rate-limits its logging. */
  onRetry?: (notice: RetryNotice) => void;
  /** Told about every request when it settles (after its retries), for metrics. */
  onRequest?: (notice: RequestNotice) => void;
}

const DEFAULT_MAX_RETRY_DURATION_MS = 15 * 60_000;
const DEFAULT_MAX_RETRY_DELAY_MS = 20_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_SOCKET_TIMEOUT_MS = 60_000;
/** First backoff ceiling; it doubles per retry up to maxRetryDelayMs. */
const BASE_DELAY_MS = 100;
/** Throttling (429, SlowDown) starts from a higher ceiling, as the SDK does. */
const THROTTLING_BASE_DELAY_MS = 1_000;

/**
 * An S3Client for a sink. The options Ceph RGW, MinIO and friends need
 * (docs/wire.md, "S3 and Ceph RGW"): path-style URLs, and checksums only WHEN_REQUIRED (with the
 * SDK defaults a streamed PutObject goes out aws-chunked and Ceph answers 411).
 * @throws SluiceError SLUICE_ERR_CONFIG when only one of the two credentials is given.
 */
export function createS3Client(cfg: S3ClientOptions): S3Client {
  const id = cfg.accessKeyId ?? null;
  const secret = cfg.secretAccessKey ?? null;
  if ((id === null) !== (secret === null)) {
    throw new SluiceError(
      ERR_CONFIG,
      'S3: give both access_key_id and secret_access_key, or neither (AWS default credential chain)',
    );
  }
  const client = new S3Client({
    region: cfg.region,
    ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
    ...(id !== null && secret !== null ? { credentials: { accessKeyId: id, secretAccessKey: secret } } : {}),
    forcePathStyle: cfg.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    retryStrategy: new PatientRetryStrategy({
      maxRetryDurationMs: cfg.maxRetryDurationMs ?? DEFAULT_MAX_RETRY_DURATION_MS,
      maxRetryDelayMs: cfg.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS,
      ...(cfg.onRetry ? { onRetry: cfg.onRetry } : {}),
    }),
    requestHandler: {
      connectionTimeout: cfg.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      // An idle timeout, not a total one: a 64 MiB part on a slow link must not time out,
      // a gateway that went silent mid-request must.
      socketTimeout: cfg.socketTimeoutMs ?? DEFAULT_SOCKET_TIMEOUT_MS,
    },
  });
  const onRequest = cfg.onRequest;
  if (onRequest !== undefined) {
    // At the initialize step, outside the retry middleware (finalizeRequest): one notice per
    // request, its duration covering every try. MultipartUpload sends each part through
    // client.send(), so parts are seen here too.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const started = performance.now();
        const command = String(context.commandName);
        const key = (args.input as { Key?: unknown } | undefined)?.Key;
        const named = typeof key === 'string' ? { key } : {};
        try {
          const out = await next(args);
          onRequest({ command, ...named, ok: true, durationMs: performance.now() - started, reason: null });
          return out;
        } catch (err) {
          onRequest({
            command,
            ...named,
            ok: false,
            durationMs: performance.now() - started,
            reason: failureReason(err),
          });
          throw err;
        }
      },
      { step: 'initialize', name: 'sluiceRequestNotice' },
    );
  }
  return client;
}

class PatientRetryToken implements RetryToken {
  readonly count: number;
  readonly delayMs: number;
  /** When the first try of this request failed (0 = it has not failed yet). */
  readonly firstFailureAt: number;

  constructor(count: number, delayMs: number, firstFailureAt: number) {
    this.count = count;
    this.delayMs = delayMs;
    this.firstFailureAt = firstFailureAt;
  }

  getRetryCount(): number {
    return this.count;
  }

  getRetryDelay(): number {
    return this.delayMs;
  }
}

const FIRST_TRY = new PatientRetryToken(0, 0, 0);

export interface PatientRetryOptions {
  maxRetryDurationMs: number;
  maxRetryDelayMs: number;
  onRetry?: (notice: RetryNotice) => void;
  /** For tests. */
  random?: () => number;
  now?: () => number;
}

/**
 * Retries transient, throttling and server errors with full-jitter exponential backoff until
 * `maxRetryDurationMs` have passed since the request first failed; never client errors
 * (403, 404, 400: retrying cannot fix them). No shared quota. See the file header.
 */
export class PatientRetryStrategy implements RetryStrategyV2 {
  readonly mode = 'standard';
  readonly #maxDurationMs: number;
  readonly #maxDelayMs: number;
  readonly #onRetry: ((notice: RetryNotice) => void) | undefined;
  readonly #random: () => number;
  readonly #now: () => number;

  constructor(opts: PatientRetryOptions) {
    this.#maxDurationMs = opts.maxRetryDurationMs;
    this.#maxDelayMs = opts.maxRetryDelayMs;
    this.#onRetry = opts.onRetry;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
  }

  async acquireInitialRetryToken(_scope: string): Promise<RetryToken> {
    return FIRST_TRY;
  }

  async refreshRetryTokenForRetry(token: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
    const prev = token instanceof PatientRetryToken ? token : FIRST_TRY;
    const type = info.errorType;
    // Thrown errors end the retries; the middleware then rethrows the request's own error.
    if (!isRetryable(info)) throw new Error(`not retryable (${type})`);
    const now = this.#now();
    const firstFailureAt = prev.firstFailureAt === 0 ? now : prev.firstFailureAt;
    const elapsedMs = now - firstFailureAt;
    const base = type === 'THROTTLING' ? THROTTLING_BASE_DELAY_MS : BASE_DELAY_MS;
    const ceiling = Math.min(this.#maxDelayMs, base * 2 ** Math.min(prev.count, 30));
    let delayMs = Math.floor(this.#random() * ceiling);
    if (info.retryAfterHint instanceof Date) {
      delayMs = Math.max(delayMs, Math.min(info.retryAfterHint.getTime() - now, this.#maxDelayMs));
    }
    if (elapsedMs + delayMs > this.#maxDurationMs) {
      throw new Error(`gave up after ${prev.count + 1} tries in ${elapsedMs} ms`);
    }
    const next = new PatientRetryToken(prev.count + 1, delayMs, firstFailureAt);
    this.#onRetry?.({
      retry: next.count,
      delayMs,
      elapsedMs,
      errorType: type,
      reason: failureReason(info.error),
      error: describeError(info.error),
    });
    return next;
  }

  recordSuccess(_token: RetryToken): void {}
}

/**
 * Network errors, timeouts, 500/502/503/504 (TRANSIENT), 429/SlowDown (THROTTLING) and other
 * 5xx (SERVER_ERROR, e.g. 507 when a Ceph cluster is full, which frees up) except 501 Not
 * Implemented, which no wait fixes. Never 4xx: a refused signature or a missing bucket.
 */
function isRetryable(info: RetryErrorInfo): boolean {
  switch (info.errorType) {
    case 'TRANSIENT':
    case 'THROTTLING':
      return true;
    case 'SERVER_ERROR':
      return info.error?.$metadata?.httpStatusCode !== 501;
    default:
      return false;
  }
}

/** What the daemon hooks into an aws_s3 sink's client (metrics, rate-limited retry logs). */
export interface S3StoreHooks {
  /** Every retry. The store does not log retries itself: an outage retries every part every
   *  few seconds, so the caller counts them and logs them rate-limited. */
  onRetry?: (notice: RetryNotice) => void;
  /** Every request, once settled. */
  onRequest?: (notice: RequestNotice) => void;
}

/**
 * The ObjectStore of an `aws_s3` sink, from its validated config. `logger` is the sink's child
 * logger (failed uploads, verification); `hooks` see every retry and request. Durations not
 * in the config yet use the defaults above.
 */
export function s3StoreFromConfig(sink: AwsS3SinkConfig, logger?: S3StoreLogger, hooks: S3StoreHooks = {}): S3Store {
  const client = createS3Client({
    endpoint: sink.endpoint,
    region: sink.region,
    accessKeyId: sink.access_key_id,
    secretAccessKey: sink.secret_access_key,
    forcePathStyle: sink.force_path_style,
    ...(hooks.onRetry ? { onRetry: hooks.onRetry } : {}),
    ...(hooks.onRequest ? { onRequest: hooks.onRequest } : {}),
  });
  return new S3Store({
    sinkId: sink.id,
    client,
    bucket: sink.bucket,
    partSizeBytes: sink.part_size_bytes,
    queueSize: sink.queue_size,
    maxBufferedBytes: sink.max_buffered_bytes,
    ...(logger ? { logger } : {}),
  });
}
