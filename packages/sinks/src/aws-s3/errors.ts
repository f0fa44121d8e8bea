/** Error codes of the aws_s3 sink and how SDK errors read in our messages. */
import { STATUS_CODES } from 'node:http';

/** An object could not be stored (close() rejected) or thrown away (abort() rejected). */
export const ERR_S3_UPLOAD = 'SLUICE_ERR_S3_UPLOAD';
/** check(): the bucket does not exist. */
export const ERR_S3_NO_BUCKET = 'SLUICE_ERR_S3_NO_BUCKET';
/** check(): the endpoint refused the credentials (or found none). */
export const ERR_S3_CREDENTIALS = 'SLUICE_ERR_S3_CREDENTIALS';
/** check(): nothing answered at the endpoint in time. */
export const ERR_S3_UNREACHABLE = 'SLUICE_ERR_S3_UNREACHABLE';
/** check(): any other refusal (wrong region, redirect, ...); the message has the status. */
export const ERR_S3_CHECK = 'SLUICE_ERR_S3_CHECK';

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
