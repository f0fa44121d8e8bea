/**
 * ObjectWriter: one per sink, on the main thread. Groups the compressed frames the workers
 * return (one independent zstd frame / gzip member / plain NDJSON chunk per batch) into
 * objects in an ObjectStore, the way Tailscale's log streaming lands logs in S3: an object is
 * opened at its first frame and closed `upload_period_secs` later, or earlier when the next
 * frame would take it past `max_object_bytes`. Concatenated frames decompress whole with
 * standard readers (`zstd -d`, `gzip -d`, node zlib), so an object needs no framing of its own.
 *
 *   write(frame) ──► open object ──rotate()──► closing (in flight, concurrent) ──► 'object'
 *                    (at most one)  period or size          │ close() rejected ──► 'error-object'
 *
 * Accounting: records/bytes count as written only once their object's close() resolved
 * (the store made it durable): that is "stored" in received = stored + drops. A failed close
 * is a counted loss (objectsFailed, recordsFailed); stores retry on their own before failing.
 *
 * Backpressure: write() returns false while the open object's upload is over the store's
 * buffer bound, or while `maxClosingObjects` closes are in flight; 'drain' follows when both
 * clear. Memory held by the stores is therefore bounded by about
 * (maxClosingObjects + 1) x the store's own bound.
 */
import { EventEmitter } from 'node:events';
import { ERR_CONFIG, ERR_WRITER_CLOSED, SluiceError } from '@sluice/schema';
import type { ObjectMeta, ObjectStore, ObjectUpload } from '../object-store.ts';
import { type Codec, contentEncodingFor, extensionFor, NDJSON_CONTENT_TYPE, newUniqueId, objectKey } from './keys.ts';
import { factsOfFrame, type FrameFacts, type IndexFacts, mergeFrameFacts, writeIndex } from './object-index.ts';

/** One compressed batch as a worker returns it. */
export interface Frame {
  /** An independent zstd frame / gzip member / plain NDJSON bytes. Not reused by the caller. */
  bytes: Uint8Array;
  records: number;
  /** Uncompressed NDJSON bytes of the batch. */
  rawBytes: number;
  /**
   * The batch's facts for the object's index (the worker's). An object with a frame without
   * them gets no index (readers scan it).
   */
  facts?: FrameFacts;
}

/** An object's index was stored (after the object), or failing that, why not. */
export interface IndexWritten {
  key: string;
  bytes: number;
}
export interface IndexFailure {
  key: string;
  error: unknown;
}

/** An object that was closed successfully (durable in the store). */
export interface ObjectInfo {
  key: string;
  /** Stored (compressed) bytes. */
  bytes: number;
  records: number;
  rawBytes: number;
  frames: number;
  openedAtMs: number;
  /** When the object was rotated (its close() began): closedAtMs - closingAtMs is the time to finish it. */
  closingAtMs: number;
  closedAtMs: number;
}

/** An object given up by abandon(): not known to be stored, its records are counted as lost. */
export interface UnfinishedObject {
  key: string;
  records: number;
  rawBytes: number;
  /**
   * Of `records`, those kept on disk in the sink's spool (a SpoolingWriter): the next start
   * uploads them, so they are not lost. 0 or absent without a spool.
   */
  spooled?: number;
}

/** An object whose close failed: its records are lost (and counted). */
export interface ObjectError {
  key: string;
  error: unknown;
  records: number;
  rawBytes: number;
  /** The writer keeps the object's data (the spool) and sends it again: not a loss. */
  retried: boolean;
}

export interface ObjectWriterStats {
  objectsCompleted: number;
  objectsFailed: number;
  /** Compressed bytes in successfully closed objects. */
  bytesWritten: number;
  /** Records in successfully closed objects ("stored"). */
  recordsWritten: number;
  rawBytesWritten: number;
  /** Records in objects whose close failed (a counted loss). */
  recordsFailed: number;
  /** Objects opened and not yet settled: the one being written (0 or 1) plus closes in flight. */
  openObjects: number;
}

export interface ObjectWriterOptions {
  sinkId: string;
  store: ObjectStore;
  /** Used as given: `audit-logs/` gives keys `audit-logs/2024/...`. */
  keyPrefix: string;
  codec: Codec;
  uploadPeriodSecs: number;
  maxObjectBytes: number;
  /**
   * The keys' unique part (keys.ts). Default: drawn for this writer alone, so no two writers
   * share keys, not even sinks of one process under the same store and prefix. Given only to
   * fix the keys (tests).
   */
  uniqueId?: string;
  /** Clock for key times and ObjectInfo; the period timer itself is setTimeout. */
  now?: () => number;
  /** Closes in flight beyond which write() returns false. Default 4. */
  maxClosingObjects?: number;
}

