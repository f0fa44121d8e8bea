/**
 * One object's matching records on their way to stdout: the scanner pushes runs of stored
 * bytes, small runs are copied into 1 MiB batches (one write per batch, not per record),
 * large ones pass as they are. The writer takes chunks in order; a scanner ahead of the writer
 * waits once its object holds `capBytes`, so memory stays bounded whatever the archive's size.
 */

/** Where a scanner puts the matching records (ObjectOutput here, a batch in a scan worker). */
export interface RunSink {
  /** buf[start, end) is `records` whole lines, to print as they are. */
  pushRun(buf: Buffer, start: number, end: number, records: number): void;
  /** One formatted (pretty) line. */
  pushText(line: string): void;
  /** The scanner finished a piece of input. */
  pieceDone(): void;
  end(): void;
}

export interface OutChunk {
  readonly bytes: Uint8Array;
  /** Records (lines) in `bytes`; 0 when nobody counts (no --limit, no --stats). */
  readonly records: number;
}

const BATCH_BYTES = 1024 * 1024;
/** A run this long is handed on as is rather than copied. */
const DIRECT_RUN_BYTES = 64 * 1024;
/** Pretty lines are joined into one chunk per this many. */
const TEXT_LINES = 4096;

export class ObjectOutput implements RunSink {
  readonly #chunks: OutChunk[] = [];
  #head = 0;
  #queuedBytes = 0;
  #ended = false;
  #batch: Buffer | null = null;
  #batchLen = 0;
  #batchRecords = 0;
  #texts: string[] = [];
  #wakeWriter: (() => void) | null = null;
  #wakeProducer: (() => void) | null = null;
  readonly #capBytes: number;

  constructor(capBytes: number) {
    this.#capBytes = capBytes;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Output held ahead of the writer before the producer waits. */
  get capBytes(): number {
    return this.#capBytes;
  }

  /** Bytes pushed and not yet taken. */
  get queuedBytes(): number {
    return this.#queuedBytes + this.#batchLen;
  }

  pushRun(buf: Buffer, start: number, end: number, records: number): void {
    const len = end - start;
    if (len === 0) return;
    if (len >= DIRECT_RUN_BYTES) {
      this.#flushBatch();
      this.#add({ bytes: buf.subarray(start, end), records });
      return;
    }
    if (this.#batch !== null && this.#batchLen + len > this.#batch.length) this.#flushBatch();
    this.#batch ??= Buffer.allocUnsafeSlow(BATCH_BYTES);
    buf.copy(this.#batch, this.#batchLen, start, end);
    this.#batchLen += len;
    this.#batchRecords += records;
  }

  /** A chunk made elsewhere (a scan worker's batch), handed on as it is. */
  pushChunk(bytes: Uint8Array, records: number): void {
    if (bytes.length === 0) return;
    this.#flushBatch();
    this.#add({ bytes, records });
  }

  pushText(line: string): void {
    this.#texts.push(line);
    if (this.#texts.length >= TEXT_LINES) this.#flushTexts();
  }

  /** The scanner finished a piece: hand on what is batched once it is worth a write. */
  pieceDone(): void {
    if (this.#batchLen >= DIRECT_RUN_BYTES) this.#flushBatch();
    if (this.#texts.length > 0) this.#flushTexts();
  }

  end(): void {
    this.#flushBatch();
    this.#flushTexts();
    this.#ended = true;
    this.#wake();
  }

  /** The next chunk for the writer, or undefined (then see `ended`, or waitData()). */
  take(): OutChunk | undefined {
    if (this.#head === this.#chunks.length) return undefined;
    const c = this.#chunks[this.#head]!;
    this.#chunks[this.#head++] = undefined as unknown as OutChunk;
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    }
    this.#queuedBytes -= c.bytes.length;
    if (this.#wakeProducer !== null && this.#queuedBytes <= this.#capBytes / 2) {
      const wake = this.#wakeProducer;
      this.#wakeProducer = null;
      wake();
    }
    return c;
  }

  /** Resolves when there is a chunk to take or the object ended. */
  waitData(): Promise<void> {
    if (this.#head < this.#chunks.length || this.#ended) return Promise.resolve();
    return new Promise((resolve) => (this.#wakeWriter = resolve));
  }

  /** For the scanner: resolves once the writer has taken enough (at once when under the cap). */
  waitRoom(): Promise<void> {
    if (this.#queuedBytes < this.#capBytes) return Promise.resolve();
    return new Promise((resolve) => (this.#wakeProducer = resolve));
  }

  /** Let a waiting producer go (the read is over). */
  release(): void {
    this.#wakeProducer?.();
    this.#wakeProducer = null;
  }

  #flushBatch(): void {
    if (this.#batch === null || this.#batchLen === 0) return;
    this.#add({ bytes: this.#batch.subarray(0, this.#batchLen), records: this.#batchRecords });
    // The rest of the batch buffer is reused only if most of it is left.
    if (this.#batch.length - this.#batchLen >= BATCH_BYTES / 2) this.#batch = this.#batch.subarray(this.#batchLen);
    else this.#batch = null;
    this.#batchLen = 0;
    this.#batchRecords = 0;
  }

  #flushTexts(): void {
    if (this.#texts.length === 0) return;
    this.#add({ bytes: Buffer.from(this.#texts.join('')), records: this.#texts.length });
    this.#texts = [];
  }

  #add(chunk: OutChunk): void {
    this.#chunks.push(chunk);
    this.#queuedBytes += chunk.bytes.length;
    this.#wake();
  }

  #wake(): void {
    const wake = this.#wakeWriter;
    if (wake !== null) {
      this.#wakeWriter = null;
      wake();
    }
  }
}
