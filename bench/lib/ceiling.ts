/**
 * Ceilings measured in the same run as the end-to-end figures, on the same lines, so the
 * e2e results can be read as ratios on a noisy shared machine:
 *
 * - pipeline ceiling: what one thread does with the worker's own code, BatchProcessor.process
 *   (validate + splice tags) + compressFrame('zstd'), over ring-format batches of the lines.
 *   Daemon CPU/line over this says how much the rest (sockets, framing, ring, dispatch,
 *   threads, object writing) adds; the daemon's lines/s over 1/this says how close two cores
 *   come to "one thread doing only the worker's job".
 * - machine reference: the same lines through Node built-ins only, utf8 decode + JSON.parse +
 *   zstdCompressSync at the same level, per batch. It does not run any Sluice code, so the gate
 *   divides by it: a slower worker, source or dispatcher moves the ratio, a slower machine
 *   moves both sides.
 *
 * Times are this thread's CPU (process.threadCpuUsage), median of several passes after a warm-up.
 */
import { constants, zstdCompressSync } from 'node:zlib';
import type { LineSet } from '@sluice/loadgen/line-set';
import { DEFAULT_LEVELS, compressFrame } from '@sluice/worker/codecs';
import { BatchProcessor, compileTagPlan } from '@sluice/worker/process';
import { median } from './daemon.ts';

export interface RingBatch {
  /** Records in the ring layout: u32 LE len | u8 peerLen | peer | line | pad to 4. */
  bytes: Buffer;
  lines: number;
  /** Where each line is inside `bytes` (for the reference, which reads lines, not records). */
  starts: Uint32Array;
  ends: Uint32Array;
}

/** Lay lines [0, maxLines) of `set` out as ring spans of at most `batchBytes`, each line prefixed by `peer`. */
export function ringBatches(set: LineSet, peer: string, maxLines: number, batchBytes = 256 * 1024): RingBatch[] {
  const peerBytes = Buffer.from(peer, 'latin1');
  const out: RingBatch[] = [];
  const n = Math.min(maxLines, set.count);
  let i = 0;
  while (i < n) {
    const buf = Buffer.alloc(batchBytes + 64 * 1024);
    const starts: number[] = [];
    const ends: number[] = [];
    let o = 0;
    while (i < n) {
      const s = set.offsets[i]!;
      const len = set.offsets[i + 1]! - 1 - s;
      const payload = 1 + peerBytes.length + len;
      const span = 4 + ((payload + 3) & ~3);
      if (o + span > batchBytes && starts.length > 0) break;
      buf.writeUInt32LE(payload, o);
      buf[o + 4] = peerBytes.length;
      peerBytes.copy(buf, o + 5);
      const ls = o + 5 + peerBytes.length;
      set.data.copy(buf, ls, s, s + len);
      starts.push(ls);
      ends.push(ls + len);
      o += span;
      i++;
    }
    out.push({
      bytes: buf.subarray(0, o),
      lines: starts.length,
      starts: Uint32Array.from(starts),
      ends: Uint32Array.from(ends),
    });
  }
  return out;
}

export interface Ceiling {
  /** CPU µs per line, one thread. */
  usPerLine: number;
  /** 1e6 / usPerLine. */
  linesPerSec: number;
  /** Raw line MB (10^6) per CPU second. */
  mbPerSec: number;
  passes: number;
}

function measure(batches: RingBatch[], passes: number, pass: () => number): Ceiling {
  let lines = 0;
  let bytes = 0;
  for (const b of batches) {
    lines += b.lines;
    for (let k = 0; k < b.lines; k++) bytes += b.ends[k]! - b.starts[k]!;
  }
  pass(); // warm-up: JIT, buffers grown
  const us: number[] = [];
  for (let p = 0; p < passes; p++) {
    const t = process.threadCpuUsage();
    const n = pass();
    const d = process.threadCpuUsage(t);
    if (n !== lines) throw new Error(`ceiling: ${n} lines processed, expected ${lines}`);
    us.push((d.user + d.system) / lines);
  }
  const usPerLine = median(us);
  return {
    usPerLine: +usPerLine.toFixed(3),
    linesPerSec: Math.round(1e6 / usPerLine),
    mbPerSec: +(bytes / lines / usPerLine).toFixed(1),
    passes,
  };
}

/** BatchProcessor + compressFrame, the worker's job, on one thread. */
export function pipelineCeiling(
  batches: RingBatch[],
  tags: Record<string, string>,
  hostKey: string | null,
  zstdLevel = DEFAULT_LEVELS.zstd,
  passes = 5,
): Ceiling {
  const processor = new BatchProcessor();
  const plan = compileTagPlan(tags, hostKey);
  return measure(batches, passes, () => {
    let n = 0;
    for (const b of batches) {
      const out = processor.process(b.bytes, b.bytes.length, plan, 'bench', false);
      compressFrame('zstd', out.ndjson, zstdLevel);
      n += out.counts.accepted;
    }
    return n;
  });
}

/** utf8 decode + JSON.parse each line, zstd-compress each batch's lines: Node built-ins only. */
export function machineReference(batches: RingBatch[], zstdLevel = DEFAULT_LEVELS.zstd, passes = 5): Ceiling {
  const params = { [constants.ZSTD_c_compressionLevel]: zstdLevel };
  let sink = 0;
  const r = measure(batches, passes, () => {
    let n = 0;
    for (const b of batches) {
      for (let k = 0; k < b.lines; k++) {
        const v = JSON.parse(b.bytes.toString('utf8', b.starts[k], b.ends[k])) as Record<string, unknown>;
        if (v !== null) n++;
      }
      sink += zstdCompressSync(b.bytes, { params }).length;
    }
    return n;
  });
  if (sink === 0) throw new Error('unreachable');
  return r;
}
