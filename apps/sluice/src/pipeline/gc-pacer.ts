/**
 * Frees the main thread's dead ArrayBuffers sooner than V8 would by itself.
 *
 * Under load the main thread churns through large ArrayBuffers: the frames the worker threads
 * send (compressed output), and the copies the S3 client makes of them into parts. They live
 * long enough (until an object or a part is complete) to be promoted to the old generation, so
 * only a full GC frees them, and V8 starts one for external memory only after it has grown by
 * 64 MiB since the last. That let dead buffers pile up to half the daemon's peak RSS
 * (docs/benchmarks.md, "Memory"). The pacer counts the frame bytes delivered and, after every
 * `everyBytes` of them, asks V8 for a full collection, marked concurrently (`execution:
 * 'async'`): one every second or so at 400k lines/s, at the cost of a few ms of main-thread CPU.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options: { type: 'major'; execution: 'async' }) => Promise<void> | void;

let gc: Gc | null | undefined;

/** V8's gc(), from a context made after --expose-gc is set (the main context does not get it). */
function v8Gc(): Gc | null {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as Gc;
    } catch {
      gc = null;
    }
  }
  return gc;
}

export class GcPacer {
  readonly #everyBytes: number;
  #since = 0;
  #running = false;

  /** everyBytes 0 turns the pacer off. */
  constructor(everyBytes: number) {
    this.#everyBytes = everyBytes;
  }

  /** `bytes` of frames were delivered (and become garbage once stored). */
  note(bytes: number): void {
    if (this.#everyBytes <= 0) return;
    this.#since += bytes;
    if (this.#since < this.#everyBytes || this.#running) return;
    const collect = v8Gc();
    if (collect === null) return;
    this.#since = 0;
    this.#running = true;
    Promise.resolve(collect({ type: 'major', execution: 'async' })).finally(() => {
      this.#running = false;
    });
  }
}