export type ObjectWriterEvents = {
  drain: [];
  /** A new object was opened, synchronously inside write(), before its first frame is counted. */
  open: [key: string];
  object: [info: ObjectInfo];
  'error-object': [failure: ObjectError];
  /** The index of a completed object was stored (object-index.ts). */
  index: [written: IndexWritten];
  /** Storing the index of a completed object failed: the object stands, readers scan it. */
  'error-index': [failure: IndexFailure];
};

/** The object being written, then closed. One allocation per object, none per frame. */
class PendingObject {
  readonly key: string;
  readonly upload: ObjectUpload;
  readonly openedAtMs: number;
  bytes = 0;
  records = 0;
  rawBytes = 0;
  frames = 0;
  /** The frames' facts merged (undefined: no frame yet; null: a frame had none, so no index). */
  facts: IndexFacts | null | undefined = undefined;
  /** The fields text of the last frame merged: a frame with the same adds only counts and times. */
  lastFields = '';
  /** Set by rotate(). */
  closingAtMs = 0;
  /** The upload returned false and its 'drain' has not come yet. */
  waitingDrain = false;
  timer: NodeJS.Timeout | undefined = undefined;
  /** Resolves (never rejects) when the close settled and was accounted. */
  settled: Promise<void> | undefined = undefined;

  constructor(key: string, upload: ObjectUpload, openedAtMs: number) {
    this.key = key;
    this.upload = upload;
    this.openedAtMs = openedAtMs;
  }
}

const DEFAULT_MAX_CLOSING_OBJECTS = 4;

export class ObjectWriter extends EventEmitter<ObjectWriterEvents> {
  readonly sinkId: string;
  readonly stats: ObjectWriterStats = {
    objectsCompleted: 0,
    objectsFailed: 0,
    bytesWritten: 0,
    recordsWritten: 0,
    rawBytesWritten: 0,
    recordsFailed: 0,
    openObjects: 0,
  };

  readonly #store: ObjectStore;
  readonly #keyPrefix: string;
  readonly #extension: string;
  readonly #meta: ObjectMeta;
  readonly #periodMs: number;
  readonly #maxObjectBytes: number;
  readonly #uniqueId: string;
  readonly #now: () => number;
  readonly #maxClosing: number;

  #seq = 0;
  /** Set by reserveNextKey(): the next object's key and time, fixed before it opens. */
  #reserved: { key: string; openedAtMs: number } | null = null;
  #current: PendingObject | null = null;
  readonly #closing = new Set<PendingObject>();
  /** Index writes in flight: close() waits for them too. */
  readonly #indexing = new Set<Promise<void>>();
  /** write() returned false: owe the caller a 'drain'. */
  #needDrain = false;
  #drainScheduled = false;
  #closed = false;
  /** Resolved by abandon(), so a close() waiting on closes that may never settle returns. */
  readonly #abandoned = Promise.withResolvers<void>();
  #gaveUp = false;

  constructor(opts: ObjectWriterOptions) {
    super();
    const { sinkId } = opts;
    if (!(Number.isFinite(opts.uploadPeriodSecs) && opts.uploadPeriodSecs > 0 && opts.uploadPeriodSecs <= 86_400)) {
      throw new SluiceError(
        ERR_CONFIG,
        `sink ${sinkId}: upload_period_secs must be greater than 0 and at most 86400, got ${opts.uploadPeriodSecs}`,
      );
    }
    if (!(Number.isSafeInteger(opts.maxObjectBytes) && opts.maxObjectBytes > 0)) {
      throw new SluiceError(
        ERR_CONFIG,
        `sink ${sinkId}: max_object_bytes must be a positive integer, got ${opts.maxObjectBytes}`,
      );
    }
    const maxClosing = opts.maxClosingObjects ?? DEFAULT_MAX_CLOSING_OBJECTS;
    if (!(Number.isSafeInteger(maxClosing) && maxClosing > 0)) {
      throw new SluiceError(
        ERR_CONFIG,
        `sink ${sinkId}: maxClosingObjects must be a positive integer, got ${maxClosing}`,
      );
    }
    this.sinkId = sinkId;
    this.#store = opts.store;
    this.#keyPrefix = opts.keyPrefix;
    this.#extension = extensionFor(opts.codec);
    const contentEncoding = contentEncodingFor(opts.codec);
    this.#meta =
      contentEncoding === undefined
        ? { contentType: NDJSON_CONTENT_TYPE }
        : { contentType: NDJSON_CONTENT_TYPE, contentEncoding };
    this.#periodMs = Math.round(opts.uploadPeriodSecs * 1000);
    this.#maxObjectBytes = opts.maxObjectBytes;
    this.#uniqueId = opts.uniqueId ?? newUniqueId();
    this.#now = opts.now ?? Date.now;
    this.#maxClosing = maxClosing;
  }

