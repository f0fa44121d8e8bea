/**
 * Scan workers for `sluice read`: decompression and scanning off the main thread.
 *
 *   main thread                                   scan workers (one per core)
 *   list keys → read an object's stored bytes ─── chunk (~1 MiB, transferred) ──→ zstd frames
 *   order by key ← ObjectOutput ←───── out (one batch per chunk, transferred) ←── scanned
 *   → stdout
 *
 * An object goes to one worker (its scanner has state: a line cut between chunks), objects
 * are spread over the workers, and a worker interleaves the chunks of its objects in the order
 * they come. Memory stays bounded: an object has at most CHUNKS_IN_FLIGHT chunks at a worker,
 * and gets its next one only while its output waiting for the writer is under the output's
 * cap, so a worker ahead of the writer stops being fed rather than piling up output.
 */
import { Worker } from 'node:worker_threads';
import { type Codec, ObjectDecodeError } from './decode.ts';
import { ObjectOutput } from './output.ts';
import type { FilterOptions } from './scan.ts';

/** What a worker needs to compile the filter (a RegExp does not cross threads). */
export interface ScanWorkerData {
  readonly filter: Omit<FilterOptions, 'grep'> & { readonly grep: { source: string; flags: string } | null };
}

export type ToWorker =
  | { t: 'open'; id: number; codec: Codec; keyTime: string | undefined; countScanned: boolean; countRecords: boolean }
  | { t: 'chunk'; id: number; bytes: Uint8Array }
  | { t: 'end'; id: number }
  | { t: 'drop'; id: number };

interface FromWorker {
  t: 'out';
  id: number;
  bytes: Uint8Array | null;
  records: number;
  ndjsonBytes: number;
  scanned: number;
  done: boolean;
  error: string | null;
}

const WORKER_URL = new URL('./scan-worker.ts', import.meta.url);
/** Stored bytes are sent in chunks of at least this (S3 bodies arrive in ~16-64 KiB pieces). */
const CHUNK_BYTES = 1024 * 1024;
/** 2 chunks at a worker per object: the next is there when one is scanned, and no more is held. */
const CHUNKS_IN_FLIGHT = 2;

/** One object read through a scan worker; the same face as read.ts's in-thread job. */
export class RemoteJob {
  readonly key: string;
  readonly output: ObjectOutput;
  error: unknown = null;
  /** Stored bytes the worker has decoded (as the in-thread path counts them: not read-ahead). */
  readonly counter = { bytes: 0 };
  /** Stored bytes of the chunks at the worker, in order. */
  readonly #sizes: number[] = [];
  ndjsonBytes = 0;
  scanned = 0;
  readonly done: Promise<void>;
  readonly #id: number;
  readonly #worker: PoolWorker;
  #inFlight = 0;
  #finished = false;
  #resolveDone!: () => void;
  #wake: (() => void) | null = null;

