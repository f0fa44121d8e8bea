/**
 * How the daemon's parts report to the metrics registry and the engine log: the sinks' object
 * events and store hooks, the stores' buffers, the worker pool's load. Kept out of daemon.ts so
 * the lifecycle there stays readable; every metric is documented in docs/metrics.md.
 *
 * Nothing here runs per record: object events come once per object, store hooks once per S3
 * request, and the probes when Prometheus scrapes.
 */
import type { SluiceConfig } from '@sluice/config';
import {
  failureReason,
  isIndexKey,
  type DiskHooks,
  type IndexFailure,
  type DiskTarget,
  type ObjectError,
  type ObjectInfo,
  type ObjectStore,
  type ObjectWriter,
  type RequestNotice,
  type RetryNotice,
  type S3StoreHooks,
} from '@sluice/sinks';
import { RateLimitedLog, type DiskMetrics, type Logger, type Metrics } from '@sluice/telemetry';

/**
 * S3 retries are logged at most once per 10 s per reason (with the number kept quiet): an
 * outage retries every part in flight every few seconds, and the retries metric counts each.
 */
const RETRY_LOG_INTERVAL_MS = 10_000;

/** Commands that store one part of an object (PutObject: an object smaller than one part). */
const PART_COMMANDS = new Set(['UploadPartCommand', 'PutObjectCommand']);

/** Every source and sink starts with its counters at 0, so rate() and dashboards see them from the first scrape. */
export function initSeries(metrics: Metrics, cfg: SluiceConfig): void {
  for (const [id, src] of Object.entries(cfg.sources)) {
    const labels = { component_id: id, component_type: src.type };
    metrics.receivedEvents.inc(labels, 0);
    metrics.receivedBytes.inc(labels, 0);
    // At 0 from the start like the other per-source counters, so the dashboard's failed-batch
    // line and rate() over them have a series before the first failure.
    metrics.batches.inc({ component_id: id }, 0);
    metrics.batchFailures.inc({ component_id: id }, 0);
    if (src.type === 'udp') metrics.kernelDrops.inc({ component_id: id }, 0);
  }
}

/** What an aws_s3 sink's client reports: retries (counted, logged rate-limited) and parts (counted, timed). */
export function storeHooks(metrics: Metrics, id: string, type: string, log: Logger): S3StoreHooks {
  const labels = { component_id: id, component_type: type };
  const retryLog = new RateLimitedLog(log, RETRY_LOG_INTERVAL_MS);
  const parts = metrics.partsUploaded.labels(labels);
  const partSeconds = metrics.uploadDuration.labels({ ...labels, stage: 'part' });
  metrics.partsUploaded.inc(labels, 0);
  return {
    onRetry(notice: RetryNotice): void {
      metrics.sinkRetries.inc({ ...labels, reason: notice.reason });
      retryLog.warn(`retry:${notice.reason}`, { ...notice }, 'S3 request failed; retrying');
    },
    onRequest(notice: RequestNotice): void {
      // An object's index sidecar is one small PutObject of its own: counted by
      // sluice_sink_index_written_total, not among the object's parts.
      if (!notice.ok || !PART_COMMANDS.has(notice.command) || (notice.key !== undefined && isIndexKey(notice.key)))
        return;
      parts.inc();
      partSeconds.observe(notice.durationMs / 1000);
    },
  };
}

/**
 * A blocked disk is logged at most once per 30 s per sink and target: the retries come every
 * 100 ms to 5 s per open object, and sluice_sink_disk_retries_total counts each one.
 */
const DISK_LOG_INTERVAL_MS = 30_000;

/**
 * What a sink's disk stalls report (file store: target object; spool: target spool): the
 * metrics, one warn line when a stall begins (then at most one per DISK_LOG_INTERVAL_MS while
 * it lasts, with the retries kept quiet in `suppressed`), and one info line when it ends.
 * A stall too short to be warned about ends without a line too.
 */
