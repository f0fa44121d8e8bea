import { describe, expect, it } from 'vitest';
import { SluiceError } from '@sluice/schema';
import { failureReason, withFailureReason } from './errors.ts';

const sdk = (name: string, status?: number): Error =>
  Object.assign(new Error(`${name} happened`), {
    name,
    ...(status !== undefined ? { $metadata: { httpStatusCode: status } } : {}),
  });
const net = (code: string): Error => Object.assign(new Error(`connect ${code} 127.0.0.1:9`), { code });
const upload = (cause: unknown): SluiceError =>
  new SluiceError('SLUICE_ERR_S3_UPLOAD', 'sink s3: upload of s3://b/k failed', { cause });

describe('failureReason', () => {
  it('classifies store errors into a fixed set, looking through causes', () => {
    expect(failureReason(upload(sdk('SlowDown', 503)))).toBe('throttled');
    expect(failureReason(upload(sdk('TooManyRequests', 429)))).toBe('throttled');
    expect(failureReason(upload(sdk('InternalError', 500)))).toBe('server_error');
    expect(failureReason(upload(sdk('InsufficientCapacity', 507)))).toBe('server_error');
    expect(failureReason(upload(sdk('AccessDenied', 403)))).toBe('client_error');
    expect(failureReason(upload(sdk('NoSuchBucket', 404)))).toBe('client_error');
    expect(failureReason(upload(sdk('TimeoutError')))).toBe('timeout');
    expect(failureReason(upload(net('ETIMEDOUT')))).toBe('timeout');
    expect(failureReason(upload(net('ECONNREFUSED')))).toBe('network');
    expect(failureReason(upload(new Error('gave up', { cause: net('ECONNRESET') })))).toBe('network');
    expect(
      failureReason(
        new SluiceError('SLUICE_ERR_SINK_WRITE', 'file sink: could not write /x (ENOSPC)', { cause: net('ENOSPC') }),
      ),
    ).toBe('io');
    expect(failureReason(upload(undefined))).toBe('other');
    expect(failureReason('a string')).toBe('other');
  });

  it('a tag set with withFailureReason wins, on the error or on a cause', () => {
    const missing = withFailureReason(upload(sdk('NotFound', 404)), 'verify');
    expect(failureReason(missing)).toBe('verify');
    expect(failureReason(new Error('outer', { cause: missing }))).toBe('verify');
  });
});
