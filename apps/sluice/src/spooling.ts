/**
 * A sink's write-ahead spool, wired around its ObjectWriter (config `spool: true`).
 *
 *   dispatcher ──write(frame)──► SpoolingWriter ──append──► <data_dir>/spool/<sink>/<seq>.seg
 *                                      │ then                 (one segment per object)
 *                                      └──► ObjectWriter ──► store ──'object'──► segment removed
 *
 * - A frame is appended to its object's segment before the ObjectWriter takes it (for the
 *   first frame of an object, inside the writer's 'open' event, before the frame is counted).
 * - A segment is sealed (fsync) when its object rotates, and removed on the object's 'object'
 *   event (complete in the store). An object that fails for good, or is abandoned at a
 *   shutdown deadline, keeps its segment: the next start uploads it again.
 * - At start, before the sources bind, recoverSpool() uploads every segment an earlier run
 *   left, under the object key it was written for (so an object that did complete before the
 *   crash is overwritten with the same bytes rather than duplicated), after aborting that
 *   key's incomplete multipart uploads.
 * - Full (`max_spool_bytes`): `drop_newest` drops the frame and counts it (`spool_full`);
 *   `block` holds it (one per route), rotates the open object so its segment can complete,
 *   and answers false until segments are removed, so the ring fills and TCP pauses.
 * - The spool's disk refuses a write (full, read-only, failing: retryableDiskError): the same,
 *   with the reason `disk_blocked`; `block` holds the frame and appends it again, 100 ms
 *   doubling to 5 s apart and whenever an object completes (its segment's space returns),
 *   until the disk takes it. A frame goes to its object only once it is in the spool, so
 *   nothing appended is lost and nothing held is stored unspooled. Before the first frame of
 *   an object the segment is created under the object's reserved key (reserveNextKey), so a
 *   refused create holds the frame too.
 * - Any other refusal (EFBIG, ENOTDIR: no wait cures it): the frame goes to its object without
 *   the spool, counted `not_spooled` (stored, not durable before its object completes). So a
 *   refused write is never a loss of its own: SPOOL_DROP_REASONS has every reason counted.
 *
 * Backpressure is kept: the spool makes data durable, it does not let the rings drain
 * faster than the store takes objects.
 */
import { join, resolve as resolvePath } from 'node:path';
import type { SinkConfig } from '@sluice/config';
import {
  cloneFacts,
  mergeFacts,
  writeIndex,
  type IndexFacts,
  contentEncodingFor,
  diskRetryDelayMs,
  NDJSON_CONTENT_TYPE,
  ObjectWriter,
  retryableDiskError,
  type DiskStall,
  type Frame,
  type ObjectMeta,
  type ObjectStore,
  type ObjectWriterOptions,
  type UnfinishedObject,
} from '@sluice/sinks';
import type { Logger, SpoolDropReason, SpoolMetrics } from '@sluice/telemetry';
import { SegmentReader, Spool, type Segment } from '@sluice/spool';
import { decompressObject, FactsScanner, type Codec } from '@sluice/worker';

export interface SpoolingWriterOptions extends ObjectWriterOptions {
  spool: Spool;
  whenFull: 'block' | 'drop_newest';
  metrics: SpoolMetrics;
  log: Logger;
  /** Reports the spool's disk stalls (target `spool`): metrics and log lines. */
  disk?: DiskStall;
  /** The fields the workers index (indexFieldsFor): a segment sent again gets its index from its frames. */
  indexFields?: readonly string[];
  /** Records dropped (drop_newest) because the spool was full or its disk refused them: a loss the sink's books must show. */
  onDiscard?: (records: number, reason: 'spool_full' | 'disk_blocked') => void;
}

/** What #take did with a frame: taken (and the writer goes on, or says wait), or held for the spool. */
type Took = 'ok' | 'wait' | 'held';

/** A failed object is sent again after 5 s, then 10, 20, … up to 5 minutes between tries. */
const RESEND_FIRST_DELAY_MS = 5_000;
const RESEND_MAX_DELAY_MS = 300_000;

