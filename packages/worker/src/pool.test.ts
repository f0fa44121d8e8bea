import { gunzipSync } from 'node:zlib';
import { Ring, peerHead } from '@sluice/ring';
import { afterAll, describe, expect, it } from 'vitest';
import { decompressObject } from './codecs.ts';
import { TalosLineGenerator } from '@sluice/testkit';
import { createWorkerPool } from './pool.ts';
import type { BatchResult, WorkerSettings } from './types.ts';

const SETTINGS: WorkerSettings = {
  sources: {
    talos: { extraTags: { cluster: 'prod-eu-1', 'node.pool': 'control-plane' }, hostKey: 'host', deadLetter: true },
    plain: { extraTags: {}, hostKey: null, deadLetter: false },
  },
  levels: { zstd: 3, gzip: 6 },
};

const head = (peer: string): Uint8Array => peerHead(peer === '' ? null : peer);

type Ok = Extract<BatchResult, { ok: true }>;
function ok(r: BatchResult): Ok {
  if (!r.ok) throw new Error(`task failed: ${r.error}`);
  return r;
}

const poolCreatedBefore = performance.now();
const pool = createWorkerPool({ threads: 2, workerData: SETTINGS });
afterAll(() => pool.destroy());

describe('worker pool (real threads, real ring)', () => {
  it('spans of a SharedArrayBuffer ring, one wrapping the end, come back as frames holding every record with its tags', async () => {
    const ring = Ring.create(1 << 16);
    // Advance the indices so that later spans wrap around the end of the data region.
    const filler = new Uint8Array(1000);
    for (let i = 0; i < 50; i++) expect(ring.tryWrite(filler, head(''))).toBe(true);
    ring.release(ring.claim(1 << 16)!.end);

    const gen = new TalosLineGenerator(5);
    const peers = ['10.0.0.7', 'fd00::1', '10.0.0.8'];
    const expected: object[] = [];
    const lines: string[] = [];
    const malformed = ['{"truncated":', '[1,2]', Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')];
    const pending: Array<Promise<BatchResult>> = [];
    const all: BatchResult[] = [];
    const spanRecords: number[] = [];
    let wrapped = 0;
    let m = 0;
    while (expected.length < 600) {
      // Fill the ring, then hand out spans as a dispatcher would.
      for (;;) {
        const bad = expected.length % 97 === 13 && m < malformed.length * 3;
        const peer = peers[expected.length % peers.length]!;
        const line = bad ? malformed[m % malformed.length]! : gen.next();
        if (!ring.tryWrite(Buffer.from(line, 'latin1'), head(peer))) break;
        if (bad) m++;
        else {
          lines.push(line);
          expected.push({ ...JSON.parse(line), cluster: 'prod-eu-1', 'node.pool': 'control-plane', host: peer });
        }
      }
      for (let span = ring.claim(16 * 1024); span !== null; span = ring.claim(16 * 1024)) {
        spanRecords.push(span.records);
        if ((span.start & (ring.capacity - 1)) + ((span.end - span.start) >>> 0) > ring.capacity) wrapped++;
        pending.push(
          pool.run({
            sab: ring.sab,
            start: span.start,
            end: span.end,
            sourceId: 'talos',
            codecs: ['zstd', 'gzip', 'none'],
          }),
        );
      }
      all.push(...(await Promise.all(pending.splice(0))));
      ring.release(ring.writeIndex());
    }
    const results = all.map(ok);
    expect(results.length).toBeGreaterThan(4);
    // Busy time is each task's own, and the pool's utilisation adds it up against its capacity.
    const busyMs = results.reduce((sum, r) => sum + r.busyMs, 0);
    for (const r of results) expect(r.busyMs).toBeGreaterThan(0);
    expect(pool.utilization).toBeGreaterThan(0);
    expect(pool.utilization).toBeLessThanOrEqual(1);
    // utilization = busy / (elapsed since the pool started x 2 threads), and this file's clock started first.
    expect(pool.utilization * (performance.now() - poolCreatedBefore) * 2).toBeGreaterThanOrEqual(busyMs * 0.999);
    expect(wrapped).toBeGreaterThan(0);
    const zstd = Buffer.concat(results.map((r) => r.frames[0]!));
    const gzip = Buffer.concat(results.map((r) => r.frames[1]!));
    const none = Buffer.concat(results.map((r) => r.frames[2]!));
    const fromZstd = decompressObject('zstd', zstd);
    expect(gunzipSync(gzip).equals(fromZstd)).toBe(true);
    expect(none.equals(fromZstd)).toBe(true);
    const out = fromZstd
      .toString('utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(out).toEqual(expected);

    const sum = (f: (r: Ok) => number) => results.reduce((n, r) => n + f(r), 0);
    expect(sum((r) => r.counts.records)).toBe(spanRecords.reduce((a, b) => a + b, 0));
    expect(sum((r) => r.counts.accepted)).toBe(expected.length);
    expect(sum((r) => r.counts.malformed.invalid_json!)).toBe(3);
    expect(sum((r) => r.counts.malformed.not_object!)).toBe(3);
    expect(sum((r) => r.counts.malformed.invalid_utf8!)).toBe(3);
    expect(sum((r) => r.ndjsonBytes)).toBe(fromZstd.length);
    expect(sum((r) => r.counts.kinds.kernel + r.counts.kinds.service)).toBe(expected.length);
    for (const r of results) {
      for (const f of r.frames) expect(f).toBeInstanceOf(Uint8Array);
      expect(r.rawBytes).toBeGreaterThan(0);
    }
    const dead = Buffer.concat(results.flatMap((r) => (r.deadLetter ? [r.deadLetter] : [])))
      .toString()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(dead.map((d) => d.reason).sort()).toEqual([
      ...Array(3).fill('invalid_json'),
      ...Array(3).fill('invalid_utf8'),
      ...Array(3).fill('not_object'),
    ]);
    expect(dead.every((d) => d.component_id === 'talos' && peers.includes(d.peer))).toBe(true);
    expect(lines.length).toBe(expected.length);
  });

  it('a source without tags, no dead letters, an empty span', async () => {
    const ring = Ring.create(1 << 12);
    ring.tryWrite(Buffer.from('{"a":1}'), head(''));
    ring.tryWrite(Buffer.from('oops'), head(''));
    const span = ring.claim(1 << 12)!;
    const r = ok(
      await pool.run({ sab: ring.sab, start: span.start, end: span.end, sourceId: 'plain', codecs: ['none'] }),
    );
    expect(Buffer.from(r.frames[0]!).toString()).toBe('{"a":1}\n');
    expect(r.deadLetter).toBeNull();
    expect(r.counts.malformed.invalid_json).toBe(1);
    const empty = ok(
      await pool.run({ sab: ring.sab, start: span.end, end: span.end, sourceId: 'plain', codecs: ['zstd'] }),
    );
    expect(empty.counts.records).toBe(0);
    expect(decompressObject('zstd', empty.frames[0]!).length).toBe(0);
  });

  it('answers errors as values: unknown source, a span larger than the ring, a bad codec', async () => {
    const ring = Ring.create(1 << 12);
    const bad = await pool.run({ sab: ring.sab, start: 0, end: 0, sourceId: 'nope', codecs: [] });
    expect(bad).toEqual({ ok: false, error: 'unknown source "nope"' });
    const huge = await pool.run({ sab: ring.sab, start: 0, end: 1 << 20, sourceId: 'plain', codecs: [] });
    expect(huge).toEqual({ ok: false, error: 'span [0, 1048576) is larger than the ring (4096 bytes)' });
    const codec = await pool.run({ sab: ring.sab, start: 0, end: 0, sourceId: 'plain', codecs: ['lz4' as 'none'] });
    expect(codec).toMatchObject({ ok: false, error: expect.stringContaining('unknown codec') });
    const notRing = await pool.run({ sab: new SharedArrayBuffer(8), start: 0, end: 0, sourceId: 'plain', codecs: [] });
    expect(notRing.ok).toBe(false);
  });

  it('bad workerData makes every task answer an error, and destroy works', async () => {
    const broken = createWorkerPool({
      threads: 1,
      workerData: {
        sources: { s: { extraTags: { n: 1 as unknown as string }, hostKey: null, deadLetter: false } },
        levels: { zstd: 3, gzip: 6 },
      },
    });
    const ring = Ring.create(1 << 12);
    const r = await broken.run({ sab: ring.sab, start: 0, end: 0, sourceId: 's', codecs: [] });
    expect(r).toMatchObject({ ok: false, error: expect.stringContaining('extra tag "n" must be a string') });
    const badLevel = createWorkerPool({ threads: 1, workerData: { sources: {}, levels: { zstd: 0, gzip: 6 } } });
    expect(await badLevel.run({ sab: ring.sab, start: 0, end: 0, sourceId: 's', codecs: [] })).toMatchObject({
      ok: false,
      error: expect.stringContaining('levels.zstd must be an integer between 1 and 22, got 0'),
    });
    expect(broken.queueSize).toBe(0);
    expect(broken.utilization).toBeGreaterThanOrEqual(0);
    await Promise.all([broken.destroy(), badLevel.destroy()]);
    const after = await broken.run({ sab: ring.sab, start: 0, end: 0, sourceId: 's', codecs: [] });
    expect(after.ok).toBe(false);
  });

  it('runs no thread before there is work, starts more while tasks wait (up to threads), and reads their heaps', async () => {
    const grow = createWorkerPool({ threads: 3, workerData: SETTINGS });
    try {
      expect(grow.threadsRunning).toBe(0);
      expect(await grow.heapStatistics()).toEqual({ usedBytes: 0, totalBytes: 0, externalBytes: 0 });
      // One task: one thread.
      const empty = Ring.create(1 << 12);
      ok(await grow.run({ sab: empty.sab, start: 0, end: 0, sourceId: 'talos', codecs: [] }));
      expect(grow.threadsRunning).toBe(1);
      const idle = await grow.heapStatistics();
      expect(idle.usedBytes).toBeGreaterThan(0);
      expect(idle.totalBytes).toBeGreaterThanOrEqual(idle.usedBytes);

      // Many tasks at once: each that finds every thread busy starts another, up to 3.
      const ring = Ring.create(1 << 20);
      const gen = new TalosLineGenerator(9);
      while (ring.tryWrite(Buffer.from(gen.next(), 'latin1'), head('10.0.0.1')));
      const spans: { start: number; end: number }[] = [];
      for (let span = ring.claim(8 * 1024); span !== null; span = ring.claim(8 * 1024))
        spans.push({ start: span.start, end: span.end });
      let most = 0;
      const results = await Promise.all(
        spans.map(async ({ start, end }) => {
          const r = await grow.run({ sab: ring.sab, start, end, sourceId: 'talos', codecs: ['zstd'] });
          most = Math.max(most, grow.threadsRunning);
          return r;
        }),
      );
      for (const r of results) ok(r);
      expect(most).toBeGreaterThan(1);
      expect(most).toBeLessThanOrEqual(3);
      const loaded = await grow.heapStatistics();
      expect(loaded.usedBytes).toBeGreaterThan(idle.usedBytes);
    } finally {
      await grow.destroy();
    }
  });

  it('rejects a thread count that is not a positive integer', () => {
    expect(() => createWorkerPool({ threads: 0, workerData: SETTINGS })).toThrow(RangeError);
  });
});