export function diskHooks(
  metrics: DiskMetrics,
  id: string,
  whenFull: 'block' | 'drop_newest',
  log: Logger,
  now: () => number = Date.now,
): DiskHooks {
  const state = new Map<DiskTarget, { since: number; lastWarnAt: number; suppressed: number; warned: boolean }>();
  const of = (target: DiskTarget) => {
    let s = state.get(target);
    if (s === undefined) state.set(target, (s = { since: now(), lastWarnAt: -Infinity, suppressed: 0, warned: false }));
    return s;
  };
  const meanwhile =
    whenFull === 'block'
      ? 'holding what the sink took and the sources back'
      : 'dropping new batches (when_full: drop_newest) and holding what the sink took';
  return {
    onBlocked(n): void {
      metrics.block(id, n.target);
      const s = of(n.target);
      s.since = now();
      s.warned = false;
    },
    onRetry(n): void {
      metrics.retries.inc({ component_id: id, target: n.target, code: n.code });
      const s = of(n.target);
      const at = now();
      if (at - s.lastWarnAt < DISK_LOG_INTERVAL_MS) {
        s.suppressed++;
        return;
      }
      const fields = {
        target: n.target,
        path: n.path,
        op: n.op,
        code: n.code,
        blocked_secs: Math.round((at - s.since) / 100) / 10,
        retry_in_ms: n.delayMs,
        when_full: whenFull,
      };
      log.warn(
        s.suppressed > 0 ? { ...fields, suppressed: s.suppressed } : fields,
        `disk blocked: ${n.op} of ${n.path} failed with ${n.code}; ${meanwhile}, and retrying until the disk takes writes again`,
      );
      s.lastWarnAt = at;
      s.suppressed = 0;
      s.warned = true;
    },
    onRecovered(n): void {
      metrics.unblock(id, n.target);
      const s = of(n.target);
      if (!s.warned) return;
      s.warned = false;
      const secs = Math.round(n.blockedMs / 100) / 10;
      log.info(
        { target: n.target, path: n.path, blocked_secs: secs },
        `disk unblocked: ${n.path} takes writes again after ${secs} s`,
      );
    },
  };
}

/** Count a writer's objects: completed (records, bytes, durations) and failed (by reason, records discarded). */
export function observeWriter(metrics: Metrics, writer: ObjectWriter, id: string, type: string, log: Logger): void {
  const labels = { component_id: id, component_type: type };
  const closeSeconds = metrics.uploadDuration.labels({ ...labels, stage: 'close' });
  const objectSeconds = metrics.uploadDuration.labels({ ...labels, stage: 'object' });
  for (const c of [
    metrics.sentEvents,
    metrics.sentBytes,
    metrics.sentRawBytes,
    metrics.objectsCompleted,
    metrics.indexesWritten,
    metrics.indexFailures,
  ])
    c.inc(labels, 0);
  writer.on('index', () => metrics.indexesWritten.inc(labels));
  writer.on('error-index', (e: IndexFailure) => {
    metrics.indexFailures.inc(labels);
    log.warn(
      { key: e.key, err: e.error },
      'storing the index of an object failed; the object stands and readers scan it',
    );
  });
  writer.on('object', (info: ObjectInfo) => {
    metrics.sentEvents.inc(labels, info.records);
    metrics.sentBytes.inc(labels, info.bytes);
    metrics.sentRawBytes.inc(labels, info.rawBytes);
    metrics.objectsCompleted.inc(labels);
    metrics.lastObjectTimestamp.set({ component_id: id }, info.closedAtMs / 1000);
    closeSeconds.observe(Math.max(0, info.closedAtMs - info.closingAtMs) / 1000);
    objectSeconds.observe(Math.max(0, info.closedAtMs - info.openedAtMs) / 1000);
    log.debug({ key: info.key, bytes: info.bytes, records: info.records }, 'object completed');
  });
  writer.on('error-object', (e: ObjectError) => {
    const reason = failureReason(e.error);
    metrics.sinkFailures.inc({ ...labels, reason });
    if (e.retried) {
      log.warn(
        { key: e.key, records: e.records, reason, err: e.error },
        'an object failed for good; its data is in the spool and goes out again as a new upload',
      );
      return;
    }
    metrics.sinkDiscardedEvents.inc({ ...labels, reason: 'object_failed' }, e.records);
    log.error(
      { key: e.key, records: e.records, reason, err: e.error },
      'an object failed for good; its records are counted as discarded',
    );
  });
}

