/**
 * Spool append cost by sync policy: 64 KiB frames (the worker's batch grain after zstd),
 * appended to one segment per 16 MiB "object", segment removed at the end as when the
 * object completes. Side by side in the same run: `interval` (fdatasync on a 1 s timer,
 * and once when the segment is sealed) and `per_batch` (fdatasync after every append), so
 * the choice of default reads as a ratio. Correctness is checked before timing.
 *
 *   node_modules/.bin/node bench/spool.bench.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { SegmentReader } from '@sluice/spool';
import { Spool, type SpoolSync } from '@sluice/spool';

const FRAME_BYTES = 64 * 1024;
const FRAMES = 256; // 16 MiB per iteration
const root = mkdtempSync(join(tmpdir(), 'sluice-bench-spool-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const frames = Array.from({ length: FRAMES }, () => randomBytes(FRAME_BYTES));

function spoolFor(sync: SpoolSync): Spool {
  return new Spool({ dir: join(root, sync), maxBytes: 1 << 30, sync, syncIntervalMs: 1000 });
}

function oneObject(spool: Spool, remove: boolean): string {
  const seg = spool.open({
    key: 'talos/2026/11/22/10:00:00-0123456789abcdef-000001.ndjson.zst',
    codec: 'zstd',
    createdAtMs: 0,
  });
  for (const f of frames) if (!spool.append(seg, f, 200, FRAME_BYTES * 6)) throw new Error('append failed');
  spool.seal(seg);
  if (remove) spool.remove(seg);
  return seg.path;
}

// Correctness first: what was appended reads back.
{
  const s = spoolFor('interval');
  const path = oneObject(s, false);
  const r = new SegmentReader(path);
  let i = 0;
  for (let f = r.next(); f !== null; f = r.next())
    if (Buffer.compare(f.bytes, frames[i++]!) !== 0) throw new Error(`frame ${i - 1} differs`);
  if (i !== FRAMES || r.tail().problem !== null) throw new Error('read back failed');
  s.close();
  rmSync(path);
}

const spools = { interval: spoolFor('interval'), per_batch: spoolFor('per_batch') };
const bench = new Bench({ time: 3000, warmupTime: 500 });
bench
  .add('no spool (baseline: copy of the frames)', () => {
    let n = 0;
    for (const f of frames) n += Buffer.from(f).byteLength;
    if (n !== FRAMES * FRAME_BYTES) throw new Error('x');
  })
  .add('spool_sync: interval (1000 ms) + seal', () => void oneObject(spools.interval, true))
  .add('spool_sync: per_batch', () => void oneObject(spools.per_batch, true));
await bench.run();
const MiB = (FRAMES * FRAME_BYTES) / (1024 * 1024);
const meanMs = (i: number): number => {
  const r = bench.tasks[i]!.result;
  return r !== undefined && 'latency' in r ? r.latency.mean : Number.NaN;
};
console.table(
  bench.tasks.map((t, i) => ({
    task: t.name,
    'ms / 16 MiB': meanMs(i).toFixed(2),
    'MiB/s': (MiB / (meanMs(i) / 1000)).toFixed(0),
  })),
);
console.log(`per_batch / interval time ratio: ${(meanMs(2) / meanMs(1)).toFixed(2)}x`);
spools.interval.close();
spools.per_batch.close();
