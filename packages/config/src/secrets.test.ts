import { describe, expect, it } from 'vitest';
import { type ConfigError, parseConfig, validateConfig } from './index.ts';
import { failure, fullRaw } from './test-helpers.ts';

const SECRET = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';

function expectNoSecret(error: ConfigError, secret = SECRET): void {
  expect(error.issues.length).toBeGreaterThan(0);
  expect(error.message).not.toContain(secret);
  expect(JSON.stringify(error.issues)).not.toContain(secret);
  expect(error.stack ?? '').not.toContain(secret);
}

function s3(options: Record<string, unknown>): Record<string, any> {
  const raw = fullRaw();
  Object.assign(raw.sinks.s3, { access_key_id: 'AKID', secret_access_key: SECRET }, options);
  return raw;
}

const base = `sources: { t: { type: tcp, address: "127.0.0.1:1" } }
sinks:
  s3:
    type: aws_s3
    inputs: [t]
    bucket: logs
    access_key_id: AKID
`;

describe('secrets never appear in messages', () => {
  it('when the secret has the wrong type', () => {
    const number = 9_876_543_210_123;
    const error = failure(() => validateConfig(s3({ secret_access_key: number }), {}));
    expect(error.message).toBe('sinks.s3.secret_access_key: expected a string, got a number (redacted)');
    expectNoSecret(error, String(number));
    expectNoSecret(failure(() => validateConfig(s3({ secret_access_key: [SECRET] }), {})));
    expectNoSecret(failure(() => validateConfig(s3({ secret_access_key: { key: SECRET } }), {})));
  });

  it('when the same sink has other errors', () => {
    const error = failure(() =>
      validateConfig(s3({ bucket: 'Bad_Bucket', queue_size: 0, colour: SECRET, when_full: 'x' }), {}),
    );
    expect(error.issues).toHaveLength(4);
    expectNoSecret(error);
  });

  it('when the credential pair is incomplete or the option is misspelt', () => {
    expectNoSecret(failure(() => validateConfig(s3({ access_key_id: null }), {})));
    expectNoSecret(failure(() => validateConfig(s3({ secret_access_key: undefined, secret_acess_key: SECRET }), {})));
  });

  it('when the secret is empty, has a bad reference or comes from the environment', () => {
    expectNoSecret(failure(() => validateConfig(s3({ secret_access_key: `${SECRET}\${` }), {})));
    expectNoSecret(failure(() => validateConfig(s3({ secret_access_key: `${SECRET}\${1x}` }), {})));
    const fromEnv = failure(() =>
      validateConfig(s3({ secret_access_key: '${AWS_SECRET}', bucket: '${AWS_SECRET}' }), {
        AWS_SECRET: 'Not_A_Bucket',
      }),
    );
    expect(fromEnv.issues.map((i) => i.path)).toEqual(['sinks.s3.bucket']);
    expect(failure(() => validateConfig(s3({ secret_access_key: '' }), {})).message).toBe(
      'sinks.s3.secret_access_key: must not be empty',
    );
  });

  it('when the endpoint carries credentials', () => {
    const error = failure(() => validateConfig(s3({ endpoint: `http://user:${SECRET}@127.0.0.1:7480` }), {}));
    expect(error.message).toBe(
      'sinks.s3.endpoint: must not contain credentials; use access_key_id and secret_access_key',
    );
    expectNoSecret(error);
    expectNoSecret(failure(() => validateConfig(s3({ endpoint: `user:${SECRET}@[bad` }), {})));
  });

  it('when the YAML around the secret is broken or repeated', () => {
    expectNoSecret(failure(() => parseConfig(`${base}    secret_access_key: "${SECRET}\n`, 'c.yaml', {})));
    expectNoSecret(failure(() => parseConfig(`${base}    secret_access_key: "${SECRET}\\q"\n`, 'c.yaml', {})));
    expectNoSecret(
      failure(() =>
        parseConfig(`${base}    secret_access_key: ${SECRET}\n    secret_access_key: ${SECRET}\n`, 'c.yaml', {}),
      ),
    );
    expectNoSecret(
      failure(() => parseConfig(`${base}    secret_access_key: ${SECRET}\n      bad_indent: 1\n`, 'c.yaml', {})),
    );
    expectNoSecret(failure(() => parseConfig(`${base}    secret_access_key: [${SECRET}\n`, 'c.yaml', {})));
  });
});
