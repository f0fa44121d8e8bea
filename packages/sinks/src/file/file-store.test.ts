import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
  existsSync,
  type Dirent,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SluiceError } from '@sluice/schema';
import { mountTmpfs, type Tmpfs } from '@sluice/testkit/tmpfs';
import { diskRetryDelayMs, retryableDiskError, type DiskHooks } from './disk-retry.ts';
import { FileStore } from './file-store.ts';

const META = { contentType: 'application/x-ndjson', contentEncoding: 'zstd' };
const TEMP = /^\..+\.[0-9a-f]{16}\.tmp$/;
let root: string;

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'sluice-fs-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function listFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/** Entries in `dir`, 0 while it does not exist. */
function entriesIn(dir: string): number {
  return existsSync(dir) ? readdirSync(dir).length : 0;
}

/** How long a test waits for the store to do something: generous, the machine may be loaded. */
const WAIT = { timeout: 30_000, interval: 10 };

async function rejection(p: Promise<unknown>): Promise<SluiceError> {
  const err = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SluiceError);
  return err as SluiceError;
}

describe('FileStore', () => {
  it('writes <path>/<key> through a hidden temp name in the same folder, creating folders', async () => {
    const store = new FileStore({ path: root });
    const key = 'logs/2024/04/22/12:34:56-0123456789abcdef-000000.ndjson.zst';
    const up = store.open(key, META);
    expect(up.write(Buffer.from('{"a":1}\n'))).toBe(true);
    expect(up.write(new Uint8Array(Buffer.from('{"a":2}\n')))).toBe(true);
    await vi.waitFor(
      () => expect(entriesIn(path.join(root, 'logs/2024/04/22')), 'the temp file').toBeGreaterThan(0),
      WAIT,
    );
    const during = readdirSync(path.join(root, 'logs/2024/04/22'));
    expect(during).toHaveLength(1);
    expect(during[0]).toMatch(TEMP);
    expect(during[0]!.startsWith('.12:34:56-0123456789abcdef-000000.ndjson.zst.')).toBe(true);
    await up.close();
    expect(listFiles(root)).toEqual([key]);
    expect(readFileSync(path.join(root, key), 'utf8')).toBe('{"a":1}\n{"a":2}\n');
  });

  it('abort() removes the temp file and publishes nothing', async () => {
    const store = new FileStore({ path: root });
    const up = store.open('a/b/c.ndjson', META);
    up.write(Buffer.alloc(100_000, 0x61));
    await vi.waitFor(() => expect(entriesIn(path.join(root, 'a/b')), 'the temp file').toBeGreaterThan(0), WAIT);
    await up.abort();
    expect(listFiles(root)).toEqual([]);
  });

  it("write() returns false beyond highWaterMark and 'drain' follows", async () => {
    const store = new FileStore({ path: root, highWaterMark: 1024 });
    const up = store.open('bp.ndjson', META);
    expect(up.write(Buffer.alloc(512, 0x61))).toBe(true);
    expect(up.write(Buffer.alloc(1024, 0x62))).toBe(false);
    await new Promise<void>((r) => up.once('drain', r));
    expect(up.write(Buffer.from('\n'))).toBe(true);
    await up.close();
    expect(readFileSync(path.join(root, 'bp.ndjson')).length).toBe(1537);
  });

  it('bufferedBytes counts what the open objects still hold in memory, and is 0 once they are closed or aborted', async () => {
    const store = new FileStore({ path: root, highWaterMark: 1024 });
    expect(store.bufferedBytes).toBe(0);
    const a = store.open('a.ndjson', META);
    const b = store.open('b.ndjson', META);
    // Before the file is open every write waits in the stream's buffer.
    a.write(Buffer.alloc(3000));
    b.write(Buffer.alloc(500));
    expect(store.bufferedBytes).toBe(3500);
    await Promise.all([a.close(), b.abort()]);
    expect(store.bufferedBytes).toBe(0);
    expect(listFiles(root)).toEqual(['a.ndjson']);
  });

  it('close() rejects with SLUICE_ERR_SINK_WRITE when the folder cannot be made, leaving nothing behind', async () => {
    writeFileSync(path.join(root, 'blocked'), 'a file where a folder should be');
    const store = new FileStore({ path: root, highWaterMark: 8 });
    const up = store.open('blocked/x/obj.ndjson', META);
    const drained = new Promise<void>((r) => up.once('drain', r));
    expect(up.write(Buffer.alloc(64))).toBe(false);
    await drained; // a failed upload still releases a waiting writer
    expect(up.write(Buffer.alloc(64))).toBe(true); // discarded
    const err = await rejection(up.close());
    expect(err.code).toBe('SLUICE_ERR_SINK_WRITE');
    expect(err.message).toContain(path.join(root, 'blocked/x/obj.ndjson'));
    expect(err.message).toContain('ENOTDIR');
    expect(listFiles(root)).toEqual(['blocked']);
  });

  it('rejects keys that would land outside the root or be hidden, without touching the disk', async () => {
    const store = new FileStore({ path: path.join(root, 'tree') });
    for (const key of ['../escape.ndjson', '/etc/sluice.ndjson', 'a/../../escape.ndjson', 'a/.hidden.ndjson', '']) {
      const up = store.open(key, META);
      expect(up.write(Buffer.from('x'))).toBe(true);
      const err = await rejection(up.close());
      expect(err.code).toBe('SLUICE_ERR_SINK_KEY');
    }
    expect(listFiles(root)).toEqual([]);
  });

  it('a second close() or abort() is refused', async () => {
    const store = new FileStore({ path: root });
    const up = store.open('once.ndjson', META);
    up.write(Buffer.from('x\n'));
    await up.close();
    expect((await rejection(up.close())).code).toBe('SLUICE_ERR_SINK_STATE');
    expect((await rejection(up.abort())).code).toBe('SLUICE_ERR_SINK_STATE');
    expect(readFileSync(path.join(root, 'once.ndjson'), 'utf8')).toBe('x\n');
  });

  it('check() creates the root, leaves no probe, and counts (never deletes) stale temp files', async () => {
    const store = new FileStore({ path: path.join(root, 'new/tree') });
    expect(await store.check()).toEqual({ staleTempFiles: 0, scanComplete: true });
    expect(listFiles(root)).toEqual([]);

    const dir = path.join(root, 'new/tree/logs/2024/01/01');
    mkdirSync(dir, { recursive: true });
    const stale = path.join(dir, '.00:00:00-0123456789abcdef-000003.ndjson.zst.00112233aabbccdd.tmp');
    const fresh = path.join(dir, '.00:01:00-0123456789abcdef-000004.ndjson.zst.44556677aabbccdd.tmp');
    const other = path.join(dir, '.notes.tmp'); // not ours: not counted
    for (const f of [stale, fresh, other]) writeFileSync(f, 'partial');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(stale, twoHoursAgo, twoHoursAgo);
    utimesSync(other, twoHoursAgo, twoHoursAgo);

    expect(await store.check()).toEqual({ staleTempFiles: 1, firstStaleTempFile: stale, scanComplete: true });
    expect(existsSync(stale) && existsSync(fresh) && existsSync(other)).toBe(true);
  });

  it('check() throws SLUICE_ERR_SINK_UNWRITABLE naming the path when the root cannot be a folder', async () => {
    writeFileSync(path.join(root, 'file'), 'x');
    for (const p of [path.join(root, 'file'), path.join(root, 'file/sub')]) {
      const err = await rejection(new FileStore({ path: p }).check());
      expect(err.code).toBe('SLUICE_ERR_SINK_UNWRITABLE');
      expect(err.message).toContain(p);
    }
  });

  it('check() answers, instead of hanging, for a path under /proc (fs.mkdir recursive never returns there)', async () => {
    const err = await rejection(new FileStore({ path: '/proc/sluice-no-such-dir/out' }).check());
    expect(err.code).toBe('SLUICE_ERR_SINK_UNWRITABLE');
    expect(err.message).toContain('/proc/sluice-no-such-dir/out');
  });
});

