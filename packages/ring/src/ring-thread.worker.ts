/**
 * Worker side of ring-thread.test.ts: a real second thread attached to the ring's
 * SharedArrayBuffer. Regenerates the producer's record stream from the same seed and checks
 * every record. Answers `{ ok, ... }` values; nothing is thrown across the thread boundary.
 *
 * Modes (workerData.mode):
 *  - 'consume': this thread owns the read index: claim + copyOut + release until `count`
 *               records, polling WRITE_INDEX when the ring is empty; posts the checksum.
 *  - 'spans':  dispatcher-style: receives claimed spans { start, end, records } by message,
 *              copyOut + forEachRecord, posts { ok, records } per span; the main thread releases.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HEADER_BYTES, WRITE_INDEX } from './record-format.ts';
import { Ring, forEachRecord } from './ring.ts';
import { FNV_SEED, checkRecord, fnv1a, lengthStream } from './testing.ts';

interface Data {
  mode: 'consume' | 'spans';
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

if (mode === 'consume') {
  let seq = 0;
  let hash = FNV_SEED;
  let waits = 0;
  let error: string | null = null;
  const header = new Int32Array(sab, 0, HEADER_BYTES / 4);
  const dst = new Uint8Array(ring.capacity);
  let idleSince = -1;
  const onRecord = (buf: Uint8Array, s: number, e: number): void => {
    if (error === null) error = checkRecord(buf, s, e, seq, nextLen());
    hash = fnv1a(hash, buf, s, e);
    seq++;
  };
  while (seq < count && error === null) {
    const span = ring.claim(4096);
    if (span === null) {
      waits++;
      // Nothing notifies (the producer only publishes): sleep until WRITE_INDEX moves, 1 ms at
      // a time. The producer never pauses for long, so 5 s without a record is a stall.
      if (idleSince < 0) idleSince = performance.now();
      else if (performance.now() - idleSince > 5000) error = `stalled after ${seq} records`;
      Atomics.wait(header, WRITE_INDEX, Atomics.load(header, WRITE_INDEX), 1);
      continue;
    }
    idleSince = -1;
    const records = forEachRecord(dst, ring.copyOut(span.start, span.end, dst), onRecord);
    if (records !== span.records && error === null) error = `span had ${records} records, claim said ${span.records}`;
    ring.release(span.end);
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
}