/**
 * The index facts of a segment's frames, recomputed from the records (decompressed one frame at
 * a time): a recovered or resent object gets the same index as one written live. null when a
 * frame cannot be decompressed (the object then has no index; readers scan it). Rare (a restart
 * after a crash, an object sent again), so the cost is of no matter.
 */
function factsOfFrame(scanner: FactsScanner, codec: string, bytes: Uint8Array): IndexFacts | null {
  try {
    return scanner.scan(decompressObject(codec as Codec, bytes));
  } catch {
    return null;
  }
}

/**
 * Upload a segment's good frames as the object it was written for; rejects if the store does.
 * With a scanner, the result carries the object's index facts (null: none could be made).
 */
async function uploadSegment(
  store: ObjectStore,
  reader: SegmentReader,
  first = reader.next(),
  scanner?: FactsScanner,
): Promise<{ records: number; bytes: number; rawBytes: number; frames: number; facts: IndexFacts | null }> {
  const meta = reader.meta;
  if (meta === null) {
    reader.close();
    throw new Error(`spool segment ${reader.path} has no readable header`);
  }
  const encoding = contentEncodingFor(meta.codec as 'zstd' | 'gzip' | 'none');
  const objectMeta: ObjectMeta =
    encoding === undefined
      ? { contentType: NDJSON_CONTENT_TYPE }
      : { contentType: NDJSON_CONTENT_TYPE, contentEncoding: encoding };
  const upload = store.open(meta.key, objectMeta);
  const sent = { records: 0, bytes: 0, rawBytes: 0, frames: 0 };
  let facts: IndexFacts | null | undefined = scanner === undefined ? null : undefined;
  for (let f = first; f !== null; f = reader.next()) {
    sent.records += f.records;
    sent.bytes += f.bytes.byteLength;
    sent.rawBytes += f.rawBytes;
    sent.frames++;
    if (scanner !== undefined && facts !== null) {
      const ff = factsOfFrame(scanner, meta.codec, f.bytes);
      if (ff === null) facts = null;
      else if (facts === undefined) facts = cloneFacts(ff);
      else mergeFacts(facts, ff);
    }
    if (!upload.write(f.bytes)) await new Promise<void>((resolve) => upload.once('drain', resolve));
  }
  await upload.close();
  return { ...sent, facts: facts ?? null };
}

export class SpoolingWriter extends ObjectWriter {
  readonly spool: Spool;
  readonly #whenFull: 'block' | 'drop_newest';
  readonly #metrics: SpoolMetrics;
  readonly #labels: { component_id: string };
  readonly #log: Logger;
  readonly #codec: string;
  readonly #maxObjectBytes: number;
  readonly #onDiscard: ((records: number, reason: 'spool_full' | 'disk_blocked') => void) | undefined;
  readonly #disk: DiskStall | undefined;
  /** Refused spool writes in a row (the backoff step); 0 = the disk takes writes. */
  #diskAttempt = 0;
  #diskTimer: NodeJS.Timeout | undefined = undefined;
  /** drop_newest: the disk refused a write and the next try is not due yet; frames are dropped. */
  #diskWaiting = false;
  /** The next object's segment, created under its reserved key before its first frame is taken. */
  #prepared: Segment | null = null;
  readonly #store: ObjectStore;
  /** Failed objects waiting to be sent again from their segments. */
  readonly #resends = new Set<NodeJS.Timeout>();
  #stopped = false;
  /** The open object's segment (null: none open, or the disk refused to create it). */
  #seg: Segment | null = null;
  /** Whether an object is open in the writer (its segment may be null). */
  #objectOpen = false;
  #objBytes = 0;
  /** Segments of objects not complete yet, by object key. */
  readonly #byKey = new Map<string, Segment>();
  /** block + full: frames taken and waiting for room (at most one per route). */
  readonly #pending: Frame[] = [];
  /** close() waiting for the held frames to be taken. */
  #held: PromiseWithResolvers<void> | null = null;
  #lastFullLog = 0;
  readonly #facts: FactsScanner | undefined;

