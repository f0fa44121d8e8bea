/**
 * bench/ring.bench.ts: what moving batches through the SharedArrayBuffer ring costs, next to
 * the alternative of building a fresh ArrayBuffer per batch and posting it (structuredClone is
 * the serialization postMessage runs). One iteration = one 256 KiB batch of 245-byte records.
 *
 *   node_modules/.bin/node bench/ring.bench.ts
 *
 * Checks every path's output record by record before timing; exits non-zero if one is wrong.
 */
import { Bench } from 'tinybench';
import { Ring, forEachRecord, recordSpan } from '@sluice/ring';

const RECORD_BYTES = 245;
const BATCH_BYTES = 256 * 1024;
const RECORDS_PER_BATCH = Math.floor(BATCH_BYTES / recordSpan(RECORD_BYTES)); // 1040
const RING_BYTES = 1024 * 1024; // 4 batches, as a source ring would hold a few in flight

// The "socket chunk": RECORDS_PER_BATCH json lines back to back, each a subrange as the framer
// would emit it. Content varies per record so a misplaced byte is caught by the check.
const source = new Uint8Array(RECORDS_PER_BATCH * RECORD_BYTES);
const starts = new Uint32Array(RECORDS_PER_BATCH);
{
  const enc = new TextEncoder();
  for (let i = 0; i < RECORDS_PER_BATCH; i++) {
    const head = `{"ts":"2025-01-01T00:00:${String(i % 60).padStart(2, '0')}Z","node":"talos-${i % 7}","seq":${i},"msg":"`;
    const line = enc.encode(`${(head + 'x'.repeat(RECORD_BYTES)).slice(0, RECORD_BYTES - 2)}"}`);
    if (line.length !== RECORD_BYTES) throw new Error('bad fixture');
    starts[i] = i * RECORD_BYTES;
    source.set(line, starts[i]);
  }
}

// ---------------------------------------------------------------- SAB ring path
const ring = Ring.create(RING_BYTES);
const dst = new Uint8Array(BATCH_BYTES); // the worker's reused copy-out buffer
let sinkRecords = 0;
const countRecord = (): void => {
  sinkRecords++;
};

/** Main-thread share: frame records into the ring, claim the batch, release it. */
function sabMain(): void {
  for (let i = 0; i < RECORDS_PER_BATCH; i++) {
    const s = starts[i]!;
    if (!ring.tryWriteRange(source, s, s + RECORD_BYTES)) throw new Error('ring full');
  }
  const span = ring.claim(BATCH_BYTES)!;
  ring.release(span.end);
}

/**
 * Main-thread share as the TCP source writes: each record prefixed by a peer-address head.
 * Records are 254 B then (span 260), so a 256 KiB batch holds RECORDS_WITH_HEAD of them.
 */
const PEER_HEAD = new TextEncoder().encode('\x0810.0.0.7'); // u8 peerLen | peer (docs/internals.md)
const RECORDS_WITH_HEAD = Math.floor(BATCH_BYTES / recordSpan(PEER_HEAD.length + RECORD_BYTES)); // 1008
function sabWithHead(copy: boolean): number {
  for (let i = 0; i < RECORDS_WITH_HEAD; i++) {
    const s = starts[i]!;
    if (!ring.tryWriteRange(source, s, s + RECORD_BYTES, PEER_HEAD)) throw new Error('ring full');
  }
  const span = ring.claim(BATCH_BYTES)!;
  const n = copy ? ring.copyOut(span.start, span.end, dst) : 0;
  ring.release(span.end);
  return n;
}
const sabMainWithHead = (): void => void sabWithHead(false);

/** Main + worker share: as above plus the worker's copyOut and record walk. */
function sabFull(): number {
  for (let i = 0; i < RECORDS_PER_BATCH; i++) {
    const s = starts[i]!;
    if (!ring.tryWriteRange(source, s, s + RECORD_BYTES)) throw new Error('ring full');
  }
  const span = ring.claim(BATCH_BYTES)!;
  const n = ring.copyOut(span.start, span.end, dst);
  forEachRecord(dst, n, countRecord);
  ring.release(span.end);
  return n;
}

// ---------------------------------------------------------------- postMessage alternative
// Main thread keeps a subarray per record (what a framer without a ring would hand over),
// concatenates them into a fresh buffer per batch with an offsets table, and posts both.
const parts: Buffer[] = new Array(RECORDS_PER_BATCH);
const sourceBuf = Buffer.from(source.buffer, source.byteOffset, source.byteLength);

