import { mkdtempSync, readdirSync, readFileSync, rmSync, writevSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DiskStall, FileStore, type DiskHooks, type ObjectStore, type ObjectUpload } from '@sluice/sinks';
import { mountTmpfs, type Tmpfs } from '@sluice/testkit/tmpfs';
import { createLogger, Metrics, SpoolMetrics } from '@sluice/telemetry';
import { Spool } from '@sluice/spool';
import { recoverSpool, SpoolingWriter } from './spooling.ts';

const dirs: string[] = [];
const temp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'sluice-spooling-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const log = createLogger({ level: 'fatal', format: 'json' });
const line = (i: number): Uint8Array => Buffer.from(`{"n":${i}}\n`);
const frame = (i: number) => ({ bytes: line(i), records: 1, rawBytes: line(i).length });

/** A store whose uploads never complete: a crash with objects in flight. */
class StuckStore implements ObjectStore {
  async check(): Promise<void> {}
  open(): ObjectUpload {
    return { write: () => true, once: () => {}, close: () => new Promise<void>(() => {}), abort: async () => {} };
  }
}

function writer(store: ObjectStore, spool: Spool, whenFull: 'block' | 'drop_newest' = 'block', disk?: DiskStall) {
  const metrics = new SpoolMetrics(new Metrics('test').registry);
  const discarded = new Map<string, number>();
  const onDiscard = (records: number, reason: string) =>
    void discarded.set(reason, (discarded.get(reason) ?? 0) + records);
  const common = {
    sinkId: 's',
    store,
    keyPrefix: 'p/',
    codec: 'none' as const,
    uploadPeriodSecs: 3600,
    maxObjectBytes: 1 << 20,
    uniqueId: 'u',
    spool,
    whenFull,
    metrics,
    log,
    onDiscard,
  };
  const w = new SpoolingWriter(disk === undefined ? common : { ...common, disk });
  return { w, metrics, discarded };
}

const spoolAt = (dir: string, maxBytes = 1 << 20): Spool =>
  new Spool({ dir, maxBytes, sync: 'interval', syncIntervalMs: 1000 });

