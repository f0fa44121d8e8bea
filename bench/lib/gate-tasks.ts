/**
 * The gate's micro stages: each hot stage of the data path as a workload that can be built
 * from either tree (the tree under test or the reference commit), over the same seeded loadgen
 * lines. Both trees' modules are loaded into this one process, so a stage's two workloads run
 * in alternating rounds on the same thread (bench/lib/pair.ts).
 *
 * A tree is driven only through the few exports below ({@link TreeModules}). A change that
 * alters one of them must keep this adapter working for both trees, or move the reference
 * forward (docs/benchmarks.md, "Moving the reference").
 *
 * Every workload is checked for correct output before anything is timed.
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateLineSet, type LineSet } from '@sluice/loadgen/line-set';

type ProcessModule = typeof import('@sluice/worker/process');
type CodecsModule = typeof import('@sluice/worker/codecs');
type RingModule = typeof import('@sluice/ring');
type WireModule = typeof import('@sluice/wire');

export interface TreeModules {
  process: ProcessModule;
  codecs: CodecsModule;
  ring: RingModule;
  wire: WireModule;
}

/**
 * The modules a micro stage drives, imported from the tree at `root`. `addonDir`: where the
 * tree's worker addons are loaded from (SLUICE_WORKER_ADDON_DIR, read when the modules are
 * first evaluated): the gate gives every process fresh copies (see {@link freshAddonCopies}).
 */
export async function loadTree(root: string, addonDir?: string): Promise<TreeModules> {
  const prior = process.env['SLUICE_WORKER_ADDON_DIR'];
  if (addonDir === undefined) delete process.env['SLUICE_WORKER_ADDON_DIR'];
  else process.env['SLUICE_WORKER_ADDON_DIR'] = addonDir;
  try {
    return await importTree(root);
  } finally {
    if (prior === undefined) delete process.env['SLUICE_WORKER_ADDON_DIR'];
    else process.env['SLUICE_WORKER_ADDON_DIR'] = prior;
  }
}

/**
 * Copies of the tree's worker addons (batch.node, zstd.node) in a new directory under `parent`.
 *
 * Why: the same addon file loaded by two processes runs at the same speed, but two copies of
 * one identical .node file were measured 7-12 % apart, stable for as long as each file existed
 * (validate+tag, native; a fresh copy of the slow one measured like the other). Where a file's
 * pages land in memory is luck that lasts as long as the file. A fresh copy per process makes
 * that luck part of each sample's noise, which the rounds then average, instead of a fixed bias
 * of one tree.
 */
export function freshAddonCopies(root: string, parent: string): string {
  const dir = mkdtempSync(join(parent, 'addons-'));
  for (const name of ['batch.node', 'zstd.node'])
    copyFileSync(join(root, 'packages/worker/build-native', name), join(dir, name));
  return dir;
}

async function importTree(root: string): Promise<TreeModules> {
  const at = <T>(path: string): Promise<T> => import(pathToFileURL(join(root, path)).href) as Promise<T>;
  const [process, codecs, ring, wire] = await Promise.all([
    at<ProcessModule>('packages/worker/src/process.ts'),
    at<CodecsModule>('packages/worker/src/codecs.ts'),
    at<RingModule>('packages/ring/src/index.ts'),
    at<WireModule>('packages/wire/src/index.ts'),
  ]);
  return { process, codecs, ring, wire };
}

export interface MicroStage {
  name: string;
  /** What it guards, for the report. */
  about: string;
}

export const MICRO_STAGES: readonly MicroStage[] = [
  {
    name: 'validate+tag, native',
    about: 'BatchProcessor.process with the native fast path (batch.cc) over ring batches of 4,000 mixed lines',
  },
  {
    name: 'validate+tag, TypeScript',
    about: "BatchProcessor.process with native: 'off' (the fallback without a compiler), same batches",
  },
  { name: 'worker task', about: 'process + compressFrame per batch: what a worker thread does with a batch' },
  {
    name: 'compress',
    about: "compressFrame('zstd') at the default level (native zstd addon) of one ~290 KB batch of NDJSON",
  },
  { name: 'framing', about: 'LineFramer in block mode (as the tcp source runs it) over 64 KiB socket chunks' },
  { name: 'ring', about: 'SAB ring: write 1,000 records with a peer head, claim, copyOut, walk, release' },
];

const TAGS = { cluster: 'bench' };
const HOST_KEY = '__host';
const PEER = '10.0.0.7';

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`gate fixture check failed: ${what}`);
}

/** The lines every stage works on, built once and shared by both trees. */
export interface Fixture {
  set: LineSet;
  /** 64 KiB socket chunks of the set's bytes. */
  chunks: Buffer[];
}

export function microFixture(): Fixture {
  const set = generateLineSet({ count: 4000, kind: 'mixed', seed: 4 });
  const chunks: Buffer[] = [];
  for (let off = 0; off < set.data.length; off += 64 * 1024)
    chunks.push(set.data.subarray(off, Math.min(off + 64 * 1024, set.data.length)));
  return { set, chunks };
}

