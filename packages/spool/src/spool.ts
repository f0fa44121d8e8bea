/**
 * Spool: a sink's write-ahead log on local disk, `<data_dir>/spool/<sink_id>/`.
 *
 *   open(meta) ──► <seq>.seg (header) ──append(frame)*──► seal() (fsync) ──► remove() (unlink)
 *                                                    object complete ─────────┘
 *
 * One segment per object (segment.ts has the format). Everything runs on the main thread
 * with synchronous fs calls: an append is one writev of a 20-byte header and the frame (one
 * per worker batch, ~64 KiB to 1 MiB, never per record), so "appended" means "in the page
 * cache"; `sync` decides when it is also on the device:
 *
 * - `per_batch`: fdatasync after every append (and fsync of the directory when a segment is
 *   created). Survives power loss for every appended frame.
 * - `interval`: fdatasync of the segments written to, every `syncIntervalMs`, and of a
 *   segment when it is sealed (its object is about to complete). A process crash (kill -9,
 *   OOM) loses nothing appended (the kernel keeps the page cache); a power loss loses at most
 *   the last interval of frames whose objects are not complete.
 *
 * Bounded by `maxBytes` (the sum of the segment files): hasRoom() tells the caller before an
 * append; what to do when it is false (block, drop) is the caller's policy. An append that
 * fails (ENOSPC, EIO) is cut back to the last whole record and reported as false, with the
 * error in `lastError`: the caller may wait and append the same frame again (a full disk).
 */
import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  encodeRecordHeader,
  encodeSegmentHeader,
  RECORD_HEADER_BYTES,
  SegmentReader,
  type SegmentMeta,
} from './segment.ts';

export type SpoolSync = 'per_batch' | 'interval';

export interface SpoolOptions {
  /** `<data_dir>/spool/<sink_id>`; created if missing. */
  dir: string;
  maxBytes: number;
  sync: SpoolSync;
  /** For `interval`. */
  syncIntervalMs: number;
  /** Tests: stand-in for fs.writevSync (to fail like a full disk). */
  writev?: (fd: number, buffers: readonly NodeJS.ArrayBufferView[]) => number;
}

/** A segment being written. Handles are opaque to callers. */
export class Segment {
  readonly seq: number;
  readonly path: string;
  readonly meta: SegmentMeta;
  fd: number;
  size: number;
  frames = 0;
  records = 0;
  dirty = false;

  constructor(seq: number, path: string, meta: SegmentMeta, fd: number, size: number) {
    this.seq = seq;
    this.path = path;
    this.meta = meta;
    this.fd = fd;
    this.size = size;
  }
}

export interface SpoolStats {
  appendedFrames: number;
  appendedRecords: number;
  /** Appends refused by an I/O error (the frame is not in the spool). */
  failedAppends: number;
  syncs: number;
}

const SEGMENT_RE = /^(\d{16})\.seg$/;
/** Room reserved for a new segment's header when hasRoom() is asked with no segment open. */
const HEADER_RESERVE = 1100;

