import { describe, expect, it } from 'vitest';
import { createS3Client, PatientRetryStrategy, type RetryNotice } from './config-to-client.ts';
import { describeError } from './errors.ts';

type Strategy = PatientRetryStrategy;
type Info = Parameters<Strategy['refreshRetryTokenForRetry']>[1];

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
const transient: Info = { errorType: 'TRANSIENT', error: refused as never };

/** Drives the strategy like the SDK's retry middleware does, on a fake clock. */
async function retriesUntilGiveUp(s: Strategy, clock: { t: number }, info: Info): Promise<number[]> {
  const delays: number[] = [];
  let token = await s.acquireInitialRetryToken('');
  // Bounded: a strategy that never gives up must fail the test, not eat the heap.
  for (let i = 0; i < 100_000; i++) {
    try {
      token = await s.refreshRetryTokenForRetry(token, info);
    } catch {
      return delays;
    }
    delays.push(token.getRetryDelay());
    clock.t += token.getRetryDelay() + 10; // the try itself takes 10 ms
  }
  throw new Error('the strategy never gave up');
}

describe('PatientRetryStrategy', () => {
  it('retries a transient error for the whole time budget, with delays capped', async () => {
    const clock = { t: 1_000_000 };
    const notices: RetryNotice[] = [];
    const s = new PatientRetryStrategy({
      maxRetryDurationMs: 15 * 60_000,
      maxRetryDelayMs: 20_000,
      random: () => 0.999,
      now: () => clock.t,
      onRetry: (n) => notices.push(n),
    });
    const start = clock.t;
    const delays = await retriesUntilGiveUp(s, clock, transient);
    // Exponential from 100 ms, then flat at the cap.
    expect(delays.slice(0, 4)).toEqual([99, 199, 399, 799]);
    expect(Math.max(...delays)).toBeLessThanOrEqual(20_000);
    expect(clock.t - start).toBeGreaterThan(14 * 60_000);
    expect(clock.t - start).toBeLessThanOrEqual(15 * 60_000 + 10 * delays.length);
    expect(notices.length).toBe(delays.length);
    expect(notices[0]).toMatchObject({ retry: 1, errorType: 'TRANSIENT', error: 'connect ECONNREFUSED 127.0.0.1:9' });
  });

  it('has no shared quota: many requests failing at once all keep retrying', async () => {
    const clock = { t: 0 };
    const s = new PatientRetryStrategy({
      maxRetryDurationMs: 10 * 60_000,
      maxRetryDelayMs: 1_000,
      random: () => 0.5,
      now: () => clock.t,
    });
    // 20 requests failing together for a minute: 1200 retries. The SDK's StandardRetryStrategy
    // refuses after ~35 retries in total (500 tokens, 14 each, per client).
    let tokens = await Promise.all(Array.from({ length: 20 }, () => s.acquireInitialRetryToken('')));
    for (let round = 0; round < 60; round++) {
      tokens = await Promise.all(tokens.map((t) => s.refreshRetryTokenForRetry(t, transient)));
      clock.t += 1_000;
    }
    expect(tokens.map((t) => t.getRetryCount())).toEqual(Array(20).fill(60));
  });

  it('never retries client errors, and not 501; retries throttling and other 5xx', async () => {
    const s = new PatientRetryStrategy({ maxRetryDurationMs: 60_000, maxRetryDelayMs: 1_000 });
    const t = await s.acquireInitialRetryToken('');
    const e = (status: number) => Object.assign(new Error('x'), { $metadata: { httpStatusCode: status } }) as never;
    await expect(s.refreshRetryTokenForRetry(t, { errorType: 'CLIENT_ERROR', error: e(403) })).rejects.toThrow();
    await expect(s.refreshRetryTokenForRetry(t, { errorType: 'SERVER_ERROR', error: e(501) })).rejects.toThrow();
    await expect(s.refreshRetryTokenForRetry(t, { errorType: 'SERVER_ERROR', error: e(507) })).resolves.toBeDefined();
    await expect(s.refreshRetryTokenForRetry(t, { errorType: 'THROTTLING', error: e(503) })).resolves.toBeDefined();
  });

  it('honours Retry-After within the delay cap', async () => {
    const s = new PatientRetryStrategy({
      maxRetryDurationMs: 60_000,
      maxRetryDelayMs: 5_000,
      random: () => 0,
      now: () => 0,
    });
    const t = await s.acquireInitialRetryToken('');
    const next = await s.refreshRetryTokenForRetry(t, { errorType: 'THROTTLING', retryAfterHint: new Date(3_000) });
    expect(next.getRetryDelay()).toBe(3_000);
    const capped = await s.refreshRetryTokenForRetry(t, { errorType: 'THROTTLING', retryAfterHint: new Date(60_000) });
    expect(capped.getRetryDelay()).toBe(5_000);
  });
});

describe('createS3Client', () => {
  it('sets the S3-compatible options', async () => {
    const c = createS3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      accessKeyId: 'AK',
      secretAccessKey: 'SK',
      forcePathStyle: true,
    });
    expect(c.config.forcePathStyle).toBe(true);
    expect(await c.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
    expect(await c.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
    expect(await c.config.retryStrategy()).toBeInstanceOf(PatientRetryStrategy);
    c.destroy();
  });

  it('refuses half a credential pair without echoing it', () => {
    expect(() => createS3Client({ region: 'us-east-1', accessKeyId: 'AK', forcePathStyle: true })).toThrow(
      /both access_key_id and secret_access_key/,
    );
    let message = '';
    try {
      createS3Client({ region: 'us-east-1', secretAccessKey: 'very-secret-value', forcePathStyle: true });
    } catch (e) {
      message = String(e);
    }
    expect(message).not.toContain('very-secret-value');
  });
});

describe('describeError', () => {
  it('reads network and service errors', () => {
    expect(describeError(refused)).toBe('connect ECONNREFUSED 127.0.0.1:9');
    const agg = Object.assign(new AggregateError([], ''), { code: 'ECONNREFUSED' });
    expect(describeError(agg)).toBe('AggregateError: ECONNREFUSED');
    // A HEAD answer has no body: the SDK names the error after the status, or "Unknown".
    const svc = Object.assign(new Error('UnknownError'), { name: 'Forbidden', $metadata: { httpStatusCode: 403 } });
    expect(describeError(svc)).toBe('HTTP 403 Forbidden');
    const unknown = Object.assign(new Error('UnknownError'), { name: 'Unknown', $metadata: { httpStatusCode: 403 } });
    expect(describeError(unknown)).toBe('HTTP 403 Forbidden');
    const withBody = Object.assign(new Error('The specified bucket does not exist'), {
      name: 'NoSuchBucket',
      $metadata: { httpStatusCode: 404 },
    });
    expect(describeError(withBody)).toBe('NoSuchBucket: The specified bucket does not exist (HTTP 404)');
  });
});
