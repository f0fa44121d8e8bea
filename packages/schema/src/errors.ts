/**
 * Errors with a stable `code` users can search for, and a message that says what to change.
 */
export class SluiceError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SluiceError';
    this.code = code;
  }
}

/** Code of every configuration error: a bad file, option, reference or value. */
export const ERR_CONFIG = 'SLUICE_ERR_CONFIG';

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
