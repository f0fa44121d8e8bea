/**
 * FileStore: an ObjectStore over a local directory tree (`file` sink). Object `<key>` lands at
 * `<path>/<key>`; the key's folders are created on demand (mkdir -p).
 *
 * A reader listing the tree never sees half an object: bytes go to a temporary name in the
 * same directory, `.<basename>.<16 hex>.tmp`, and close() fsyncs it, renames it to the final
 * name (atomic within a directory) and fsyncs the directory (and the parents of any directory
 * it created) so the name survives a crash too. Temporary names start with a dot so
 * `ls` and most globbing skip them.
 *
 * Temp files left by a crash are never deleted by the store (they are user data): check()
 * counts those older than an hour so the daemon can log them.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { mkdir, open, opendir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { SluiceError } from '@sluice/schema';
import type { ObjectMeta, ObjectStore, ObjectStoreCheck, ObjectUpload } from '../object-store.ts';

export interface FileStoreOptions {
  /** Root directory of the tree; created by check() if missing. */
  path: string;
  /**
   * Bytes buffered per open object before write() returns false. Default 1 MiB: node's 64 KiB
   * default makes every 64 KiB frame return false and took 1.37x the time of 1 MiB on
   * bench/object-writer.bench.ts; 4 MiB gained nothing more.
   */
  highWaterMark?: number;
}

/** Temp files (`.<name>.<16 hex>.tmp`) older than an hour found under the root. */
export type FileStoreCheck = ObjectStoreCheck;

const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
/** An object is written for at most upload_period_secs, and its temp file's mtime moves with
 *  every write: a temp file untouched for an hour is almost surely left by a crash. */
const STALE_TEMP_AGE_MS = 60 * 60 * 1000;
const TEMP_NAME = /^\..+\.[0-9a-f]{16}\.tmp$/;

function tempNameFor(basename: string): string {
  return `.${basename}.${randomBytes(8).toString('hex')}.tmp`;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(error);
}