function buildBatch(): { bytes: Buffer; ends: Uint32Array } {
  const ends = new Uint32Array(RECORDS_PER_BATCH);
  let total = 0;
  for (let i = 0; i < RECORDS_PER_BATCH; i++) {
    const s = starts[i]!;
    parts[i] = sourceBuf.subarray(s, s + RECORD_BYTES);
    total += RECORD_BYTES;
    ends[i] = total;
  }
  // Buffer.concat of this size does not use the shared pool, so the ArrayBuffer is ours to transfer.
  return { bytes: Buffer.concat(parts, total), ends };
}

function postTransfer(): { bytes: Uint8Array; ends: Uint32Array } {
  const batch = buildBatch();
  return structuredClone(
    { bytes: batch.bytes, ends: batch.ends },
    { transfer: [batch.bytes.buffer as ArrayBuffer, batch.ends.buffer as ArrayBuffer] },
  );
}

function postCopy(): { bytes: Uint8Array; ends: Uint32Array } {
  const batch = buildBatch();
  return structuredClone({ bytes: batch.bytes, ends: batch.ends });
}

// ---------------------------------------------------------------- correctness first
function sameAsSource(i: number, buf: Uint8Array, s: number, e: number): boolean {
  const a = starts[i]!;
  return e - s === RECORD_BYTES && Buffer.compare(buf.subarray(s, e), source.subarray(a, a + RECORD_BYTES)) === 0;
}

function check(): void {
  // Offset the ring indices so the checked batch wraps the data region.
  for (let k = 0; k < 3; k++) sabMain();
  if (ring.writeIndex() % RING_BYTES === 0) throw new Error('check does not wrap');
  for (let k = 0; k < 2; k++) {
    const n = sabFull();
    let i = 0;
    const seen = forEachRecord(dst, n, (buf, s, e) => {
      if (!sameAsSource(i++, buf, s, e)) throw new Error(`sab path: record ${i - 1} differs`);
    });
    if (seen !== RECORDS_PER_BATCH) throw new Error(`sab path: ${seen} records`);
  }
  for (const post of [postTransfer, postCopy]) {
    const { bytes, ends } = post();
    if (ends.length !== RECORDS_PER_BATCH) throw new Error(`${post.name}: ${ends.length} records`);
    let s = 0;
    for (let i = 0; i < ends.length; i++) {
      if (!sameAsSource(i, bytes, s, ends[i]!)) throw new Error(`${post.name}: record ${i} differs`);
      s = ends[i]!;
    }
  }
  const n = sabWithHead(true);
  let i = 0;
  const seen = forEachRecord(dst, n, (buf, s, e) => {
    const headOk = Buffer.compare(buf.subarray(s, s + PEER_HEAD.length), PEER_HEAD) === 0;
    if (!headOk || !sameAsSource(i++, buf, s + PEER_HEAD.length, e)) throw new Error(`head path: record ${i - 1}`);
  });
  if (seen !== RECORDS_WITH_HEAD) throw new Error(`head path: ${seen} records`);
  if (ring.usedBytes() !== 0) throw new Error('ring not drained');
}

check();

// ---------------------------------------------------------------- timing
const bench = new Bench({ time: 1500, warmupTime: 300 });
const tasks: [string, () => unknown, number][] = [
  ['sab ring: tryWriteRange + claim + release (main thread share)', sabMain, RECORDS_PER_BATCH],
  ['sab ring: same, records with a 9-byte peer head (TCP source)', sabMainWithHead, RECORDS_WITH_HEAD],
  ['sab ring: + copyOut + forEachRecord (main + worker share)', sabFull, RECORDS_PER_BATCH],
  ['alt: subarray per record + Buffer.concat + structuredClone transfer', postTransfer, RECORDS_PER_BATCH],
  ['alt: subarray per record + Buffer.concat + structuredClone copy', postCopy, RECORDS_PER_BATCH],
];
for (const [name, fn] of tasks) bench.add(name, fn);
await bench.run();

const rows = bench.tasks.map((task, k) => {
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state}`);
  const records = tasks[k]![2];
  const medianMs = r.latency.p50;
  return {
    task: task.name,
    'records/batch': records,
    'median us/batch': +(medianMs * 1e3).toFixed(1),
    'ns/record': +((medianMs * 1e6) / records).toFixed(1),
    'MB/s': Math.round((records * RECORD_BYTES) / (medianMs * 1e3)),
    samples: r.latency.samplesCount,
  };
});
const base = rows[0]!['ns/record'];
console.log(`${RECORD_BYTES}-byte records, ${BATCH_BYTES / 1024} KiB batches, ring ${RING_BYTES / 1024} KiB; medians`);
console.table(rows.map((row) => ({ ...row, 'x sab main': +(row['ns/record'] / base).toFixed(2) })));
if (sinkRecords === 0) throw new Error('unreachable: records were walked');
