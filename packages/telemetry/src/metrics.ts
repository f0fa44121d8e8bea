import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Metrics whose values are read when Prometheus scrapes, not counted as they happen. */
export type ProbedMetric = 'sluice_ring_used_bytes' | 'sluice_worker_queue_depth' | 'sluice_worker_utilization_ratio' | 'sluice_source_kernel_dropped_datagrams_total';

/**
 * Every metric Sluice exports, on one registry. Labels are bounded: component ids come from
 * the config, reasons and stages from fixed lists in the code, never from input.
 *
 * Accounting, per source and sink pair:
 *   received = stored (sent) + discarded (every reason) + in flight
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

  // sinks
  readonly sentEvents: Counter<'component_id' | 'component_type'>;
  readonly sentBytes: Counter<'component_id' | 'component_type'>;
  readonly sentRawBytes: Counter<'component_id' | 'component_type'>;
  readonly objectsCompleted: Counter<'component_id' | 'component_type'>;
  readonly objectsFailed: Counter<'component_id' | 'component_type'>;
  readonly sinkDiscardedEvents: Counter<'component_id' | 'component_type' | 'reason'>;
  readonly sinkRetries: Counter<'component_id'>;
  readonly lastObjectTimestamp: Gauge<'component_id'>;

  readonly buildInfo: Gauge<'version' | 'node_version'>;

  /** Gauges read at scrape time: metric name → function that sets its current values. */
  private readonly probes = new Map<string, (() => void)[]>();

  constructor(version: string) {
    const registers = [this.registry];
    const probes = this.probes;
    const probe = function probe(this: unknown): void {
      for (const fn of probes.get((this as { name: string }).name) ?? []) fn();
    };
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_process_' });

    this.receivedEvents = new Counter({ name: 'sluice_source_received_events_total', help: 'Records framed by a source (every one, before any drop).', labelNames: ['component_id', 'component_type'], registers });
    this.receivedBytes = new Counter({ name: 'sluice_source_received_bytes_total', help: 'Bytes read from the wire by a source.', labelNames: ['component_id', 'component_type'], registers });
    this.discardedEvents = new Counter({ name: 'sluice_source_discarded_events_total', help: 'Records a source or the worker pool dropped, by reason.', labelNames: ['component_id', 'component_type', 'reason'], registers });
    this.malformedEvents = new Counter({ name: 'sluice_source_malformed_events_total', help: 'Records that failed validation, by reason (also counted in discarded with reason malformed).', labelNames: ['component_id', 'reason'], registers });
    this.recordKinds = new Counter({ name: 'sluice_source_records_by_kind_total', help: 'Valid records by kind: service, kernel or other.', labelNames: ['component_id', 'kind'], registers });
    this.kernelDrops = new Counter({ name: 'sluice_source_kernel_dropped_datagrams_total', collect: probe, help: 'Datagrams the kernel dropped for a UDP source\'s sockets (receive buffer full), from /proc/net/udp. Not part of received: peers sent received + these.', labelNames: ['component_id'], registers });
    this.openConnections = new Gauge({ name: 'sluice_source_open_connections', help: 'Open TCP connections.', labelNames: ['component_id'], registers });
    this.connectionsRefused = new Counter({ name: 'sluice_source_connections_refused_total', help: 'Connections refused or closed by the source, by reason.', labelNames: ['component_id', 'reason'], registers });
    this.httpRequests = new Counter({ name: 'sluice_source_http_requests_total', help: 'HTTP requests an HTTP source (splunk_hec) answered, by HTTP status and HEC code ("" for answers without one, 404, 405, 413).', labelNames: ['component_id', 'status', 'code'], registers });

    this.ringCapacity = new Gauge({ name: 'sluice_ring_capacity_bytes', help: 'Capacity of a source ring.', labelNames: ['component_id'], registers });
    this.ringUsed = new Gauge({ name: 'sluice_ring_used_bytes', collect: probe, help: 'Bytes waiting in a source ring.', labelNames: ['component_id'], registers });

    this.batches = new Counter({ name: 'sluice_worker_batches_total', help: 'Batches processed by the worker pool.', labelNames: ['component_id'], registers });
    this.batchDuration = new Histogram({ name: 'sluice_worker_batch_duration_seconds', help: 'Time from dispatch to result of a batch.', labelNames: ['component_id'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers });
    this.batchFailures = new Counter({ name: 'sluice_worker_batch_failures_total', help: 'Batches a worker could not process (records counted as discarded, reason worker_error).', labelNames: ['component_id'], registers });
    this.workerQueueDepth = new Gauge({ name: 'sluice_worker_queue_depth', collect: probe, help: 'Batches waiting for a worker thread.', registers });
    this.workerUtilization = new Gauge({ name: 'sluice_worker_utilization_ratio', collect: probe, help: 'Share of time the worker threads were busy (0 to 1).', registers });

    this.sentEvents = new Counter({ name: 'sluice_sink_sent_events_total', help: 'Records in objects that completed (stored).', labelNames: ['component_id', 'component_type'], registers });
    this.sentBytes = new Counter({ name: 'sluice_sink_sent_bytes_total', help: 'Compressed bytes in objects that completed.', labelNames: ['component_id', 'component_type'], registers });
    this.sentRawBytes = new Counter({ name: 'sluice_sink_sent_uncompressed_bytes_total', help: 'Uncompressed NDJSON bytes in objects that completed.', labelNames: ['component_id', 'component_type'], registers });
    this.objectsCompleted = new Counter({ name: 'sluice_sink_objects_completed_total', help: 'Objects completed.', labelNames: ['component_id', 'component_type'], registers });
    this.objectsFailed = new Counter({ name: 'sluice_sink_objects_failed_total', help: 'Objects that failed for good (their records are counted as discarded).', labelNames: ['component_id', 'component_type'], registers });
    this.sinkDiscardedEvents = new Counter({ name: 'sluice_sink_discarded_events_total', help: 'Records a sink dropped, by reason.', labelNames: ['component_id', 'component_type', 'reason'], registers });
    this.sinkRetries = new Counter({ name: 'sluice_sink_retries_total', help: 'Requests to the store retried after a network error, 5xx or throttling (aws_s3).', labelNames: ['component_id'], registers });
    this.lastObjectTimestamp = new Gauge({ name: 'sluice_sink_last_object_timestamp_seconds', help: 'Unix time of the last object completed.', labelNames: ['component_id'], registers });

    this.buildInfo = new Gauge({ name: 'sluice_build_info', help: 'Always 1; labels carry the version.', labelNames: ['version', 'node_version'], registers });
    this.buildInfo.set({ version, node_version: process.versions.node }, 1);
  }

  /** Set how a scrape-time gauge reads its value (ring fill, worker queue, utilisation). */
  probe(metricName: ProbedMetric, fn: () => void): void {
    const list = this.probes.get(metricName) ?? [];
    list.push(fn);
    this.probes.set(metricName, list);
  }
}