/** fsync a directory so the names created in it (files, subdirectories) are durable. */
async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class FileStore implements ObjectStore {
  /** Absolute root directory. */
  readonly path: string;
  readonly #highWaterMark: number;
  /** Uploads whose stream is still open: their buffers make up bufferedBytes. */
  readonly #live = new Set<FileUpload>();

  constructor(opts: FileStoreOptions) {
    this.path = path.resolve(opts.path);
    this.#highWaterMark = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  }

  /** Never throws: a bad key or an I/O failure surfaces from close() (writes are then discarded). */
  open(key: string, _meta: ObjectMeta): ObjectUpload {
    return new FileUpload(this.path, key, this.#highWaterMark, this.#live);
  }

  /** Bytes written to open objects and not yet handed to the OS (the write streams' buffers). */
  get bufferedBytes(): number {
    let n = 0;
    for (const upload of this.#live) n += upload.pendingBytes;
    return n;
  }

  /**
   * mkdir -p the root and prove it is writable by creating and removing a probe file; then count
   * stale temp files under it. Walks the whole tree (streamed, constant memory), so its cost
   * grows with the number of objects kept.
   * @throws SluiceError SLUICE_ERR_SINK_UNWRITABLE naming the path.
   */
  async check(): Promise<FileStoreCheck> {
    const root = this.path;
    try {
      await mkdirEach(root);
      const probe = path.join(root, tempNameFor('sluice-write-check'));
      await writeFile(probe, '', { flag: 'wx' });
      await unlink(probe);
    } catch (error) {
      throw new SluiceError(
        'SLUICE_ERR_SINK_UNWRITABLE',
        `file sink path ${root} is not writable (${errorCode(error)}): point path at a directory this process can create files in`,
        { cause: error },
      );
    }
    const result: FileStoreCheck = { staleTempFiles: 0, scanComplete: true };
    const cutoff = Date.now() - STALE_TEMP_AGE_MS;
    try {
      for await (const entry of await opendir(root, { recursive: true })) {
        if (!entry.isFile() || !TEMP_NAME.test(entry.name)) continue;
        const file = path.join(entry.parentPath, entry.name);
        const st = await stat(file).catch(() => null); // renamed or removed meanwhile: not stale
        if (st === null || st.mtimeMs >= cutoff) continue;
        result.staleTempFiles++;
        result.firstStaleTempFile ??= file;
      }
    } catch {
      result.scanComplete = false;
    }
    return result;
  }
}

/**
 * One object being written: a fs.WriteStream on the temp file. Its bound is the stream's
 * highWaterMark (write() → false, then 'drain').
 */
class FileUpload extends EventEmitter implements ObjectUpload {
  readonly #finalPath: string;
  readonly #tempPath: string;
  readonly #dir: string;
  readonly #stream: fs.WriteStream | null;
  readonly #streamClosed: Promise<void>;
  /** The first directory mkdir -p created for this object, if any: its parents need an fsync. */
  #firstMadeDir: string | undefined = undefined;
  #error: unknown = undefined;
  #settling = false;

  constructor(root: string, key: string, highWaterMark: number, live: Set<FileUpload>) {
    super();
    const finalPath = path.resolve(root, key);
    const basename = path.basename(finalPath);
    this.#finalPath = finalPath;
    this.#dir = path.dirname(finalPath);
    this.#tempPath = path.join(this.#dir, tempNameFor(basename));
    if (!finalPath.startsWith(root + path.sep) || key.includes('\0') || basename.startsWith('.')) {
      this.#error = new SluiceError(
        'SLUICE_ERR_SINK_KEY',
        `file sink: object key ${JSON.stringify(key)} does not name a visible file under ${root}: check key_prefix`,
      );
      this.#stream = null;
      this.#streamClosed = Promise.resolve();
      return;
    }
    const dir = this.#dir;
    const stream = fs.createWriteStream(this.#tempPath, {
      flags: 'wx',
      highWaterMark,
      // fsync before the fd is closed (node lib/internal/fs/streams.js `close`), so the rename
      // below never exposes a name whose bytes are not on disk.
      flush: true,
      fs: {
        // mkdir -p inside the stream's own open, so writes made before the folders exist are
        // simply buffered by the stream; no sync I/O on the main thread.
        open: (file: string, flags: string, mode: number, cb: (err: Error | null, fd?: number) => void) => {
          fs.mkdir(dir, { recursive: true }, (err, first) => {
            if (err) return cb(err);
            this.#firstMadeDir = first;
            fs.open(file, flags, mode, cb);
          });
        },
        write: fs.write,
        writev: fs.writev,
        close: fs.close,
        fsync: fs.fsync,
      },
    } as Parameters<typeof fs.createWriteStream>[1]);
    this.#stream = stream;
    this.#streamClosed = new Promise<void>((resolve) => stream.once('close', resolve));
    live.add(this);
    void this.#streamClosed.then(() => live.delete(this));
    stream.on('error', (error) => {
      this.#error ??= error;
      // A waiting writer must not hang on a dead stream: writes from now on are discarded,
      // and the failure is reported by close().
      this.emit('drain');
    });
    stream.on('drain', () => this.emit('drain'));
  }

  /** Bytes written and still in the stream's buffer. */
  get pendingBytes(): number {
    return this.#stream?.writableLength ?? 0;
  }

  write(chunk: Uint8Array): boolean {
    if (this.#error !== undefined || this.#stream === null) return true;
    return this.#stream.write(chunk);
  }

  override once(event: 'drain', fn: () => void): this {
    return super.once(event, fn);
  }

  async close(): Promise<void> {
    this.#beginSettle('close');
    this.#stream?.end();
    await this.#streamClosed;
    if (this.#error !== undefined) {
      await rm(this.#tempPath, { force: true }).catch(() => {});
      throw this.#wrap(this.#error);
    }
    try {
      await rename(this.#tempPath, this.#finalPath);
    } catch (error) {
      await rm(this.#tempPath, { force: true }).catch(() => {});
      throw this.#wrap(error);
    }
    try {
      await fsyncDir(this.#dir);
      // Folders created for this object: their names live in their parents.
      const first = this.#firstMadeDir;
      if (first !== undefined) {
        for (let d = this.#dir; d.length >= first.length; d = path.dirname(d)) await fsyncDir(path.dirname(d));
      }
    } catch (error) {
      // The name is visible but may not survive a crash: take it back so a rejected close
      // never leaves an object behind (the writer counts its records as lost).
      await rm(this.#finalPath, { force: true }).catch(() => {});
      throw this.#wrap(error);
    }
  }

  async abort(): Promise<void> {
    this.#beginSettle('abort');
    this.#stream?.destroy();
    await this.#streamClosed;
    try {
      await rm(this.#tempPath, { force: true });
    } catch (error) {
      throw this.#wrap(error);
    }
  }

  #beginSettle(what: string): void {
    if (this.#settling) {
      throw new SluiceError('SLUICE_ERR_SINK_STATE', `file sink: ${what}() on ${this.#finalPath} after close/abort`);
    }
    this.#settling = true;
  }

  #wrap(error: unknown): unknown {
    if (error instanceof SluiceError) return error;
    return new SluiceError(
      'SLUICE_ERR_SINK_WRITE',
      `file sink: could not write ${this.#finalPath} (${errorCode(error)})`,
      { cause: error },
    );
  }
}

/**
 * mkdir -p one directory at a time. `fs.mkdir(..., { recursive: true })` never returns for a
 * path under /proc (Node 24 retries forever, at 100% of a libuv thread), which would hang the
 * start on a mistyped `path`; this answers ENOENT there, like any other mkdir.
 */
async function mkdirEach(dir: string): Promise<void> {
  const parts = path.resolve(dir).split(path.sep).filter((p) => p !== '');
  let current: string = path.sep;
  for (const part of parts) {
    current = path.join(current, part);
    try {
      await mkdir(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
