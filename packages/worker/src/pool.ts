/**
 * The pool of worker threads running task.ts, over piscina. Main-thread side.
 */
import { Piscina } from 'piscina';
import { workerEntry } from './entry.ts';
import type { BatchResult, BatchTask, WorkerSettings } from './types.ts';

export interface WorkerPool {
  /** Process one span. Never rejects: a crashed worker or a destroyed pool is `{ ok: false, error }`. */
  run(task: BatchTask): Promise<BatchResult>;
  /**
   * Fraction of the pool's capacity in use since it started (0..1): the threads' busy time (each
   * task's own `busyMs`) over elapsed time x threads. Cheap to read: piscina's own utilization
   * computes 20 percentiles of its run-time histogram per read, 4 % of the main thread's
   * profile with /metrics read every 100 ms (bench/e2e.bench.ts --cpu-prof).
   */
  readonly utilization: number;
  /** Tasks waiting for a free thread. */
  readonly queueSize: number;
  /** Threads running now (0..threads: they start with the work and stop when idle). */
  readonly threadsRunning: number;
  /** V8 heap of the threads running now, bytes (one message to each thread). */
  heapStatistics(): Promise<{ usedBytes: number; totalBytes: number; externalBytes: number }>;
  /** Threads load the stripped build (entry.ts), not the .ts sources. */
  readonly builtEntry: boolean;
  /** Stop the threads; pending tasks answer `{ ok: false }`. */
  destroy(): Promise<void>;
}

export interface WorkerPoolOptions {
  /**
   * Most worker threads. A thread starts when a task finds every running thread busy (the
   * first with the first task), and stops after {@link THREAD_IDLE_MS} without a task.
   */
  threads: number;
  workerData: WorkerSettings;
}

/**
 * How long a thread may go without a task before it stops. Each thread is an isolate of its
 * own, ~12-15 MiB resident (docs/deploy.md, "Memory"): a daemon without traffic runs none, a
 * trickle of logs keeps one, a burst starts as many as the work needs, up to `threads`. Long
 * enough that logs every few seconds do not stop and start a thread each time (a new thread
 * takes ~50 ms, which the first batch after a quiet spell waits, and warms its JIT again).
 */
const THREAD_IDLE_MS = 30_000;

/** @throws RangeError when threads is not a positive integer. */
export function createWorkerPool(opts: WorkerPoolOptions): WorkerPool {
  if (!Number.isInteger(opts.threads) || opts.threads < 1) {
    throw new RangeError(`worker threads must be a positive integer, got ${opts.threads}`);
  }
  const entry = workerEntry('task');
  const startedAt = performance.now();
  let busyMs = 0;
  const piscina = new Piscina({
    filename: entry.href,
    // None while there is nothing to do; piscina starts a thread whenever a task finds every
    // running thread busy (or none running), up to maxThreads.
    minThreads: 0,
    maxThreads: opts.threads,
    idleTimeout: THREAD_IDLE_MS,
    workerData: opts.workerData,
    // The worker's per-record path allocates almost nothing (json-scan.ts), so a small young
    // generation costs no CPU and keeps each thread's heap from growing to V8's default: daemon
    // RSS max 199-223 MiB vs 242-257 MiB without it (bench/e2e.bench.ts tcp-file, 300k lines).
    resourceLimits: { maxYoungGenerationSizeMb: 8 },
    // Workers run at nice +10, so the main thread, which reads the sockets, gets a core as soon as
    // it has work; idle CPU still goes to the workers. On 2 cores, runs minutes apart
    // (bench/e2e.bench.ts, docs/benchmarks.md): udp-paced 54% → 0% kernel drops, tcp-file
    // ~200-300k → 374k lines/s. Needs piscina's optional @napi-rs/nice (installed with it).
    niceIncrement: 10,
    // Busy time comes from the tasks themselves (utilization below); piscina's run and wait
    // histograms would only cost a record() per task.
    recordTiming: false,
  });
  return {
    builtEntry: entry.built,
    run(task: BatchTask): Promise<BatchResult> {
      return (piscina.run(task) as Promise<BatchResult>).then(
        (result) => {
          if (result.ok) busyMs += result.busyMs;
          return result;
        },
        (err: unknown): BatchResult => ({
          ok: false,
          error: `worker pool: ${err instanceof Error ? err.message : String(err)}`,
        }),
      );
    },
    get utilization() {
      const capacityMs = (performance.now() - startedAt) * opts.threads;
      return capacityMs > 0 ? Math.min(1, busyMs / capacityMs) : 0;
    },
    get queueSize() {
      return piscina.queueSize;
    },
    get threadsRunning() {
      return piscina.threads.length;
    },
    async heapStatistics() {
      const sum = { usedBytes: 0, totalBytes: 0, externalBytes: 0 };
      const stats = await Promise.all(piscina.threads.map((t) => t.getHeapStatistics().catch(() => null)));
      for (const h of stats) {
        if (h === null) continue; // the thread stopped meanwhile
        sum.usedBytes += h.used_heap_size;
        sum.totalBytes += h.total_heap_size;
        sum.externalBytes += h.external_memory;
      }
      return sum;
    },
    destroy() {
      return piscina.destroy();
    },
  };
}