export class Spool {
  readonly dir: string;
  readonly maxBytes: number;
  readonly stats: SpoolStats = { appendedFrames: 0, appendedRecords: 0, failedAppends: 0, syncs: 0 };
  /** Bytes of every segment file in the directory (live and not yet recovered). */
  bytes = 0;
  /** Why the last append() that answered false failed (its errno code tells a full disk). */
  lastError: unknown = undefined;
  readonly #sync: SpoolSync;
  readonly #live = new Set<Segment>();
  readonly #hdr = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  readonly #writev: (fd: number, buffers: readonly NodeJS.ArrayBufferView[]) => number;
  /** Segments found at construction, by path, with their size: what scan() reads. */
  readonly #found = new Map<string, number>();
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: SpoolOptions) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.#sync = opts.sync;
    this.#writev = opts.writev ?? writevSync;
    mkdirSync(this.dir, { recursive: true });
    for (const name of readdirSync(this.dir).sort()) {
      const m = SEGMENT_RE.exec(name);
      if (m === null) continue;
      const path = join(this.dir, name);
      const size = statSync(path).size;
      this.#found.set(path, size);
      this.bytes += size;
      this.#seq = Math.max(this.#seq, Number(m[1]) + 1);
    }
    if (this.#sync === 'interval') {
      this.#timer = setInterval(() => this.syncNow(), opts.syncIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Segments left by an earlier run (a crash, or objects given up at a shutdown deadline), in
   * the order they were written. Read each, then forget() it once its object is stored.
   */
  scan(): SegmentReader[] {
    return Array.from(this.#found.keys(), (p) => new SegmentReader(p));
  }

  /** An earlier run's segment is dealt with (uploaded, or unreadable and counted): delete it. */
  forget(path: string): void {
    const size = this.#found.get(path);
    if (size === undefined) return;
    this.#found.delete(path);
    this.bytes -= size;
    unlinkQuiet(path);
  }

  /** Whether a frame of `payloadBytes` fits (with a new segment's header when `newSegment`). */
  hasRoom(payloadBytes: number, newSegment: boolean): boolean {
    return this.bytes + RECORD_HEADER_BYTES + payloadBytes + (newSegment ? HEADER_RESERVE : 0) <= this.maxBytes;
  }

  /** Start the segment of a new object. Throws on an I/O error (the caller counts it). */
  open(meta: SegmentMeta): Segment {
    const seq = this.#seq++;
    const path = join(this.dir, `${String(seq).padStart(16, '0')}.seg`);
    const header = encodeSegmentHeader(meta);
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, header);
      if (this.#sync === 'per_batch') {
        fdatasyncSync(fd);
        syncDir(this.dir);
      }
    } catch (err) {
      closeSync(fd);
      unlinkQuiet(path);
      throw err;
    }
    const seg = new Segment(seq, path, meta, fd, header.length);
    this.bytes += header.length;
    this.#live.add(seg);
    return seg;
  }

  /**
   * Append one frame. true: in the segment (and on the device with per_batch). false: an I/O
   * error (ENOSPC, EIO); the segment is cut back to its last whole record.
   */
  append(seg: Segment, bytes: Uint8Array, records: number, rawBytes: number): boolean {
    const hdr = this.#hdr;
    encodeRecordHeader(hdr, bytes, records, rawBytes);
    const want = RECORD_HEADER_BYTES + bytes.byteLength;
    try {
      let n = this.#writev(seg.fd, [hdr, bytes]);
      // writev may write less than asked (rare on files): finish the rest.
      while (n < want) {
        const rest =
          n < RECORD_HEADER_BYTES ? Buffer.concat([hdr.subarray(n), bytes]) : bytes.subarray(n - RECORD_HEADER_BYTES);
        const m = writeSync(seg.fd, rest);
        if (m <= 0) throw new Error('short write');
        n += m;
      }
      if (this.#sync === 'per_batch') {
        fdatasyncSync(seg.fd);
        this.stats.syncs++;
      } else {
        seg.dirty = true;
      }
    } catch (err) {
      this.stats.failedAppends++;
      this.lastError = err;
      try {
        ftruncateSync(seg.fd, seg.size);
      } catch {
        // The next open of the file finds a torn tail and reports it.
      }
      return false;
    }
    seg.size += want;
    seg.frames++;
    seg.records += records;
    this.bytes += want;
    this.stats.appendedFrames++;
    this.stats.appendedRecords += records;
    return true;
  }

  /** The segment's object is about to complete: make the segment durable first. */
  seal(seg: Segment): void {
    if (!seg.dirty || seg.fd < 0) return;
    seg.dirty = false;
    try {
      fdatasyncSync(seg.fd);
      this.stats.syncs++;
    } catch {
      // Reported by the object path if the disk is gone; the object itself is still uploaded.
    }
  }

  /** The segment's object is complete: delete the segment. Idempotent. */
  remove(seg: Segment): void {
    if (!this.#live.delete(seg)) return;
    closeQuiet(seg.fd);
    seg.fd = -1;
    unlinkQuiet(seg.path);
    this.bytes -= seg.size;
  }

  /** fdatasync every segment written to since its last sync (the `interval` timer). */
  syncNow(): void {
    for (const seg of this.#live) this.seal(seg);
  }

  /** Stop the timer, sync and close every segment. Segments stay on disk for the next start. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const seg of this.#live) {
      this.seal(seg);
      closeQuiet(seg.fd);
      seg.fd = -1;
    }
    this.#live.clear();
  }

  /** Segments being written now. */
  get liveSegments(): number {
    return this.#live.size;
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function closeQuiet(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
