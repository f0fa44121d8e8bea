/**
 * The engine of `sluice read`: list a location in key order, skip what the index rules out,
 * read up to `parallel` objects at once (fetch here; decompress and scan in a scan worker,
 * scan-pool.ts, or for gzip and `threads: 0` on libuv's pool and this thread), and write each
 * object's matching records to stdout in key order.
 *
 * Memory is bounded whatever the archive's size: at most `parallel` objects are open, each
 * holding at most `capBytes` of output ahead of the writer plus its chunks in flight; the
 * listing is pulled one key at a time; --follow remembers only the keys of its last window.
 */
import type { Writable } from 'node:stream';
import type { ObjectReader } from '@sluice/sinks/registry';
import { codecOfKey, decoded } from './decode.ts';
import type { ObjectIndex } from './object-index.ts';
import { ObjectOutput } from './output.ts';
import { ObjectScanner, type Filter } from './scan.ts';
import { type RemoteJob, ScanPool } from './scan-pool.ts';
import { keyTime, msOfCanonical } from './time.ts';

export interface ReadOptions {
  readonly reader: ObjectReader;
  readonly index: ObjectIndex;
  readonly filter: Filter;
  readonly limit: number | null;
  readonly follow: boolean;
  /** --follow: time between listings. */
  readonly pollMs: number;
  readonly stats: boolean;
  /** Objects read at once. */
  readonly parallel: number;
  /**
   * Scan workers: zstd and plain objects are decompressed and scanned on this many threads
   * (scan-pool.ts), gzip ones in this thread. 0 = everything in this thread.
   */
  readonly threads: number;
  readonly stdout: Writable;
  readonly stderr: Writable & { isTTY?: boolean };
  /** A progress line on stderr (a TTY) during long reads. */
  readonly progress: boolean;
  /** Ends the read (Ctrl-C with --follow): what was read is flushed, exit code as usual. */
  readonly signal?: AbortSignal;
}

export interface ReadStats {
  objectsListed: number;
  objectsSkipped: number;
  objectsRead: number;
  objectsFailed: number;
  bytesRead: number;
  ndjsonBytes: number;
  recordsScanned: number;
  recordsMatched: number;
}

/** Output a non-head object may hold ahead of the writer. */
const CAP_BYTES = 8 * 1024 * 1024;
/** Listed keys whose index is asked ahead of opening them (each a small GET over S3, or a file read). */
const INDEX_AHEAD = 32;
/** --follow remembers keys this much older than the newest it saw (late-completing objects). */
const FOLLOW_WINDOW_MS = 60 * 60_000;

/** One object's read in this thread: decompression on libuv's pool, scanning here. */
class Job {
  readonly key: string;
  readonly output = new ObjectOutput(CAP_BYTES);
  error: unknown = null;
  readonly counter = { bytes: 0 };
  ndjsonBytes = 0;
  scanned = 0;
  done: Promise<void>;

  constructor(key: string, opts: ReadOptions, signal: AbortSignal) {
    this.key = key;
    this.done = this.#run(opts, signal);
  }

  async #run(opts: ReadOptions, signal: AbortSignal): Promise<void> {
    const codec = codecOfKey(this.key)!;
    const scanner = new ObjectScanner(
      opts.filter,
      this.output,
      keyTime(this.key),
      opts.stats,
      opts.stats || opts.limit !== null,
    );
    try {
      for await (const piece of decoded(opts.reader.read(this.key, signal), codec, this.counter)) {
        this.ndjsonBytes += piece.length;
        scanner.push(piece);
        await this.output.waitRoom();
        signal.throwIfAborted();
      }
      scanner.finish();
    } catch (err) {
      this.error = err;
      this.output.end();
    }
    this.scanned = scanner.scanned;
  }
}

