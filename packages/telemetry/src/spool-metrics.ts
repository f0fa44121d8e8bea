import { Counter, Gauge, type Registry } from './prom.ts';

/**
 * Why the spool did not take a batch (the `reason` of sluice_spool_dropped_events_total), and
 * the only reasons the sink's spooling writer counts:
 * - `spool_full`: at max_spool_bytes with `when_full: drop_newest`; the batch is dropped.
 * - `disk_blocked`: the spool's disk refused the segment or the append with an error worth
 *   waiting out (full, read-only, failing) and `when_full` is `drop_newest`; the batch is
 *   dropped. With `block` the batch is held and appended again instead: nothing is counted.
 * - `not_spooled`: the batch goes to its object without the spool (not a loss): the disk
 *   refused it with an error no wait cures (EFBIG, ENOTDIR, ...), or, with `block`, the spool
 *   is full with nothing of this run to wait for.
 * A refused write is never dropped under a reason of its own: it is one of the last two.
 */
export const SPOOL_DROP_REASONS = ['spool_full', 'disk_blocked', 'not_spooled'] as const;
export type SpoolDropReason = (typeof SPOOL_DROP_REASONS)[number];

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
  /**
   * Records the spool did not take, by SPOOL_DROP_REASONS: `spool_full` and `disk_blocked` are
   * dropped (and in the sink's discards), `not_spooled` still go to their object. Bytes lost at
   * the end of a segment found at start are not records: corruptBytes counts them.
   */
  readonly droppedEvents: Counter<'component_id' | 'reason'>;
  /** Segments found at start whose tail was torn or corrupt, and the bytes not recovered. */
  readonly corruptSegments: Counter<'component_id' | 'problem'>;
  readonly corruptBytes: Counter<'component_id'>;
  /** Incomplete multipart uploads aborted at start (their data is sent again from the spool). */
  readonly abortedUploads: Counter<'component_id'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.bytes = new Gauge({
      name: 'sluice_spool_bytes',
      help: 'Bytes of spool segment files on disk.',
      labelNames: ['component_id'],
      registers,
    });
    this.maxBytes = new Gauge({
      name: 'sluice_spool_max_bytes',
      help: 'max_spool_bytes: the size at which the spool is full.',
      labelNames: ['component_id'],
      registers,
    });
    this.spooledEvents = new Counter({
      name: 'sluice_spool_appended_events_total',
      help: 'Records appended to the spool.',
      labelNames: ['component_id'],
      registers,
    });
    this.recoveredEvents = new Counter({
      name: 'sluice_spool_recovered_events_total',
      help: 'Records uploaded again at start from spool segments an earlier run left unfinished.',
      labelNames: ['component_id'],
      registers,
    });
    this.recoveredObjects = new Counter({
      name: 'sluice_spool_recovered_objects_total',
      help: 'Objects uploaded again at start from the spool.',
      labelNames: ['component_id'],
      registers,
    });
    this.deferredEvents = new Counter({
      name: 'sluice_spool_deferred_events_total',
      help: 'Records of objects still unfinished when a shutdown deadline passed, kept in the spool: the next start uploads them (sluice_spool_recovered_events_total).',
      labelNames: ['component_id'],
      registers,
    });
    this.droppedEvents = new Counter({
      name: 'sluice_spool_dropped_events_total',
      help: `Records the spool could not take, by reason (${SPOOL_DROP_REASONS.join(', ')}).`,
      labelNames: ['component_id', 'reason'],
      registers,
    });
    this.corruptSegments = new Counter({
      name: 'sluice_spool_corrupt_segments_total',
      help: 'Segments found at start with a torn or corrupt tail (problem torn, corrupt, bad_header).',
      labelNames: ['component_id', 'problem'],
      registers,
    });
    this.corruptBytes = new Counter({
      name: 'sluice_spool_corrupt_bytes_total',
      help: 'Bytes at the end of spool segments that did not verify and were not recovered.',
      labelNames: ['component_id'],
      registers,
    });
    this.abortedUploads = new Counter({
      name: 'sluice_spool_aborted_uploads_total',
      help: 'Incomplete multipart uploads from an earlier run aborted at start.',
      labelNames: ['component_id'],
      registers,
    });
  }
}
