/**
 * A scan worker of `sluice read` (scan-pool.ts starts them): objects' stored bytes in, in
 * chunks of ~1 MiB, their matching records out, one batch per chunk. Each chunk's zstd frames
 * are decompressed synchronously and scanned here, so the main thread only lists, reads,
 * orders and writes.
 *
 * Messages (every `chunk` and `end` gets exactly one `out` answer, in order):
 *   main → worker  { t: 'open', id, codec, keyTime, countScanned, countRecords }
 *                  { t: 'chunk', id, bytes }   (bytes transferred)
 *                  { t: 'end', id }  { t: 'drop', id }
 *   worker → main  { t: 'out', id, bytes, records, ndjsonBytes, scanned, done, error }
 *                  (bytes transferred; error: the reason the object cannot be read, then the
 *                  worker forgets it and ignores what comes for it)
 * Nothing throws across the thread boundary: a failing object is an answer, not an exception.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type Codec, ZstdFrameDecoder } from './decode.ts';
import type { RunSink } from './output.ts';
import { Filter, ObjectScanner } from './scan.ts';
import type { ScanWorkerData, ToWorker } from './scan-pool.ts';

/** A batch starts this big and doubles: most chunks' matches fit the first one. */
const BATCH_BYTES = 1024 * 1024;

/** One chunk's matching records, copied into a buffer of its own, which is transferred. */
class Batch implements RunSink {
  #buf: Buffer | null = null;
  #len = 0;
  records = 0;

  pushRun(buf: Buffer, start: number, end: number, records: number): void {
    const len = end - start;
    this.#room(len);
    buf.copy(this.#buf!, this.#len, start, end);
    this.#len += len;
    this.records += records;
  }

  pushText(line: string): void {
    const len = Buffer.byteLength(line);
    this.#room(len);
    this.#buf!.write(line, this.#len);
    this.#len += len;
    this.records++;
  }

  pieceDone(): void {}
  end(): void {}

  /** The batch so far (its own ArrayBuffer, safe to transfer), or null when empty. */
  take(): Buffer | null {
    const out = this.#len === 0 ? null : this.#buf!.subarray(0, this.#len);
    if (out !== null) this.#buf = null;
    this.#len = 0;
    this.records = 0;
    return out;
  }

  #room(len: number): void {
    if (this.#buf !== null && this.#len + len <= this.#buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(BATCH_BYTES, (this.#len + len) * 2));
    if (this.#buf !== null) this.#buf.copy(grown, 0, 0, this.#len);
    this.#buf = grown;
  }
}

class ObjectState {
  readonly codec: Codec;
  readonly batch = new Batch();
  readonly scanner: ObjectScanner;
  readonly zstd: ZstdFrameDecoder | null;
  ndjsonBytes = 0;
  readonly onFrame = (out: Buffer): void => {
    this.ndjsonBytes += out.length;
    this.scanner.push(out);
  };

  constructor(msg: Extract<ToWorker, { t: 'open' }>) {
    this.codec = msg.codec;
    this.scanner = new ObjectScanner(filter, this.batch, msg.keyTime, msg.countScanned, msg.countRecords);
    this.zstd = msg.codec === 'zstd' ? new ZstdFrameDecoder() : null;
  }
}

const data = workerData as ScanWorkerData;
const filter = new Filter({
  ...data.filter,
  grep: data.filter.grep === null ? null : new RegExp(data.filter.grep.source, data.filter.grep.flags),
});
const objects = new Map<number, ObjectState>();
const port = parentPort!;

function answer(id: number, o: ObjectState, done: boolean, error: string | null): void {
  const records = o.batch.records;
  const bytes = o.batch.take();
  port.postMessage(
    { t: 'out', id, bytes, records, ndjsonBytes: o.ndjsonBytes, scanned: o.scanner.scanned, done, error },
    bytes !== null ? [bytes.buffer as ArrayBuffer] : [],
  );
}

port.on('message', (msg: ToWorker) => {
  if (msg.t === 'open') {
    objects.set(msg.id, new ObjectState(msg));
    return;
  }
  const o = objects.get(msg.id);
  if (o === undefined) return; // dropped, or failed earlier
  if (msg.t === 'drop') {
    objects.delete(msg.id);
    return;
  }
  let error: string | null = null;
  try {
    if (msg.t === 'chunk') {
      if (o.zstd !== null) {
        o.zstd.push(msg.bytes, o.onFrame);
      } else {
        o.ndjsonBytes += msg.bytes.length;
        o.scanner.push(msg.bytes);
      }
    } else {
      o.zstd?.finish();
      o.scanner.finish();
    }
  } catch (err) {
    // The records before the bad bytes go out with the reason, as in the main-thread path.
    error = err instanceof Error ? err.message : String(err);
  }
  const done = error !== null || msg.t === 'end';
  if (done) objects.delete(msg.id);
  answer(msg.id, o, done, error);
});