  constructor(opts: SpoolingWriterOptions) {
    super(opts);
    this.#facts = opts.indexFields === undefined ? undefined : new FactsScanner(opts.indexFields);
    this.spool = opts.spool;
    this.#whenFull = opts.whenFull;
    this.#metrics = opts.metrics;
    this.#labels = { component_id: opts.sinkId };
    this.#log = opts.log;
    this.#codec = opts.codec;
    this.#maxObjectBytes = opts.maxObjectBytes;
    this.#onDiscard = opts.onDiscard;
    this.#store = opts.store;
    this.#disk = opts.disk;
    this.on('open', (key) => this.#onOpen(key));
    this.on('object', (info) => this.#onComplete(info.key));
    this.on('error-object', (e) => this.#onFailed(e.key));
    this.#metrics.bytes.set(this.#labels, this.spool.bytes);
  }

  override write(frame: Frame): boolean {
    if (this.#pending.length > 0) {
      this.#pending.push(frame);
      return false;
    }
    const took = this.#take(frame);
    if (took === 'held') {
      this.#pending.push(frame);
      return false;
    }
    return took === 'ok';
  }

  /**
   * A frame held for spool space is still referenced; one appended (writevSync) and passed on
   * is as the store left it.
   */
  override released(frame: Frame): boolean {
    return !this.#pending.includes(frame) && super.released(frame);
  }

  /** `disk_blocked` while the spool's disk (or the store's) refuses writes. */
  override get pushbackReason(): 'disk_blocked' | 'buffer_full' {
    return this.#disk?.blocked === true ? 'disk_blocked' : super.pushbackReason;
  }

  /**
   * Frames held for spool space are taken before the writer closes (a shutdown's dispatcher
   * flush ends once they left the ring): the objects they wait for are completing, and each
   * completion takes them. A shutdown deadline calls abandon(), which gives them up.
   */
  override async close(): Promise<void> {
    if (this.#pending.length > 0) {
      this.#held ??= Promise.withResolvers<void>();
      await this.#held.promise;
    }
    await super.close();
    this.#stopResends();
    // A segment created for an object that never opened (its frame was given up): only a header.
    if (this.#prepared !== null && this.#prepared.frames === 0) this.spool.remove(this.#prepared);
    this.#prepared = null;
  }

  /** Failed objects not sent again yet stay in the spool for the next start. */
  #stopResends(): void {
    this.#stopped = true;
    clearTimeout(this.#diskTimer);
    this.#diskTimer = undefined;
    if (this.#diskAttempt > 0) this.#disk?.clear(this);
    this.#diskAttempt = 0;
    for (const t of this.#resends) clearTimeout(t);
    if (this.#resends.size > 0)
      this.#log.warn({ objects: this.#resends.size }, 'failed objects stay in the spool; the next start uploads them');
    this.#resends.clear();
  }

  /**
   * As ObjectWriter.abandon(), plus the frames held for spool space (in no object yet). An
   * unfinished object's segment stays in the spool, made durable here (fdatasync): its records
   * are reported as `spooled`, since the next start uploads them.
   */
  override abandon(): UnfinishedObject[] {
    this.#stopResends();
    const out = super.abandon();
    for (const o of out) {
      const seg = this.#byKey.get(o.key);
      if (seg === undefined) continue;
      this.spool.seal(seg);
      o.spooled = Math.min(o.records, seg.records);
    }
    const held = this.#pending.splice(0);
    if (held.length > 0) {
      out.push({
        key: `(${held.length} batch(es) held for spool space, not in an object yet)`,
        records: held.reduce((n, f) => n + f.records, 0),
        rawBytes: held.reduce((n, f) => n + f.rawBytes, 0),
      });
    }
    this.#held?.resolve();
    return out;
  }

  override rotate(): void {
    const seg = this.#seg;
    this.#seg = null;
    this.#objectOpen = false;
    if (seg !== null) this.spool.seal(seg);
    super.rotate();
  }

  #take(frame: Frame): Took {
    const size = frame.bytes.byteLength;
    // Mirrors ObjectWriter.write(): a non-empty object rotates when the frame would pass max_object_bytes.
    const opens = !this.#objectOpen || this.#objBytes + size > this.#maxObjectBytes;
    if (!this.spool.hasRoom(size, opens && this.#prepared === null)) {
      if (this.#whenFull === 'drop_newest') {
        this.#dropped(frame.records, 'spool_full');
        return 'ok';
      }
      if (this.#byKey.size > 0) {
        // Wait for this run's objects to complete; rotate so the open one can.
        if (this.#seg !== null && this.#seg.frames > 0) this.rotate();
        this.#logFull();
        return 'held';
      }
      // Nothing of ours to wait for (the spool is full of segments an earlier run could not
      // upload, or the frame is larger than the spool): send it without the spool.
      this.#dropped(frame.records, 'not_spooled');
      return this.#pass(frame);
    }
    if (this.#diskWaiting) {
      // drop_newest, and the disk refused the last try: no new try before the backoff ends.
      this.#dropped(frame.records, 'disk_blocked');
      return 'ok';
    }
    let seg = opens ? this.#prepared : this.#seg;
    if (opens && seg === null) {
      // The segment first, under the key the object will get: a refused create holds the frame.
      try {
        seg = this.#prepared = this.spool.open({
          key: this.reserveNextKey(),
          codec: this.#codec,
          createdAtMs: Date.now(),
        });
      } catch (err) {
        const refused = this.#diskRefused(frame, 'create', err);
        if (refused !== null) return refused;
        // Not a disk to wait for: this object goes without the spool ('open' tries again and logs).
      }
    }
    if (seg === null) {
      this.#dropped(frame.records, 'not_spooled');
    } else if (this.spool.append(seg, frame.bytes, frame.records, frame.rawBytes)) {
      this.#metrics.spooledEvents.inc(this.#labels, frame.records);
      this.#metrics.bytes.set(this.#labels, this.spool.bytes);
    } else {
      const refused = this.#diskRefused(frame, 'append', this.spool.lastError);
      if (refused !== null) return refused;
      this.#dropped(frame.records, 'not_spooled');
    }
    if (this.#diskAttempt > 0) {
      // The disk took a write again.
      this.#diskAttempt = 0;
      this.#disk?.clear(this);
    }
    return this.#pass(frame); // may rotate and open: #onOpen adopts the prepared segment
  }

  /** Hand a frame to the ObjectWriter. */
  #pass(frame: Frame): Took {
    const ok = super.write(frame);
    this.#objBytes += frame.bytes.byteLength;
    return ok ? 'ok' : 'wait';
  }

  /**
   * The spool's disk refused `op` for this frame: null when the error is not one to wait out
   * (the caller sends the frame without the spool). Otherwise schedule the next try and hold
   * the frame (block, after rotating the open object so its segment can complete and free its
   * space) or drop it, counted (drop_newest).
   */
  #diskRefused(frame: Frame, op: 'create' | 'append', err: unknown): Took | null {
    const code = retryableDiskError(err);
    if (code === null) return null;
    const attempt = this.#diskAttempt++;
    const delayMs = diskRetryDelayMs(attempt);
    this.#disk?.retrying(this, op, this.spool.dir, code, attempt, delayMs);
    if (this.#diskTimer === undefined && !this.#stopped) {
      this.#diskTimer = setTimeout(() => {
        this.#diskTimer = undefined;
        this.#diskWaiting = false;
        this.#flushPending();
      }, delayMs);
    }
    if (this.#whenFull === 'drop_newest') {
      this.#diskWaiting = true;
      this.#dropped(frame.records, 'disk_blocked');
      return 'ok';
    }
    if (this.#seg !== null && this.#seg.frames > 0) this.rotate();
    return 'held';
  }

  #onOpen(key: string): void {
    this.#objectOpen = true;
    this.#objBytes = 0;
    const prepared = this.#prepared;
    if (prepared !== null && prepared.meta.key === key) {
      this.#prepared = null;
      this.#seg = prepared;
      this.#byKey.set(key, prepared);
      return;
    }
    // Opened by a frame sent without the spool: spool the frames after it, if the disk lets us.
    try {
      this.#seg = this.spool.open({ key, codec: this.#codec, createdAtMs: Date.now() });
      this.#byKey.set(key, this.#seg);
    } catch (err) {
      this.#seg = null;
      this.#log.error({ key, err }, 'cannot create a spool segment; this object is sent without the spool');
    }
  }

  #onComplete(key: string): void {
    const seg = this.#byKey.get(key);
    if (seg !== undefined) {
      this.#byKey.delete(key);
      this.spool.remove(seg);
      this.#metrics.bytes.set(this.#labels, this.spool.bytes);
    }
    this.#flushPending();
  }

  override keepsDataOf(key: string): boolean {
    return this.#byKey.has(key);
  }

  #onFailed(key: string): void {
    // Kept on disk: sent again as a new upload of the same key, with backoff, while this
    // process runs; what is still there at exit is uploaded by the next start.
    const seg = this.#byKey.get(key);
    this.#byKey.delete(key);
    if (seg !== undefined) this.#scheduleResend(seg, key, RESEND_FIRST_DELAY_MS);
    this.#flushPending();
  }

