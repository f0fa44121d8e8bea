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
 *
 * A full (or read-only, or failing) disk blocks the store instead of failing its objects:
 * FileUpload below, and disk-retry.ts for which errors are waited out and how.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, open, opendir, rename, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { ERR_SINK_KEY, ERR_SINK_STATE, ERR_SINK_UNWRITABLE, ERR_SINK_WRITE, SluiceError } from '@sluice/schema';
import type { ObjectMeta, ObjectStore, ObjectStoreCheck, ObjectUpload } from '../object-store.ts';
import { diskRetryDelayMs, DiskStall, retryableDiskError, type DiskHooks } from './disk-retry.ts';
import { freeNow } from '../free-now.ts';

export interface FileStoreOptions {
  /** Root directory of the tree; created by check() if missing. */
  path: string;
  /**
   * Bytes buffered per open object before write() returns false. Default 1 MiB: node's 64 KiB
   * default makes every 64 KiB frame return false and took 1.37x the time of 1 MiB on
   * bench/object-writer.bench.ts; 4 MiB gained nothing more.
   */
  highWaterMark?: number;
  /** Told about every refused write, and when the disk blocks and recovers (metrics, log). */
  diskHooks?: DiskHooks;
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

export class FileStore implements ObjectStore {
  /** Absolute root directory. */
  readonly path: string;
  /** write() copies into slabs of its own (SLAB_BYTES): the caller may free the chunk at once. */
  readonly copiesChunks = true;
  readonly #highWaterMark: number;
  /** Uploads whose stream is still open: their buffers make up bufferedBytes. */
  readonly #live = new Set<FileUpload>();
  /** Whether a write of this store waits for the disk; one for the store, as its objects share the disk. */
  readonly #stall: DiskStall;

  constructor(opts: FileStoreOptions) {
    this.path = path.resolve(opts.path);
    this.#highWaterMark = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.#stall = new DiskStall('object', opts.diskHooks);
    this.#stall.onRecovered(() => {
      for (const upload of this.#live) upload.maybeDrain();
    });
  }

