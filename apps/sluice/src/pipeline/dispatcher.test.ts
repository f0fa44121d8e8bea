import { EventEmitter, once } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { Ring, blockHead, peerHead } from '@sluice/ring';
import { ObjectWriter, type ObjectStore, type ObjectUpload } from '@sluice/sinks';
import { createLogger, Metrics } from '@sluice/telemetry';
import { createWorkerPool, type BatchResult, type BatchTask } from '@sluice/worker';
import { Dispatcher, type WhenFull } from './dispatcher.ts';

/** A store whose uploads say "wait" while `full` is set, and drain when it is cleared. */
class GateStore implements ObjectStore {
  full = false;
  /** Set for a store whose write() copies (as S3's does): the dispatcher may free frames. */
  copiesChunks = false;
  readonly bytes: number[] = [];
  private readonly waiting = new Set<EventEmitter>();

  open(): ObjectUpload {
    const store = this;
    const up = new (class extends EventEmitter implements ObjectUpload {
      write(chunk: Uint8Array): boolean {
        store.bytes.push(chunk[0]!);
        if (!store.full) return true;
        store.waiting.add(this);
        return false;
      }
      override once(event: 'drain', fn: () => void): this {
        return super.once(event, fn);
      }
      async close(): Promise<void> {}
      async abort(): Promise<void> {}
    })();
    return up;
  }

  async check(): Promise<void> {}

  release(): void {
    this.full = false;
    for (const up of this.waiting) up.emit('drain');
    this.waiting.clear();
  }
}

/** A worker stand-in: one 1-byte frame per span, the first body byte of its first record. */
class FakeRunner {
  readonly tasks: BatchTask[] = [];
  /** Every frame returned, to check which the dispatcher freed. */
  readonly frames: Uint8Array[] = [];
  async run(task: BatchTask): Promise<BatchResult> {
    this.tasks.push(task);
    // Data region after the 64-byte header; a record is a u32 length, a 1-byte peer head, 3 bytes.
    const data = new Uint8Array(task.sab, 64, 65_536);
    const records = (task.end - task.start) / 8;
    const frame = Uint8Array.of(data[(task.start + 5) & 65_535]!);
    this.frames.push(frame);
    const malformed = {};
    return {
      ok: true,
      frames: [frame],
      deadLetter: null,
      rawBytes: task.end - task.start,
      ndjsonBytes: records,
      busyMs: 0,
      counts: {
        records,
        accepted: records,
        inputBytes: 0,
        outputBytes: 0,
        malformed,
        kinds: { service: 0, kernel: 0, other: records },
      },
    };
  }
}

function setup(whenFull: WhenFull) {
  const ring = Ring.create(65_536);
  const store = new GateStore();
  const metrics = new Metrics('test');
  const writer = new ObjectWriter({
    sinkId: 's3',
    store,
    keyPrefix: '',
    codec: 'none',
    uploadPeriodSecs: 3600,
    maxObjectBytes: 1 << 30,
    uniqueId: '0'.repeat(16),
  });
  const runner = new FakeRunner();
  const dispatcher = new Dispatcher({
    runner,
    metrics,
    logger: createLogger({ level: 'silent', format: 'json' }),
    batchBytes: 8,
    batchTimeoutMs: 1,
    maxInflightPerRoute: 1,
  });
  dispatcher.addRoute({
    sourceId: 'src',
    sourceType: 'tcp',
    ring,
    codecs: ['none'],
    outputs: [
      { writer, codecIndex: 0, whenFull, index: false, sinkLabels: { component_id: 's3', component_type: 'aws_s3' } },
    ],
    deadLetter: null,
    onRingSpace: () => {},
  });
  /** One 3-byte record per call (1-byte empty peer head + 3 bytes = a 4-byte payload, 8 in the ring). */
  const send = (n: number): void => {
    ring.tryWrite(Uint8Array.of(n, 0, 0), peerHead(null));
    dispatcher.wrote('src');
  };
  /** A pause on purpose (20 ms of event loop turns), for the checks that nothing more happens. */
  const settle = () => new Promise((r) => setTimeout(r, 20));
  /** Wait until the writer took the first frame (and said "wait"), the rest left in the ring. */
  const firstTaken = () =>
    vi.waitFor(
      () => {
        expect(store.bytes, 'the first frame in the store').toEqual([1]);
        expect(ring.usedBytes(), 'records 2 to 5 left in the ring').toBe(4 * 8);
      },
      { timeout: 30_000, interval: 5 },
    );
  /** Release the store and wait for the writer's 'drain' (the dispatcher, listening first, has seen it). */
  const release = async () => {
    const drained = once(writer, 'drain');
    store.release();
    await drained;
  };
  const dropped = async () =>
    (await metrics.sinkDiscardedEvents.get()).values.find((v) => v.labels.reason === 'buffer_full')?.value ?? 0;
  return { ring, store, writer, dispatcher, send, settle, firstTaken, release, dropped, metrics, runner };
}

describe('Dispatcher and a sink that says wait', () => {
  it('block: stops releasing the ring until the writer drains, then delivers everything in order', async () => {
    const t = setup('block');
    t.store.full = true;
    for (let i = 1; i <= 5; i++) t.send(i);
    // The first frame was taken (and said "wait"); the rest stay claimed or unclaimed in the ring.
    await t.firstTaken();
    t.store.release();
    await t.dispatcher.flush();
    expect(t.store.bytes).toEqual([1, 2, 3, 4, 5]);
    expect(t.ring.usedBytes()).toBe(0);
    expect(await t.dropped()).toBe(0);
  });

  it('drop_newest: drops and counts frames while the writer is blocked, never holds the ring', async () => {
    const t = setup('drop_newest');
    t.store.full = true;
    for (let i = 1; i <= 5; i++) t.send(i);
    await t.dispatcher.flush();
    expect(t.store.bytes).toEqual([1]);
    expect(t.ring.usedBytes()).toBe(0);
    expect(await t.dropped()).toBe(4);
    await t.release();
    for (let i = 6; i <= 7; i++) t.send(i);
    await t.dispatcher.flush();
    expect(t.store.bytes).toEqual([1, 6, 7]);
    expect(await t.dropped()).toBe(4);
    await t.writer.close();
    expect(t.writer.stats.recordsWritten).toBe(3);
  });
});

