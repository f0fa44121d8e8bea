import { mulberry32 } from '@sluice/testkit';
import { randomBytes } from 'node:crypto';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RECORD_HEADER_BYTES, SegmentReader, type SpooledFrame } from './segment.ts';
import { Spool, type SpoolOptions } from './spool.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sluice-spool-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const prng = mulberry32;

function spoolAt(dir: string, extra: Partial<SpoolOptions> = {}): Spool {
  return new Spool({ dir, maxBytes: 64 * 1024 * 1024, sync: 'interval', syncIntervalMs: 1000, ...extra });
}

function frame(i: number, size = 40 + (i % 7)): SpooledFrame {
  return { bytes: randomBytes(size), records: i + 1, rawBytes: size * 3 + i };
}

function readAll(path: string): {
  frames: SpooledFrame[];
  tail: ReturnType<SegmentReader['tail']>;
  meta: SegmentReader['meta'];
} {
  const r = new SegmentReader(path);
  const frames: SpooledFrame[] = [];
  for (let f = r.next(); f !== null; f = r.next()) frames.push(f);
  return { frames, tail: r.tail(), meta: r.meta };
}

function expectSame(got: readonly SpooledFrame[], want: readonly SpooledFrame[]): void {
  expect(got.length).toBe(want.length);
  for (const [i, f] of got.entries()) {
    expect(Buffer.compare(Buffer.from(f.bytes), Buffer.from(want[i]!.bytes))).toBe(0);
    expect(f.records).toBe(want[i]!.records);
    expect(f.rawBytes).toBe(want[i]!.rawBytes);
  }
}

/** One segment of `n` frames, closed; returns its path, the frames and each record's start offset. */
function writeSegment(
  dir: string,
  n: number,
): { path: string; frames: SpooledFrame[]; starts: number[]; size: number } {
  const spool = spoolAt(dir);
  const seg = spool.open({ key: 'talos/2026/11/22/10:00:00-abc-000001.ndjson.zst', codec: 'zstd', createdAtMs: 1 });
  const frames: SpooledFrame[] = [];
  const starts: number[] = [];
  for (let i = 0; i < n; i++) {
    const f = frame(i);
    starts.push(seg.size);
    expect(spool.append(seg, f.bytes, f.records, f.rawBytes)).toBe(true);
    frames.push(f);
  }
  const { path, size } = seg;
  spool.close();
  return { path, frames, starts, size };
}

