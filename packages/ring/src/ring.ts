/**
 * @sluice/ring: a single-producer ring of length-prefixed records in one SharedArrayBuffer.
 *
 * Memory layout (byte offsets into the SharedArrayBuffer):
 *
 * ```
 *  0              4              8              12                                         64
 *  +--------------+--------------+--------------+---- ... ----------------------------------+
 *  | WRITE_INDEX  | READ_INDEX   | CAPACITY     | reserved, zero                            |  header:
 *  | u32 in i32   | u32 in i32   | bytes, 2^k   | (slots 3..15)                             |  Int32Array(16)
 *  | producer     | consumer     | set once     |                                           |
 *  +--------------+--------------+--------------+---- ... ----------------------------------+
 *  64                                                                           64 + CAPACITY
 *  +----------------------------------------------------------------------------------------+
 *  | data region, CAPACITY bytes (power of two, 16 .. 2^30), position = index & (CAPACITY-1) |
 *  +----------------------------------------------------------------------------------------+
 *
 *  One record (positions are multiples of 4, so a length header never straddles the end;
 *  the payload's own format, head byte and peer, is record-format.ts's):
 *
 *  +--------------------+----------------------------+---------------+
 *  | u32 LE payload len | payload (head ++ body)     | 0..3 zero pad |   span = recordSpan(len)
 *  +--------------------+----------------------------+---------------+
 *                        ^ may straddle the end of the data region: two-part copy
 * ```
 *
 * Indices are free-running u32 byte counters (wrap at 2^32; CAPACITY divides 2^32, so
 * `index & mask` stays continuous across the wrap). used = (write - read) >>> 0.
 * The producer publishes WRITE_INDEX with Atomics.store only after the record bytes are in
 * place; consumers Atomics.load it before touching the bytes (seq-cst gives happens-before).
 *
 * Roles: one producer Ring instance on one thread (tryWrite*; it keeps a private copy of
 * WRITE_INDEX and of the last READ_INDEX it saw). The consumer index is owned by one thread, the
 * dispatcher (claim/release), which hands spans to workers that copyOut. Nobody blocks on the
 * ring: the dispatcher learns of new records from the sources (SourceContext.wrote), so the
 * producer publishes with one atomic store and never notifies.
 */
import { Buffer } from 'node:buffer';
import { CAPACITY, HEADER_BYTES, READ_INDEX, RECORD_HEADER_BYTES, WRITE_INDEX, recordSpan } from './record-format.ts';

const HEADER_SLOTS = HEADER_BYTES / 4;
// Buffer#copy (called on any Uint8Array) is a native memmove with no subarray view to allocate.
// TypedArray#set into SharedArrayBuffer memory takes V8's slower relaxed-atomic copy: for a
// 245-byte record, set(subarray) cost ~330 ns and Buffer#copy ~93 ns; the whole tryWrite +
// claim + release path went from 365 to 192 ns/record (bench/ring.bench.ts workload).
const copyBytes = Buffer.prototype.copy;
// Below this a byte loop beats Buffer#copy's ~90 ns of call overhead (~1.8 ns/byte into SAB):
// a 9-byte peer-address head went from 279 to 223 ns per 245-byte record.
const SMALL_COPY_BYTES = 32;
const MIN_CAPACITY = 16;
const MAX_CAPACITY = 2 ** 30;

function isValidCapacity(capacityBytes: number): boolean {
  return (
    Number.isInteger(capacityBytes) &&
    capacityBytes >= MIN_CAPACITY &&
    capacityBytes <= MAX_CAPACITY &&
    (capacityBytes & (capacityBytes - 1)) === 0
  );
}

/** A record-aligned span of the ring handed out by {@link Ring.claim}. Indices are u32. */
export interface RingSpan {
  start: number;
  end: number;
  records: number;
}

export class Ring {
  /** The shared memory: post it to another thread and attach with `new Ring(sab)`. */
  readonly sab: SharedArrayBuffer;
  /** Data-region size in bytes (a power of two). */
  readonly capacity: number;
  /** Largest payload that can ever be written: a record of this size fills the empty ring. */
  readonly maxPayloadBytes: number;