describe('Dispatcher and the frames of delivered batches', () => {
  it('frees (detaches) each frame once the sink copied it, not for a sink that keeps references', async () => {
    for (const copies of [true, false]) {
      const t = setup('block');
      t.store.copiesChunks = copies;
      for (let i = 1; i <= 4; i++) t.send(i);
      await t.dispatcher.flush();
      expect(t.store.bytes).toEqual([1, 2, 3, 4]);
      expect(t.runner.frames).toHaveLength(4);
      expect(t.runner.frames.map((f) => (f.buffer as ArrayBuffer).detached)).toEqual([copies, copies, copies, copies]);
    }
  });

  it('never frees a frame that is a view into a larger buffer', async () => {
    const t = setup('block');
    t.store.copiesChunks = true;
    const shared = new Uint8Array(16);
    t.runner.run = async (task) => {
      const frame = shared.subarray(0, 1);
      frame[0] = 7;
      const kinds = { service: 0, kernel: 0, other: 1 };
      const counts = { records: 1, accepted: 1, inputBytes: 0, outputBytes: 0, malformed: {}, kinds };
      const rawBytes = task.end - task.start;
      return { ok: true, frames: [frame], deadLetter: null, rawBytes, ndjsonBytes: 1, busyMs: 0, counts };
    };
    t.send(1);
    await t.dispatcher.flush();
    expect(t.store.bytes).toEqual([7]);
    expect(shared.buffer.detached).toBe(false);
  });
});

describe('Dispatcher at the shutdown deadline', () => {
  it('abandon(): counts what is still in the ring or in undelivered batches, delivers nothing more, and counts later writes', async () => {
    const t = setup('block');
    const discarded = async (): Promise<number> =>
      (await t.metrics.discardedEvents.get()).values.find(
        (v) =>
          v.labels.reason === 'shutdown_timeout' &&
          v.labels.component_id === 'src' &&
          v.labels.component_type === 'tcp',
      )?.value ?? 0;
    t.store.full = true;
    for (let i = 1; i <= 5; i++) t.send(i);
    // Record 1 is in the writer's object (the writer's own abandon() counts it); 2..5 are not.
    await t.firstTaken();
    expect(t.dispatcher.abandon()).toEqual(new Map([['src', 4]]));
    expect(await discarded()).toBe(4);
    expect(t.ring.usedBytes()).toBe(0);
    // The writer drains: nothing more is delivered, and a flush ends at once.
    await t.release();
    await t.settle();
    expect(t.store.bytes).toEqual([1]);
    await t.dispatcher.flush();
    // A source still draining writes two more: counted as they arrive, never dispatched.
    const tasks = t.runner.tasks.length;
    t.send(6);
    t.send(7);
    await vi.waitFor(async () => expect(await discarded(), 'the late writes counted').toBe(6), {
      timeout: 30_000,
      interval: 5,
    });
    await t.settle();
    expect(t.ring.usedBytes()).toBe(0);
    expect(t.runner.tasks.length).toBe(tasks);
    expect(t.store.bytes).toEqual([1]);
  });
});

describe('Dispatcher and a batch a worker fails', () => {
  it('counts every line of the span as worker_error, each line of a block record included', async () => {
    // A real pool that does not know the route's source: every batch comes back { ok: false }.
    const pool = createWorkerPool({ threads: 1, workerData: { sources: {}, levels: { zstd: 1, gzip: 6 } } });
    try {
      const ring = Ring.create(65_536);
      const metrics = new Metrics('test');
      const store = new GateStore();
      const writer = new ObjectWriter({
        sinkId: 'f',
        store,
        keyPrefix: '',
        codec: 'none',
        uploadPeriodSecs: 3600,
        maxObjectBytes: 1 << 30,
        uniqueId: '0'.repeat(16),
      });
      const dispatcher = new Dispatcher({
        runner: pool,
        metrics,
        logger: createLogger({ level: 'silent', format: 'json' }),
        batchBytes: 1 << 20,
        batchTimeoutMs: 1,
        maxInflightPerRoute: 2,
      });
      dispatcher.addRoute({
        sourceId: 'tcp-in',
        sourceType: 'tcp',
        ring,
        codecs: ['none'],
        outputs: [
          {
            writer,
            codecIndex: 0,
            whenFull: 'block',
            index: false,
            sinkLabels: { component_id: 'f', component_type: 'file' },
          },
        ],
        deadLetter: null,
        onRingSpace: () => {},
      });
      const enc = new TextEncoder();
      ring.tryWrite(enc.encode('{"a":1}\n{"a":2}\r\n{"a":3}\n'), blockHead(peerHead(null))); // a block of 3 lines
      ring.tryWrite(enc.encode('{"a":4}'), peerHead(null)); // one line
      dispatcher.wrote('tcp-in');
      await dispatcher.flush();
      const failed = (await metrics.discardedEvents.get()).values.find((v) => v.labels.reason === 'worker_error');
      expect(failed?.value).toBe(4);
      expect(ring.usedBytes()).toBe(0);
      expect(store.bytes).toEqual([]);
    } finally {
      await pool.destroy();
    }
  });
});
