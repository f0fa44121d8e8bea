/**
 * bench/framing.bench.ts: newline framing of a TCP json_lines stream, 64 KiB socket chunks of
 * 245-byte lines (lines straddle chunk boundaries, some carry multi-byte UTF-8 and CRLF).
 *
 *   node_modules/.bin/node bench/framing.bench.ts
 *
 * Side by side: LineFramer (zero copy inside a chunk), the naive Buffer.concat(carry, chunk)
 * + indexOf(10) + subarray loop, and string decode + split('\n'). Every variant's lines are
 * checked against the input before timing; exits non-zero on a mismatch.
 */
import { StringDecoder } from 'node:string_decoder';
import { Bench } from 'tinybench';
import { LineFramer } from '@sluice/wire';

const LINE_BYTES = 245; // without the '\n'
const CHUNK_BYTES = 64 * 1024;
const STREAM_BYTES = 2 * 1024 * 1024;
const MAX_LINE_BYTES = 64 * 1024;

// ---------------------------------------------------------------- fixture
const enc = new TextEncoder();
const expectedLines: Uint8Array[] = [];
const stream = new Uint8Array(STREAM_BYTES + LINE_BYTES + 1);
let streamLen = 0;
for (let i = 0; streamLen + LINE_BYTES + 1 <= STREAM_BYTES; i++) {
  const msg = i % 10 === 0 ? 'grüße ✓ ' : 'kubelet ok ';
  const head = `{"ts":"2025-01-01T00:00:00Z","node":"talos-${i % 7}","seq":${i},"msg":"${msg}`;
  let text = head + 'x'.repeat(LINE_BYTES);
  let bytes = enc.encode(text);
  while (bytes.length > LINE_BYTES - 2) bytes = enc.encode((text = text.slice(0, -1)));
  const crlf = i % 13 === 0;
  const line = enc.encode(text + (crlf ? '"' : '"}'));
  if (line.length !== (crlf ? LINE_BYTES - 1 : LINE_BYTES)) throw new Error(`bad fixture line ${i}`);
  expectedLines.push(line);
  stream.set(line, streamLen);
  streamLen += line.length;
  if (crlf) stream[streamLen++] = 13;
  stream[streamLen++] = 10;
}
const chunks: Buffer[] = [];
for (let off = 0; off < streamLen; off += CHUNK_BYTES) {
  chunks.push(Buffer.from(stream.slice(off, Math.min(off + CHUNK_BYTES, streamLen))));
}
const LINES = expectedLines.length;

// ---------------------------------------------------------------- variants
// Each returns lines seen and bytes summed, and hands each line to `sink` (the check collects;
// timing counts only).
type Sink = ((buf: Uint8Array, start: number, end: number) => void) | null;

let lines = 0;
let bytes = 0;
let sink: Sink = null;

const framer = new LineFramer(MAX_LINE_BYTES);
const emit = (buf: Uint8Array, start: number, end: number): boolean => {
  lines++;
  bytes += end - start;
  if (sink !== null) sink(buf, start, end);
  return true;
};
function viaLineFramer(): void {
  for (let i = 0; i < chunks.length; i++) {
    framer.push(chunks[i]!);
    framer.drain(emit);
  }
  framer.finish(emit);
}

function viaIndexOf(): void {
  let carry: Buffer | null = null;
  for (let i = 0; i < chunks.length; i++) {
    const buf: Buffer = carry === null ? chunks[i]! : Buffer.concat([carry, chunks[i]!]);
    let pos = 0;
    for (let nl = buf.indexOf(10, pos); nl !== -1; nl = buf.indexOf(10, pos)) {
      let end = nl;
      if (end > pos && buf[end - 1] === 13) end--;
      const line = buf.subarray(pos, end);
      lines++;
      bytes += line.length;
      if (sink !== null) sink(line, 0, line.length);
      pos = nl + 1;
    }
    carry = pos < buf.length ? buf.subarray(pos) : null;
  }
}

function viaStringSplit(): void {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  for (let i = 0; i < chunks.length; i++) {
    const parts = (carry + decoder.write(chunks[i]!)).split('\n');
    carry = parts.pop()!;
    for (let j = 0; j < parts.length; j++) {
      let line = parts[j]!;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      lines++;
      bytes += line.length; // UTF-16 units: a string pipeline never sees byte lengths for free
      if (sink !== null) {
        const b = Buffer.from(line, 'utf8');
        sink(b, 0, b.length);
      }
    }
  }
}

// ---------------------------------------------------------------- correctness first
const variants: [string, () => void][] = [
  ['LineFramer push + drain (zero copy within a chunk)', viaLineFramer],
  ['naive Buffer.concat(carry, chunk) + indexOf(10) + subarray', viaIndexOf],
  ['StringDecoder + split("\\n")', viaStringSplit],
];
for (const [name, run] of variants) {
  let n = 0;
  sink = (buf, start, end) => {
    const want = expectedLines[n];
    if (want === undefined || Buffer.compare(buf.subarray(start, end), want) !== 0) {
      throw new Error(`${name}: line ${n} differs`);
    }
    n++;
  };
  lines = 0;
  run();
  if (n !== LINES || lines !== LINES) throw new Error(`${name}: ${n} lines, expected ${LINES}`);
}
sink = null;
if (framer.oversizeLines !== 0 || framer.emptyLines !== 0 || framer.bufferedBytes() !== 0) {
  throw new Error('LineFramer: unexpected counters');
}

// ---------------------------------------------------------------- timing
const bench = new Bench({ time: 2000, warmupTime: 300 });
for (const [name, run] of variants) bench.add(name, run);
await bench.run();

const rows = bench.tasks.map((task) => {
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state}`);
  const medianMs = r.latency.p50;
  return {
    task: task.name,
    'median ms/run': +medianMs.toFixed(3),
    'ns/line': +((medianMs * 1e6) / LINES).toFixed(1),
    'MB/s': Math.round(streamLen / (medianMs * 1e3)),
    samples: r.latency.samplesCount,
  };
});
const base = rows[0]!['ns/line'];
console.log(`${LINES} lines of ${LINE_BYTES} B in ${chunks.length} chunks of ${CHUNK_BYTES / 1024} KiB per run`);
console.table(rows.map((row) => ({ ...row, 'x LineFramer': +(row['ns/line'] / base).toFixed(2) })));
if (lines === 0 || bytes === 0) throw new Error('unreachable: lines were counted');