describe('SpoolingWriter', () => {
  it('spools every frame of an object and removes the segment once the object is complete', async () => {
    const dir = temp();
    const out = temp();
    const spool = spoolAt(dir);
    const { w } = writer(new FileStore({ path: out }), spool);
    for (let i = 0; i < 10; i++) expect(w.write(frame(i))).toBe(true);
    expect(readdirSync(dir)).toHaveLength(1);
    expect(spool.stats.appendedRecords).toBe(10);
    await w.close();
    expect(readdirSync(dir)).toHaveLength(0);
    expect(spool.bytes).toBe(0);
    spool.close();
  });

  it('after a crash with objects in flight, recovery uploads each unfinished object whole under its own key', async () => {
    const dir = temp();
    const spool = spoolAt(dir);
    const { w } = writer(new StuckStore(), spool);
    const keys: string[] = [];
    w.on('open', (k) => keys.push(k));
    for (let i = 0; i < 5; i++) w.write(frame(i));
    w.rotate(); // object 1 in flight, never completes
    for (let i = 5; i < 8; i++) w.write(frame(i));
    spool.close(); // the process dies here
    const out = temp();
    const again = spoolAt(dir);
    const metrics = new SpoolMetrics(new Metrics('test').registry);
    const report = await recoverSpool(again, new FileStore({ path: out }), 's', log, metrics);
    expect(report).toMatchObject({ objects: 2, records: 8, failed: 0, corruptSegments: 0 });
    expect(readFileSync(join(out, keys[0]!), 'utf8')).toBe([0, 1, 2, 3, 4].map((i) => `{"n":${i}}\n`).join(''));
    expect(readFileSync(join(out, keys[1]!), 'utf8')).toBe([5, 6, 7].map((i) => `{"n":${i}}\n`).join(''));
    expect(readdirSync(dir)).toHaveLength(0);
    again.close();
  });

  it('full, block: holds the frame, rotates, answers false, and goes on (drain) once the object completes', async () => {
    const dir = temp();
    const out = temp();
    const spool = spoolAt(dir, 65_536);
    const { w } = writer(new FileStore({ path: out }), spool);
    const big = (i: number) => ({
      bytes: Buffer.concat([Buffer.alloc(8000, 0x20), line(i)]),
      records: 1,
      rawBytes: 8010,
    });
    let i = 0;
    while (w.write(big(i))) i++;
    const drained = new Promise<void>((r) => w.once('drain', r));
    await drained;
    expect(spool.stats.appendedRecords).toBe(i + 1);
    await w.close();
    const files = readdirSync(out, { recursive: true }).filter((f) => String(f).endsWith('.ndjson'));
    const lines = files.flatMap((f) =>
      readFileSync(join(out, String(f)), 'utf8')
        .trim()
        .split('\n'),
    );
    expect(lines).toHaveLength(i + 1);
    spool.close();
  });

  it('full, block, then close() (a shutdown) while a frame is held: the held frame is stored once space returns, and every object is reported', async () => {
    const dir = temp();
    const out = temp();
    const spool = spoolAt(dir, 65_536);
    const { w } = writer(new FileStore({ path: out }), spool);
    const objects: number[] = [];
    w.on('object', (info) => objects.push(info.records)); // registered after the writer's own, as the daemon's metrics are
    const big = (i: number) => ({
      bytes: Buffer.concat([Buffer.alloc(8000, 0x20), line(i)]),
      records: 1,
      rawBytes: 8010,
    });
    let i = 0;
    while (w.write(big(i))) i++;
    // Frame i is held for spool space; its object is completing. The dispatcher has nothing
    // else in flight, so the shutdown goes on to close the writer now.
    await w.close();
    const files = readdirSync(out, { recursive: true }).filter((f) => String(f).endsWith('.ndjson'));
    const lines = files.flatMap((f) =>
      readFileSync(join(out, String(f)), 'utf8')
        .trim()
        .split('\n'),
    );
    expect(lines).toHaveLength(i + 1);
    expect(objects.reduce((a, n) => a + n, 0)).toBe(i + 1);
    expect(readdirSync(dir)).toHaveLength(0);
    spool.close();
  });

  it('full, block, abandon() (a shutdown deadline) while a frame is held: the spooled records are reported as kept, the held frame as given up, close() returns', async () => {
    const dir = temp();
    const spool = spoolAt(dir, 65_536);
    const { w } = writer(new StuckStore(), spool);
    const big = (i: number) => ({
      bytes: Buffer.concat([Buffer.alloc(8000, 0x20), line(i)]),
      records: 1,
      rawBytes: 8010,
    });
    let i = 0;
    while (w.write(big(i))) i++;
    const closed = w.close();
    const left = w.abandon();
    await closed;
    expect(left.reduce((a, o) => a + o.records, 0)).toBe(i + 1);
    // Frames 0..i-1 are in the open object's segment (kept for the next start); frame i was
    // held for spool space: in no segment, the one record given up.
    expect(left.reduce((a, o) => a + (o.spooled ?? 0), 0)).toBe(i);
    const held = left.find((o) => o.key.includes('held for spool space'));
    expect(held).toMatchObject({ records: 1 });
    expect(held?.spooled ?? 0).toBe(0);
    spool.close();
    // What the next start finds: the segments, whole.
    const reopened = spoolAt(dir, 65_536);
    let kept = 0;
    for (const reader of reopened.scan()) {
      for (let f = reader.next(); f !== null; f = reader.next()) kept += f.records;
      reader.close();
    }
    expect(kept).toBe(i);
    reopened.close();
  });

  it('full, drop_newest: drops and counts; the rest is stored', async () => {
    const dir = temp();
    const spool = spoolAt(dir, 65_536);
    const { w, metrics } = writer(new StuckStore(), spool, 'drop_newest');
    const big = (n: number) => ({ bytes: Buffer.alloc(8000, 0x20), records: n, rawBytes: 8000 });
    for (let i = 0; i < 20; i++) expect(w.write(big(10))).toBe(true);
    const dropped =
      (await metrics.droppedEvents.get()).values.find((v) => v.labels.reason === 'spool_full')?.value ?? 0;
    expect(dropped).toBe(10 * (20 - spool.stats.appendedFrames));
    expect(dropped).toBeGreaterThan(0);
    spool.close();
  });

  for (const whenFull of ['block', 'drop_newest'] as const) {
    const title = `${whenFull}: an append the disk refuses for good (EFBIG) sends the batch unspooled to its object`;
    it(`${title}, counted not_spooled, never dropped`, async () => {
      const dir = temp();
      const out = temp();
      // Every third append fails as one past the process's file size limit does (RLIMIT_FSIZE):
      // an error no wait cures, so the batch is neither held nor dropped.
      let appends = 0;
      const writev = (fd: number, buffers: readonly NodeJS.ArrayBufferView[]): number => {
        const efbig = { code: 'EFBIG', syscall: 'write' };
        if (appends++ % 3 === 1) throw Object.assign(new Error('EFBIG: file too large, write'), efbig);
        return writevSync(fd, buffers);
      };
      const spool = new Spool({ dir, maxBytes: 1 << 20, sync: 'interval', syncIntervalMs: 1000, writev });
      const { w, metrics, discarded } = writer(new FileStore({ path: out }), spool, whenFull);
      const N = 12;
      for (let i = 0; i < N; i++) expect(w.write(frame(i))).toBe(true);
      await w.close();
      const counted = new Map((await metrics.droppedEvents.get()).values.map((v) => [v.labels.reason, v.value]));
      expect(spool.stats.failedAppends).toBe(N / 3);
      expect(counted).toEqual(new Map([['not_spooled', N / 3]]));
      expect(spool.stats.appendedRecords).toBe(N - N / 3);
      expect(discarded.size).toBe(0);
      // received = stored + counted drops, exactly: every record is stored once, none dropped.
      const stored = readdirSync(out, { recursive: true })
        .filter((f) => String(f).endsWith('.ndjson'))
        .flatMap((f) =>
          readFileSync(join(out, String(f)), 'utf8')
            .trim()
            .split('\n'),
        )
        .map((l) => (JSON.parse(l) as { n: number }).n)
        .sort((a, b) => a - b);
      expect(stored).toEqual(Array.from({ length: N }, (_, n) => n));
      expect(readdirSync(dir)).toEqual([]); // the object is complete: its segment is gone
      spool.close();
    });
  }

  it('an object that fails for good goes out again from its segment as a new upload, counted as stored, not lost', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const dir = temp();
      const out = temp();
      const spool = spoolAt(dir);
      // A file store whose first close() fails for good (as an S3 upload refused with a 4xx would).
      const files = new FileStore({ path: out });
      let failures = 1;
      const flaky: ObjectStore = {
        check: () => files.check(),
        open: (key, meta) => {
          const upload = files.open(key, meta);
          return {
            write: (c) => upload.write(c),
            once: (e, fn) => upload.once(e, fn),
            close: async () => {
              if (failures-- > 0) {
                await upload.abort();
                throw new Error('refused for good');
              }
              return upload.close();
            },
            abort: () => upload.abort(),
          };
        },
      };
      const { w } = writer(flaky, spool);
      const failed: { records: number; retried: boolean }[] = [];
      const stored: number[] = [];
      w.on('error-object', (e) => failed.push({ records: e.records, retried: e.retried }));
      w.on('object', (o) => stored.push(o.records));
      for (let i = 0; i < 5; i++) w.write(frame(i));
      w.rotate();
      await vi.waitFor(() => expect(failed).toEqual([{ records: 5, retried: true }]), { timeout: 30_000 });
      expect(readdirSync(dir)).toHaveLength(1); // the segment is kept
      await vi.advanceTimersByTimeAsync(5_000);
      await vi.waitFor(() => expect(stored).toEqual([5]), { timeout: 30_000 });
      expect(readdirSync(dir)).toHaveLength(0);
      const [key] = readdirSync(out, { recursive: true }).filter((f) => String(f).endsWith('.ndjson'));
      expect(readFileSync(join(out, String(key)), 'utf8')).toBe([0, 1, 2, 3, 4].map((i) => `{"n":${i}}\n`).join(''));
      await w.close();
      spool.close();
    } finally {
      vi.useRealTimers();
    }
  });

  describe('on a full disk (a real tmpfs under the spool)', () => {
    let fs: Tmpfs | null = null;
    afterEach(() => {
      fs?.unmount();
      fs = null;
    });

    /** A stall that records what it reports. */
    function stall(): { disk: DiskStall; codes: string[]; recovered: number[] } {
      const codes: string[] = [];
      const recovered: number[] = [];
      const hooks: DiskHooks = {
        onRetry: (n) => void codes.push(n.code),
        onBlocked: () => {},
        onRecovered: (n) => void recovered.push(n.blockedMs),
      };
      return { disk: new DiskStall('spool', hooks), codes, recovered };
    }

    /** A file store whose objects complete only once `open()` is called: a store slower than the disk fills. */
    function gatedStore(path: string): { store: ObjectStore; open: () => void } {
      const files = new FileStore({ path });
      const gate = Promise.withResolvers<void>();
      return {
        open: () => gate.resolve(),
        store: {
          check: () => files.check(),
          open: (key, meta) => {
            const upload = files.open(key, meta);
            return {
              write: (c) => upload.write(c),
              once: (e, fn) => upload.once(e, fn),
              close: async () => {
                await gate.promise;
                return upload.close();
              },
              abort: () => upload.abort(),
            };
          },
        },
      };
    }

    // 16 KiB frames of 16 lines each, every line with its own id: a 256 KiB tmpfs holds fewer than 16.
    const LINE_PAD = 1000;
    const bigFrame = (i: number) => {
      const lines = Array.from({ length: 16 }, (_, j) => `{"n":${i * 16 + j},"pad":"${'x'.repeat(LINE_PAD)}"}\n`).join(
        '',
      );
      return { bytes: Buffer.from(lines), records: 16, rawBytes: lines.length };
    };
    const storedIds = (out: string): number[] =>
      readdirSync(out, { recursive: true })
        .filter((f) => String(f).endsWith('.ndjson'))
        .flatMap((f) =>
          readFileSync(join(out, String(f)), 'utf8')
            .trim()
            .split('\n'),
        )
        .map((l) => (JSON.parse(l) as { n: number }).n)
        .sort((a, b) => a - b);

    it('block: a refused append holds the frame (no drop, no frame sent unspooled); once the disk grows every record is spooled and stored once', {
      timeout: 90_000,
    }, async () => {
      fs = mountTmpfs(256 * 1024);
      const out = temp();
      const spool = spoolAt(join(fs.dir, 'spool'), 64 << 20); // max_spool_bytes far above the disk
      const { disk, codes, recovered } = stall();
      const gated = gatedStore(out);
      const { w, metrics, discarded } = writer(gated.store, spool, 'block', disk);
      let i = 0;
      while (w.write(bigFrame(i))) i++;
      const frames = i + 1;
      // The last frame was held: the disk refused it and nothing completes to free space.
      expect(disk.blocked).toBe(true);
      expect(codes.length).toBeGreaterThanOrEqual(1);
      expect(codes.every((c) => c === 'ENOSPC')).toBe(true);
      expect(spool.stats.appendedFrames).toBe(i);
      expect(discarded.size).toBe(0);
      // Later frames queue behind it.
      expect(w.write(bigFrame(frames))).toBe(false);
      const drained = new Promise<void>((r) => w.once('drain', r));
      fs.resize(8 << 20);
      await drained; // a retry appended the held frames
      expect(disk.blocked).toBe(false);
      expect(recovered.length).toBeGreaterThanOrEqual(1);
      expect(spool.stats.appendedFrames).toBe(frames + 1);
      gated.open();
      await w.close();
      expect((await metrics.droppedEvents.get()).values.reduce((a, v) => a + v.value, 0)).toBe(0);
      expect(storedIds(out)).toEqual(Array.from({ length: (frames + 1) * 16 }, (_, n) => n));
      expect(readdirSync(join(fs.dir, 'spool'))).toEqual([]);
      spool.close();
    });

    it('drop_newest: frames the disk refuses are dropped and counted (disk_blocked), never sent unspooled; what was spooled is stored', {
      timeout: 90_000,
    }, async () => {
      fs = mountTmpfs(256 * 1024);
      const out = temp();
      const spool = spoolAt(join(fs.dir, 'spool'), 64 << 20);
      const { disk } = stall();
      const gated = gatedStore(out);
      const { w, metrics, discarded } = writer(gated.store, spool, 'drop_newest', disk);
      const FRAMES = 40; // 640 KiB: well past the disk
      for (let i = 0; i < FRAMES; i++) expect(w.write(bigFrame(i))).toBe(true);
      expect(disk.blocked).toBe(true);
      const dropped = discarded.get('disk_blocked') ?? 0;
      const spoolDropped = (await metrics.droppedEvents.get()).values;
      expect(dropped).toBeGreaterThan(0);
      expect(spoolDropped.find((v) => v.labels.reason === 'disk_blocked')?.value).toBe(dropped);
      expect(spoolDropped.filter((v) => v.labels.reason !== 'disk_blocked' && v.value > 0)).toEqual([]);
      gated.open();
      await w.close();
      const ids = storedIds(out);
      expect(ids.length + dropped).toBe(FRAMES * 16);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(spool.stats.appendedRecords);
      spool.close();
    });
  });
});