/** Keys seen by --follow within its window, and the key to list after. */
class SeenKeys {
  readonly #keys = new Map<string, number>();
  #newestMs = -Infinity;
  /** The greatest key forgotten: the next listing starts after it. */
  floor: string | undefined;

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  add(key: string): void {
    const t = keyTime(key);
    const ms = t === undefined ? Infinity : msOfCanonical(t);
    this.#keys.set(key, ms);
    if (ms !== Infinity && ms > this.#newestMs) this.#newestMs = ms;
  }

  prune(): void {
    const oldest = this.#newestMs - FOLLOW_WINDOW_MS;
    for (const [key, ms] of this.#keys) {
      if (ms < oldest) {
        this.#keys.delete(key);
        if (this.floor === undefined || key > this.floor) this.floor = key;
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function reason(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0]!;
  return String(err);
}

/**
 * Runs a read to its end: 0 every object read, 2 some could not be (each named on stderr).
 * Throws (the caller exits 1) when the location cannot be listed.
 */
export async function runRead(opts: ReadOptions): Promise<{ code: number; stats: ReadStats; seconds: number }> {
  const started = performance.now();
  const stats: ReadStats = {
    objectsListed: 0,
    objectsSkipped: 0,
    objectsRead: 0,
    objectsFailed: 0,
    bytesRead: 0,
    ndjsonBytes: 0,
    recordsScanned: 0,
    recordsMatched: 0,
  };
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  opts.signal?.addEventListener('abort', stop, { once: true });
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    // `sluice read | head`: the reader went away; not a failure of ours.
    if (err.code !== 'EPIPE') opts.stderr.write(`sluice read: stdout: ${err.message}\n`);
    ac.abort();
  };
  opts.stdout.on('error', onStdoutError);
  const seen = opts.follow ? new SeenKeys() : null;
  let remaining = opts.limit ?? Infinity;
  let progressAt = performance.now() + 1000;
  let progressShown = false;
  const showProgress = (): void => {
    if (!opts.progress) return;
    const now = performance.now();
    if (now < progressAt) return;
    progressAt = now + 250;
    progressShown = true;
    const mb = (stats.ndjsonBytes / 1e6).toFixed(0);
    opts.stderr.write(
      `\r\x1b[K${stats.objectsRead}/${stats.objectsListed - stats.objectsSkipped} objects, ${mb} MB, ${stats.recordsMatched} matched`,
    );
  };

  const writeChunk = async (bytes: Uint8Array, records: number): Promise<void> => {
    let out = bytes;
    if (records >= remaining) {
      // Cut after the remaining-th record.
      const view = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
      let cut = -1;
      for (let i = 0; i < remaining; i++) cut = view.indexOf(0x0a, cut + 1);
      out = out.subarray(0, cut + 1);
      records = remaining;
    }
    remaining -= records;
    stats.recordsMatched += records;
    if (out.length > 0 && !opts.stdout.write(out)) {
      await new Promise<void>((resolve) => {
        const go = (): void => {
          opts.stdout.off('drain', go);
          ac.signal.removeEventListener('abort', go);
          resolve();
        };
        opts.stdout.on('drain', go);
        ac.signal.addEventListener('abort', go, { once: true });
      });
    }
    if (remaining === 0) ac.abort();
  };

  const pool = opts.threads > 0 ? new ScanPool(opts.threads, opts.filter.opts) : null;
  const countRecords = opts.stats || opts.limit !== null;
  const start = (key: string): Job | RemoteJob => {
    const codec = codecOfKey(key)!;
    if (pool === null || codec === 'gzip') return new Job(key, opts, ac.signal);
    return pool.read(
      key,
      codec,
      keyTime(key),
      opts.reader.read(key, ac.signal),
      CAP_BYTES,
      ac.signal,
      opts.stats,
      countRecords,
    );
  };
  const queue: (Job | RemoteJob)[] = [];
  /** Listed keys whose index answer is on its way, in key order. */
  const ahead: { key: string; wanted: Promise<{ ok: boolean; err: unknown }> }[] = [];
  let polled = false;
  let listing: AsyncIterator<{ key: string; size: number }> | null = opts.reader
    .list(undefined, ac.signal)
    [Symbol.asyncIterator]();
  try {
    for (;;) {
      // Keep `parallel` objects open, in key order, and the index of the next INDEX_AHEAD listed
      // keys asked already: over S3 each answer is a small GET, so they are fetched together
      // rather than one per object opened.
      while (queue.length < opts.parallel && !ac.signal.aborted) {
        while (listing !== null && ahead.length < INDEX_AHEAD && !ac.signal.aborted) {
          let next: IteratorResult<{ key: string; size: number }>;
          try {
            next = await listing.next();
          } catch (err) {
            if (ac.signal.aborted) break;
            // The first listing failing is the read failing (exit 1); with --follow, a later one
            // is told and tried again at the next poll.
            if (!polled) throw err;
            opts.stderr.write(`sluice read: listing ${opts.reader.location} failed, trying again: ${reason(err)}\n`);
            listing = null;
            break;
          }
          if (next.done === true) {
            listing = null;
            break;
          }
          const { key } = next.value;
          if (codecOfKey(key) === undefined) continue; // not an object (a stray file)
          if (seen !== null) {
            if (seen.has(key)) continue;
            seen.add(key);
          }
          stats.objectsListed++;
          // Settled into a value: a rejection waiting its turn in `ahead` is not unhandled.
          const wanted = Promise.resolve()
            .then(() => opts.index.wants(key, ac.signal))
            .then(
              (ok) => ({ ok, err: undefined }),
              (err: unknown) => ({ ok: false, err: err ?? new Error('index lookup failed') }),
            );
          ahead.push({ key, wanted });
        }
        const candidate = ahead.shift();
        if (candidate === undefined) break;
        const { ok, err } = await candidate.wanted;
        if (err !== undefined) {
          if (ac.signal.aborted) break;
          throw err;
        }
        if (!ok) {
          stats.objectsSkipped++;
          continue;
        }
        queue.push(start(candidate.key));
      }
      const head = queue.shift();
      if (head === undefined) {
        if (ac.signal.aborted || !opts.follow) break;
        seen!.prune();
        showProgress();
        await sleep(opts.pollMs, ac.signal);
        if (ac.signal.aborted) break;
        listing = opts.reader.list(seen!.floor, ac.signal)[Symbol.asyncIterator]();
        polled = true;
        continue;
      }
      // Write the head object's records as they come.
      for (;;) {
        const c = head.output.take();
        if (c !== undefined) {
          if (!ac.signal.aborted) await writeChunk(c.bytes, c.records);
          continue;
        }
        if (head.output.ended || ac.signal.aborted) break;
        await head.output.waitData();
        showProgress();
      }
      await head.done;
      stats.bytesRead += head.counter.bytes;
      stats.ndjsonBytes += head.ndjsonBytes;
      stats.recordsScanned += head.scanned;
      if (head.error !== null && !ac.signal.aborted) {
        stats.objectsFailed++;
        opts.stderr.write(`${progressShown ? '\r\x1b[K' : ''}sluice read: ${head.key}: ${reason(head.error)}\n`);
      } else if (head.error === null) {
        stats.objectsRead++;
      }
    }
  } finally {
    ac.abort();
    await Promise.allSettled(ahead.map((a) => a.wanted));
    for (const job of queue) job.output.release();
    await Promise.allSettled(queue.map((j) => j.done));
    await pool?.close();
    opts.signal?.removeEventListener('abort', stop);
    opts.stdout.off('error', onStdoutError);
    if (progressShown) opts.stderr.write('\r\x1b[K');
  }
  stats.bytesRead += opts.index.bytesRead ?? 0;
  const seconds = (performance.now() - started) / 1000;
  if (opts.stats) {
    // After the records: on one terminal the summary comes last, not between the last lines.
    if (opts.stdout.writableLength > 0 && !opts.stdout.destroyed)
      await new Promise<void>((resolve) => opts.stdout.write('', () => resolve()));
    opts.stderr.write(
      `sluice read: objects_listed=${stats.objectsListed} objects_skipped=${stats.objectsSkipped} objects_read=${stats.objectsRead} ` +
        `objects_failed=${stats.objectsFailed} bytes_read=${stats.bytesRead} ndjson_bytes=${stats.ndjsonBytes} ` +
        `records_scanned=${stats.recordsScanned} records_matched=${stats.recordsMatched} seconds=${seconds.toFixed(3)}\n`,
    );
  }
  return { code: stats.objectsFailed > 0 ? 2 : 0, stats, seconds };
}