  #scheduleResend(seg: Segment, key: string, delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#resends.delete(timer);
      void this.#resend(seg, key, delayMs);
    }, delayMs);
    timer.unref();
    this.#resends.add(timer);
  }

  async #resend(seg: Segment, key: string, delayMs: number): Promise<void> {
    if (this.#stopped) return;
    const openedAtMs = Date.now();
    try {
      const sent = await uploadSegment(this.#store, new SegmentReader(seg.path), undefined, this.#facts);
      this.spool.remove(seg);
      this.#metrics.bytes.set(this.#labels, this.spool.bytes);
      this.#log.info({ key, records: sent.records }, 'a failed object went out again from the spool');
      const closedAtMs = Date.now();
      // Counted as stored like any completed object (its failure was not counted as a loss).
      this.emit('object', {
        key,
        bytes: sent.bytes,
        records: sent.records,
        rawBytes: sent.rawBytes,
        frames: sent.frames,
        openedAtMs,
        closingAtMs: closedAtMs,
        closedAtMs,
      });
      if (sent.facts !== null) this.writeIndexOf(key, sent.facts);
    } catch (err) {
      const next = Math.min(delayMs * 2, RESEND_MAX_DELAY_MS);
      this.#log.warn({ key, err, retry_in_ms: next }, 'sending a failed object again from the spool failed; retrying');
      this.#scheduleResend(seg, key, next);
    }
  }

  #flushPending(): void {
    if (this.#pending.length === 0) return;
    let ok = true;
    while (this.#pending.length > 0) {
      const frame = this.#pending[0]!;
      const opens = !this.#objectOpen || this.#objBytes + frame.bytes.byteLength > this.#maxObjectBytes;
      if (!this.spool.hasRoom(frame.bytes.byteLength, opens && this.#prepared === null) && this.#byKey.size > 0) return;
      const took = this.#take(frame);
      if (took === 'held') return; // still waiting (for the disk)
      this.#pending.shift();
      ok = took === 'ok';
    }
    this.#held?.resolve();
    if (ok) this.emit('drain');
  }

  #dropped(records: number, reason: SpoolDropReason): void {
    this.#metrics.droppedEvents.inc({ ...this.#labels, reason }, records);
    // not_spooled records still go into their object; spool_full and disk_blocked ones are gone.
    if (reason === 'not_spooled') return;
    this.#onDiscard?.(records, reason);
    if (reason === 'spool_full') this.#logFull();
  }

  #logFull(): void {
    const now = Date.now();
    if (now - this.#lastFullLog < 10_000) return;
    this.#lastFullLog = now;
    this.#log.warn(
      { spool_bytes: this.spool.bytes, max_spool_bytes: this.spool.maxBytes, when_full: this.#whenFull },
      'the spool is full',
    );
  }

  /** Segments of objects given up (abandon) stay on disk; close the files. */
  closeSpool(): void {
    this.spool.close();
  }
}

/** The spool directory of a sink. */
function spoolDir(dataDir: string, sinkId: string): string {
  return join(resolvePath(dataDir), 'spool', sinkId);
}

export function openSpool(dataDir: string, sink: SinkConfig): Spool {
  return new Spool({
    dir: spoolDir(dataDir, sink.id),
    maxBytes: sink.max_spool_bytes,
    sync: sink.spool_sync,
    syncIntervalMs: sink.spool_sync_interval_ms,
  });
}

export interface RecoveryReport {
  objects: number;
  records: number;
  abortedUploads: number;
  corruptSegments: number;
  failed: number;
}

/**
 * Upload every segment an earlier run left, each as the object it was written for, and its
 * index (recomputed from the frames) when `indexing` is given. A torn or
 * corrupt tail is counted and logged, its good prefix uploaded; a segment whose upload fails is
 * kept for the next start (and the start goes on). Never throws for what is in the files.
 */
export interface RecoveryIndexing {
  /** The fields the workers index (indexFieldsFor). */
  fields: readonly string[];
  /** An index was stored / failed to be (the sink's index metrics). */
  written: () => void;
  failed: () => void;
}

export async function recoverSpool(
  spool: Spool,
  store: ObjectStore,
  sinkId: string,
  log: Logger,
  metrics: SpoolMetrics,
  indexing?: RecoveryIndexing,
): Promise<RecoveryReport> {
  const scanner = indexing === undefined ? undefined : new FactsScanner(indexing.fields);
  const labels = { component_id: sinkId };
  const report: RecoveryReport = { objects: 0, records: 0, abortedUploads: 0, corruptSegments: 0, failed: 0 };
  for (const reader of spool.scan()) {
    const meta = reader.meta;
    const first = reader.next();
    const problemOf = (): void => {
      const tail = reader.tail();
      if (tail.problem === null) return;
      report.corruptSegments++;
      metrics.corruptSegments.inc({ ...labels, problem: tail.problem }, 1);
      metrics.corruptBytes.inc(labels, tail.lostBytes);
      log.warn(
        { segment: reader.path, problem: tail.problem, good_frames: tail.frames, lost_bytes: tail.lostBytes },
        'a spool segment has a torn or corrupt tail; its good prefix is recovered, the rest is counted',
      );
    };
    if (meta !== null && store.abortIncompleteUploads !== undefined) {
      try {
        const n = await store.abortIncompleteUploads(meta.key);
        report.abortedUploads += n;
        metrics.abortedUploads.inc(labels, n);
      } catch (err) {
        log.warn(
          { key: meta.key, err },
          'cannot list or abort incomplete multipart uploads of a recovered object; the bucket lifecycle rule removes them',
        );
      }
    }
    if (meta === null || first === null) {
      reader.close();
      problemOf();
      spool.forget(reader.path);
      continue;
    }
    try {
      const { records, facts } = await uploadSegment(store, reader, first, scanner);
      // The recovered object's index, after the object (a failure leaves it to be scanned).
      if (facts !== null && indexing !== undefined) {
        try {
          await writeIndex(store, meta.key, facts);
          indexing.written();
        } catch (err) {
          indexing.failed();
          log.warn(
            { key: meta.key, err },
            'storing the index of a recovered object failed; the object stands and readers scan it',
          );
        }
      }
      problemOf();
      report.objects++;
      report.records += records;
      metrics.recoveredObjects.inc(labels);
      metrics.recoveredEvents.inc(labels, records);
      spool.forget(reader.path);
      log.info({ key: meta.key, records }, 'recovered an unfinished object from the spool');
    } catch (err) {
      report.failed++;
      log.error(
        { key: meta.key, segment: reader.path, err },
        'uploading a recovered object failed; its segment is kept for the next start',
      );
    }
  }
  metrics.bytes.set(labels, spool.bytes);
  return report;
}
