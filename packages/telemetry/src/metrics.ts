import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from './prom.ts';

/** Metrics whose values are read when Prometheus scrapes, not counted as they happen. */
export type ProbedMetric =
  | 'sluice_ring_used_bytes'
  | 'sluice_worker_queue_depth'
  | 'sluice_worker_utilization_ratio'
  | 'sluice_worker_busy_seconds_total'
  | 'sluice_worker_threads_running'
  | 'sluice_worker_heap_size_used_bytes'
  | 'sluice_source_kernel_dropped_datagrams_total'
  | 'sluice_sink_buffered_bytes'
  | 'sluice_ready';

/** prom-client's default gauges that Sluice does not export: their totals are sums of the per-type gauges. */
const DROPPED_DEFAULT_GAUGES = [
  'sluice_nodejs_active_handles_total',
  'sluice_nodejs_active_requests_total',
  'sluice_nodejs_active_resources_total',
];

/** `stage` of sluice_sink_upload_duration_seconds. */
export type UploadStage = 'part' | 'close' | 'object';

/**
 * Every metric Sluice exports, on one registry; the README's metrics reference documents each one (a test
 * keeps the two in step). Labels are bounded: component ids come from the config, reasons and
 * stages from fixed lists in the code, never from input.
 *
 * Counts made on worker threads (malformed, kinds) cross to the main thread as per-batch
 * totals in each BatchResult and are added here by the dispatcher: no message per record.
 *
 * Accounting (README, "The books"), per source:
 *   received = Σ discarded (every reason) + delivered to its sinks + in flight
 * and per sink, over its inputs:
 *   Σ delivered = sent + Σ sink discarded (every reason) + in flight
 * and in flight is zero after a drain.
 */
export class Metrics {
  readonly registry = new Registry();

  // sources
  readonly receivedEvents: Counter<'component_id' | 'component_type'>;
  readonly receivedBytes: Counter<'component_id' | 'component_type'>;
  readonly discardedEvents: Counter<'component_id' | 'component_type' | 'reason'>;
  readonly malformedEvents: Counter<'component_id' | 'reason'>;
  readonly recordKinds: Counter<'component_id' | 'kind'>;
  readonly openConnections: Gauge<'component_id'>;
  readonly kernelDrops: Counter<'component_id'>;
  readonly connectionsRefused: Counter<'component_id' | 'reason'>;
  readonly httpRequests: Counter<'component_id' | 'status' | 'code'>;

  // rings
  readonly ringCapacity: Gauge<'component_id'>;
  readonly ringUsed: Gauge<'component_id'>;

  // worker pool
  readonly batches: Counter<'component_id'>;
  readonly batchDuration: Histogram<'component_id'>;
  readonly batchFailures: Counter<'component_id'>;
  readonly workerQueueDepth: Gauge;
  readonly workerUtilization: Gauge;
  readonly workerBusySeconds: Counter;
  readonly workerThreads: Gauge;
  readonly workerThreadsRunning: Gauge;
  readonly workerHeapUsed: Gauge;
  readonly workerHeapTotal: Gauge;
  readonly workerExternal: Gauge;
  readonly workerNative: Gauge<'addon'>;

  // sinks
  readonly sentEvents: Counter<'component_id' | 'component_type'>;
  readonly sentBytes: Counter<'component_id' | 'component_type'>;
  readonly sentRawBytes: Counter<'component_id' | 'component_type'>;
  readonly objectsCompleted: Counter<'component_id' | 'component_type'>;
  readonly indexesWritten: Counter<'component_id' | 'component_type'>;
  readonly indexFailures: Counter<'component_id' | 'component_type'>;
  readonly partsUploaded: Counter<'component_id' | 'component_type'>;
  readonly uploadDuration: Histogram<'component_id' | 'component_type' | 'stage'>;
  readonly sinkFailures: Counter<'component_id' | 'component_type' | 'reason'>;
  readonly sinkDiscardedEvents: Counter<'component_id' | 'component_type' | 'reason'>;
  readonly sinkRetries: Counter<'component_id' | 'component_type' | 'reason'>;
  readonly sinkBufferedBytes: Gauge<'component_id' | 'component_type'>;
  readonly lastObjectTimestamp: Gauge<'component_id'>;
  readonly uploadPeriod: Gauge<'component_id'>;
  readonly ready: Gauge;

  readonly buildInfo: Gauge<'version' | 'node_version'>;

  /** Gauges read at scrape time: metric name → function that sets its current values. */
  readonly #probes = new Map<string, (() => void)[]>();

