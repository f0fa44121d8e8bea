/** How SDK errors read in our messages, and why a store operation failed (the codes are @sluice/schema's). */
import { createRequire } from 'node:module';
import { ERR_SINK_KEY, ERR_SINK_WRITE } from '@sluice/schema';

// node:http by require(), not import: importing it as an ES module reads every export,
// and its lazy WebSocket/MessageEvent getters then load Node's fetch implementation (undici,
// ~12 MiB resident) that the daemon never uses.
const { STATUS_CODES } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** HTTP status of an SDK error, undefined for network errors. */
export function httpStatusOf(error: unknown): number | undefined {
  return (error as SdkErrorShape | null)?.$metadata?.httpStatusCode;
}

/** Error name (`NoSuchUpload`, `TimeoutError`, `Error`, ...). */
export function errorName(error: unknown): string {
  const name = (error as SdkErrorShape | null)?.name;
  return typeof name === 'string' ? name : '';
}

/**
 * `Name: message (HTTP status)` of an SDK or network error, for our messages and logs.
 * SDK errors carry no request headers in their message, so no credentials.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const e = error as Error & SdkErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const code = typeof e.code === 'string' ? e.code : '';
  // AggregateError (happy eyeballs over several addresses) has an empty message and a code.
  const message = e.message !== '' ? e.message : code;
  // "Error: connect ECONNREFUSED 127.0.0.1:9" says nothing more than its message.
  const prefix = e.name === 'Error' && code !== '' && message.includes(code) ? '' : `${e.name}: `;
  // Service errors without a body (HEAD) are named after the status ("Forbidden", or "Unknown"
  // with the SDK 3.1169 against Ceph) with the message "UnknownError": the status says it all.
  if (status !== undefined && message === 'UnknownError') return `HTTP ${status} ${STATUS_CODES[status] ?? e.name}`;
  return `${prefix}${message}${status !== undefined ? ` (HTTP ${status})` : ''}`;
}

/**
 * Why a store operation failed, as sluice_sink_failures_total and sluice_sink_retries_total
 * count it. A fixed set: labels never carry error text.
 * - network: no answer (refused, reset, DNS); timeout: connect or socket timeout;
 * - throttled: 429 / SlowDown; server_error: other 5xx; client_error: 4xx (credentials,
 *   permissions, a missing bucket: retrying does not help);
 * - verify: the store said done but the object is missing or of the wrong size (aws_s3);
 * - io: a local write, fsync or rename failed (file); other: anything else.
 */
export type FailureReason =
  | 'network'
  | 'timeout'
  | 'throttled'
  | 'server_error'
  | 'client_error'
  | 'verify'
  | 'io'
  | 'other';

const FAILURE_REASON = Symbol('sluice.failureReason');

/** Tag an error with the reason failureReason() reports for it (and for errors caused by it). */
export function withFailureReason<E extends object>(error: E, reason: FailureReason): E {
  (error as { [FAILURE_REASON]?: FailureReason })[FAILURE_REASON] = reason;
  return error;
}

/** The reason of a failure: a tag set by withFailureReason, else read from the error and its causes. */
export function failureReason(error: unknown): FailureReason {
  for (
    let e = error, depth = 0;
    e !== null && typeof e === 'object' && depth < 8;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const tagged = (e as { [FAILURE_REASON]?: FailureReason })[FAILURE_REASON];
    if (tagged !== undefined) return tagged;
    const status = httpStatusOf(e);
    const name = errorName(e);
    if (status !== undefined) {
      if (status === 429 || name === 'SlowDown' || name === 'ThrottlingException' || name === 'Throttling')
        return 'throttled';
      if (status >= 500) return 'server_error';
      if (status >= 400) return 'client_error';
    }
    const code = (e as { code?: unknown }).code;
    if (
      name === 'TimeoutError' ||
      name === 'RequestTimeout' ||
      code === 'ETIMEDOUT' ||
      code === 'ESOCKETTIMEDOUT' ||
      code === 'ERR_SOCKET_CONNECTION_TIMEOUT'
    )
      return 'timeout';
    if (code === ERR_SINK_WRITE || code === ERR_SINK_KEY) return 'io';
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return 'network';
  }
  return 'other';
}
