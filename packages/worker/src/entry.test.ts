import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { Ring, blockHead, peerHead } from '@sluice/ring';
import { afterAll, describe, expect, it } from 'vitest';
import { buildWorker } from '../../../scripts/build-worker.ts';
import { MANIFEST, workerEntry } from './entry.ts';
import { TalosLineGenerator } from '@sluice/testkit';
import type { BatchResult, BatchTask, WorkerSettings } from './types.ts';

// Inside the package, so the built files resolve `piscina` as the real build does.
const dir = mkdtempSync(join(new URL('..', import.meta.url).pathname, 'build-test-'));
const out = pathToFileURL(`${dir}/`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SETTINGS: WorkerSettings = {
  sources: { t: { extraTags: { cluster: 'c' }, hostKey: 'host', deadLetter: true } },
  levels: { zstd: 1, gzip: 6 },
};

/** One batch of lines with a malformed one and a TCP block, through a real thread loading `filename`. */
async function runOnce(filename: string): Promise<BatchResult> {
  const pool = new Piscina({ filename, minThreads: 1, maxThreads: 1, workerData: SETTINGS });
  try {
    const ring = Ring.create(1 << 16);
    const gen = new TalosLineGenerator(11);
    const head = peerHead('10.0.0.9');
    for (let i = 0; i < 40; i++) ring.tryWrite(Buffer.from(gen.next(), 'latin1'), head);
    ring.tryWrite(Buffer.from('{"bad":'), head);
    ring.tryWrite(Buffer.from(`${gen.next()}\n${gen.next()}\r\n`, 'latin1'), blockHead(head));
    const span = ring.claim(1 << 16)!;
    const task: BatchTask = {
      sab: ring.sab,
      start: span.start,
      end: span.end,
      sourceId: 't',
      codecs: ['none', 'zstd'],
    };
    return (await pool.run(task)) as BatchResult;
  } finally {
    await pool.destroy();
  }
}

describe('the worker build (type-stripped modules for the threads)', () => {
  const manifest = buildWorker(out);

  it('is used when it matches every source, and the threads answer exactly as from the .ts sources', async () => {
    expect(Object.keys(manifest.sources).sort()).toEqual([
      'batch-native.js',
      'codecs.js',
      'facts.js',
      'hec-decode.js',
      'hec-task.js',
      'json-scan.js',
      'native-addon.js',
      'native-constants.js',
      'process.js',
      'record-format.js',
      'record-time.js',
      'ring-index.js',
      'ring.js',
      'task.js',
      'types.js',
      'zstd-frame.js',
      'zstd-native.js',
    ]);
    const entry = workerEntry('task', out);
    expect(entry).toEqual({ href: new URL('task.js', out).href, built: true });
    const source = workerEntry('task', pathToFileURL(`${join(dir, 'missing')}/`));
    expect(source.built).toBe(false);
    expect(source.href.endsWith('/src/task.ts')).toBe(true);
    const [fromBuild, fromSource] = await Promise.all([runOnce(entry.href), runOnce(source.href)]);
    expect(fromBuild.ok).toBe(true);
    // Everything but the time each thread took.
    const timeless = (r: BatchResult): object => (r.ok ? { ...r, busyMs: 0 } : r);
    expect(timeless(fromBuild)).toEqual(timeless(fromSource));
    if (fromBuild.ok) {
      expect(fromBuild.counts.records).toBe(43);
      expect(fromBuild.counts.malformed.invalid_json).toBe(1);
    }
  });

  it('is not used once a source differs from what it was built from, or by another Node', () => {
    const path = new URL(MANIFEST, out);
    const good = readFileSync(path, 'utf8');
    try {
      const m = JSON.parse(good) as { node: string; sources: Record<string, string> };
      writeFileSync(path, JSON.stringify({ ...m, sources: { ...m.sources, 'json-scan.js': '0'.repeat(64) } }));
      expect(workerEntry('task', out).built).toBe(false);
      writeFileSync(path, JSON.stringify({ ...m, node: 'v24.0.0' }));
      expect(workerEntry('hec-task', out).built).toBe(false);
      writeFileSync(path, 'not json');
      expect(workerEntry('task', out).built).toBe(false);
    } finally {
      writeFileSync(path, good);
    }
    expect(workerEntry('hec-task', out)).toEqual({ href: new URL('hec-task.js', out).href, built: true });
  });
});
