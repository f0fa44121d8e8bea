import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { SluiceError } from '@sluice/config';
import { withFailureReason, type ObjectWriter } from '@sluice/sinks';
import { Metrics, type Logger } from '@sluice/telemetry';
import { observePool, observeStores, observeWriter, storeHooks } from './observability.ts';

/** A logger that keeps what it is given. */
function recorder(): { log: Logger; lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void lines.push({ level, obj, msg });
  return {
    log: { warn: at('warn'), error: at('error'), debug: at('debug'), info: at('info') } as unknown as Logger,
    lines,
  };
}

async function value(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  // A histogram's series are values of its base metric, told apart by metricName.
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name || x.name === base);
  const values = (m?.values ?? []).filter(
    (v) => m?.name === name || (v as { metricName?: string }).metricName === name,
  );
  const hit = values.filter((v) =>
    Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  return hit.reduce((n, v) => n + v.value, 0);
}

describe('observePool', () => {
  it('reports utilisation over the last minute, not since start, and busy seconds as a counter', async () => {
    const metrics = new Metrics('t');
    let t = 1_000;
    let busyMs = 0; // thread-milliseconds spent on batches
    const threads = 2;
    // piscina's figure: busy time since start over (time since start x threads).
    const pool = {
      get utilization() {
        return t === 1_000 ? 0 : busyMs / ((t - 1_000) * threads);
      },
      queueSize: 3,
    };
    observePool(metrics, pool, threads, () => t);

    t += 10_000;
    busyMs += 20_000; // both threads busy for 10 s
    await metrics.registry.metrics();
    expect(await value(metrics, 'sluice_worker_utilization_ratio')).toBeCloseTo(1, 5);
    expect(await value(metrics, 'sluice_worker_busy_seconds_total')).toBeCloseTo(20, 5);
    expect(await value(metrics, 'sluice_worker_queue_depth')).toBe(3);
    expect(await value(metrics, 'sluice_worker_threads')).toBe(2);

    // An idle minute: piscina's average still says 1/7, the gauge says 0.
    t += 60_000;
    expect(pool.utilization).toBeCloseTo(1 / 7, 5);
    await metrics.registry.metrics();
    expect(await value(metrics, 'sluice_worker_utilization_ratio')).toBeCloseTo(0, 5);
    expect(await value(metrics, 'sluice_worker_busy_seconds_total')).toBeCloseTo(20, 5);

    // One thread busy for the next 30 s: a quarter of the pool over the minute before.
    t += 30_000;
    busyMs += 30_000;
    await metrics.registry.metrics();
    expect(await value(metrics, 'sluice_worker_utilization_ratio')).toBeCloseTo(30 / (90 * 2), 5);
    expect(await value(metrics, 'sluice_worker_busy_seconds_total')).toBeCloseTo(50, 5);
  });
});

describe('storeHooks', () => {
  it('counts and times stored parts, counts retries by reason and logs them rate-limited', async () => {
    const metrics = new Metrics('t');
    const { log, lines } = recorder();
    const hooks = storeHooks(metrics, 's3', 'aws_s3', log);
    hooks.onRequest!({ command: 'CreateMultipartUploadCommand', ok: true, durationMs: 5, reason: null });
    hooks.onRequest!({ command: 'UploadPartCommand', ok: true, durationMs: 250, reason: null });
    hooks.onRequest!({ command: 'UploadPartCommand', ok: true, durationMs: 750, reason: null });
    hooks.onRequest!({ command: 'UploadPartCommand', ok: false, durationMs: 900, reason: 'client_error' });
    hooks.onRequest!({ command: 'PutObjectCommand', ok: true, durationMs: 50, reason: null });
    expect(
      await value(metrics, 'sluice_sink_parts_uploaded_total', { component_id: 's3', component_type: 'aws_s3' }),
    ).toBe(3);
    expect(await value(metrics, 'sluice_sink_upload_duration_seconds_count', { stage: 'part' })).toBe(3);
    expect(await value(metrics, 'sluice_sink_upload_duration_seconds_sum', { stage: 'part' })).toBeCloseTo(1.05, 5);

    for (let i = 0; i < 5; i++)
      hooks.onRetry!({
        retry: i + 1,
        delayMs: 100,
        elapsedMs: i * 100,
        errorType: 'TRANSIENT',
        reason: 'network',
        error: 'Error: connect ECONNREFUSED 127.0.0.1:9',
      });
    hooks.onRetry!({
      retry: 1,
      delayMs: 1000,
      elapsedMs: 0,
      errorType: 'THROTTLING',
      reason: 'throttled',
      error: 'SlowDown: Please reduce your request rate. (HTTP 503)',
    });
    expect(await value(metrics, 'sluice_sink_retries_total', { reason: 'network' })).toBe(5);
    expect(await value(metrics, 'sluice_sink_retries_total', { reason: 'throttled' })).toBe(1);
    // One line per reason within 10 s.
    expect(lines.filter((l) => l.msg === 'S3 request failed; retrying').map((l) => l.obj['reason'])).toEqual([
      'network',
      'throttled',
    ]);
  });
});

