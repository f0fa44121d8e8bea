import { Counter, Gauge, type Registry } from './prom.ts';

/** Metrics of the sinks' write-ahead spools (packages/spool), on the engine's registry. */
export class SpoolMetrics {
  /** Bytes of segment files on disk, per sink. */
  readonly bytes: Gauge<'component_id'>;
  /** max_spool_bytes per sink: what sluice_spool_bytes is compared with to see a spool filling up. */
  readonly maxBytes: Gauge<'component_id'>;
  /** Records appended to the spool (each one is at least once from here on). */
  readonly spooledEvents: Counter<'component_id'>;
  /** Records uploaded again at start from segments an earlier run left. */
  readonly recoveredEvents: Counter<'component_id'>;
  readonly recoveredObjects: Counter<'component_id'>;
  /** Records of objects unfinished at a shutdown deadline that stay in the spool for the next start. */
  readonly deferredEvents: Counter<'component_id'>;
  /** Records not spooled: `spool_full` (drop_newest), `io_error` (the disk refused the write), `torn_tail` (bytes lost at the end of a segment found at start are counted in corruptBytes). */
  readonly droppedEvents: Counter<'component_id' | 'reason'>;
  /** Segments found at start whose tail was torn or corrupt, and the bytes not recovered. */
  readonly corruptSegments: Counter<'component_id' | 'problem'>;
  readonly corruptBytes: Counter<'component_id'>;
  /** Incomplete multipart uploads aborted at start (their data is sent again from the spool). */
  readonly abortedUploads: Counter<'component_id'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.bytes = new Gauge({ name: 'sluice_spool_bytes', help: 'Bytes of spool segment files on disk.', labelNames: ['component_id'], registers });
    this.maxBytes = new Gauge({ name: 'sluice_spool_max_bytes', help: 'max_spool_bytes: the size at which the spool is full.', labelNames: ['component_id'], registers });
    this.spooledEvents = new Counter({ name: 'sluice_spool_appended_events_total', help: 'Records appended to the spool.', labelNames: ['component_id'], registers });
    this.recoveredEvents = new Counter({ name: 'sluice_spool_recovered_events_total', help: 'Records uploaded again at start from spool segments an earlier run left unfinished.', labelNames: ['component_id'], registers });
    this.recoveredObjects = new Counter({ name: 'sluice_spool_recovered_objects_total', help: 'Objects uploaded again at start from the spool.', labelNames: ['component_id'], registers });
    this.deferredEvents = new Counter({ name: 'sluice_spool_deferred_events_total', help: 'Records of objects still unfinished when a shutdown deadline passed, kept in the spool: the next start uploads them (sluice_spool_recovered_events_total).', labelNames: ['component_id'], registers });
    this.droppedEvents = new Counter({ name: 'sluice_spool_dropped_events_total', help: 'Records the spool could not take, by reason (spool_full, io_error).', labelNames: ['component_id', 'reason'], registers });
    this.corruptSegments = new Counter({ name: 'sluice_spool_corrupt_segments_total', help: 'Segments found at start with a torn or corrupt tail (problem torn, corrupt, bad_header).', labelNames: ['component_id', 'problem'], registers });
    this.corruptBytes = new Counter({ name: 'sluice_spool_corrupt_bytes_total', help: 'Bytes at the end of spool segments that did not verify and were not recovered.', labelNames: ['component_id'], registers });
    this.abortedUploads = new Counter({ name: 'sluice_spool_aborted_uploads_total', help: 'Incomplete multipart uploads from an earlier run aborted at start.', labelNames: ['component_id'], registers });
  }
}
