/**
 * The gate's workloads: each hot stage as a (subject, reference) pair over the same seeded
 * loadgen lines. Subject = Sluice's code; reference = a floor or an alternative built from Node
 * built-ins only, so a change to Sluice moves the ratio and a change of machine moves neither.
 * Every pair is checked for correct output before it is timed.
 */
import { zstdCompressSync, zstdDecompressSync, constants } from 'node:zlib';
import { generateLineSet, type LineSet } from '../../apps/loadgen/src/line-set.ts';
import { Ring, forEachRecord } from '../../packages/ring/src/index.ts';
import { LineFramer } from '../../packages/wire/src/index.ts';
import { DEFAULT_LEVELS, compressFrame, selectZstd } from '../../packages/worker/src/codecs.ts';

/** The daemon's default zstd level: what the e2e benchmark and the daemon run. */
const LEVEL = DEFAULT_LEVELS.zstd;
import { BatchProcessor, compileTagPlan } from '../../packages/worker/src/process.ts';
import { ringBatches, type RingBatch } from './ceiling.ts';

export interface Pair {
  name: string;
  /** What it guards, for the report. */
  about: string;
  subject: () => unknown;
  reference: () => unknown;
}

const TAGS = { cluster: 'bench' };
const HOST_KEY = '__host';
const PEER = '10.0.0.7';

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`gate fixture check failed: ${what}`);
}

