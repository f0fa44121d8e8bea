/**
 * Every `SLUICE_ERR_*` code Sluice gives a SluiceError, in one place, as undici keeps its error
 * codes in lib/core/errors.js. Users search logs and docs by the code, so a code never changes
 * meaning once released; a new failure that needs a different action from the operator gets a
 * new code here, a line in ERROR_CODES and a section in docs/errors.md (test/docs/errors.test.ts
 * fails until all three agree, and SluiceError takes no other code).
 *
 * Here, in @sluice/schema, because it is the package every other one already depends on: a
 * catalogue anywhere else would make a cycle.
 */

/** A configuration file, option, reference or value is wrong; every problem is in one error. */
export const ERR_CONFIG = 'SLUICE_ERR_CONFIG';
/** A source cannot listen on its address at start (in use, no permission, a bad TLS file). */
export const ERR_BIND = 'SLUICE_ERR_BIND';
/** SIGHUP: a source's new TLS files cannot be read or do not make a usable setup; the old pair stays. */
export const ERR_TLS = 'SLUICE_ERR_TLS';
/** A sink's store check failed in a way its store has no code of its own for. */
export const ERR_SINK_CHECK = 'SLUICE_ERR_SINK_CHECK';
/** The file sink's path cannot be made a directory this process can create files in. */
export const ERR_SINK_UNWRITABLE = 'SLUICE_ERR_SINK_UNWRITABLE';
/** The file sink was asked for an object key that does not name a visible file under its path. */
export const ERR_SINK_KEY = 'SLUICE_ERR_SINK_KEY';
/** The file sink could not write, sync or rename an object for a reason waiting does not cure. */
export const ERR_SINK_WRITE = 'SLUICE_ERR_SINK_WRITE';
/** An object upload was used after close() or abort() (a bug in Sluice). */
export const ERR_SINK_STATE = 'SLUICE_ERR_SINK_STATE';
/** A sink's object writer was given a batch after close() (a bug in Sluice). */
export const ERR_WRITER_CLOSED = 'SLUICE_ERR_WRITER_CLOSED';
/** aws_s3: an object could not be stored (close() rejected) or thrown away (abort() rejected). */
export const ERR_S3_UPLOAD = 'SLUICE_ERR_S3_UPLOAD';
/** aws_s3 check or `sluice read`: the bucket does not exist. */
export const ERR_S3_NO_BUCKET = 'SLUICE_ERR_S3_NO_BUCKET';
/** aws_s3 check or `sluice read`: the endpoint refused the credentials, or none were found. */
export const ERR_S3_CREDENTIALS = 'SLUICE_ERR_S3_CREDENTIALS';
/** aws_s3 check or `sluice read`: nothing answered at the endpoint in time. */
export const ERR_S3_UNREACHABLE = 'SLUICE_ERR_S3_UNREACHABLE';
/** aws_s3 check or `sluice read`: any other refusal (wrong region, a redirect, ...); the message has the status. */
export const ERR_S3_CHECK = 'SLUICE_ERR_S3_CHECK';
/** `sluice read`: the file sink's directory cannot be listed or is not a directory. */
export const ERR_READ_LOCATION = 'SLUICE_ERR_READ_LOCATION';
/** Shutdown: objects were still unfinished when shutdown_timeout_secs passed; their records are counted. */
export const ERR_SHUTDOWN_TIMEOUT = 'SLUICE_ERR_SHUTDOWN_TIMEOUT';

/**
 * Every code with its one-line meaning, frozen, in the order of docs/errors.md (a section per
 * code; its test compares the two). `sluice` prints the code after the message (`... (SLUICE_ERR_BIND)`).
 */
export const ERROR_CODES = Object.freeze({
  [ERR_CONFIG]: 'a configuration file, option, reference or value is wrong',
  [ERR_BIND]: 'a source cannot listen on its address at start',
  [ERR_TLS]: "SIGHUP: a source's new TLS files are unusable; the current certificate stays",
  [ERR_SINK_CHECK]: "a sink's store check failed for a reason the store has no code for",
  [ERR_SINK_UNWRITABLE]: "the file sink's path is not a directory this process can write in",
  [ERR_SINK_KEY]: 'an object key does not name a visible file under the file sink path',
  [ERR_SINK_WRITE]: 'the file sink could not write, sync or rename an object',
  [ERR_SINK_STATE]: 'an object upload was used after close() or abort() (a bug)',
  [ERR_WRITER_CLOSED]: "a sink's object writer was given a batch after close() (a bug)",
  [ERR_S3_UPLOAD]: 'an S3 object could not be stored or thrown away',
  [ERR_S3_NO_BUCKET]: 'the S3 bucket does not exist',
  [ERR_S3_CREDENTIALS]: 'the S3 endpoint refused the credentials, or none were found',
  [ERR_S3_UNREACHABLE]: 'nothing answered at the S3 endpoint in time',
  [ERR_S3_CHECK]: 'the S3 endpoint refused the bucket check for another reason',
  [ERR_READ_LOCATION]: "sluice read: the file sink's directory cannot be listed",
  [ERR_SHUTDOWN_TIMEOUT]: 'objects were unfinished when shutdown_timeout_secs passed',
} as const);

/** A code of the catalogue: what SluiceError takes. */
export type SluiceErrorCode = keyof typeof ERROR_CODES;