describe('Spool segments', () => {
  it('round trip: frames come back whole, in order, with their counts and the object key', () => {
    const dir = tempDir();
    const { frames } = writeSegment(dir, 5);
    const again = spoolAt(dir);
    const [r, ...more] = again.scan();
    expect(more).toHaveLength(0);
    expect(r!.meta).toEqual({ key: 'talos/2026/11/22/10:00:00-abc-000001.ndjson.zst', codec: 'zstd', createdAtMs: 1 });
    const got: SpooledFrame[] = [];
    for (let f = r!.next(); f !== null; f = r!.next()) got.push(f);
    expectSame(got, frames);
    expect(r!.tail()).toMatchObject({ problem: null, lostBytes: 0, frames: 5 });
    expect(again.bytes).toBe(statSync(r!.path).size);
    again.forget(r!.path);
    expect(again.bytes).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    again.close();
  });

  it('a torn last record, cut at every byte offset: the good prefix comes back, the rest is reported as torn', () => {
    const dir = tempDir();
    const { path, frames, starts, size } = writeSegment(dir, 3);
    const whole = readFileSync(path);
    const lastStart = starts[2]!;
    for (let cut = lastStart; cut < size; cut++) {
      writeFileSync(path, whole.subarray(0, cut));
      const { frames: got, tail } = readAll(path);
      expectSame(got, frames.slice(0, 2));
      expect(tail).toEqual({
        problem: cut === lastStart ? null : 'torn',
        goodBytes: lastStart,
        lostBytes: cut - lastStart,
        frames: 2,
      });
    }
    // Cut inside the segment header: nothing to read, reported, no throw.
    for (let cut = 0; cut < starts[0]!; cut++) {
      writeFileSync(path, whole.subarray(0, cut));
      const { frames: got, tail, meta } = readAll(path);
      expect(meta).toBeNull();
      expect(got).toHaveLength(0);
      expect(tail.problem).toBe('bad_header');
    }
  });

  it('a bit flipped anywhere: frames before the flipped record come back, the flip is detected', () => {
    const dir = tempDir();
    const { path, frames, starts, size } = writeSegment(dir, 4);
    const whole = readFileSync(path);
    const rand = prng(7);
    // Every bit of the last record's header, and 400 random bits elsewhere.
    const bits: number[] = [];
    for (let b = starts[3]! * 8; b < (starts[3]! + RECORD_HEADER_BYTES) * 8; b++) bits.push(b);
    for (let i = 0; i < 400; i++) bits.push(Math.floor(rand() * size * 8));
    for (const bit of bits) {
      const copy = Buffer.from(whole);
      copy[bit >> 3]! ^= 1 << (bit & 7);
      writeFileSync(path, copy);
      const byte = bit >> 3;
      const { frames: got, tail } = readAll(path);
      if (byte < starts[0]!) {
        expect(tail.problem).toBe('bad_header');
        expect(got).toHaveLength(0);
        continue;
      }
      let k = 0;
      while (k + 1 < starts.length && starts[k + 1]! <= byte) k++;
      expectSame(got, frames.slice(0, k));
      expect(tail.problem === 'corrupt' || tail.problem === 'torn').toBe(true);
      expect(tail.goodBytes).toBe(starts[k]);
    }
  });

  it('empty and header-only segments: no frames, no throw; a junk file name is ignored', () => {
    const dir = tempDir();
    writeFileSync(join(dir, '0000000000000000.seg'), '');
    writeFileSync(join(dir, 'notes.txt'), 'x');
    const spool = spoolAt(dir);
    const seg = spool.open({ key: 'k', codec: 'none', createdAtMs: 2 });
    spool.close();
    expect(seg.seq).toBe(1);
    const again = spoolAt(dir);
    const readers = again.scan();
    expect(readers.map((r) => r.path.slice(-20))).toEqual(['0000000000000000.seg', '0000000000000001.seg']);
    expect(readers[0]!.drainAndClose()).toMatchObject({ problem: 'bad_header', frames: 0 });
    expect(readers[1]!.drainAndClose()).toMatchObject({ problem: null, frames: 0, lostBytes: 0 });
    expect(readers[1]!.meta).toEqual({ key: 'k', codec: 'none', createdAtMs: 2 });
    again.close();
  });

  it('full: hasRoom() says no at max_spool_bytes; a failing write (ENOSPC) is cut back and reported', () => {
    const dir = tempDir();
    let failNext = false;
    const spool = spoolAt(dir, {
      maxBytes: 4096,
      writev: (fd, bufs) => {
        if (failNext) {
          // Half a record reaches the file, then the disk is full.
          writeSync(fd, bufs[0]!);
          throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        }
        return writevSync(fd, bufs);
      },
    });
    expect(spool.hasRoom(1000, true)).toBe(true);
    const seg = spool.open({ key: 'k', codec: 'zstd', createdAtMs: 0 });
    let n = 0;
    while (spool.hasRoom(500, false)) {
      expect(spool.append(seg, randomBytes(500), 1, 500)).toBe(true);
      n++;
    }
    expect(n).toBeGreaterThan(3);
    expect(spool.bytes).toBeLessThanOrEqual(4096);
    const sizeBefore = seg.size;
    failNext = true;
    expect(spool.append(seg, randomBytes(10), 1, 10)).toBe(false);
    expect(spool.stats.failedAppends).toBe(1);
    expect(statSync(seg.path).size).toBe(sizeBefore);
    failNext = false;
    // Space returns when the object completes.
    spool.remove(seg);
    expect(spool.bytes).toBe(0);
    expect(spool.hasRoom(1000, true)).toBe(true);
    spool.close();
  });

  it('interleaved appends and removes over many segments (seeded): accounting matches the disk, survivors read back whole', () => {
    const dir = tempDir();
    const rand = prng(42);
    const spool = spoolAt(dir, { sync: 'per_batch' });
    const live = new Map<number, { seg: ReturnType<Spool['open']>; frames: SpooledFrame[] }>();
    let i = 0;
    for (let step = 0; step < 600; step++) {
      const r = rand();
      if (live.size === 0 || (r < 0.1 && live.size < 8)) {
        const seg = spool.open({ key: `k-${step}`, codec: 'zstd', createdAtMs: step });
        live.set(seg.seq, { seg, frames: [] });
      } else if (r < 0.2) {
        const victims = [...live.keys()];
        const seq = victims[Math.floor(rand() * victims.length)]!;
        spool.remove(live.get(seq)!.seg);
        spool.remove(live.get(seq)!.seg); // idempotent
        live.delete(seq);
      } else {
        const entries = [...live.values()];
        const e = entries[Math.floor(rand() * entries.length)]!;
        const f = frame(i++, Math.floor(rand() * 300));
        expect(spool.append(e.seg, f.bytes, f.records, f.rawBytes)).toBe(true);
        e.frames.push(f);
      }
    }
    const onDisk = readdirSync(dir).reduce((n, name) => n + statSync(join(dir, name)).size, 0);
    expect(spool.bytes).toBe(onDisk);
    spool.close();
    const again = spoolAt(dir);
    expect(again.bytes).toBe(onDisk);
    const readers = again.scan();
    expect(readers.map((r) => r.meta!.key)).toEqual(
      [...live.values()].sort((a, b) => a.seg.seq - b.seg.seq).map((e) => e.seg.meta.key),
    );
    for (const r of readers) {
      const want = [...live.values()].find((e) => e.seg.path === r.path)!.frames;
      const got: SpooledFrame[] = [];
      for (let f = r.next(); f !== null; f = r.next()) got.push(f);
      expectSame(got, want);
      expect(r.tail().problem).toBeNull();
    }
    // A new segment never reuses a survivor's number.
    const next = again.open({ key: 'new', codec: 'zstd', createdAtMs: 0 });
    expect(next.seq).toBeGreaterThan(Math.max(...live.keys()));
    again.close();
  });

  it('interval sync: written segments are synced by the timer, and on seal()', async () => {
    const dir = tempDir();
    const spool = spoolAt(dir, { syncIntervalMs: 20 });
    const seg = spool.open({ key: 'k', codec: 'zstd', createdAtMs: 0 });
    spool.append(seg, randomBytes(100), 1, 100);
    expect(spool.stats.syncs).toBe(0);
    await vi.waitFor(() => expect(spool.stats.syncs, 'the timer to sync the segment').toBe(1), {
      timeout: 30_000,
      interval: 10,
    });
    // A sleep on purpose: three more periods (60 ms) sync nothing, only segments written since their last sync.
    await new Promise((r) => setTimeout(r, 60));
    expect(spool.stats.syncs).toBe(1);
    spool.append(seg, randomBytes(100), 1, 100);
    spool.seal(seg);
    expect(spool.stats.syncs).toBe(2);
    spool.close();
  });

  it('a truncated file found at start counts only its good bytes once forgotten', () => {
    const dir = tempDir();
    const { path, starts } = writeSegment(dir, 2);
    truncateSync(path, starts[1]! + 3);
    const spool = spoolAt(dir);
    expect(spool.bytes).toBe(starts[1]! + 3);
    const [r] = spool.scan();
    expect(r!.drainAndClose()).toMatchObject({ problem: 'torn', frames: 1, lostBytes: 3 });
    spool.forget(path);
    expect(spool.bytes).toBe(0);
    spool.close();
  });
});
