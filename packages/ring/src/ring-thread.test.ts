import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Ring } from './ring.ts';
import { FNV_SEED, fnv1a, lengthStream, makeRecord } from './testing.ts';

const WORKER_URL = new URL('./ring-thread.worker.ts', import.meta.url);

let worker: Worker | undefined;
afterEach(async () => {
  await worker?.terminate();
  worker = undefined;
});

function start(data: {
  mode: string;
  sab: SharedArrayBuffer;
  seed: number;
  count: number;
  maxLen: number;
  typical?: number;
}): Worker {
  worker = new Worker(WORKER_URL, { workerData: data });
  return worker;
}

function nextMessage<T>(w: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    w.once('error', onError);
    w.once('message', (msg: T) => {
      w.off('error', onError);
      resolve(msg);
    });
  });
}

interface Summary {
  ok: boolean;
  error: string | null;
  records: number;
  checksum: number;
  waits?: number;
}

describe('ring across a real worker thread', () => {
  it('the read index in a worker: 200,000 seeded records produced on main, claimed and released there', async () => {
    const COUNT = 200_000;
    const SEED = 0x5eed;
    const ring = Ring.create(64 * 1024);
    const maxLen = 1000;
    const typical = 100;
    const w = start({ mode: 'consume', sab: ring.sab, seed: SEED, count: COUNT, maxLen, typical });
    const done = nextMessage<Summary>(w);
    let workerFinished = false; // an early answer is a failure report: stop producing
    void done.then(
      () => (workerFinished = true),
      () => (workerFinished = true),
    );

    const nextLen = lengthStream(SEED, maxLen, typical);
    const scratch = new Uint8Array(maxLen);
    let hash = FNV_SEED;
    let fullYields = 0;
    for (let seq = 0; seq < COUNT && !workerFinished; seq++) {
      const rec = makeRecord(scratch, seq, nextLen());
      hash = fnv1a(hash, rec, 0, rec.length);
      // The main thread never blocks: on a full ring it yields to the event loop and retries,
      // backing off to a 1 ms timer so it does not spin against the worker for a CPU.
      for (let attempt = 0; !ring.tryWrite(rec) && !workerFinished; attempt++) {
        fullYields++;
        await (attempt < 4 ? yieldToLoop() : sleep(1));
      }
    }
    const summary = await done;
    expect(summary.error).toBeNull();
    expect(summary).toMatchObject({ ok: true, records: COUNT, checksum: hash });
    expect(fullYields).toBeGreaterThan(0); // the ring really filled and drained under contention
    expect(ring.usedBytes()).toBe(0);
  }, 20_000);

  it('dispatcher: main claims spans and releases them after a worker has copied them out', async () => {
    const COUNT = 50_000;
    const SEED = 0xd15c;
    const maxLen = 300;
    const ring = Ring.create(16 * 1024);
    const w = start({ mode: 'spans', sab: ring.sab, seed: SEED, count: COUNT, maxLen });

    const nextLen = lengthStream(SEED, maxLen);
    const scratch = new Uint8Array(maxLen);
    let hash = FNV_SEED;
    let seq = 0;
    let spans = 0;
    let pendingRec: Uint8Array | null = null;
    const inFlight: {
      end: number;
      records: number;
      reply: Promise<{ ok: boolean; error: string | null; records: number }>;
    }[] = [];
    // Replies arrive in order (one worker), so queue a listener per span up front.
    const replies: ((msg: { ok: boolean; error: string | null; records: number }) => void)[] = [];
    w.on('message', (msg) => replies.shift()?.(msg));

    while (seq < COUNT || pendingRec !== null || inFlight.length > 0) {
      // Produce until the ring is full.
      for (;;) {
        if (pendingRec === null && seq < COUNT) {
          pendingRec = makeRecord(scratch, seq, nextLen());
          hash = fnv1a(hash, pendingRec, 0, pendingRec.length);
          seq++;
        }
        if (pendingRec === null || !ring.tryWrite(pendingRec)) break;
        pendingRec = null;
      }
      // Up to 3 spans in flight, released strictly in claim order.
      while (inFlight.length < 3) {
        const span = ring.claim(4096);
        if (span === null) break;
        spans++;
        const reply = new Promise<{ ok: boolean; error: string | null; records: number }>((r) => replies.push(r));
        w.postMessage(span);
        inFlight.push({ end: span.end, records: span.records, reply });
      }
      const oldest = inFlight.shift();
      if (oldest === undefined) continue;
      const msg = await oldest.reply;
      expect(msg.error).toBeNull();
      expect(msg.records).toBe(oldest.records);
      ring.release(oldest.end);
    }
    const finalReply = new Promise<Summary>((r) => replies.push(r as (m: unknown) => void));
    w.postMessage('done');
    const summary = await finalReply;
    expect(summary.error).toBeNull();
    expect(summary).toMatchObject({ ok: true, records: COUNT, checksum: hash });
    expect(spans).toBeGreaterThan(100);
    expect(ring.usedBytes()).toBe(0);
  }, 20_000);
});