  /**
   * Append one frame to the open object (opening one on the first frame). Rotates BEFORE
   * appending when open bytes + frame > maxObjectBytes and the open object is non-empty (an
   * object always holds at least one frame, even one bigger than the limit).
   * Returns false when the store is above its buffer bound (or too many closes are in flight):
   * the caller stops writing until 'drain'. Throws once close() was called.
   */
  write(frame: Frame): boolean {
    if (this.#closed) {
      throw new SluiceError(ERR_WRITER_CLOSED, `sink ${this.sinkId}: write after close`);
    }
    const size = frame.bytes.byteLength;
    let cur = this.#current;
    if (cur !== null && cur.bytes + size > this.#maxObjectBytes) {
      this.rotate();
      cur = null;
    }
    const obj = cur ?? this.#open();
    obj.bytes += size;
    obj.records += frame.records;
    obj.rawBytes += frame.rawBytes;
    obj.frames++;
    const f = frame.facts;
    if (f === undefined) obj.facts = null;
    else if (obj.facts === undefined) obj.facts = factsOfFrame(f);
    else if (obj.facts !== null) mergeFrameFacts(obj.facts, f, f.fields === obj.lastFields);
    if (f !== undefined) obj.lastFields = f.fields;
    if (!obj.upload.write(frame.bytes) && !obj.waitingDrain) {
      obj.waitingDrain = true;
      obj.upload.once('drain', () => this.#onUploadDrain(obj));
    }
    if (obj.waitingDrain || this.#closing.size >= this.#maxClosing) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  /** Close the open object now (the period timer calls this); the close runs concurrently
   *  with the next object being written. No-op when no object is open. */
  rotate(): void {
    const obj = this.#current;
    if (obj === null) return;
    this.#current = null;
    clearTimeout(obj.timer);
    obj.timer = undefined;
    obj.closingAtMs = this.#now();
    let closing: Promise<void>;
    try {
      closing = obj.upload.close();
    } catch (error) {
      closing = Promise.reject(error);
    }
    this.#closing.add(obj);
    obj.settled = closing.then(
      () => this.#onClosed(obj),
      (error: unknown) => this.#onFailed(obj, error),
    );
    // The rotated object's buffer no longer blocks the caller; the closes-in-flight bound does.
    this.#maybeDrain();
  }

  /** Stop the timer, close the open object, and resolve when every close in flight has settled
   *  (failures are reported through 'error-object', never by rejecting) or abandon() was called. */
  async close(): Promise<void> {
    this.#closed = true;
    this.rotate();
    while (this.#closing.size > 0 && !this.#gaveUp) {
      // Either every close settles, or abandon() gives up on them.
      await Promise.race([Promise.allSettled(Array.from(this.#closing, (o) => o.settled)), this.#abandoned.promise]);
    }
    while (this.#indexing.size > 0 && !this.#gaveUp) {
      await Promise.race([Promise.allSettled(this.#indexing), this.#abandoned.promise]);
    }
  }

  /**
   * Give up on every object not settled yet (the open one and the closes in flight), for a
   * shutdown deadline: they are forgotten (their close settling later emits nothing, so nothing
   * is counted twice), and returned so the caller counts their records as lost. The uploads are
   * left as they are; a store may still complete them (or leave a multipart upload for a
   * lifecycle rule). A pending close() resolves at once.
   */
  abandon(): UnfinishedObject[] {
    const out: UnfinishedObject[] = [];
    const cur = this.#current;
    if (cur !== null) {
      clearTimeout(cur.timer);
      this.#current = null;
      out.push({ key: cur.key, records: cur.records, rawBytes: cur.rawBytes });
    }
    for (const obj of this.#closing) out.push({ key: obj.key, records: obj.records, rawBytes: obj.rawBytes });
    this.#closing.clear();
    this.stats.openObjects -= out.length;
    this.#gaveUp = true;
    this.#abandoned.resolve();
    this.#maybeDrain();
    return out;
  }

  /**
   * The key the next object will have, fixed from now until it opens, so a subclass can prepare
   * for it before the frame that opens it is taken (the spooling writer creates the object's
   * spool segment first, and holds the frame while the disk refuses that).
   */
  protected reserveNextKey(): string {
    if (this.#reserved === null) {
      const openedAtMs = this.#now();
      this.#reserved = {
        key: objectKey(this.#keyPrefix, openedAtMs, this.#uniqueId, this.#seq++, this.#extension),
        openedAtMs,
      };
    }
    return this.#reserved.key;
  }

  #open(): PendingObject {
    const reserved = this.#reserved;
    this.#reserved = null;
    const openedAtMs = reserved?.openedAtMs ?? this.#now();
    const key = reserved?.key ?? objectKey(this.#keyPrefix, openedAtMs, this.#uniqueId, this.#seq++, this.#extension);
    const obj = new PendingObject(key, this.#store.open(key, this.#meta), openedAtMs);
    obj.timer = setTimeout(this.#onPeriod, this.#periodMs, obj);
    obj.timer.unref();
    this.#current = obj;
    this.stats.openObjects++;
    this.emit('open', key);
    return obj;
  }

  readonly #onPeriod = (obj: PendingObject): void => {
    if (obj === this.#current) this.rotate();
  };

  #onUploadDrain(obj: PendingObject): void {
    obj.waitingDrain = false;
    if (obj === this.#current) this.#maybeDrain();
  }

  #onClosed(obj: PendingObject): void {
    if (!this.#closing.delete(obj)) return; // abandoned: already counted as lost
    const s = this.stats;
    s.openObjects--;
    s.objectsCompleted++;
    s.bytesWritten += obj.bytes;
    s.recordsWritten += obj.records;
    s.rawBytesWritten += obj.rawBytes;
    this.#maybeDrain();
    this.emit('object', {
      key: obj.key,
      bytes: obj.bytes,
      records: obj.records,
      rawBytes: obj.rawBytes,
      frames: obj.frames,
      openedAtMs: obj.openedAtMs,
      closingAtMs: obj.closingAtMs,
      closedAtMs: this.#now(),
    });
    if (obj.facts !== undefined && obj.facts !== null) this.writeIndexOf(obj.key, obj.facts);
  }

  /**
   * Store the index of an object that is complete, in the background: 'index' or 'error-index'
   * follows. Never fails the object; close() waits for it (abandon() does not).
   */
  protected writeIndexOf(key: string, facts: IndexFacts): void {
    const p = writeIndex(this.#store, key, facts).then(
      (bytes) => {
        this.emit('index', { key, bytes });
      },
      (error: unknown) => {
        this.emit('error-index', { key, error });
      },
    );
    this.#indexing.add(p);
    void p.finally(() => this.#indexing.delete(p));
  }

  #onFailed(obj: PendingObject, error: unknown): void {
    if (!this.#closing.delete(obj)) return; // abandoned: already counted as lost
    const s = this.stats;
    s.openObjects--;
    s.objectsFailed++;
    s.recordsFailed += obj.records;
    this.#maybeDrain();
    this.emit('error-object', {
      key: obj.key,
      error,
      records: obj.records,
      rawBytes: obj.rawBytes,
      retried: this.keepsDataOf(obj.key),
    });
  }

  /**
   * Why write() says "wait" now, for a caller that drops instead of waiting (when_full
   * drop_newest): `disk_blocked` while the store waits for its disk (full, read-only,
   * failing), else `buffer_full` (a slow store, or too many closes in flight).
   */
  get pushbackReason(): 'disk_blocked' | 'buffer_full' {
    return this.#store.blocked === true ? 'disk_blocked' : 'buffer_full';
  }

  /**
   * After write(frame): true when nothing of this writer keeps a reference to `frame.bytes`
   * (its store copied them), so the caller may free them at once.
   */
  released(_frame: Frame): boolean {
    return this.#store.copiesChunks === true;
  }

  /** Whether the data of a failed object is kept elsewhere and sent again (the spooling writer's is). */
  keepsDataOf(_key: string): boolean {
    return false;
  }

  /** Emit the owed 'drain' on the next tick (never inside write()) once nothing blocks. */
  #maybeDrain(): void {
    if (!this.#needDrain || this.#drainScheduled) return;
    this.#drainScheduled = true;
    process.nextTick(this.#emitDrain);
  }

  readonly #emitDrain = (): void => {
    this.#drainScheduled = false;
    const cur = this.#current;
    if (!this.#needDrain || cur?.waitingDrain || this.#closing.size >= this.#maxClosing) return;
    this.#needDrain = false;
    this.emit('drain');
  };
}
