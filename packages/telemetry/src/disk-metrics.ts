import { Counter, Gauge, type Registry } from './prom.ts';

/**
 * Metrics of sinks waiting for their local disk (full, read-only, failing), per sink and
 * `target`: `object` (the file sink's objects) or `spool` (a sink's write-ahead spool).
 * The blocked seconds include a stall still going on at scrape time, so rate() shows a disk
 * blocked for an hour as it happens, not only when it recovers.
 */
export class DiskMetrics {
  /** 1 while a write of the target waits for the disk. */
  readonly blocked: Gauge<'component_id' | 'target'>;
  readonly blockedSeconds: Counter<'component_id' | 'target'>;
  /** Refused disk operations tried again, by errno code (ENOSPC, EROFS, ...). */
  readonly retries: Counter<'component_id' | 'target' | 'code'>;
  /** Stalls going on: `<id>\0<target>` → when their blocked seconds were last counted (performance.now()). */
  readonly #stalls = new Map<string, { labels: { component_id: string; target: string }; countedAt: number }>();

  constructor(registry: Registry) {
    const registers = [registry];
    const stalls = this.#stalls;
    this.blocked = new Gauge({
      name: 'sluice_sink_disk_blocked',
      help: "1 while a write of the sink waits for its local disk (full, read-only, failing), by target (object: the file sink's objects; spool: the write-ahead spool).",
      labelNames: ['component_id', 'target'],
      registers,
    });
    this.blockedSeconds = new Counter({
      name: 'sluice_sink_disk_blocked_seconds_total',
      help: 'Seconds a sink spent waiting for its local disk, by target (object, spool); a stall going on counts up to the scrape.',
      labelNames: ['component_id', 'target'],
      registers,
      collect() {
        const now = performance.now();
        for (const s of stalls.values()) {
          this.inc(s.labels, Math.max(0, now - s.countedAt) / 1000);
          s.countedAt = now;
        }
      },
    });
    this.retries = new Counter({
      name: 'sluice_sink_disk_retries_total',
      help: 'Local disk operations (write, open, mkdir, rename, spool append) refused and tried again, by target and errno code.',
      labelNames: ['component_id', 'target', 'code'],
      registers,
    });
  }

  /** Series at 0 for a sink's target, so dashboards see them before the first stall. */
  init(id: string, target: string): void {
    const labels = { component_id: id, target };
    this.blocked.set(labels, 0);
    this.blockedSeconds.inc(labels, 0);
  }

  /** A stall began. */
  block(id: string, target: string): void {
    const labels = { component_id: id, target };
    this.blocked.set(labels, 1);
    this.#stalls.set(`${id}\0${target}`, { labels, countedAt: performance.now() });
  }

  /** The stall ended: count the seconds not counted at a scrape yet. */
  unblock(id: string, target: string): void {
    const labels = { component_id: id, target };
    this.blocked.set(labels, 0);
    const key = `${id}\0${target}`;
    const s = this.#stalls.get(key);
    if (s === undefined) return;
    this.#stalls.delete(key);
    this.blockedSeconds.inc(labels, Math.max(0, performance.now() - s.countedAt) / 1000);
  }
}