  constructor(version: string) {
    const registers = [this.registry];
    const probes = this.#probes;
    const probe = function probe(this: unknown): void {
      for (const fn of probes.get((this as { name: string }).name) ?? []) fn();
    };
    // Prefix sluice_: process_cpu_seconds_total becomes sluice_process_cpu_seconds_total, nodejs_* sluice_nodejs_*.
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_' });
    // prom-client adds gauges named *_total next to the per-type ones; a gauge ending in _total
    // fails `promtool check metrics` ("non-counter metrics should not have _total suffix"), and
    // sum(sluice_nodejs_active_handles) is the same number.
    for (const name of DROPPED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);

    this.receivedEvents = new Counter({
      name: 'sluice_source_received_events_total',
      help: 'Records a source received (every one, before any drop): lines (tcp), datagrams (udp), events and raw lines (splunk_hec; a refused request counts the events it held, at least 1).',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.receivedBytes = new Counter({
      name: 'sluice_source_received_bytes_total',
      help: 'Bytes a source read: tcp the stream (after TLS), udp the datagrams, splunk_hec the request bodies as sent (before gunzip).',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.discardedEvents = new Counter({
      name: 'sluice_source_discarded_events_total',
      help: 'Records a source or the worker pool dropped, by reason.',
      labelNames: ['component_id', 'component_type', 'reason'],
      registers,
    });
    this.malformedEvents = new Counter({
      name: 'sluice_source_malformed_events_total',
      help: 'Records that failed validation, by reason (also counted in discarded with reason malformed).',
      labelNames: ['component_id', 'reason'],
      registers,
    });
    this.recordKinds = new Counter({
      name: 'sluice_source_records_by_kind_total',
      help: 'Valid records by kind: service, kernel or other.',
      labelNames: ['component_id', 'kind'],
      registers,
    });
    this.kernelDrops = new Counter({
      name: 'sluice_source_kernel_dropped_datagrams_total',
      collect: probe,
      help: "Datagrams the kernel dropped for a UDP source's sockets (receive buffer full), from /proc/net/udp. Not part of received: peers sent received + these.",
      labelNames: ['component_id'],
      registers,
    });
    this.openConnections = new Gauge({
      name: 'sluice_source_open_connections',
      help: 'Open connections (tcp, splunk_hec).',
      labelNames: ['component_id'],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: 'sluice_source_connections_refused_total',
      help: 'Connections refused or closed by the source, by reason.',
      labelNames: ['component_id', 'reason'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'sluice_source_http_requests_total',
      help: 'HTTP requests an HTTP source (splunk_hec) answered, by HTTP status and HEC code ("" for answers without one, 404, 405, 413).',
      labelNames: ['component_id', 'status', 'code'],
      registers,
    });

    this.ringCapacity = new Gauge({
      name: 'sluice_ring_capacity_bytes',
      help: 'Capacity of a source ring.',
      labelNames: ['component_id'],
      registers,
    });
    this.ringUsed = new Gauge({
      name: 'sluice_ring_used_bytes',
      collect: probe,
      help: 'Bytes waiting in a source ring.',
      labelNames: ['component_id'],
      registers,
    });

    this.batches = new Counter({
      name: 'sluice_worker_batches_total',
      help: 'Batches processed by the worker pool.',
      labelNames: ['component_id'],
      registers,
    });
    this.batchDuration = new Histogram({
      name: 'sluice_worker_batch_duration_seconds',
      help: 'Time from handing a batch to the worker pool to its result on the main thread (queue wait + processing + transfer).',
      labelNames: ['component_id'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.batchFailures = new Counter({
      name: 'sluice_worker_batch_failures_total',
      help: 'Batches a worker could not process (records counted as discarded, reason worker_error).',
      labelNames: ['component_id'],
      registers,
    });
    this.workerQueueDepth = new Gauge({
      name: 'sluice_worker_queue_depth',
      collect: probe,
      help: 'Batches waiting for a worker thread.',
      registers,
    });
    this.workerUtilization = new Gauge({
      name: 'sluice_worker_utilization_ratio',
      collect: probe,
      help: "Share of the worker threads' time spent on batches over about the last minute (0 to 1); rate(sluice_worker_busy_seconds_total) / sluice_worker_threads is the same over any window.",
      registers,
    });
    this.workerBusySeconds = new Counter({
      name: 'sluice_worker_busy_seconds_total',
      collect: probe,
      help: 'Thread-seconds the worker threads spent on batches.',
      registers,
    });
    this.workerThreads = new Gauge({
      name: 'sluice_worker_threads',
      help: 'Most worker threads the pool runs (workers.threads).',
      registers,
    });
    this.workerThreadsRunning = new Gauge({
      name: 'sluice_worker_threads_running',
      collect: probe,
      help: 'Worker threads running now: none without traffic, more while batches wait for a thread (up to sluice_worker_threads); each stops after 30 s without a batch.',
      registers,
    });
    // The worker threads' heaps, which the main thread's sluice_nodejs_heap_* gauges do not see.
    // One read serves the three gauges; they are set together by the probe of the first.
    this.workerHeapUsed = new Gauge({
      name: 'sluice_worker_heap_size_used_bytes',
      collect: probe,
      help: 'V8 heap used by the worker threads running, summed (as of the previous scrape).',
      registers,
    });
    this.workerHeapTotal = new Gauge({
      name: 'sluice_worker_heap_size_total_bytes',
      help: 'V8 heap size of the worker threads running, summed (as of the previous scrape).',
      registers,
    });
    this.workerExternal = new Gauge({
      name: 'sluice_worker_external_memory_bytes',
      help: 'Memory outside the V8 heaps of the worker threads running (Buffers and ArrayBuffers), summed (as of the previous scrape).',
      registers,
    });
    this.workerNative = new Gauge({
      name: 'sluice_worker_native',
      help: '1 when the worker threads run the native addon (addon: batch, the validate + tag fast path; zstd, the compressor), 0 when they fall back to TypeScript or node:zlib.',
      labelNames: ['addon'],
      registers,
    });

    this.sentEvents = new Counter({
      name: 'sluice_sink_sent_events_total',
      help: 'Records in objects that completed (stored).',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.sentBytes = new Counter({
      name: 'sluice_sink_sent_bytes_total',
      help: 'Compressed bytes in objects that completed.',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.sentRawBytes = new Counter({
      name: 'sluice_sink_sent_uncompressed_bytes_total',
      help: 'Uncompressed NDJSON bytes in objects that completed.',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.objectsCompleted = new Counter({
      name: 'sluice_sink_objects_completed_total',
      help: 'Objects completed.',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.indexesWritten = new Counter({
      name: 'sluice_sink_index_written_total',
      help: 'Object indexes (sidecars beside completed objects) stored.',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.indexFailures = new Counter({
      name: 'sluice_sink_index_failures_total',
      help: 'Object indexes that could not be stored; their objects stand and readers scan them.',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.partsUploaded = new Counter({
      name: 'sluice_sink_parts_uploaded_total',
      help: 'Parts stored by the object store (aws_s3: UploadPart, or PutObject for an object smaller than one part).',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    // From a 5 MiB part on a fast link (tens of ms) to an object kept open for upload_period_secs (up to a day).
    this.uploadDuration = new Histogram({
      name: 'sluice_sink_upload_duration_seconds',
      help: 'Upload time by stage: part (one part request, retries included; aws_s3), close (from closing an object to durable: last part, completion, verification / fsync, rename), object (from opening an object to durable).',
      labelNames: ['component_id', 'component_type', 'stage'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 21600, 86400],
      registers,
    });
    this.sinkFailures = new Counter({
      name: 'sluice_sink_failures_total',
      help: 'Objects that failed for good (after the store\'s own retries), by reason; their records are counted in sluice_sink_discarded_events_total{reason="object_failed"}.',
      labelNames: ['component_id', 'component_type', 'reason'],
      registers,
    });
    this.sinkDiscardedEvents = new Counter({
      name: 'sluice_sink_discarded_events_total',
      help: 'Records a sink dropped, by reason.',
      labelNames: ['component_id', 'component_type', 'reason'],
      registers,
    });
    this.sinkRetries = new Counter({
      name: 'sluice_sink_retries_total',
      help: 'Requests to the store retried, by reason (aws_s3: network, timeout, throttled, server_error).',
      labelNames: ['component_id', 'component_type', 'reason'],
      registers,
    });
    this.sinkBufferedBytes = new Gauge({
      name: 'sluice_sink_buffered_bytes',
      collect: probe,
      help: 'Bytes written to the store and not yet stored (aws_s3: waiting for or in an upload; file: in write buffers).',
      labelNames: ['component_id', 'component_type'],
      registers,
    });
    this.lastObjectTimestamp = new Gauge({
      name: 'sluice_sink_last_object_timestamp_seconds',
      help: 'Unix time of the last object completed (durable in the store).',
      labelNames: ['component_id'],
      registers,
    });
    // The configured period, so an alert can tell a stuck sink (no object for a few periods) from a slow one.
    this.uploadPeriod = new Gauge({
      name: 'sluice_sink_upload_period_seconds',
      help: 'upload_period_secs of a sink: how long an object stays open at most.',
      labelNames: ['component_id'],
      registers,
    });
    // /readyz as a number, so Prometheus sees readiness without a probe of its own.
    this.ready = new Gauge({
      name: 'sluice_ready',
      collect: probe,
      help: '1 when /readyz answers 200 (every source bound, running), 0 otherwise.',
      registers,
    });

    this.buildInfo = new Gauge({
      name: 'sluice_build_info',
      help: 'Always 1; labels carry the version.',
      labelNames: ['version', 'node_version'],
      registers,
    });
    this.buildInfo.set({ version, node_version: process.versions.node }, 1);
  }

  /** Set how a scrape-time gauge reads its value (ring fill, worker queue, utilisation). */
  probe(metricName: ProbedMetric, fn: () => void): void {
    const list = this.#probes.get(metricName) ?? [];
    list.push(fn);
    this.#probes.set(metricName, list);
  }
}