describe('disk retry policy', () => {
  it('waits out errors an operator can clear, and fails on the others', () => {
    for (const code of ['ENOSPC', 'EDQUOT', 'EIO', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY']) {
      expect(retryableDiskError(Object.assign(new Error('x'), { code }))).toBe(code);
    }
    for (const e of [
      Object.assign(new Error('x'), { code: 'ENOTDIR' }),
      Object.assign(new Error('x'), { code: 'EINVAL' }),
      new Error('no code'),
      null,
      'ENOSPC',
    ]) {
      expect(retryableDiskError(e)).toBeNull();
    }
  });

  it('backs off from 100 ms, doubling, to at most 5 s', () => {
    expect(Array.from({ length: 9 }, (_, i) => diskRetryDelayMs(i))).toEqual([
      100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000,
    ]);
    expect(diskRetryDelayMs(10_000)).toBe(5000);
  });
});

/** Every notice a store's disk hooks got. */
function recordingHooks(): DiskHooks & {
  retries: { code: string; op: string }[];
  blocked: number;
  recovered: number[];
} {
  const rec = {
    retries: [] as { code: string; op: string }[],
    blocked: 0,
    recovered: [] as number[],
    onRetry: (n: { code: string; op: string }) => void rec.retries.push({ code: n.code, op: n.op }),
    onBlocked: () => void rec.blocked++,
    onRecovered: (n: { blockedMs: number }) => void rec.recovered.push(n.blockedMs),
  };
  return rec;
}

/** `n` bytes where every 4-byte word is its own offset: a duplicated or lost byte shows. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE(i, i);
  return b;
}

describe('FileStore on a full disk (a real tmpfs)', () => {
  const KiB = 1024;
  const MiB = 1024 * KiB;
  let fs: Tmpfs | null = null;
  afterEach(() => {
    fs?.unmount();
    fs = null;
  });

  it('blocks while the disk is full, holds the writer back, and writes every byte exactly once when it grows', {
    timeout: 90_000,
  }, async () => {
    fs = mountTmpfs(MiB);
    const hooks = recordingHooks();
    const store = new FileStore({ path: fs.dir, highWaterMark: 64 * KiB, diskHooks: hooks });
    const data = pattern(3 * MiB);
    const up = store.open('full/obj.ndjson', META);
    let written = 0;
    // A writer that honours backpressure, as the object writer does.
    const writer = (async () => {
      for (let at = 0; at < data.length; at += 64 * KiB) {
        const chunk = data.subarray(at, at + 64 * KiB);
        written += chunk.length;
        if (!up.write(chunk)) await new Promise<void>((r) => up.once('drain', r));
      }
    })();
    await vi.waitFor(() => expect(store.blocked).toBe(true), { timeout: 30_000, interval: 20 });
    expect(hooks.blocked).toBeGreaterThanOrEqual(1);
    expect(hooks.retries.length).toBeGreaterThanOrEqual(1);
    expect(hooks.retries.every((r) => r.code === 'ENOSPC')).toBe(true);
    // Held back: the writer waits for 'drain', with at most the bound (and one chunk) in memory.
    // A sleep on purpose: the test is that nothing moves for a while (500 ms) while the disk is full.
    await sleep(500);
    expect(written).toBeLessThan(data.length);
    expect(store.bufferedBytes).toBeLessThanOrEqual(64 * KiB + 64 * KiB);
    expect(hooks.recovered).toEqual([]);
    expect(listFiles(fs.dir).filter((f) => !TEMP.test(path.basename(f)))).toEqual([]); // only the hidden temp file: nothing half-written is visible

    fs.resize(8 * MiB);
    await writer;
    await up.close();
    expect(store.blocked).toBe(false);
    expect(hooks.recovered.length).toBeGreaterThanOrEqual(1);
    expect(hooks.recovered[0]!).toBeGreaterThan(0);
    const stored = readFileSync(path.join(fs.dir, 'full/obj.ndjson'));
    expect(stored.length).toBe(data.length);
    expect(stored.equals(data)).toBe(true);
    expect(listFiles(fs.dir)).toEqual(['full/obj.ndjson']);
  });

  it('a volume remounted read-only blocks the folder and file creation (EROFS); read-write again, the object completes', {
    timeout: 90_000,
  }, async () => {
    fs = mountTmpfs(4 * MiB);
    const hooks = recordingHooks();
    const store = new FileStore({ path: fs.dir, diskHooks: hooks });
    fs.readOnly(true);
    const up = store.open('ro/a/obj.ndjson', META);
    up.write(Buffer.from('{"a":1}\n'));
    const closing = up.close();
    await vi.waitFor(() => expect(hooks.retries.some((r) => r.code === 'EROFS' && r.op === 'mkdir')).toBe(true), {
      timeout: 30_000,
      interval: 20,
    });
    expect(store.blocked).toBe(true);
    fs.readOnly(false);
    await closing;
    expect(store.blocked).toBe(false);
    expect(hooks.recovered.length).toBeGreaterThanOrEqual(1);
    expect(readFileSync(path.join(fs.dir, 'ro/a/obj.ndjson'), 'utf8')).toBe('{"a":1}\n');
  });

  it('abort() while blocked gives up at once and removes the temp file', { timeout: 60_000 }, async () => {
    fs = mountTmpfs(256 * KiB);
    const hooks = recordingHooks();
    const store = new FileStore({ path: fs.dir, highWaterMark: 64 * KiB, diskHooks: hooks });
    const up = store.open('abort.ndjson', META);
    up.write(pattern(512 * KiB));
    await vi.waitFor(() => expect(store.blocked).toBe(true), { timeout: 30_000, interval: 20 });
    await up.abort();
    expect(store.blocked).toBe(false);
    expect(store.bufferedBytes).toBe(0);
    expect(readdirSync(fs.dir)).toEqual([]);
  });
});