  readonly #header: Int32Array;
  readonly #data: Uint8Array;
  /** Producer-local copies: WRITE_INDEX (only the producer moves it) and the last READ_INDEX seen. */
  #write: number;
  #readSeen: number;
  readonly #view: DataView;
  readonly #mask: number;
  /** Dispatcher-local: index up to which records have been claimed (>= readIndex). */
  #claimCursor: number;

  /**
   * Allocate a new ring whose data region is `capacityBytes` (a power of two, 16 .. 2^30).
   * @throws RangeError for any other capacity.
   */
  static create(capacityBytes: number): Ring {
    if (!isValidCapacity(capacityBytes)) {
      throw new RangeError(
        `ring capacity must be a power of two between ${MIN_CAPACITY} and ${MAX_CAPACITY} bytes, got ${capacityBytes}`,
      );
    }
    const sab = new SharedArrayBuffer(HEADER_BYTES + capacityBytes);
    Atomics.store(new Int32Array(sab, 0, HEADER_SLOTS), CAPACITY, capacityBytes);
    return new Ring(sab);
  }

  /** Attach to an existing ring (made by {@link Ring.create}) from any thread. */
  constructor(sab: SharedArrayBuffer) {
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < HEADER_BYTES + MIN_CAPACITY) {
      throw new TypeError('Ring: expected the SharedArrayBuffer of a ring made by Ring.create');
    }
    const header = new Int32Array(sab, 0, HEADER_SLOTS);
    const capacity = Atomics.load(header, CAPACITY);
    if (!isValidCapacity(capacity) || sab.byteLength !== HEADER_BYTES + capacity) {
      throw new TypeError(
        `Ring: header capacity ${capacity} does not match a SharedArrayBuffer of ${sab.byteLength} bytes`,
      );
    }
    this.sab = sab;
    this.capacity = capacity;
    this.maxPayloadBytes = capacity - RECORD_HEADER_BYTES;
    this.#header = header;
    this.#data = Buffer.from(sab, HEADER_BYTES, capacity);
    this.#view = new DataView(sab, HEADER_BYTES, capacity);
    this.#mask = capacity - 1;
    this.#claimCursor = Atomics.load(header, READ_INDEX) >>> 0;
    this.#write = Atomics.load(header, WRITE_INDEX) >>> 0;
    this.#readSeen = this.#claimCursor;
  }

  // ---------------------------------------------------------------- producer

  /**
   * Append one record whose payload is `head ++ body`.
   * @returns false when it does not fit now (nothing written): retry after the consumer releases.
   * @throws RangeError when the payload is larger than {@link maxPayloadBytes} (it can never fit).
   */
  tryWrite(body: Uint8Array, head?: Uint8Array): boolean {
    return this.tryWriteRange(body, 0, body.length, head);
  }

  /**
   * Like {@link tryWrite} with the body given as `body[bodyStart, bodyEnd)`, so a line framed
   * inside a socket chunk goes into the ring without a subarray or a copy of its own.
   */
  tryWriteRange(body: Uint8Array, bodyStart: number, bodyEnd: number, head?: Uint8Array): boolean {
    if (!(bodyStart >= 0 && bodyStart <= bodyEnd && bodyEnd <= body.length)) {
      throw new RangeError(`tryWriteRange: bad range [${bodyStart}, ${bodyEnd}) of ${body.length} bytes`);
    }
    const headLen = head === undefined ? 0 : head.length;
    const payload = headLen + (bodyEnd - bodyStart);
    if (payload > this.maxPayloadBytes) {
      throw new RangeError(
        `record payload of ${payload} bytes exceeds the ring's maxPayloadBytes ${this.maxPayloadBytes}`,
      );
    }
    const span = recordSpan(payload);
    const header = this.#header;
    const write = this.#write;
    // Reload the consumer's index only when the cached one says the record does not fit.
    if (span > this.capacity - ((write - this.#readSeen) >>> 0)) {
      this.#readSeen = Atomics.load(header, READ_INDEX) >>> 0;
      if (span > this.capacity - ((write - this.#readSeen) >>> 0)) return false;
    }

    const mask = this.#mask;
    const pos = write & mask;
    this.#view.setUint32(pos, payload, true);
    let p = (pos + RECORD_HEADER_BYTES) & mask;
    if (headLen !== 0) p = this.#copyIn(head as Uint8Array, 0, headLen, p);
    p = this.#copyIn(body, bodyStart, bodyEnd, p);
    // Zero the padding so copyOut never leaks an older record's bytes. The payload end and the
    // span end are both inside [0, capacity] and 4-aligned capacity means no wrap here.
    const data = this.#data;
    while ((p & 3) !== 0) data[p++] = 0;

    this.#write = (write + span) >>> 0;
    Atomics.store(header, WRITE_INDEX, this.#write | 0);
    return true;
  }

  /**
   * Append records `body[spans[2i], spans[2i + 1])` for i in [from, to), each with `head`, in
   * order, as many as fit; the write index is published once at the end (one atomic store for
   * the lot, where tryWriteRange does one per record: the splunk_hec source writes a request's
   * 100 envelopes with one call).
   * @returns how many were written: to - from, or fewer when the next one does not fit now.
   * @throws RangeError like {@link tryWriteRange}, for a bad span or a payload larger than
   * {@link maxPayloadBytes}; the records before it are written and published.
   */
  tryWriteRanges(body: Uint8Array, spans: Uint32Array, from: number, to: number, head?: Uint8Array): number {
    if (!(from >= 0 && from <= to && 2 * to <= spans.length))
      throw new RangeError(`tryWriteRanges: bad records [${from}, ${to}) of ${spans.length / 2}`);
    const headLen = head === undefined ? 0 : head.length;
    const header = this.#header;
    const mask = this.#mask;
    const data = this.#data;
    const view = this.#view;
    let write = this.#write;
    let i = from;
    try {
      for (; i < to; i++) {
        const bodyStart = spans[2 * i]!;
        const bodyEnd = spans[2 * i + 1]!;
        if (!(bodyStart <= bodyEnd && bodyEnd <= body.length))
          throw new RangeError(`tryWriteRanges: bad range [${bodyStart}, ${bodyEnd}) of ${body.length} bytes`);
        const payload = headLen + (bodyEnd - bodyStart);
        if (payload > this.maxPayloadBytes) {
          throw new RangeError(
            `record payload of ${payload} bytes exceeds the ring's maxPayloadBytes ${this.maxPayloadBytes}`,
          );
        }
        const span = recordSpan(payload);
        if (span > this.capacity - ((write - this.#readSeen) >>> 0)) {
          this.#readSeen = Atomics.load(header, READ_INDEX) >>> 0;
          if (span > this.capacity - ((write - this.#readSeen) >>> 0)) break;
        }
        const pos = write & mask;
        view.setUint32(pos, payload, true);
        let p = (pos + RECORD_HEADER_BYTES) & mask;
        if (headLen !== 0) p = this.#copyIn(head as Uint8Array, 0, headLen, p);
        p = this.#copyIn(body, bodyStart, bodyEnd, p);
        while ((p & 3) !== 0) data[p++] = 0;
        write = (write + span) >>> 0;
      }
    } finally {
      if (write !== this.#write) {
        this.#write = write;
        Atomics.store(header, WRITE_INDEX, write | 0);
      }
    }
    return i - from;
  }

  /** Copy src[s, e) into the data region at position p (wrapping); returns the next position. */
  #copyIn(src: Uint8Array, s: number, e: number, p: number): number {
    const n = e - s;
    if (n === 0) return p;
    const data = this.#data;
    const first = this.capacity - p;
    if (n <= first) {
      if (n <= SMALL_COPY_BYTES) for (let i = s, q = p; i < e; i++) data[q++] = src[i]!;
      else copyBytes.call(src, data, p, s, e);
      return (p + n) & this.#mask;
    }
    copyBytes.call(src, data, p, s, s + first);
    copyBytes.call(src, data, 0, s + first, e);
    return n - first;
  }

  // ---------------------------------------------------------------- indices

  /** Producer's u32 write index (bytes ever written, mod 2^32). */
  writeIndex(): number {
    return Atomics.load(this.#header, WRITE_INDEX) >>> 0;
  }

  /** Consumer's u32 read index (bytes ever released, mod 2^32). */
  readIndex(): number {
    return Atomics.load(this.#header, READ_INDEX) >>> 0;
  }

  /** Bytes written and not yet released (claimed spans count as used). */
  usedBytes(): number {
    const read = Atomics.load(this.#header, READ_INDEX);
    return (Atomics.load(this.#header, WRITE_INDEX) - read) >>> 0;
  }

  /** Bytes a producer could use now (a record needs recordSpan(payload) of them). */
  freeBytes(): number {
    return this.capacity - this.usedBytes();
  }

  // ---------------------------------------------------------------- dispatcher

  /**
   * Claim the next record-aligned span of at most `maxBytes` (always at least one record, even
   * if the first is bigger). The span stays allocated until {@link release}. Call from one
   * thread only (the dispatcher). null when every written record is already claimed.
   */
  claim(maxBytes: number): RingSpan | null {
    const write = Atomics.load(this.#header, WRITE_INDEX) >>> 0;
    const start = this.#syncClaimCursor(write);
    if (start === write) return null;
    const view = this.#view;
    const mask = this.#mask;
    let end = start;
    let records = 0;
    do {
      const span = recordSpan(view.getUint32(end & mask, true));
      if (records !== 0 && ((end - start) >>> 0) + span > maxBytes) break;
      end = (end + span) >>> 0;
      records++;
    } while (end !== write);
    this.#claimCursor = end;
    return { start, end, records };
  }

  /** Written bytes not yet claimed. */
  unclaimedBytes(): number {
    const write = Atomics.load(this.#header, WRITE_INDEX) >>> 0;
    return (write - this.#syncClaimCursor(write)) >>> 0;
  }

  /** The claim cursor, pulled forward to the read index if a release passed it. */
  #syncClaimCursor(write: number): number {
    const read = Atomics.load(this.#header, READ_INDEX) >>> 0;
    if ((this.#claimCursor - read) >>> 0 > (write - read) >>> 0) this.#claimCursor = read;
    return this.#claimCursor;
  }

  /**
   * Free everything before `end` (the end of a claimed span): readIndex := end. Spans are
   * released in claim order.
   * @throws RangeError if `end` is not between the read index and the claim cursor.
   */
  release(end: number): void {
    const header = this.#header;
    const read = Atomics.load(header, READ_INDEX) >>> 0;
    if ((end - read) >>> 0 > (this.#claimCursor - read) >>> 0) {
      throw new RangeError(`release(${end}) is outside the claimed range [${read}, ${this.#claimCursor}]`);
    }
    Atomics.store(header, READ_INDEX, end | 0);
  }

  // ---------------------------------------------------------------- any thread

  /**
   * Copy the raw bytes of the span [start, end) (length headers, payloads and padding, exactly
   * as in the ring) into `dst` at 0. Returns the byte count. Iterate it with {@link forEachRecord}.
   * @throws RangeError if the span is longer than the ring or than `dst`.
   */
  copyOut(start: number, end: number, dst: Uint8Array): number {
    const n = (end - start) >>> 0;
    if (n > this.capacity || n > dst.length) {
      throw new RangeError(`copyOut: span of ${n} bytes does not fit the ring or a ${dst.length}-byte dst`);
    }
    if (n === 0) return 0;
    const data = this.#data;
    const p = start & this.#mask;
    const first = this.capacity - p;
    if (n <= first) {
      copyBytes.call(data, dst, 0, p, p + n);
    } else {
      copyBytes.call(data, dst, 0, p, this.capacity);
      copyBytes.call(data, dst, first, 0, n - first);
    }
    return n;
  }
}

/**
 * Iterate the records of a linear copy made by {@link Ring.copyOut}: calls
 * `fn(buf, payloadStart, payloadEnd)` per record. Returns the number of records.
 * @throws RangeError if a length header points past `length` (not a copyOut span).
 */
export function forEachRecord(
  buf: Uint8Array,
  length: number,
  fn: (buf: Uint8Array, start: number, end: number) => void,
): number {
  if (length > buf.length) throw new RangeError(`forEachRecord: length ${length} > buffer ${buf.length}`);
  let off = 0;
  let records = 0;
  while (off < length) {
    if (off + RECORD_HEADER_BYTES > length) {
      throw new RangeError(`forEachRecord: truncated length header at ${off} of ${length}`);
    }
    const len = (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
    const start = off + RECORD_HEADER_BYTES;
    const end = start + len;
    if (end > length) throw new RangeError(`forEachRecord: record at ${off} of ${len} bytes overruns ${length}`);
    fn(buf, start, end);
    records++;
    off += recordSpan(len);
  }
  return records;
}