  constructor(
    id: number,
    key: string,
    worker: PoolWorker,
    output: ObjectOutput,
    run: (job: RemoteJob) => Promise<void>,
  ) {
    this.#id = id;
    this.key = key;
    this.#worker = worker;
    this.output = output;
    this.done = new Promise<void>((resolve) => (this.#resolveDone = resolve)).then(() => undefined);
    void run(this);
  }

  get finished(): boolean {
    return this.#finished;
  }

  post(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (msg.t === 'chunk' || msg.t === 'end') {
      this.#inFlight++;
      this.#sizes.push(msg.t === 'chunk' ? msg.bytes.length : 0);
    }
    this.#worker.worker.postMessage(msg, transfer);
  }

  /** Resolves when another chunk may go: few enough in flight and room in the output. */
  async room(signal: AbortSignal): Promise<void> {
    while (!this.#finished && !signal.aborted) {
      if (this.output.queuedBytes >= this.output.capBytes) await this.output.waitRoom();
      else if (this.#inFlight >= CHUNKS_IN_FLIGHT) await new Promise<void>((resolve) => (this.#wake = resolve));
      else return;
    }
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** An answer from the worker. */
  answer(msg: FromWorker): void {
    this.#inFlight--;
    this.counter.bytes += this.#sizes.shift() ?? 0;
    if (msg.bytes !== null) this.output.pushChunk(msg.bytes, msg.records);
    this.ndjsonBytes = msg.ndjsonBytes;
    this.scanned = msg.scanned;
    if (msg.error !== null) this.fail(new ObjectDecodeError(msg.error));
    else if (msg.done) this.finish();
    else this.#wakeUp();
  }

  /** The object could not be read (by the store, the worker, or the read being stopped). */
  fail(err: unknown): void {
    if (this.#finished) return;
    this.error = err;
    this.finish();
  }

  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#worker.jobs.delete(this.#id);
    this.output.end();
    this.#wakeUp();
    this.#resolveDone();
  }

  /** Stops (the read is over, or the object failed here): the worker forgets the object. */
  drop(err: unknown = null): void {
    if (this.#finished) return;
    this.#worker.worker.postMessage({ t: 'drop', id: this.#id } satisfies ToWorker);
    if (err !== null) this.fail(err);
    else this.finish();
  }
}

interface PoolWorker {
  worker: Worker;
  jobs: Map<number, RemoteJob>;
}

export class ScanPool {
  readonly #workers: PoolWorker[] = [];
  readonly #data: ScanWorkerData;
  #nextId = 0;
  #closed = false;

  constructor(threads: number, filter: FilterOptions) {
    const grep = filter.grep;
    this.#data = { filter: { ...filter, grep: grep === null ? null : { source: grep.source, flags: grep.flags } } };
    for (let i = 0; i < threads; i++) this.#workers.push(this.#start());
  }

  #start(): PoolWorker {
    const w: PoolWorker = { worker: new Worker(WORKER_URL, { workerData: this.#data }), jobs: new Map() };
    w.worker.on('message', (msg: FromWorker) => w.jobs.get(msg.id)?.answer(msg));
    const lost = (reason: string): void => {
      // A worker that dies takes its objects with it (named, exit 2); a new one takes its place.
      for (const job of [...w.jobs.values()]) job.fail(new Error(`scan worker stopped: ${reason}`));
      const i = this.#workers.indexOf(w);
      if (i >= 0 && !this.#closed) this.#workers[i] = this.#start();
    };
    w.worker.on('error', (err) => lost(err.message));
    w.worker.on('exit', (code) => lost(`exit code ${code}`));
    return w;
  }

  /**
   * Reads `key` through the worker with the fewest objects: its stored bytes are fetched here
   * and sent on in chunks; its records come back into the job's output.
   */
  read(
    key: string,
    codec: Codec,
    keyTime: string | undefined,
    chunks: AsyncIterable<Uint8Array>,
    capBytes: number,
    signal: AbortSignal,
    countScanned: boolean,
    countRecords: boolean,
  ): RemoteJob {
    let w = this.#workers[0]!;
    for (const c of this.#workers) if (c.jobs.size < w.jobs.size) w = c;
    const id = this.#nextId++;
    const job = new RemoteJob(id, key, w, new ObjectOutput(capBytes), (j) => feed(j, chunks, signal));
    w.jobs.set(id, job);
    job.post({ t: 'open', id, codec, keyTime, countScanned, countRecords });
    return job;

    async function feed(j: RemoteJob, source: AsyncIterable<Uint8Array>, sig: AbortSignal): Promise<void> {
      const parts: Uint8Array[] = [];
      let partBytes = 0;
      const send = (): void => {
        // Transfer the chunk when it owns its memory whole (a file read's 1 MiB buffer), else
        // copy into one that does (never a view of Buffer's shared pool): the main thread does
        // not touch it again.
        const one = parts.length === 1 ? parts[0]! : null;
        let owned: Uint8Array;
        if (
          one !== null &&
          one.byteOffset === 0 &&
          one.byteLength === one.buffer.byteLength &&
          one.buffer instanceof ArrayBuffer
        ) {
          owned = one;
        } else {
          owned = new Uint8Array(partBytes);
          let o = 0;
          for (const p of parts) {
            owned.set(p, o);
            o += p.length;
          }
        }
        parts.length = 0;
        partBytes = 0;
        j.post({ t: 'chunk', id, bytes: owned }, [owned.buffer as ArrayBuffer]);
      };
      try {
        for await (const chunk of source) {
          parts.push(chunk);
          partBytes += chunk.length;
          if (partBytes < CHUNK_BYTES) continue;
          await j.room(sig);
          if (j.finished || sig.aborted) break;
          send();
        }
        if (!j.finished && !sig.aborted) {
          if (partBytes > 0) {
            await j.room(sig);
            if (!j.finished && !sig.aborted) send();
          }
          if (!j.finished && !sig.aborted) j.post({ t: 'end', id });
        }
      } catch (err) {
        if (!sig.aborted) j.drop(err);
      }
      // Stopped (--limit reached, Ctrl-C): not read whole, so not counted as read.
      if (sig.aborted) j.drop(sig.reason ?? new Error('read stopped'));
    }
  }

  /** Stops the workers (the read is over). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
  }
}
