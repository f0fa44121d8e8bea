import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep, setImmediate as nextLoop } from 'node:timers/promises';
import { once } from 'node:events';
import { gunzipSync, gzipSync, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SluiceError } from '@sluice/schema';
import { FileStore } from '../file/file-store.ts';
import type { ObjectMeta, ObjectStore, ObjectUpload } from '../object-store.ts';
import type { Codec } from './keys.ts';
import {
  type Frame,
  type ObjectError,
  type ObjectInfo,
  ObjectWriter,
  type ObjectWriterOptions,
} from './object-writer.ts';

const ID = 'feedfacecafebeef';
let root: string;

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'sluice-ow-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A batch of `n` NDJSON records starting at record number `first`, compressed as one frame. */
function makeFrame(codec: Codec, first: number, n: number, pad = 0): { frame: Frame; raw: string } {
  let raw = '';
  for (let i = first; i < first + n; i++) raw += `{"seq":${i},"msg":"${'x'.repeat(pad)}"}\n`;
  const rawBuf = Buffer.from(raw);
  const bytes = codec === 'zstd' ? zstdCompressSync(rawBuf) : codec === 'gzip' ? gzipSync(rawBuf) : rawBuf;
  return { frame: { bytes, records: n, rawBytes: rawBuf.length }, raw };
}

/**
 * Split a zstd stream into its frames (RFC 8878 section 3.1). Needed because node:zlib's
 * zstdDecompressSync (Node 24.21) decodes only the FIRST of concatenated frames and silently
 * drops the rest (nodejs/node#64741; the fix, PR #64748, was closed unmerged), whereas `zstd -d`
 * decodes them all. gunzipSync does read concatenated gzip members.
 */
function zstdFrames(buf: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const magic = buf.readUInt32LE(pos);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      pos += 8 + buf.readUInt32LE(pos + 4); // skippable frame
      continue;
    }
    if (magic !== 0xfd2fb528) throw new Error(`not a zstd frame at byte ${pos}`);
    const fhd = buf[pos + 4]!;
    const singleSegment = (fhd >> 5) & 1;
    const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6]!;
    const didSize = [0, 1, 2, 4][fhd & 3]!;
    pos += 5 + (singleSegment ? 0 : 1) + didSize + fcsSize;
    for (;;) {
      const header = buf.readUIntLE(pos, 3);
      const type = (header >> 1) & 3;
      pos += 3 + (type === 1 ? 1 : header >>> 3);
      if (header & 1) break;
    }
    if ((fhd >> 2) & 1) pos += 4; // content checksum
    frames.push(buf.subarray(start, pos));
  }
  return frames;
}

function decode(codec: Codec, bytes: Buffer): string {
  if (codec === 'zstd') return Buffer.concat(zstdFrames(bytes).map((f) => zstdDecompressSync(f))).toString();
  return (codec === 'gzip' ? gunzipSync(bytes) : bytes).toString();
}

/** Every file under the root, relative, sorted (so in key order). */
function listFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

function newWriter(over: Partial<ObjectWriterOptions> = {}): {
  writer: ObjectWriter;
  objects: ObjectInfo[];
  failures: ObjectError[];
} {
  const writer = new ObjectWriter({
    sinkId: 'test',
    store: new FileStore({ path: root }),
    keyPrefix: 'logs/',
    codec: 'none',
    uploadPeriodSecs: 3600,
    maxObjectBytes: 1 << 20,
    uniqueId: ID,
    ...over,
  });
  const objects: ObjectInfo[] = [];
  const failures: ObjectError[] = [];
  writer.on('object', (o) => objects.push(o));
  writer.on('error-object', (f) => failures.push(f));
  return { writer, objects, failures };
}

/** Write frames respecting backpressure. */
async function writeAll(writer: ObjectWriter, frames: Frame[]): Promise<number> {
  let pauses = 0;
  for (const f of frames) {
    if (!writer.write(f)) {
      pauses++;
      await new Promise<void>((resolve) => writer.once('drain', resolve));
    }
  }
  return pauses;
}

