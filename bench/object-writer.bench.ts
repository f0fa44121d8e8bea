/**
 * ObjectWriter + FileStore throughput: 64 KiB frames (the worker's batch grain) written with
 * backpressure respected, into a temp dir, objects closed (fsync + rename + dir fsync) inside
 * the timed window. Side by side: the store's highWaterMark (the write() → false bound) and
 * a bare fs.WriteStream baseline doing the same bytes + fsync + rename, so the writer's
 * overhead reads as a ratio measured in the same run.
 *
 *   node_modules/.bin/node bench/object-writer.bench.ts
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, type Dirent } from 'node:fs';
import { rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Bench } from 'tinybench';
import { FileStore } from '@sluice/sinks/file-store';
import { newUniqueId } from '@sluice/sinks/keys';
import { type Frame, ObjectWriter } from '@sluice/sinks/object-writer';

const FRAME_BYTES = 64 * 1024;
const FRAMES_PER_ITERATION = 256; // 16 MiB per iteration
const ITERATION_BYTES = FRAME_BYTES * FRAMES_PER_ITERATION;
const RECORDS_PER_FRAME = 200;

const root = mkdtempSync(path.join(tmpdir(), 'sluice-bench-ow-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

// Incompressible, distinct frames: what a worker hands over after zstd.
const frames: Frame[] = Array.from({ length: FRAMES_PER_ITERATION }, () => ({
  bytes: randomBytes(FRAME_BYTES),
  records: RECORDS_PER_FRAME,
  rawBytes: FRAME_BYTES * 6,
}));

let iteration = 0;
function iterationDir(): string {
  return path.join(root, `it-${iteration}`);
}

async function viaObjectWriter(highWaterMark: number, maxObjectBytes: number): Promise<ObjectWriter> {
  const writer = new ObjectWriter({
    sinkId: 'bench',
    store: new FileStore({ path: iterationDir(), highWaterMark }),
    keyPrefix: 'logs/',
    codec: 'zstd',
    uploadPeriodSecs: 3600,
    maxObjectBytes,
    uniqueId: newUniqueId(),
  });
  for (let i = 0; i < frames.length; i++) {
    if (!writer.write(frames[i]!)) await new Promise<void>((r) => writer.once('drain', r));
  }
  await writer.close();
  return writer;
}

/** Baseline: the same bytes through one bare WriteStream, fsync, rename; no writer, no store. */
async function bareWriteStream(highWaterMark: number): Promise<void> {
  const dir = iterationDir();
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, '.obj.tmp');
  const stream = fs.createWriteStream(tmp, { highWaterMark, flush: true });
  const closed = new Promise<void>((resolve, reject) => {
    stream.once('close', resolve);
    stream.once('error', reject);
  });
  for (let i = 0; i < frames.length; i++) {
    if (!stream.write(frames[i]!.bytes)) await new Promise<void>((r) => stream.once('drain', r));
  }
  stream.end();
  await closed;
  await rename(tmp, path.join(dir, 'obj.ndjson.zst'));
}

function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

// Correctness before timing: every byte lands, in order, in objects within the limit.
{
  const writer = await viaObjectWriter(1 << 20, 4 * 1024 * 1024);
  const files = filesUnder(iterationDir());
  const expected = Buffer.concat(frames.map((f) => f.bytes));
  const actual = Buffer.concat(files.map((f) => readFileSync(f)));
  const sizesOk = files.every((f) => statSync(f).size <= 4 * 1024 * 1024);
  const s = writer.stats;
  if (
    files.length !== 4 ||
    !sizesOk ||
    !actual.equals(expected) ||
    s.bytesWritten !== ITERATION_BYTES ||
    s.recordsWritten !== FRAMES_PER_ITERATION * RECORDS_PER_FRAME ||
    files.some((f) => f.endsWith('.tmp'))
  ) {
    throw new Error(`object-writer bench: output check failed (${files.length} files, ${actual.length} bytes)`);
  }
  rmSync(iterationDir(), { recursive: true, force: true });
}

const bench = new Bench({ name: 'object-writer', time: 1000, iterations: 20, warmupTime: 200, warmupIterations: 2 });
const hooks = {
  beforeEach: () => {
    iteration++;
  },
  afterEach: () => {
    rmSync(iterationDir(), { recursive: true, force: true });
  },
};
const MiB = 1024 * 1024;
bench
  .add('bare WriteStream hwm 1 MiB (baseline)', () => bareWriteStream(MiB), hooks)
  .add('ObjectWriter+FileStore hwm 64 KiB, 1 object', () => viaObjectWriter(64 * 1024, 64 * MiB), hooks)
  .add('ObjectWriter+FileStore hwm 1 MiB, 1 object', () => viaObjectWriter(MiB, 64 * MiB), hooks)
  .add('ObjectWriter+FileStore hwm 4 MiB, 1 object', () => viaObjectWriter(4 * MiB, 64 * MiB), hooks)
  .add('ObjectWriter+FileStore hwm 1 MiB, 4 MiB objects', () => viaObjectWriter(MiB, 4 * MiB), hooks);

await bench.run();

const baseline = bench.tasks[0]!.result;
const baseMs = 'latency' in baseline ? baseline.latency.p50 : Number.NaN;
const rows = bench.tasks.map((t) => {
  const r = t.result;
  if (!('latency' in r)) return { task: t.name, state: r.state };
  const ms = r.latency.p50; // median: fsync times have a long tail on a shared disk
  return {
    task: t.name,
    'MB/s': Number((ITERATION_BYTES / 1e6 / (ms / 1000)).toFixed(0)),
    'µs/frame': Number(((ms * 1000) / FRAMES_PER_ITERATION).toFixed(1)),
    'rme %': Number(r.latency.rme.toFixed(1)),
    'x baseline time': Number((ms / baseMs).toFixed(2)),
    samples: r.latency.samplesCount,
  };
});
console.log(`${FRAMES_PER_ITERATION} x 64 KiB frames per iteration (16 MiB), fsync + rename included; medians`);
console.table(rows);
