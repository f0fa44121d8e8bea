/**
 * Compressing one 256 KiB batch of realistic Talos NDJSON (tags spliced, as the worker emits it)
 * into one frame: zstd through Sluice's addon (packages/worker/native/zstd.cc: one context per
 * thread, what compressFrame uses when it is built) vs node:zlib (levels 1, 3 and 6, a context
 * per call, compressFrame's fallback) vs @mongodb-js/zstd's native binding
 * (levels 1 and 3; its JS wrapper drops the level, so the bench calls bindings.js) vs gzip 1 and 6
 * vs none. MB/s is input bytes over the median time per batch, on one thread.
 *
 *   node_modules/.bin/node bench/compress.bench.ts
 *
 * Each output is decompressed and compared with the input before timing.
 */
import { createRequire } from 'node:module';
import { constants, gunzipSync, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { Bench } from 'tinybench';
import { compressFrame, selectZstd } from '@sluice/worker/codecs';
import { loadNativeZstd } from '@sluice/worker/zstd-native';
import { BatchProcessor, compileTagPlan } from '@sluice/worker/process';
import { TalosLineGenerator } from '@sluice/testkit';
import { buildBatch, talosBatch } from '@sluice/worker/fixture';

interface ZstdNative {
  compress(data: Buffer, level?: number | null): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}
const native = createRequire(import.meta.url)('@mongodb-js/zstd/bindings.js') as ZstdNative;

const BATCH_BYTES = 256 * 1024;

// A worker's NDJSON for one span: generated Talos records (seeded), tagged like a real source.
const { payloads } = talosBatch(new TalosLineGenerator(20240422), '10.0.0.7', BATCH_BYTES);
const span = buildBatch(payloads);
const processed = new BatchProcessor().process(
  span,
  span.length,
  compileTagPlan({ cluster: 'prod-eu-1' }, 'host'),
  'bench',
  false,
);
const ndjson = Buffer.from(processed.ndjson); // own copy: the processor's buffer is reused
const MB = ndjson.length / 1e6;

interface Variant {
  name: string;
  run: () => Uint8Array | Promise<Uint8Array>;
  check: (frame: Uint8Array) => Buffer | Promise<Buffer>;
}
const zstdCheck = (f: Uint8Array) => zstdDecompressSync(f);
// compressFrame's zstd goes through node:zlib here; the addon is timed on its own below.
selectZstd('zlib');
const sluiceZstd = loadNativeZstd();
if (!sluiceZstd.ok) throw new Error(`${sluiceZstd.reason}: run node_modules/.bin/node scripts/build-native.ts`);
const addon = sluiceZstd.addon;
const variants: Variant[] = [
  { name: 'none (copy)', run: () => compressFrame('none', ndjson), check: (f) => Buffer.from(f) },
  {
    name: 'zstd 1  Sluice addon, reused context',
    run: () => new Uint8Array(addon.zstdCompress(ndjson, 1, true)),
    check: zstdCheck,
  },
  {
    name: 'zstd 3  Sluice addon, reused context',
    run: () => new Uint8Array(addon.zstdCompress(ndjson, 3, true)),
    check: zstdCheck,
  },
  { name: 'zstd 1  node:zlib (compressFrame)', run: () => compressFrame('zstd', ndjson, 1), check: zstdCheck },
  { name: 'zstd 3  node:zlib (compressFrame)', run: () => compressFrame('zstd', ndjson, 3), check: zstdCheck },
  { name: 'zstd 6  node:zlib (compressFrame)', run: () => compressFrame('zstd', ndjson, 6), check: zstdCheck },
  {
    name: 'zstd 3  node:zlib, no checksum/pledged size',
    run: () => zstdCompressSync(ndjson, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }),
    check: zstdCheck,
  },
  {
    name: 'zstd 1  @mongodb-js/zstd native (async)',
    run: () => native.compress(ndjson, 1),
    check: (f) => native.decompress(Buffer.from(f)),
  },
  {
    name: 'zstd 3  @mongodb-js/zstd native (async)',
    run: () => native.compress(ndjson, 3),
    check: (f) => native.decompress(Buffer.from(f)),
  },
  {
    name: 'gzip 1  node:zlib (compressFrame)',
    run: () => compressFrame('gzip', ndjson, 1),
    check: (f) => gunzipSync(f),
  },
  {
    name: 'gzip 6  node:zlib (compressFrame)',
    run: () => compressFrame('gzip', ndjson, 6),
    check: (f) => gunzipSync(f),
  },
];

// ---- correctness before timing, and the output size of each variant
const sizes = new Map<string, number>();
for (const v of variants) {
  const frame = await v.run();
  const back = await v.check(frame);
  if (!ndjson.equals(back)) throw new Error(`${v.name}: round trip differs`);
  sizes.set(v.name, frame.length);
}

const bench = new Bench({ time: 2000, warmupTime: 200 });
for (const v of variants) bench.add(v.name, v.run);
await bench.run();

console.log(
  `one ${ndjson.length}-byte batch (${processed.counts.accepted} Talos records, ${processed.counts.kinds.kernel} kernel), ` +
    `one thread, node ${process.version}, libzstd ${process.versions.zstd}`,
);
console.log(
  `${'variant'.padEnd(46)} ${'MB/s'.padStart(8)} ${'ms/batch'.padStart(9)} ${'ratio'.padStart(7)} ${'bytes'.padStart(8)}`,
);
for (const task of bench.tasks) {
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state}`);
  const ms = r.latency.p50;
  const size = sizes.get(task.name)!;
  console.log(
    `${task.name.padEnd(46)} ${(MB / (ms / 1000)).toFixed(1).padStart(8)} ${ms.toFixed(3).padStart(9)} ${(ndjson.length / size).toFixed(2).padStart(7)} ${String(size).padStart(8)}`,
  );
}