export function gatePairs(): Pair[] {
  const set: LineSet = generateLineSet({ count: 4000, kind: 'mixed', seed: 4 });
  const batches: RingBatch[] = ringBatches(set, PEER, set.count);
  const plan = compileTagPlan(TAGS, HOST_KEY);
  // The native fast path (batch.cc) is what the daemon runs; 'on' fails here, with the reason,
  // when it is not built. The TypeScript path is gated too: it is the fallback without a compiler.
  const processor = new BatchProcessor({ native: 'on' });
  selectZstd('native'); // likewise the zstd addon (packages/worker/native/zstd.cc)
  const tsProcessor = new BatchProcessor({ native: 'off' });

  // ---- validate + tag: BatchProcessor vs the decode + JSON.parse floor
  let sink = 0;
  const processWith = (p: BatchProcessor): number => {
    let n = 0;
    for (const b of batches) n += p.process(b.bytes, b.bytes.length, plan, 'gate', false).counts.accepted;
    return n;
  };
  const processAll = (): number => processWith(processor);
  const parseAll = (): number => {
    let n = 0;
    for (const b of batches) for (let k = 0; k < b.lines; k++) n += JSON.parse(b.bytes.toString('utf8', b.starts[k], b.ends[k])) === null ? 0 : 1;
    return n;
  };
  check(processAll() === set.count && processWith(tsProcessor) === set.count && parseAll() === set.count, 'validate+tag accepts every line');
  {
    const out = processor.process(batches[0]!.bytes, batches[0]!.bytes.length, plan, 'gate', false);
    const first = JSON.parse(Buffer.from(out.ndjson).toString('utf8').split('\n')[0]!) as Record<string, unknown>;
    check(first['cluster'] === 'bench' && first['__host'] === PEER, 'tags spliced');
  }

  // ---- compression: compressFrame (the default level, checksum, pledged size) vs plain zstdCompressSync at that level
  const ndjson = Buffer.from(processor.process(batches[0]!.bytes, batches[0]!.bytes.length, plan, 'gate', false).ndjson);
  const params = { [constants.ZSTD_c_compressionLevel]: LEVEL };
  check(zstdDecompressSync(compressFrame('zstd', ndjson, LEVEL)).equals(ndjson), 'compressFrame round trip');

  // ---- worker task: process + compress per batch vs decode + JSON.parse + zstd per batch
  const workerTask = (): number => {
    let n = 0;
    for (const b of batches) {
      const out = processor.process(b.bytes, b.bytes.length, plan, 'gate', false);
      n += compressFrame('zstd', out.ndjson, LEVEL).length;
    }
    return n;
  };
  const referenceTask = (): number => {
    let n = parseAll();
    for (const b of batches) n += zstdCompressSync(b.bytes, { params }).length;
    return n;
  };

  // ---- framing: LineFramer in block mode (as the TCP source runs it) vs Buffer.concat(carry, chunk)
  // + indexOf per line, 64 KiB socket chunks; both count lines
  const chunks: Buffer[] = [];
  for (let off = 0; off < set.data.length; off += 64 * 1024) chunks.push(set.data.subarray(off, Math.min(off + 64 * 1024, set.data.length)));
  const framer = new LineFramer(256 * 1024, { maxBlockBytes: 64 * 1024 });
  let framed = 0;
  const emit = (_b: Uint8Array, _s: number, _e: number, lines: number): boolean => {
    framed += lines === 0 ? 1 : lines;
    return true;
  };
  const viaFramer = (): number => {
    framed = 0;
    for (const c of chunks) {
      framer.push(c);
      framer.drain(emit);
    }
    framer.finish(emit);
    return framed;
  };
  const viaIndexOf = (): number => {
    let n = 0;
    let carry: Buffer | null = null;
    for (const c of chunks) {
      const buf: Buffer = carry === null ? c : Buffer.concat([carry, c]);
      let pos = 0;
      for (let nl = buf.indexOf(10, pos); nl !== -1; nl = buf.indexOf(10, pos)) {
        if (buf.subarray(pos, nl).length > 0) n++;
        pos = nl + 1;
      }
      carry = pos < buf.length ? buf.subarray(pos) : null;
    }
    return n;
  };
  check(viaFramer() === viaIndexOf() && framed === set.count, 'framing finds every line');

  // ---- ring: lines with a peer head through the SAB ring (write, claim, copyOut, walk, release)
  //      vs a fresh Buffer.concat per batch + structuredClone (what posting batches would cost)
  const ring = Ring.create(1 << 20);
  const head = Uint8Array.from([PEER.length, ...Buffer.from(PEER)]);
  const dst = new Uint8Array(1 << 20);
  const lineCount = 1000;
  let walked = 0;
  const countRecord = (): void => {
    walked++;
  };
  const viaRing = (): number => {
    walked = 0;
    for (let i = 0; i < lineCount; i++) {
      if (!ring.tryWriteRange(set.data, set.offsets[i]!, set.offsets[i + 1]! - 1, head)) throw new Error('ring full');
    }
    const span = ring.claim(1 << 20)!;
    const n = ring.copyOut(span.start, span.end, dst);
    forEachRecord(dst, n, countRecord);
    ring.release(span.end);
    return walked;
  };
  const parts: Buffer[] = new Array(lineCount);
  const viaClone = (): number => {
    let total = 0;
    for (let i = 0; i < lineCount; i++) {
      parts[i] = set.data.subarray(set.offsets[i]!, set.offsets[i + 1]! - 1);
      total += parts[i]!.length;
    }
    return (structuredClone(Buffer.concat(parts, total)) as Uint8Array).length;
  };
  check(viaRing() === lineCount && viaClone() > 0, 'ring walks every record');

  return [
    { name: 'validate+tag / JSON.parse floor', about: 'BatchProcessor.process (native fast path) vs utf8 decode + JSON.parse per line (worker hot loop)', subject: () => (sink += processAll()), reference: () => (sink += parseAll()) },
    { name: 'validate+tag, TypeScript path / JSON.parse floor', about: "BatchProcessor.process with native: 'off' (the fallback without a compiler) vs utf8 decode + JSON.parse per line", subject: () => (sink += processWith(tsProcessor)), reference: () => (sink += parseAll()) },
    { name: 'worker task / reference', about: 'process + compressFrame per batch vs decode + JSON.parse + zstd (the single-thread ceiling)', subject: workerTask, reference: referenceTask },
    { name: 'compressFrame / zstdCompressSync', about: 'compressFrame (native zstd, reused context, checksum, pledged size) vs plain zstdCompressSync at the same level', subject: () => compressFrame('zstd', ndjson, LEVEL), reference: () => zstdCompressSync(ndjson, { params }) },
    { name: 'LineFramer / indexOf framing', about: 'TCP block framing vs Buffer.concat + indexOf per line', subject: viaFramer, reference: viaIndexOf },
    { name: 'ring / structuredClone batch', about: 'SAB ring write + claim + copyOut + walk vs concat + structuredClone', subject: viaRing, reference: viaClone },
  ];
}
