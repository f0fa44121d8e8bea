import type { Ring } from '@sluice/ring';
import { freeNow, type Frame, type ObjectWriter } from '@sluice/sinks';
import { RateLimitedLog, type Logger, type Metrics } from '@sluice/telemetry';
import { countLines, type BatchResult, type BatchTask, type Codec } from '@sluice/worker';

/** The part of a worker pool the dispatcher uses. */
interface BatchRunner {
  run(task: BatchTask): Promise<BatchResult>;
}

/** What a sink does when its writer says "wait" (write() returned false). */
export type WhenFull = 'block' | 'drop_newest';

export interface DispatchOutput {
  writer: ObjectWriter;
  /** Index into the route's codecs: which frame of a result goes to this writer. */
  codecIndex: number;
  /**
   * `block`: stop delivering this route's results until the writer's 'drain' (the ring fills,
   * TCP pauses, UDP drops are counted at the source). `drop_newest`: while the writer is
   * blocked, drop this sink's frames and count their records (reason `disk_blocked` while its
   * store waits for a full or failing disk, else `buffer_full`); the route goes on.
   */
  whenFull: WhenFull;
  /** The sink indexes its objects: its frames keep the batch's index facts. */
  index: boolean;
  /** Labels of sluice_sink_discarded_events_total for this sink. */
  sinkLabels: { component_id: string; component_type: string };
}

export interface Route {
  sourceId: string;
  sourceType: string;
  ring: Ring;
  codecs: Codec[];
  outputs: DispatchOutput[];
  deadLetter: ObjectWriter | null;
  /** Called after ring space was released, so paused writers (TCP sockets) go on. */
  onRingSpace: () => void;
}

interface Span {
  start: number;
  end: number;
  startedAt: number;
  result: BatchResult | null;
}

interface RouteState {
  route: Route;
  inflight: Span[];
  timer: NodeJS.Timeout | null;
  /** Writers that asked us to wait ('drain' pending). */
  waitingOn: number;
  labels: { component_id: string };
}

export interface DispatcherOptions {
  runner: BatchRunner;
  metrics: Metrics;
  logger: Logger;
  /** Raw record bytes per task. */
  batchBytes: number;
  batchTimeoutMs: number;
  /** Tasks in flight per route; two per thread keeps every thread busy while results are delivered. */
  maxInflightPerRoute: number;
}

/**
 * Frees a batch's frames now that every sink copied them (or dropped them): detaching each
 * frame's ArrayBuffer releases its memory at once. Each frame is a malloc'd block a worker
 * made and transferred; left to the main thread's collector they were ~10-30 MiB of garbage
 * at a burst's peak, and freed late and out of order they left holes in the workers' malloc
 * arenas that glibc never returns (peak RSS of a 1,000,000-line burst into S3:
 * docs/benchmarks.md, "Memory"). freeNow detaches only a frame that owns its whole ArrayBuffer
 * (as the workers' do).
 */
function freeFrames(frames: readonly Uint8Array[]): void {
  for (const f of frames) freeNow(f);
}

/**
 * Moves records from rings to workers and results to object writers.
 *
 * The dispatcher owns each ring's consumer index: it claims record-aligned spans, hands
 * each span to a worker (which reads it straight out of the SharedArrayBuffer), delivers the
 * results to the writers in claim order and only then releases the span. So the ring bounds
 * everything between a socket and an object writer, and a writer that says "wait" stops
 * the releases, which fills the ring, which pauses the TCP sockets.
 */
export class Dispatcher {
  readonly #opts: DispatcherOptions;
  readonly #states = new Map<string, RouteState>();
  /** A crashing worker fails every batch: one line a minute per source, the metrics count each. */
  readonly #failureLog: RateLimitedLog;
  #flushing = false;
  /** Set by abandon(): nothing more is dispatched or delivered. */
  #abandoned = false;
  #idleWaiters: (() => void)[] = [];
  /** drop_newest writers that returned false and have not emitted 'drain' yet. Shared by
   *  every route feeding the writer: a sink with two inputs is blocked for both. */
  readonly #blockedWriters = new Set<ObjectWriter>();

  constructor(opts: DispatcherOptions) {
    this.#opts = opts;
    this.#failureLog = new RateLimitedLog(opts.logger);
  }

