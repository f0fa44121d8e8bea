import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync, type Dirent } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SluiceError } from '@sluice/schema';
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

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(2);
  expect(cond()).toBe(true);
}

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
    await until(() => existsSync(path.join(root, 'logs/2024/04/22')) && readdirSync(path.join(root, 'logs/2024/04/22')).length > 0);
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
    await until(() => existsSync(path.join(root, 'a/b')) && readdirSync(path.join(root, 'a/b')).length > 0);
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