  /**
   * Never throws: a bad key or an I/O failure no retry helps surfaces from close() (writes are
   * then discarded).
   */
  open(key: string, _meta: ObjectMeta): ObjectUpload {
    return new FileUpload(this.path, key, this.#highWaterMark, this.#live, this.#stall);
  }

  /** Whether a write waits for the disk now (full, read-only, failing): writers are held back. */
  get blocked(): boolean {
    return this.#stall.blocked;
  }

  /** Bytes written to open objects and not yet handed to the OS (waiting in memory). */
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
        ERR_SINK_UNWRITABLE,
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

/** Linux's IOV_MAX: the most buffers one writev takes. */
const IOV_MAX = 1024;

/**
 * Written chunks are copied into slabs of this size (a mapping of their own under the
 * launcher's MALLOC_MMAP_THRESHOLD_), each freed (detached) as soon as the file has all of its
 * bytes. The copy lets the caller free its frames at once (ObjectStore.copiesChunks): the
 * dispatcher's frames otherwise stayed referenced until written and then waited for V8's
 * collector, and their late, out-of-order frees left holes in the workers' malloc arenas
 * (docs/benchmarks.md, "Memory"). ~35 KiB of memcpy per 256 KiB batch.
 */
const SLAB_BYTES = 256 * 1024;

interface Slab {
  buf: Buffer;
  /** Bytes copied in. */
  fill: number;
  /** Bytes copied in and not yet in the file. */
  pending: number;
}

/** Thrown inside an upload's retry loop once abort() was called; never leaves the upload. */
class UploadAborted extends Error {}

/**
 * One object being written: chunks queue in memory and a pump writes them to the temp file
 * with positioned writes (pwritev at the file's own offset). Its bound is `highWaterMark`
 * bytes not yet written (write() → false, then 'drain').
 *
 * A disk that refuses a write (retryableDiskError: full, over quota, read-only, failing) does
 * not fail the object: the pump waits (100 ms doubling to 5 s) and writes the same bytes at
 * the same offset again, so a short or refused write never duplicates or loses a byte; the
 * folders, the temp file and the final rename are retried the same way. Meanwhile write()
 * returns false (for every object of the store, the disk is shared), which stops the
 * dispatcher and so the sources. What was accepted stays in memory until the disk takes it.
 */
class FileUpload extends EventEmitter implements ObjectUpload {
  readonly #finalPath: string;
  readonly #tempPath: string;
  readonly #dir: string;
  readonly #highWaterMark: number;
  readonly #stall: DiskStall;
  readonly #live: Set<FileUpload>;
  /** Chunks not written yet (views into #slabs), oldest first; the head may be the rest of a short write. */
  #queue: Uint8Array[] = [];
  /** The slabs #queue's views are in, oldest first; the last one is being filled. */
  #slabs: Slab[] = [];
  #queuedBytes = 0;
  /** Bytes of the temp file written so far: where the next write goes. */
  #offset = 0;
  #fh: FileHandle | null = null;
  /** The pump writing the queue, while it runs. */
  #pump: Promise<void> | null = null;
  /** The first directory mkdir -p created for this object, if any: its parents need an fsync. */
  #firstMadeDir: string | undefined = undefined;
  #error: unknown = undefined;
  #settling = false;
  #aborted = false;
  /** write() returned false: a 'drain' is owed. */
  #owesDrain = false;
  /** The backoff wait in progress, so abort() can cut it short. */
  #wait: { timer: NodeJS.Timeout; resolve: () => void } | null = null;

  constructor(root: string, key: string, highWaterMark: number, live: Set<FileUpload>, stall: DiskStall) {
    super();
    const finalPath = path.resolve(root, key);
    const basename = path.basename(finalPath);
    this.#finalPath = finalPath;
    this.#dir = path.dirname(finalPath);
    this.#tempPath = path.join(this.#dir, tempNameFor(basename));
    this.#highWaterMark = highWaterMark;
    this.#stall = stall;
    this.#live = live;
    if (!finalPath.startsWith(root + path.sep) || key.includes('\0') || basename.startsWith('.')) {
      this.#error = new SluiceError(
        ERR_SINK_KEY,
        `file sink: object key ${JSON.stringify(key)} does not name a visible file under ${root}: check key_prefix`,
      );
      return;
    }
    live.add(this);
  }

  /** Bytes written and not yet handed to the OS. */
  get pendingBytes(): number {
    return this.#queuedBytes;
  }

  write(chunk: Uint8Array): boolean {
    if (this.#error !== undefined || this.#settling) return true; // discarded; close() reports a failure
    if (chunk.byteLength > 0) {
      this.#copyIn(chunk);
      this.#queuedBytes += chunk.byteLength;
      this.#kick();
    }
    if (this.#queuedBytes < this.#highWaterMark && !this.#stall.blocked) return true;
    this.#owesDrain = true;
    return false;
  }

  /** Queue a copy of `chunk`, in the current slab and as many new ones as it needs. */
  #copyIn(chunk: Uint8Array): void {
    const n = chunk.byteLength;
    let off = 0;
    while (off < n) {
      let slab = this.#slabs.at(-1);
      if (slab === undefined || slab.fill === SLAB_BYTES) {
        slab = { buf: Buffer.allocUnsafeSlow(SLAB_BYTES), fill: 0, pending: 0 };
        this.#slabs.push(slab);
      }
      const k = Math.min(n - off, SLAB_BYTES - slab.fill);
      slab.buf.set(k === n ? chunk : chunk.subarray(off, off + k), slab.fill);
      this.#queue.push(slab.buf.subarray(slab.fill, slab.fill + k));
      slab.fill += k;
      slab.pending += k;
      off += k;
    }
  }

  /** Drop every slab (failure, abort): not detached, a write may still be reading them; the collector frees them. */
  #dropSlabs(): void {
    this.#slabs = [];
  }

  override once(event: 'drain', fn: () => void): this {
    return super.once(event, fn);
  }

  /** Emit the owed 'drain' once this object's queue is below its bound and the disk takes writes. */
  maybeDrain(): void {
    if (!this.#owesDrain || this.#queuedBytes >= this.#highWaterMark || this.#stall.blocked) return;
    this.#owesDrain = false;
    this.emit('drain');
  }

  async close(): Promise<void> {
    this.#beginSettle('close');
    try {
      await this.#finish();
    } finally {
      this.#live.delete(this);
    }
  }

  async #finish(): Promise<void> {
    await this.#flushed();
    // No write runs now: the last, partly filled slab is free to go.
    for (const slab of this.#slabs) if (slab.pending === 0) freeNow(slab.buf);
    this.#dropSlabs();
    if (this.#error === undefined && this.#fh === null) {
      try {
        this.#fh = await this.#openTemp(); // an object no byte was written to
      } catch (error) {
        this.#fail(error);
      }
    }
    const fh = this.#fh;
    this.#fh = null;
    if (this.#error !== undefined || fh === null) {
      await fh?.close().catch(() => {});
      await rm(this.#tempPath, { force: true }).catch(() => {});
      throw this.#wrap(this.#error);
    }
    // A failed fsync is not retried. After one, Linux has marked the dirty pages clean or
    // dropped them and reports the error once (errseq_t): a second fsync succeeds with the
    // bytes possibly not on the device (PostgreSQL's "fsyncgate", 2018). So the object fails
    // (sluice_sink_failures_total{reason="io"}) and its temp file is removed. A sink with
    // `spool: true` writes it again from its spool segment, the retained data, as a new
    // upload; without the spool its records are counted as discarded (object_failed). Keeping
    // every open object's bytes in memory until its fsync instead would cost up to
    // max_object_bytes (256 MiB by default) per object.
    try {
      await fh.sync();
    } catch (error) {
      await fh.close().catch(() => {});
      await rm(this.#tempPath, { force: true }).catch(() => {});
      throw this.#wrap(error, 'fsync');
    }
    // The bytes are on the device: an error closing the descriptor changes nothing.
    await fh.close().catch(() => {});
    try {
      await this.#retrying('rename', this.#finalPath, () => rename(this.#tempPath, this.#finalPath));
    } catch (error) {
      await rm(this.#tempPath, { force: true }).catch(() => {});
      throw this.#wrap(error);
    }
    try {
      await this.#fsyncDir(this.#dir);
      // Folders created for this object: their names live in their parents.
      const first = this.#firstMadeDir;
      if (first !== undefined) {
        for (let d = this.#dir; d.length >= first.length; d = path.dirname(d)) await this.#fsyncDir(path.dirname(d));
      }
    } catch (error) {
      // The name is visible but may not survive a crash: take it back so a rejected close
      // never leaves an object behind (the writer counts its records as lost, or its spool
      // sends them again).
      await rm(this.#finalPath, { force: true }).catch(() => {});
      throw this.#wrap(error, 'fsync');
    }
  }

  async abort(): Promise<void> {
    this.#beginSettle('abort');
    this.#aborted = true;
    this.#cancelWait();
    try {
      await this.#flushed();
      this.#queue = [];
      this.#dropSlabs();
      this.#queuedBytes = 0;
      this.#stall.clear(this);
      await this.#fh?.close().catch(() => {});
      this.#fh = null;
    } finally {
      this.#live.delete(this);
    }
    try {
      await rm(this.#tempPath, { force: true });
    } catch (error) {
      throw this.#wrap(error);
    }
  }

  /** Start the pump unless it runs. */
  #kick(): void {
    if (this.#pump !== null) return;
    this.#pump = this.#writeQueue().finally(() => {
      this.#pump = null;
      // A write that came while the pump was finishing.
      if (this.#queue.length > 0 && this.#error === undefined && !this.#aborted) this.#kick();
    });
  }

  /** Resolves when the pump has written everything queued (or failed, or was aborted). */
  async #flushed(): Promise<void> {
    while (this.#pump !== null) await this.#pump;
  }

  /** Write the queue to the temp file, one pwritev at a time, until it is empty. */
  async #writeQueue(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#aborted) {
        const fh = this.#fh ?? (this.#fh = await this.#openTemp());
        if (this.#aborted) return;
        const buffers = this.#queue.length <= IOV_MAX ? this.#queue.slice() : this.#queue.slice(0, IOV_MAX);
        const position = this.#offset;
        const { bytesWritten } = await this.#retrying('write', this.#tempPath, async () => {
          const out = await fh.writev(buffers, position);
          // Only possible without room for a byte: wait like for ENOSPC.
          if (out.bytesWritten === 0) throw Object.assign(new Error('wrote 0 bytes'), { code: 'ENOSPC' });
          return out;
        });
        this.#consume(bytesWritten);
        this.maybeDrain();
      }
    } catch (error) {
      if (!this.#aborted) this.#fail(error);
    }
  }

  /** `n` bytes from the head of the queue are in the file. */
  #consume(n: number): void {
    this.#offset += n;
    this.#queuedBytes -= n;
    // Slabs are filled and written in order: a full one whose bytes are all in the file is freed
    // (no write reads it any more: the one that wrote its last bytes has returned), after the
    // queue has let go of its views.
    let m = n;
    while (n > 0) {
      const head = this.#queue[0]!;
      if (head.byteLength <= n) {
        this.#queue.shift();
        n -= head.byteLength;
      } else {
        // A short write: the rest goes next, at the new offset.
        this.#queue[0] = head.subarray(n);
        n = 0;
      }
    }
    while (m > 0) {
      const slab = this.#slabs[0]!;
      const k = Math.min(m, slab.pending);
      slab.pending -= k;
      m -= k;
      if (slab.pending > 0 || slab.fill < SLAB_BYTES) break;
      this.#slabs.shift();
      freeNow(slab.buf);
    }
  }

  /** mkdir -p the object's folder and create its temp file, each retried while the disk refuses. */
  async #openTemp(): Promise<FileHandle> {
    let first: string | undefined;
    // mkdirEach, not fs.mkdir recursive: on a read-only volume that answers ENOENT (Node 24)
    // rather than EROFS, which would fail the object instead of waiting.
    // A refused try may have made some of the folders: the first one made by any try counts.
    await this.#retrying('mkdir', this.#dir, () => mkdirEach(this.#dir, (made) => (first ??= made)));
    this.#firstMadeDir = first;
    let tries = 0;
    const fh = await this.#retrying('open', this.#tempPath, async () => {
      tries++;
      try {
        return await open(this.#tempPath, 'wx');
      } catch (error) {
        // A refused open that still made the file: the name has 64 random bits, it is ours.
        if (tries > 1 && (error as NodeJS.ErrnoException).code === 'EEXIST') return open(this.#tempPath, 'r+');
        throw error;
      }
    });
    if (this.#aborted) {
      await fh.close().catch(() => {});
      throw new UploadAborted();
    }
    return fh;
  }

  async #fsyncDir(dir: string): Promise<void> {
    const handle = await this.#retrying('open', dir, () => open(dir, 'r'));
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Run `op` until it succeeds, waiting between tries while the disk refuses it (retryableDiskError). */
  async #retrying<T>(what: string, file: string, op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await op();
        if (attempt > 0) this.#stall.clear(this);
        return out;
      } catch (error) {
        const code = retryableDiskError(error);
        if (code === null || this.#aborted) {
          this.#stall.clear(this);
          throw error;
        }
        const delayMs = diskRetryDelayMs(attempt);
        this.#stall.retrying(this, what, file, code, attempt, delayMs);
        await new Promise<void>((resolve) => {
          this.#wait = { timer: setTimeout(resolve, delayMs), resolve };
        });
        this.#wait = null;
        if (this.#aborted) {
          this.#stall.clear(this);
          throw new UploadAborted();
        }
      }
    }
  }

  #cancelWait(): void {
    const w = this.#wait;
    if (w === null) return;
    clearTimeout(w.timer);
    w.resolve();
  }

  /** A failure no retry helps: what is queued and written from now on is discarded; close() reports it. */
  #fail(error: unknown): void {
    this.#error ??= error;
    this.#queue = [];
    this.#dropSlabs();
    this.#queuedBytes = 0;
    // A waiting writer must not hang on a dead upload.
    this.#owesDrain = false;
    this.emit('drain');
  }

  #beginSettle(what: string): void {
    if (this.#settling) {
      throw new SluiceError(ERR_SINK_STATE, `file sink: ${what}() on ${this.#finalPath} after close/abort`);
    }
    this.#settling = true;
  }

  #wrap(error: unknown, op?: string): unknown {
    if (error instanceof SluiceError) return error;
    return new SluiceError(
      ERR_SINK_WRITE,
      `file sink: could not ${op ?? 'write'} ${this.#finalPath} (${errorCode(error)})`,
      { cause: error },
    );
  }
}

/**
 * mkdir -p one directory at a time. `fs.mkdir(..., { recursive: true })` never returns for a
 * path under /proc (Node 24 retries forever, at 100% of a libuv thread), which would hang the
 * start on a mistyped `path`; this answers ENOENT there, like any other mkdir. `made` is told
 * each directory it created.
 */
async function mkdirEach(dir: string, made?: (dir: string) => void): Promise<void> {
  const parts = path
    .resolve(dir)
    .split(path.sep)
    .filter((p) => p !== '');
  let current: string = path.sep;
  for (const part of parts) {
    current = path.join(current, part);
    try {
      await mkdir(current);
      made?.(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