  addRoute(route: Route): void {
    this.#states.set(route.sourceId, {
      route,
      inflight: [],
      timer: null,
      waitingOn: 0,
      labels: { component_id: route.sourceId },
    });
  }

  /** A source wrote into its ring. Cheap: called once per socket read. */
  wrote(sourceId: string): void {
    const st = this.#states.get(sourceId);
    if (st === undefined) return;
    if (this.#abandoned) {
      this.#discardUnreleased(st);
      return;
    }
    if (st.route.ring.unclaimedBytes() >= this.#opts.batchBytes) this.#dispatch(st, false);
    else if (st.timer === null) st.timer = setTimeout(() => this.#onTimer(st), this.#opts.batchTimeoutMs);
  }

  /** Send every record still in the rings and resolve when all results are delivered. */
  async flush(): Promise<void> {
    this.#flushing = true;
    for (const st of this.#states.values()) this.#dispatch(st, true);
    await new Promise<void>((resolve) => {
      this.#idleWaiters.push(resolve);
      this.#checkIdle();
    });
  }

  /**
   * The shutdown deadline passed: dispatch and deliver nothing more, and count every record
   * still in a ring as discarded (source reason `shutdown_timeout`): unclaimed ones, and those
   * of batches not delivered to a writer yet (what writers took, their abandon() counts). What
   * a source writes afterwards is counted the same way. Returns the lines counted per source.
   */
  abandon(): Map<string, number> {
    this.#abandoned = true;
    const counted = new Map<string, number>();
    for (const st of this.#states.values()) {
      if (st.timer !== null) clearTimeout(st.timer);
      st.timer = null;
      counted.set(st.route.sourceId, this.#discardUnreleased(st));
    }
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
    return counted;
  }

  /** Count and release everything between the ring's read index and its write index (abandon()). */
  #discardUnreleased(st: RouteState): number {
    const { route } = st;
    const ring = route.ring;
    const start = ring.readIndex();
    while (ring.claim(ring.capacity) !== null);
    const end = ring.writeIndex();
    st.inflight.length = 0;
    if (end === start) return 0;
    const lines = this.#discardSpan(route, start, end, 'shutdown_timeout');
    ring.release(end);
    return lines;
  }

  /** Count the lines of the ring span [start, end) as discarded by the route's source, with `reason`. */
  #discardSpan(route: Route, start: number, end: number, reason: 'worker_error' | 'shutdown_timeout'): number {
    // A ring record may be a block of TCP lines: count line by line.
    const bytes = new Uint8Array((end - start) >>> 0);
    const lines = countLines(bytes, route.ring.copyOut(start, end, bytes));
    this.#opts.metrics.discardedEvents.inc(
      { component_id: route.sourceId, component_type: route.sourceType, reason },
      lines,
    );
    return lines;
  }

  /** Bytes claimed but not yet released, and waiting, per route (for metrics and tests). */
  pending(): number {
    let n = 0;
    for (const st of this.#states.values()) n += st.inflight.length + st.route.ring.unclaimedBytes();
    return n;
  }

  #onTimer(st: RouteState): void {
    st.timer = null;
    this.#dispatch(st, true);
  }

  /** Claim spans and submit them. `partial`: also send a batch smaller than batch_bytes. */
  #dispatch(st: RouteState, partial: boolean): void {
    if (this.#abandoned) return;
    const ring = st.route.ring;
    while (st.inflight.length < this.#opts.maxInflightPerRoute) {
      const unclaimed = ring.unclaimedBytes();
      if (unclaimed === 0) break;
      if (!partial && !this.#flushing && unclaimed < this.#opts.batchBytes) break;
      const claimed = ring.claim(this.#opts.batchBytes);
      if (claimed === null) break;
      const span: Span = { start: claimed.start, end: claimed.end, startedAt: performance.now(), result: null };
      st.inflight.push(span);
      const task: BatchTask = {
        sab: ring.sab,
        start: span.start,
        end: span.end,
        sourceId: st.route.sourceId,
        codecs: st.route.codecs,
      };
      this.#opts.runner.run(task).then(
        (result) => this.#onResult(st, span, result),
        (err: unknown) => this.#onResult(st, span, { ok: false, error: String(err) }),
      );
    }
    // Whatever stays unclaimed goes out when the timer fires or a result frees a slot.
    if (ring.unclaimedBytes() > 0 && st.timer === null && st.inflight.length < this.#opts.maxInflightPerRoute) {
      st.timer = setTimeout(() => this.#onTimer(st), this.#opts.batchTimeoutMs);
    }
  }

  #onResult(st: RouteState, span: Span, result: BatchResult): void {
    span.result = result;
    this.#opts.metrics.batchDuration.observe(st.labels, (performance.now() - span.startedAt) / 1000);
    this.#deliver(st);
  }

  /** Hand finished spans to the writers in claim order; release their ring space. */
  #deliver(st: RouteState): void {
    if (this.#abandoned) return; // its records were counted by abandon()
    const { route } = st;
    const m = this.#opts.metrics;
    let released = false;
    while (st.waitingOn === 0) {
      const span = st.inflight[0];
      if (span === undefined || span.result === null) break;
      st.inflight.shift();
      const result = span.result;
      m.batches.inc(st.labels);
      if (result.ok) {
        const c = result.counts;
        if (c.accepted > 0) {
          let released = true;
          for (const out of route.outputs) {
            const bytes = result.frames[out.codecIndex];
            if (bytes === undefined) continue;
            const facts = result.facts === undefined ? {} : { facts: result.facts };
            const frame = { bytes, records: c.accepted, rawBytes: result.ndjsonBytes, ...facts };
            if (!this.#write(st, out, frame)) released = false;
          }
          if (released) freeFrames(result.frames);
        }
        let malformed = 0;
        for (const reason in c.malformed) {
          const n = c.malformed[reason] ?? 0;
          if (n === 0) continue;
          malformed += n;
          m.malformedEvents.inc({ component_id: route.sourceId, reason }, n);
        }
        if (malformed > 0)
          m.discardedEvents.inc(
            { component_id: route.sourceId, component_type: route.sourceType, reason: 'malformed' },
            malformed,
          );
        if (c.kinds.service > 0) m.recordKinds.inc({ component_id: route.sourceId, kind: 'service' }, c.kinds.service);
        if (c.kinds.kernel > 0) m.recordKinds.inc({ component_id: route.sourceId, kind: 'kernel' }, c.kinds.kernel);
        if (c.kinds.other > 0) m.recordKinds.inc({ component_id: route.sourceId, kind: 'other' }, c.kinds.other);
        if (result.deadLetter !== null && route.deadLetter !== null) {
          route.deadLetter.write({ bytes: result.deadLetter, records: malformed, rawBytes: result.deadLetter.length });
        }
      } else {
        m.batchFailures.inc(st.labels);
        const records = this.#discardSpan(route, span.start, span.end, 'worker_error');
        this.#failureLog.error(
          `batch:${route.sourceId}`,
          { component_id: route.sourceId, error: result.error, records },
          'a worker failed a batch; its records are counted as discarded',
        );
      }
      route.ring.release(span.end);
      released = true;
    }
    if (released) {
      route.onRingSpace();
      this.#dispatch(st, this.#flushing);
    }
    this.#checkIdle();
  }

  /**
   * One frame to one sink, by the sink's when_full. Returns whether the sink kept no reference
   * to the frame's bytes (dropped, or copied by its store).
   */
  #write(st: RouteState, out: DispatchOutput, batchFrame: Frame): boolean {
    // A sink that does not index gets no facts: its objects get no index.
    const frame =
      out.index || batchFrame.facts === undefined
        ? batchFrame
        : { bytes: batchFrame.bytes, records: batchFrame.records, rawBytes: batchFrame.rawBytes };
    const writer = out.writer;
    const records = frame.records;
    if (out.whenFull === 'drop_newest') {
      if (this.#blockedWriters.has(writer)) {
        this.#opts.metrics.sinkDiscardedEvents.inc({ ...out.sinkLabels, reason: writer.pushbackReason }, records);
        return true;
      }
      if (!writer.write(frame)) {
        // The frame was taken; the ones after it are dropped until the writer drains.
        this.#blockedWriters.add(writer);
        writer.once('drain', () => this.#blockedWriters.delete(writer));
      }
      return writer.released(frame);
    }
    if (!writer.write(frame)) {
      st.waitingOn++;
      writer.once('drain', () => {
        st.waitingOn--;
        this.#deliver(st);
      });
    }
    return writer.released(frame);
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    for (const st of this.#states.values()) {
      if (st.inflight.length > 0 || st.route.ring.unclaimedBytes() > 0) {
        if (st.inflight.length === 0) this.#dispatch(st, true);
        return;
      }
    }
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