/** sluice_sink_buffered_bytes, read from the stores at scrape time. */
export function observeStores(
  metrics: Metrics,
  sinks: readonly { id: string; type: string; store: ObjectStore }[],
): void {
  metrics.probe('sluice_sink_buffered_bytes', () => {
    for (const s of sinks)
      metrics.sinkBufferedBytes.set({ component_id: s.id, component_type: s.type }, s.store.bufferedBytes ?? 0);
  });
}

/** The part of the worker pool observePool reads. */
export interface PoolGauges {
  /** Busy time of all threads since the pool started / (time since then x threads). */
  readonly utilization: number;
  readonly queueSize: number;
  /** Threads running now (absent: all of them always). */
  readonly threadsRunning?: number;
  /** The running threads' V8 heaps, summed. */
  heapStatistics?(): Promise<{ usedBytes: number; totalBytes: number; externalBytes: number }>;
}

/** Utilisation is reported over about this window. */
const UTILIZATION_WINDOW_MS = 60_000;
/** At most one sample a second is kept, so a scraper hitting /metrics in a loop cannot grow the list. */
const SAMPLE_EVERY_MS = 1_000;

/**
 * Queue depth, busy seconds and utilisation of the worker pool. Call right after the pool was
 * created: the pool's utilisation is an average since its start, so busy time = utilisation x
 * elapsed x threads, with elapsed counted from here (microseconds after the pool's own start).
 * That average barely moves after hours of uptime, so the gauge is computed over the last
 * minute instead, and busy seconds are exported as a counter for rate() over any window.
 */
export function observePool(
  metrics: Metrics,
  pool: PoolGauges,
  threads: number,
  now: () => number = () => performance.now(),
): void {
  const startedAt = now();
  metrics.workerThreads.set(threads);
  const busySeconds = (at: number): number => pool.utilization * ((at - startedAt) / 1000) * threads;
  let counted = 0;
  metrics.probe('sluice_worker_busy_seconds_total', () => {
    const busy = busySeconds(now());
    // Never backwards: the two clocks (the pool's and ours) differ by microseconds.
    if (busy > counted) {
      metrics.workerBusySeconds.inc(busy - counted);
      counted = busy;
    }
  });
  const samples: { at: number; busy: number }[] = [{ at: startedAt, busy: 0 }];
  metrics.probe('sluice_worker_utilization_ratio', () => {
    const at = now();
    const busy = busySeconds(at);
    // The reference is the newest sample at least a window old (or the oldest one there is).
    while (samples.length > 1 && at - samples[1]!.at >= UTILIZATION_WINDOW_MS) samples.shift();
    const ref = samples[0]!;
    const elapsed = (at - ref.at) / 1000;
    const ratio = elapsed > 0 ? (busy - ref.busy) / (elapsed * threads) : 0;
    metrics.workerUtilization.set(Math.min(1, Math.max(0, ratio)));
    if (at - samples[samples.length - 1]!.at >= SAMPLE_EVERY_MS) samples.push({ at, busy });
  });
  metrics.probe('sluice_worker_queue_depth', () => metrics.workerQueueDepth.set(pool.queueSize));
  metrics.probe('sluice_worker_threads_running', () =>
    metrics.workerThreadsRunning.set(pool.threadsRunning ?? threads),
  );
  // Reading a thread's heap is a message to it and back: a scrape shows the figures the
  // previous one asked for (the first read starts here), so /metrics never waits on a busy thread.
  const readHeaps = pool.heapStatistics?.bind(pool);
  if (readHeaps !== undefined) {
    let reading: Promise<void> | null = null;
    const refresh = (): void => {
      reading ??= readHeaps()
        .then((h) => {
          metrics.workerHeapUsed.set(h.usedBytes);
          metrics.workerHeapTotal.set(h.totalBytes);
          metrics.workerExternal.set(h.externalBytes);
        })
        .catch(() => {})
        .finally(() => (reading = null));
    };
    refresh();
    metrics.probe('sluice_worker_heap_size_used_bytes', refresh);
  }
}
