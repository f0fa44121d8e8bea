/**
 * Worker side of ring-thread.test.ts: a real second thread attached to the ring's
 * SharedArrayBuffer. Regenerates the producer's record stream from the same seed and checks
 * every record. Answers `{ ok, ... }` values; nothing is thrown across the thread boundary.
 *
 * Modes (workerData.mode):
 *  - 'read':   SPSC consumer, read() + waitForData until `count` records; posts the checksum.
 *  - 'spans':  dispatcher-style: receives claimed spans { start, end, records } by message,
 *              copyOut + forEachRecord, posts { ok, records } per span; the main thread releases.
 *  - 'wait-timeout': waitForData on an empty ring must time out, bounded.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Ring, forEachRecord } from './ring.ts';
import { FNV_SEED, checkRecord, fnv1a, lengthStream } from './testing.ts';

interface Data {
  mode: 'read' | 'spans' | 'wait-timeout';
  sab: SharedArrayBuffer;
  seed: number;
  count: number;
  maxLen: number;
  typical?: number;
}

const port = parentPort!;
const { mode, sab, seed, count, maxLen, typical } = workerData as Data;
const ring = new Ring(sab);
const nextLen = lengthStream(seed, maxLen, typical);

if (mode === 'read') {
  let seq = 0;
  let hash = FNV_SEED;
  let waits = 0;
  let error: string | null = null;
  while (seq < count && error === null) {
    const rec = ring.read();
    if (rec === null) {
      waits++;
      // The producer never pauses for long, so a wait that ends by timeout (or close to it)
      // means a lost wake-up: the producer published without notifying us.
      const t0 = performance.now();
      const result = ring.waitForData(2000);
      if (result === 'timed-out') error = `stalled after ${seq} records`;
      else if (performance.now() - t0 > 1000) error = `lost wake-up after ${seq} records`;
      continue;
    }
    error = checkRecord(rec, 0, rec.length, seq, nextLen());
    hash = fnv1a(hash, rec, 0, rec.length);
    seq++;
  }
  port.postMessage({ ok: error === null, error, records: seq, checksum: hash, waits });
} else if (mode === 'spans') {
  let seq = 0;
  let hash = FNV_SEED;
  const dst = new Uint8Array(ring.capacity);
  let error: string | null = null;
  const onRecord = (buf: Uint8Array, s: number, e: number): void => {
    if (error === null) error = checkRecord(buf, s, e, seq, nextLen());
    hash = fnv1a(hash, buf, s, e);
    seq++;
  };
  port.on('message', (span: { start: number; end: number; records: number } | 'done') => {
    if (span === 'done') {
      port.postMessage({ ok: error === null, error, records: seq, checksum: hash, done: true });
      port.close();
      return;
    }
    let records = 0;
    try {
      const n = ring.copyOut(span.start, span.end, dst);
      records = forEachRecord(dst, n, onRecord);
      if (records !== span.records && error === null) error = `span had ${records} records, claim said ${span.records}`;
    } catch (err) {
      error = String(err);
    }
    port.postMessage({ ok: error === null, error, records });
  });
} else {
  const t0 = performance.now();
  const result = ring.waitForData(30);
  port.postMessage({ ok: result === 'timed-out', result, elapsedMs: performance.now() - t0 });
}