/**
 * The set's lines as the tree's own ring lays them out for a worker: written with the peer
 * head through a Ring, claimed in spans of at most `batchBytes` and copied out, so each tree's
 * processor reads its own record format.
 */
function ringBatches(m: TreeModules, set: LineSet, batchBytes = 256 * 1024): { bytes: Buffer; lines: number }[] {
  const ring = m.ring.Ring.create(1 << 21);
  const head = Uint8Array.from([PEER.length, ...Buffer.from(PEER, 'latin1')]);
  const out: { bytes: Buffer; lines: number }[] = [];
  let i = 0;
  while (i < set.count) {
    let lines = 0;
    while (i < set.count && ring.usedBytes() < batchBytes) {
      if (!ring.tryWriteRange(set.data, set.offsets[i]!, set.offsets[i + 1]! - 1, head)) break;
      i++;
      lines++;
    }
    const span = ring.claim(1 << 21)!;
    const bytes = Buffer.alloc(span.end - span.start);
    const n = ring.copyOut(span.start, span.end, bytes);
    ring.release(span.end);
    out.push({ bytes: bytes.subarray(0, n), lines });
  }
  return out;
}

/**
 * The micro stages' workloads of one tree, by stage name. `ndjson` is the input of the
 * compress stage, the same bytes for both trees (the head's processor output of one batch).
 */
export function microWorkloads(
  m: TreeModules,
  fx: Fixture,
  ndjson?: Buffer,
): { workloads: Map<string, () => number>; ndjson: Buffer } {
  const { set, chunks } = fx;
  const { BatchProcessor, compileTagPlan } = m.process;
  const { compressFrame, selectZstd, DEFAULT_LEVELS } = m.codecs;
  const level = DEFAULT_LEVELS.zstd;
  const batches = ringBatches(m, set);
  const plan = compileTagPlan(TAGS, HOST_KEY);
  // native: 'on' fails here, with the reason, when the tree's addon is not built; likewise zstd.
  const nativeProcessor = new BatchProcessor({ native: 'on' });
  const tsProcessor = new BatchProcessor({ native: 'off' });
  selectZstd('native');

  const processWith = (p: InstanceType<ProcessModule['BatchProcessor']>): number => {
    let n = 0;
    for (const b of batches) n += p.process(b.bytes, b.bytes.length, plan, 'gate', false).counts.accepted;
    return n;
  };
  check(
    processWith(nativeProcessor) === set.count && processWith(tsProcessor) === set.count,
    'validate+tag accepts every line',
  );
  const first = nativeProcessor.process(batches[0]!.bytes, batches[0]!.bytes.length, plan, 'gate', false);
  const firstRecord = JSON.parse(Buffer.from(first.ndjson).toString('utf8').split('\n')[0]!) as Record<string, unknown>;
  check(firstRecord['cluster'] === 'bench' && firstRecord['__host'] === PEER, 'tags spliced');
  const input = ndjson ?? Buffer.from(first.ndjson);
  check(compressFrame('zstd', input, level).length > 0, 'compressFrame');

  const workerTask = (): number => {
    let n = 0;
    for (const b of batches)
      n += compressFrame(
        'zstd',
        nativeProcessor.process(b.bytes, b.bytes.length, plan, 'gate', false).ndjson,
        level,
      ).length;
    return n;
  };

  const framer = new m.wire.LineFramer(256 * 1024, { maxBlockBytes: 64 * 1024 });
  let framed = 0;
  const emit = (_b: Uint8Array, _s: number, _e: number, lines: number): boolean => {
    framed += lines === 0 ? 1 : lines;
    return true;
  };
  const framing = (): number => {
    framed = 0;
    for (const c of chunks) {
      framer.push(c);
      framer.drain(emit);
    }
    framer.finish(emit);
    return framed;
  };
  check(framing() === set.count, 'framing finds every line');

  const ring = m.ring.Ring.create(1 << 20);
  const head = Uint8Array.from([PEER.length, ...Buffer.from(PEER, 'latin1')]);
  const dst = new Uint8Array(1 << 20);
  const ringLines = 1000;
  let walked = 0;
  const countRecord = (): void => {
    walked++;
  };
  const viaRing = (): number => {
    walked = 0;
    for (let i = 0; i < ringLines; i++) {
      if (!ring.tryWriteRange(set.data, set.offsets[i]!, set.offsets[i + 1]! - 1, head)) throw new Error('ring full');
    }
    const span = ring.claim(1 << 20)!;
    const n = ring.copyOut(span.start, span.end, dst);
    m.ring.forEachRecord(dst, n, countRecord);
    ring.release(span.end);
    return walked;
  };
  check(viaRing() === ringLines, 'ring walks every record');

  const workloads = new Map<string, () => number>([
    ['validate+tag, native', () => processWith(nativeProcessor)],
    ['validate+tag, TypeScript', () => processWith(tsProcessor)],
    ['worker task', workerTask],
    ['compress', () => compressFrame('zstd', input, level).length],
    ['framing', framing],
    ['ring', viaRing],
  ]);
  for (const s of MICRO_STAGES) check(workloads.has(s.name), `workload for ${s.name}`);
  return { workloads, ndjson: input };
}
