/** Shared by the tests of this package. */
import { expect } from 'vitest';
import { ConfigError } from '@sluice/schema';

/** A valid config with one component of every type; tests change one thing in it. */
export function fullRaw(): Record<string, any> {
  return {
    sources: {
      t: { type: 'tcp', address: '127.0.0.1:5170' },
      u: { type: 'udp', address: '127.0.0.1:6050' },
    },
    sinks: {
      f: { type: 'file', inputs: ['t', 'u'], path: './out' },
      s3: { type: 'aws_s3', inputs: ['t'], bucket: 'logs' },
    },
  };
}

/** Runs `fn`, which must throw ConfigError, and returns its `path: message` lines. */
export function issueLines(fn: () => unknown): string[] {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const error = caught as ConfigError;
  expect(error.code).toBe('SLUICE_ERR_CONFIG');
  expect(error.message).toBe(error.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return error.message.split('\n');
}

/** Sets `raw[a][b][c] = value` along `path` (dots). */
export function setPath(raw: Record<string, any>, path: string, value: unknown): Record<string, any> {
  const keys = path.split('.');
  let node = raw;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys.at(-1)!] = value;
  return raw;
}

/** The ConfigError `fn` throws (anything else is rethrown; no throw fails the test). */
export function failure(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}