describe('ObjectWriter + FileStore', () => {
  for (const codec of ['zstd', 'gzip', 'none'] as const) {
    it(`${codec}: frames concatenated into one object decompress whole, in order`, async () => {
      const { writer, objects } = newWriter({ codec });
      let expected = '';
      const frames: Frame[] = [];
      for (let i = 0; i < 20; i++) {
        const { frame, raw } = makeFrame(codec, i * 50, 50);
        frames.push(frame);
        expected += raw;
      }
      await writeAll(writer, frames);
      await writer.close();

      expect(objects).toHaveLength(1);
      const [info] = objects;
      const ext = { zstd: '.ndjson.zst', gzip: '.ndjson.gz', none: '.ndjson' }[codec];
      expect(info!.key).toMatch(new RegExp(`^logs/\\d{4}/\\d\\d/\\d\\d/\\d\\d:\\d\\d:\\d\\d-${ID}-000000\\${ext}$`));
      expect(listFiles(root)).toEqual([info!.key]);
      const bytes = readFileSync(path.join(root, info!.key));
      expect(decode(codec, bytes)).toBe(expected);
      if (codec === 'zstd') {
        expect(zstdFrames(bytes)).toHaveLength(20);
        // the reference reader, when installed, decodes the concatenation whole as well
        const cli = spawnSync('zstd', ['-dc', path.join(root, info!.key)], { maxBuffer: 1 << 24 });
        if (cli.error === undefined) expect(cli.stdout.toString()).toBe(expected);
      }
      expect(info).toMatchObject({
        bytes: bytes.length,
        records: 1000,
        rawBytes: Buffer.byteLength(expected),
        frames: 20,
      });
      expect(info!.closedAtMs).toBeGreaterThanOrEqual(info!.openedAtMs);
    });
  }

  it('rotates before a frame that would pass max_object_bytes; a lone oversize frame gets its own object', async () => {
    const max = 4000;
    const { writer, objects } = newWriter({ codec: 'none', maxObjectBytes: max });
    const frames: Frame[] = [];
    let expected = '';
    let seq = 0;
    // sizes vary; frame 7 alone is bigger than the limit
    for (let i = 0; i < 30; i++) {
      const { frame, raw } = makeFrame('none', seq, 3 + (i % 5), i === 7 ? 2000 : 60);
      seq += frame.records;
      frames.push(frame);
      expected += raw;
    }
    expect(frames[7]!.bytes.length).toBeGreaterThan(max);
    await writeAll(writer, frames);
    await writer.close();
    objects.sort((a, b) => (a.key < b.key ? -1 : 1)); // events come in completion order

    // the same greedy packing, computed independently
    const expectedSizes: number[] = [];
    let open = 0;
    for (const f of frames) {
      if (open > 0 && open + f.bytes.length > max) {
        expectedSizes.push(open);
        open = 0;
      }
      open += f.bytes.length;
    }
    expectedSizes.push(open);

    expect(objects.length).toBeGreaterThan(3);
    expect(objects.map((o) => o.bytes)).toEqual(expectedSizes);
    for (const o of objects) {
      if (o.bytes > max) expect(o.frames).toBe(1);
      else expect(o.bytes).toBeLessThanOrEqual(max);
    }
    expect(objects.some((o) => o.bytes > max)).toBe(true);
    // keys carry seq 000000, 000001, ... so the key order is the write order
    const files = listFiles(root);
    expect(files).toEqual(objects.map((o) => o.key).sort());
    expect(files.map((f) => f.slice(-13, -7))).toEqual(files.map((_, i) => String(i).padStart(6, '0')));
    const all = files.map((f) => readFileSync(path.join(root, f)).toString()).join('');
    expect(all).toBe(expected);
  });

  it('closes an object upload_period_secs after it opened, and empty periods make no object (real timers)', async () => {
    const { writer, objects } = newWriter({ codec: 'gzip', uploadPeriodSecs: 0.3 });
    const a = makeFrame('gzip', 0, 10);
    const b = makeFrame('gzip', 10, 10);
    const t0 = Date.now();
    writer.write(a.frame);
    writer.write(b.frame); // same period: same object
    expect(writer.stats.openObjects).toBe(1);
    await once(writer, 'object');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290); // timers may fire ~1 ms early
    expect(objects).toHaveLength(1);
    expect(objects[0]!.frames).toBe(2);
    expect(writer.stats.openObjects).toBe(0);
    await sleep(800); // a sleep on purpose: nothing may happen for more than two periods without data
    expect(objects).toHaveLength(1);
    expect(listFiles(root)).toHaveLength(1);
    const c = makeFrame('gzip', 20, 10);
    const t1 = Date.now();
    writer.write(c.frame);
    await once(writer, 'object');
    expect(Date.now() - t1).toBeGreaterThanOrEqual(290);
    expect(objects).toHaveLength(2);
    expect(objects[1]!.openedAtMs - objects[0]!.openedAtMs).toBeGreaterThanOrEqual(800);
    const files = listFiles(root);
    expect(decode('gzip', readFileSync(path.join(root, files[0]!)))).toBe(a.raw + b.raw);
    expect(decode('gzip', readFileSync(path.join(root, files[1]!)))).toBe(c.raw);
    await writer.close();
    expect(objects).toHaveLength(2);
  });

  it('the period timer does not keep the process alive (unref)', () => {
    const script = `
      import { ObjectWriter } from ${JSON.stringify(path.join(import.meta.dirname, 'object-writer.ts'))};
      import { FileStore } from ${JSON.stringify(path.join(import.meta.dirname, '../file/file-store.ts'))};
      const w = new ObjectWriter({ sinkId: 'x', store: new FileStore({ path: ${JSON.stringify(root)} }), keyPrefix: '',
        codec: 'none', uploadPeriodSecs: 3600, maxObjectBytes: 1 << 20, uniqueId: 'ab' });
      w.write({ bytes: Buffer.from('{}\\n'), records: 1, rawBytes: 3 });
    `;
    // A timer that kept the process alive would hold it for an hour: spawnSync kills it at 60 s
    // and the status is then null.
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000 });
    expect(child.stderr.toString()).toBe('');
    expect(child.status).toBe(0);
  });

  it('names objects by the injected clock at opening, in UTC', async () => {
    let now = Date.UTC(2023, 11, 31, 23, 59, 58, 500);
    const { writer, objects } = newWriter({ codec: 'zstd', maxObjectBytes: 1, now: () => now });
    writer.write(makeFrame('zstd', 0, 1).frame);
    now += 2000; // crosses into 2024
    writer.write(makeFrame('zstd', 1, 1).frame); // over the 1-byte limit: rotates first
    await writer.close();
    objects.sort((a, b) => (a.key < b.key ? -1 : 1)); // events come in completion order
    expect(objects.map((o) => o.key)).toEqual([
      `logs/2023/12/31/23:59:58-${ID}-000000.ndjson.zst`,
      `logs/2024/01/01/00:00:00-${ID}-000001.ndjson.zst`,
    ]);
    expect(objects[0]!.openedAtMs).toBe(Date.UTC(2023, 11, 31, 23, 59, 58, 500));
    expect(listFiles(root)).toEqual(objects.map((o) => o.key));
  });

  it('writers draw their own unique part: two under one store and prefix, opening in the same second, keep both objects', async () => {
    // Two sinks of one process writing one bucket (or directory) under one prefix: with a
    // unique part shared by the process, both first objects would be `<time>-<id>-000000` and
    // the second to complete would replace the first.
    const now = Date.UTC(2024, 3, 22, 12, 34, 56, 789);
    const opts = {
      store: new FileStore({ path: root }),
      keyPrefix: 'logs/',
      codec: 'none' as const,
      uploadPeriodSecs: 3600,
      maxObjectBytes: 1 << 20,
      now: () => now,
    };
    const a = new ObjectWriter({ sinkId: 'a', ...opts });
    const b = new ObjectWriter({ sinkId: 'b', ...opts });
    const keysOf = (w: ObjectWriter): string[] => {
      const keys: string[] = [];
      w.on('object', (o) => keys.push(o.key));
      return keys;
    };
    const [keysA, keysB] = [keysOf(a), keysOf(b)];
    const fa = makeFrame('none', 0, 3);
    const fb = makeFrame('none', 100, 2);
    a.write(fa.frame);
    b.write(fb.frame);
    await Promise.all([a.close(), b.close()]);
    expect([keysA.length, keysB.length]).toEqual([1, 1]);
    const [ka, kb] = [keysA[0], keysB[0]];
    expect(ka).not.toBe(kb);
    for (const k of [ka!, kb!]) expect(k).toMatch(/^logs\/2024\/04\/22\/12:34:56-[0-9a-f]{16}-000000\.ndjson$/);
    expect(listFiles(root)).toEqual([ka, kb].sort());
    expect(readFileSync(path.join(root, ka!), 'utf8')).toBe(fa.raw);
    expect(readFileSync(path.join(root, kb!), 'utf8')).toBe(fb.raw);
  });

  it('close() flushes the open object and leaves no temp file', async () => {
    const { writer, objects } = newWriter({ codec: 'zstd', uploadPeriodSecs: 86_400 });
    const { frame, raw } = makeFrame('zstd', 0, 100);
    writer.write(frame);
    await nextLoop();
    expect(objects).toHaveLength(0);
    expect(listFiles(root).every((f) => path.basename(f).startsWith('.') && f.endsWith('.tmp'))).toBe(true);
    await writer.close();
    expect(objects).toHaveLength(1);
    const files = listFiles(root);
    expect(files).toEqual([objects[0]!.key]);
    expect(files.some((f) => f.endsWith('.tmp'))).toBe(false);
    expect(decode('zstd', readFileSync(path.join(root, files[0]!)))).toBe(raw);
    expect(writer.stats.openObjects).toBe(0);
    expect(() => writer.write(frame)).toThrow(expect.objectContaining({ code: 'SLUICE_ERR_WRITER_CLOSED' }));
    await writer.close(); // idempotent
  });

  it('a reader listing the tree during writes only ever sees whole objects', async () => {
    const { writer, objects } = newWriter({ codec: 'none', maxObjectBytes: 8 * 1024 });
    const seen = new Map<string, Buffer>();
    let writing = true;
    let listings = 0;
    // The writer waits for a fresh listing every few frames, so the reader observes the tree
    // mid-write however the machine schedules the two (a loaded CI machine included).
    const listing: { waiter: (() => void) | null } = { waiter: null };
    const nextListing = (): Promise<void> => new Promise<void>((r) => (listing.waiter = r));
    const reader = (async () => {
      while (writing) {
        listings++;
        const entries = await readdir(root, { recursive: true, withFileTypes: true });
        for (const e of entries) {
          if (!e.isFile() || e.name.startsWith('.')) continue;
          const rel = path.relative(root, path.join(e.parentPath, e.name));
          if (!seen.has(rel)) seen.set(rel, await readFile(path.join(root, rel)));
        }
        const done = listing.waiter;
        listing.waiter = null;
        done?.();
        await nextLoop();
      }
    })();
    let seq = 0;
    for (let i = 0; i < 300; i++) {
      const { frame } = makeFrame('none', seq, 5, 40);
      seq += 5;
      if (!writer.write(frame)) await new Promise<void>((r) => writer.once('drain', r));
      if (i % 3 === 0) await nextLoop();
      if (i % 20 === 0) await nextListing();
    }
    await writer.close();
    writing = false;
    await reader;

    expect(listings).toBeGreaterThan(10);
    expect(seen.size).toBeGreaterThan(5);
    for (const [rel, bytes] of seen) {
      // what the reader saw is exactly the final object, never a prefix of it
      expect(bytes.equals(readFileSync(path.join(root, rel))), rel).toBe(true);
    }
    const records = objects.reduce((n, o) => n + o.records, 0);
    expect(records).toBe(1500);
    const lines = listFiles(root).flatMap((f) => readFileSync(path.join(root, f)).toString().trimEnd().split('\n'));
    expect(lines.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual(Array.from({ length: 1500 }, (_, i) => i));
  });

  it("write() returns false when the store's buffer is over its bound, and 'drain' follows", async () => {
    const writer = new ObjectWriter({
      sinkId: 'bp',
      store: new FileStore({ path: root, highWaterMark: 16 }),
      keyPrefix: '',
      codec: 'none',
      uploadPeriodSecs: 3600,
      maxObjectBytes: 1 << 20,
      uniqueId: ID,
    });
    let drains = 0;
    writer.on('drain', () => drains++);
    const frames = Array.from({ length: 50 }, (_, i) => makeFrame('none', i * 4, 4).frame);
    expect(writer.write(frames[0]!)).toBe(false);
    await new Promise<void>((r) => writer.once('drain', r));
    const pauses = await writeAll(writer, frames.slice(1));
    expect(pauses).toBe(49); // every frame is bigger than 16 bytes
    expect(drains).toBe(50);
    await writer.close();
    const expected = frames.map((f) => Buffer.from(f.bytes).toString()).join('');
    expect(readFileSync(path.join(root, listFiles(root)[0]!)).toString()).toBe(expected);
  });

  it('write() returns false while maxClosingObjects closes are in flight', async () => {
    const { writer, objects } = newWriter({ codec: 'none', maxObjectBytes: 1, maxClosingObjects: 1 });
    expect(writer.write(makeFrame('none', 0, 1).frame)).toBe(true); // opens object 0
    expect(writer.write(makeFrame('none', 1, 1).frame)).toBe(false); // rotates 0: one close in flight
    expect(writer.stats.openObjects).toBe(2);
    await new Promise<void>((r) => writer.once('drain', r));
    expect(objects).toHaveLength(1);
    await writer.close();
    expect(objects).toHaveLength(2);
  });

  it('stats add up with the ObjectInfo events and the files on disk', async () => {
    const { writer, objects, failures } = newWriter({ codec: 'zstd', maxObjectBytes: 2000 });
    let rawTotal = 0;
    const frames: Frame[] = [];
    for (let i = 0; i < 120; i++) {
      const { frame } = makeFrame('zstd', i * 7, 7, i % 13);
      rawTotal += frame.rawBytes;
      frames.push(frame);
    }
    await writeAll(writer, frames);
    await writer.close();
    const s = writer.stats;
    expect(failures).toHaveLength(0);
    expect(s.objectsCompleted).toBe(objects.length);
    expect(s.recordsWritten).toBe(objects.reduce((n, o) => n + o.records, 0));
    expect(s.recordsWritten).toBe(840);
    expect(s.rawBytesWritten).toBe(rawTotal);
    expect(s.bytesWritten).toBe(objects.reduce((n, o) => n + o.bytes, 0));
    const files = listFiles(root);
    expect(files).toHaveLength(objects.length);
    expect(s.bytesWritten).toBe(files.reduce((n, f) => n + statSync(path.join(root, f)).size, 0));
    expect(objects.reduce((n, o) => n + o.frames, 0)).toBe(120);
    expect(s).toMatchObject({ objectsFailed: 0, recordsFailed: 0, openObjects: 0 });
  });

  it("a real write failure (the key's folder is a file) emits 'error-object' and counts the loss", async () => {
    // the first object lands on 2024-01-01, the second on 2024-01-02, whose folder is a file
    let now = Date.UTC(2024, 0, 1, 12, 0, 0);
    mkdirSync(path.join(root, 'logs/2024/01'), { recursive: true });
    writeFileSync(path.join(root, 'logs/2024/01/02'), 'not a folder');
    const writer = new ObjectWriter({
      sinkId: 'fail',
      store: new FileStore({ path: root, highWaterMark: 16 }),
      keyPrefix: 'logs/',
      codec: 'none',
      uploadPeriodSecs: 3600,
      maxObjectBytes: 1000,
      uniqueId: ID,
      now: () => now,
    });
    const objects: ObjectInfo[] = [];
    const failures: ObjectError[] = [];
    writer.on('object', (o) => objects.push(o));
    writer.on('error-object', (f) => failures.push(f));
    const day1 = Array.from({ length: 5 }, (_, i) => makeFrame('none', i * 3, 3).frame);
    await writeAll(writer, day1);
    now += 86_400_000;
    writer.rotate();
    const day2 = Array.from({ length: 8 }, (_, i) => makeFrame('none', 100 + i * 2, 2).frame);
    await writeAll(writer, day2); // a dead upload still drains: no hang
    await writer.close();

    expect(objects).toHaveLength(1);
    expect(objects[0]!.records).toBe(15);
    expect(failures).toHaveLength(1);
    const f = failures[0]!;
    expect(f.key).toBe(`logs/2024/01/02/12:00:00-${ID}-000001.ndjson`);
    expect(f.records).toBe(16);
    expect(f.rawBytes).toBe(day2.reduce((n, fr) => n + fr.rawBytes, 0));
    expect(f.error).toBeInstanceOf(SluiceError);
    expect((f.error as SluiceError).code).toBe('SLUICE_ERR_SINK_WRITE');
    expect(writer.stats).toMatchObject({
      objectsCompleted: 1,
      objectsFailed: 1,
      recordsWritten: 15,
      recordsFailed: 16,
      openObjects: 0,
    });
    // received = stored + lost
    expect(writer.stats.recordsWritten + writer.stats.recordsFailed).toBe(31);
    expect(listFiles(root).filter((p) => p.endsWith('.tmp'))).toEqual([]);
  });

  it("a store whose close() rejects yields 'error-object' per object and close() still resolves", async () => {
    // The only test double: as root, a real close failure after successful writes cannot be forced.
    class FailingCloseStore implements ObjectStore {
      opened: string[] = [];
      open(key: string, _meta: ObjectMeta): ObjectUpload {
        this.opened.push(key);
        return {
          write: () => true,
          once: () => {},
          close: () => Promise.reject(new SluiceError('SLUICE_ERR_SINK_WRITE', `upload of ${key} failed`)),
          abort: () => Promise.resolve(),
        };
      }
      async check(): Promise<void> {}
    }
    const store = new FailingCloseStore();
    const { writer, objects, failures } = newWriter({ store, codec: 'none', maxObjectBytes: 100 });
    const frames = Array.from({ length: 10 }, (_, i) => makeFrame('none', i * 2, 2).frame);
    await writeAll(writer, frames); // false while 4 closes are in flight, then 'drain'
    await writer.close();
    expect(objects).toHaveLength(0);
    expect(failures.map((f) => f.key)).toEqual(store.opened);
    expect(failures.reduce((n, f) => n + f.records, 0)).toBe(20);
    expect(writer.stats).toMatchObject({
      objectsCompleted: 0,
      objectsFailed: store.opened.length,
      recordsWritten: 0,
      bytesWritten: 0,
      recordsFailed: 20,
      openObjects: 0,
    });
  });

  it('abandon() hands back the unsettled objects, releases close(), and never counts them twice', async () => {
    // A store whose closes hang until released (an S3 outage at shutdown).
    const closes: (() => void)[] = [];
    const store: ObjectStore = {
      open: () => ({
        write: () => true,
        once: () => {},
        close: () => new Promise<void>((r) => closes.push(r)),
        abort: async () => {},
      }),
      check: async () => {},
    };
    const { writer, objects, failures } = newWriter({ store, codec: 'none', maxObjectBytes: 100 });
    for (let i = 0; i < 3; i++) writer.write(makeFrame('none', i * 5, 5).frame); // 3 objects of 5 records
    const closing = writer.close();
    let closed = false;
    void closing.then(() => (closed = true));
    await sleep(20); // a sleep on purpose: close() must still be pending while the store hangs
    expect(closed).toBe(false);
    const left = writer.abandon();
    expect(left.map((o) => o.records)).toEqual([5, 5, 5]);
    expect(left[0]!.key).toMatch(/^logs\/.*-000000\.ndjson$/);
    await closing;
    expect(writer.stats.openObjects).toBe(0);
    for (const release of closes) release(); // settling later emits nothing
    await sleep(5); // a sleep on purpose: the released closes get a moment to (wrongly) emit
    expect(objects).toEqual([]);
    expect(failures).toEqual([]);
    expect(writer.abandon()).toEqual([]);
  });

  it('rejects nonsense options with a message naming the setting', () => {
    const base = {
      sinkId: 's3a',
      store: new FileStore({ path: root }),
      keyPrefix: '',
      codec: 'none' as const,
      uniqueId: ID,
    };
    expect(() => new ObjectWriter({ ...base, uploadPeriodSecs: 0, maxObjectBytes: 1 })).toThrow(/upload_period_secs/);
    expect(() => new ObjectWriter({ ...base, uploadPeriodSecs: 60, maxObjectBytes: 0 })).toThrow(/max_object_bytes/);
  });
});
