/**
 * Test support for the ring: a seeded PRNG, a deterministic record generator and its checker.
 * Shared by ring.test.ts, ring-thread.test.ts and the worker in ring-thread.worker.ts, so both
 * threads derive the same record stream from one seed. Not exported from the package index.
 */
import { mulberry32 } from '@sluice/testkit';
import { forEachRecord, type Ring } from './ring.ts';

export { mulberry32 };

/** Integer in [lo, hi] from rng. */
export function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** Byte i of record `seq`: bytes 0..3 carry seq (u32 LE), the rest a pattern of seq and i. */
function recordByte(seq: number, i: number): number {
  if (i < 4) return (seq >>> (8 * i)) & 255;
  return (Math.imul(seq, 31) + Math.imul(i, 7) + (seq >>> 11)) & 255;
}

// (c + 7i) & 255 == PATTERN[i + ((c * 183) & 255)] because 7 * 183 == 1 (mod 256): records are
// slices of one table, so making and checking them is a native copy/compare, not a byte loop
// (the 200,000-record thread test spent most of its time in per-byte JS before).
const PATTERN_MAX_LEN = 1 << 16;
const PATTERN = new Uint8Array(256 + PATTERN_MAX_LEN);
for (let j = 0; j < PATTERN.length; j++) PATTERN[j] = Math.imul(j, 7) & 255;

function patternOffset(seq: number): number {
  return Math.imul((Math.imul(seq, 31) + (seq >>> 11)) & 255, 183) & 255;
}

/** Fill dst[0, len) with record `seq`; returns dst.subarray(0, len). */
export function makeRecord(dst: Uint8Array, seq: number, len: number): Uint8Array {
  if (len > PATTERN_MAX_LEN) throw new RangeError(`test records are at most ${PATTERN_MAX_LEN} bytes`);
  for (let i = 0; i < len && i < 4; i++) dst[i] = (seq >>> (8 * i)) & 255;
  if (len > 4) {
    const d = patternOffset(seq);
    dst.set(PATTERN.subarray(d + 4, d + len), 4);
  }
  return dst.subarray(0, len);
}

/** null when buf[start, end) is record `seq` of length `len`, otherwise what is wrong. */
export function checkRecord(buf: Uint8Array, start: number, end: number, seq: number, len: number): string | null {
  if (end - start !== len) return `record ${seq}: length ${end - start}, expected ${len}`;
  const d = patternOffset(seq);
  const same =
    (len < 5 || Buffer.compare(buf.subarray(start + 4, end), PATTERN.subarray(d + 4, d + len)) === 0) &&
    (len < 1 || buf[start] === (seq & 255)) &&
    (len < 2 || buf[start + 1] === ((seq >>> 8) & 255)) &&
    (len < 3 || buf[start + 2] === ((seq >>> 16) & 255)) &&
    (len < 4 || buf[start + 3] === seq >>> 24);
  if (same) return null;
  for (let i = 0; i < len; i++) {
    if (buf[start + i] !== recordByte(seq, i)) {
      return `record ${seq}: byte ${i} is ${buf[start + i]}, expected ${recordByte(seq, i)}`;
    }
  }
  return `record ${seq}: mismatch`;
}

/** FNV-1a over buf[start, end), continuing from hash h (start with 0x811c9dc5). */
export function fnv1a(h: number, buf: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

export const FNV_SEED = 0x811c9dc5;

/** The length stream both threads use: 5% empty, 85% in [1, typical], 10% in [0, max]. */
export function lengthStream(seed: number, max: number, typical = 300): () => number {
  const rng = mulberry32(seed);
  return () => {
    const r = rng();
    if (r < 0.05) return 0;
    if (r < 0.9) return randInt(rng, 1, Math.min(typical, max));
    return randInt(rng, 0, max);
  };
}

/**
 * The next record's payload, copied out, and released: a one-record claim + copyOut +
 * release, as a test consumer (the ring itself has no single-record read). null when every
 * written record is consumed. Call only while no claimed span is outstanding.
 */
export function readRecord(ring: Ring): Uint8Array | null {
  const span = ring.claim(0);
  if (span === null) return null;
  const buf = new Uint8Array((span.end - span.start) >>> 0);
  let out: Uint8Array | null = null;
  forEachRecord(buf, ring.copyOut(span.start, span.end, buf), (b, s, e) => (out = b.slice(s, e)));
  ring.release(span.end);
  return out;
}
