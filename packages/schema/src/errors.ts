import { ERR_CONFIG, type SluiceErrorCode } from './error-codes.ts';

/**
 * Errors with a stable `code` users can search for, and a message that says what to change.
 * The code is one of the catalogue's (error-codes.ts, docs/errors.md).
 */
export class SluiceError extends Error {
  readonly code: SluiceErrorCode;

  constructor(code: SluiceErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SluiceError';
    this.code = code;
  }
}

/** One problem found in a configuration. `path` names the option (`sinks.s3.bucket`). */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * Every problem found in a configuration, collected in one pass so the user fixes them all
 * at once. The message is one `path: message` line per issue. Never contains a secret value.
 */
export class ConfigError extends SluiceError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(ERR_CONFIG, issues.map((issue) => `${issue.path}: ${issue.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = Object.freeze(issues.map((issue) => Object.freeze({ ...issue })));
  }
}