describe('observeWriter', () => {
  it('counts completed objects with their durations, and failed ones by reason with their records', async () => {
    const metrics = new Metrics('t');
    const { log, lines } = recorder();
    const writer = new EventEmitter();
    observeWriter(metrics, writer as unknown as ObjectWriter, 'f', 'file', log);
    // Series exist from the start, at 0.
    expect(await metrics.registry.getSingleMetricAsString('sluice_sink_sent_events_total')).toContain(
      'sluice_sink_sent_events_total{component_id="f",component_type="file"} 0',
    );

    writer.emit('object', {
      key: 'a',
      bytes: 100,
      records: 7,
      rawBytes: 700,
      frames: 2,
      openedAtMs: 1_000_000,
      closingAtMs: 1_060_000,
      closedAtMs: 1_060_250,
    });
    expect(await value(metrics, 'sluice_sink_sent_events_total')).toBe(7);
    expect(await value(metrics, 'sluice_sink_sent_bytes_total')).toBe(100);
    expect(await value(metrics, 'sluice_sink_sent_uncompressed_bytes_total')).toBe(700);
    expect(await value(metrics, 'sluice_sink_objects_completed_total')).toBe(1);
    expect(await value(metrics, 'sluice_sink_last_object_timestamp_seconds')).toBe(1_060.25);
    expect(await value(metrics, 'sluice_sink_upload_duration_seconds_sum', { stage: 'close' })).toBeCloseTo(0.25, 5);
    expect(await value(metrics, 'sluice_sink_upload_duration_seconds_sum', { stage: 'object' })).toBeCloseTo(60.25, 5);

    const io = new SluiceError('SLUICE_ERR_SINK_WRITE', 'file sink: could not write /x (ENOSPC)', {
      cause: Object.assign(new Error('no space'), { code: 'ENOSPC' }),
    });
    writer.emit('error-object', { key: 'b', error: io, records: 5, rawBytes: 50 });
    const verify = withFailureReason(new SluiceError('SLUICE_ERR_S3_UPLOAD', 'size mismatch'), 'verify');
    writer.emit('error-object', { key: 'c', error: verify, records: 2, rawBytes: 20 });
    expect(await value(metrics, 'sluice_sink_failures_total', { reason: 'io' })).toBe(1);
    expect(await value(metrics, 'sluice_sink_failures_total', { reason: 'verify' })).toBe(1);
    expect(await value(metrics, 'sluice_sink_discarded_events_total', { reason: 'object_failed' })).toBe(7);
    expect(lines.filter((l) => l.level === 'error').map((l) => l.obj['reason'])).toEqual(['io', 'verify']);
  });
});

describe('observeStores', () => {
  it("reads each store's buffered bytes at scrape time; a store without a buffer reads 0", async () => {
    const metrics = new Metrics('t');
    const s3 = {
      bufferedBytes: 1234,
      open: () => {
        throw new Error('unused');
      },
      check: async () => {},
    };
    const plain = {
      open: () => {
        throw new Error('unused');
      },
      check: async () => {},
    };
    observeStores(metrics, [
      { id: 'a', type: 'aws_s3', store: s3 },
      { id: 'b', type: 'file', store: plain },
    ]);
    await metrics.registry.metrics();
    expect(await value(metrics, 'sluice_sink_buffered_bytes', { component_id: 'a' })).toBe(1234);
    expect(await value(metrics, 'sluice_sink_buffered_bytes', { component_id: 'b' })).toBe(0);
    s3.bufferedBytes = 0;
    await metrics.registry.metrics();
    expect(await value(metrics, 'sluice_sink_buffered_bytes', { component_id: 'a' })).toBe(0);
  });
});
