/**
 * Spool segment files: one per object, so a segment is removed exactly when its object is
 * complete, and recovering a segment re-creates exactly one object.
 *
 *   segment = header | record*
 *
 *   header (12 + metaLen bytes):
 *    0      4      6        8        12
 *    | SLSG | ver  | metaLen| crc32  | meta (UTF-8 JSON: { key, codec, createdAtMs }) |
 *                            └ crc32 of meta
 *
 *   record (20 + len bytes):
 *    0      4      8         12        16       20
 *    | SLRC | len  | records | rawBytes| crc32  | payload (one compressed frame, len bytes) |
 *                                       └ crc32 of bytes 4..16 of the header, then the payload
 *
 * Integers are little-endian u32. node:zlib's crc32 (Node 22.2+) is CRC-32 (IEEE), in C.
 * Plain binary rather than msgpackr for the record header: it is a fixed 20 bytes written
 * into one preallocated buffer per append, no allocation; the once-per-object meta is JSON
 * (bench/spool.bench.ts measures both against msgpackr-free alternatives).
 *
 * Reading stops at the first record that is not whole (torn: the file ends inside it) or
 * does not verify (corrupt: bad magic, or a checksum mismatch); everything before it is the
 * good prefix, everything from it on is reported, never thrown.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';

const SEGMENT_MAGIC = 0x47534c53; // 'SLSG' little-endian
const RECORD_MAGIC = 0x43524c53; // 'SLRC' little-endian
const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 12;
export const RECORD_HEADER_BYTES = 20;
/** A meta longer than this is corrupt (keys are at most 1024 bytes in S3). */
const MAX_META_BYTES = 4096;

/** What a segment says about its object. */
export interface SegmentMeta {
  /** The object key the frames were written to. */
  key: string;
  codec: string;
  createdAtMs: number;
}

/** One frame read back. */
export interface SpooledFrame {
  bytes: Uint8Array;
  records: number;
  rawBytes: number;
}

/** Why reading stopped before the end of the file. */
export type TailProblem = 'torn' | 'corrupt' | 'bad_header';

export interface SegmentTail {
  /** null: the file ended exactly after the last good record. */
  problem: TailProblem | null;
  /** Bytes of the good prefix (header included). */
  goodBytes: number;
  /** Bytes after the good prefix, not recovered. */
  lostBytes: number;
  /** Good records (frames) read. */
  frames: number;
}

export function encodeSegmentHeader(meta: SegmentMeta): Buffer {
  const body = Buffer.from(JSON.stringify(meta), 'utf8');
  const out = Buffer.allocUnsafe(SEGMENT_HEADER_BYTES + body.length);
  out.writeUInt32LE(SEGMENT_MAGIC, 0);
  out.writeUInt16LE(SEGMENT_VERSION, 4);
  out.writeUInt16LE(body.length, 6);
  out.writeUInt32LE(crc32(body), 8);
  body.copy(out, SEGMENT_HEADER_BYTES);
  return out;
}

/** Fill `hdr` (RECORD_HEADER_BYTES, reused by the caller) for one frame. */
export function encodeRecordHeader(hdr: Buffer, payload: Uint8Array, records: number, rawBytes: number): void {
  hdr.writeUInt32LE(RECORD_MAGIC, 0);
  hdr.writeUInt32LE(payload.byteLength, 4);
  hdr.writeUInt32LE(records >>> 0, 8);
  hdr.writeUInt32LE(rawBytes >>> 0, 12);
  hdr.writeUInt32LE(crc32(payload, crc32(hdr.subarray(4, 16))), 16);
}

/**
 * Reads one segment front to back, frame by frame (memory: one frame), never throwing for
 * what is in the file. `meta` is null when the header itself is torn or corrupt.
 */
export class SegmentReader {
  readonly path: string;
  readonly meta: SegmentMeta | null;
  readonly size: number;
  #fd: number;
  #pos = 0;
  #frames = 0;
  #problem: TailProblem | null = null;
  #done = false;
  readonly #hdr = Buffer.allocUnsafe(RECORD_HEADER_BYTES);

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, 'r');
    this.size = fstatSync(this.#fd).size;
    this.meta = this.#readMeta();
    if (this.meta === null) {
      this.#problem = 'bad_header';
      this.#finish();
    }
  }

  #readMeta(): SegmentMeta | null {
    if (this.size < SEGMENT_HEADER_BYTES) return null;
    const h = Buffer.allocUnsafe(SEGMENT_HEADER_BYTES);
    readSync(this.#fd, h, 0, SEGMENT_HEADER_BYTES, 0);
    if (h.readUInt32LE(0) !== SEGMENT_MAGIC || h.readUInt16LE(4) !== SEGMENT_VERSION) return null;
    const len = h.readUInt16LE(6);
    if (len > MAX_META_BYTES || SEGMENT_HEADER_BYTES + len > this.size) return null;
    const body = Buffer.allocUnsafe(len);
    readSync(this.#fd, body, 0, len, SEGMENT_HEADER_BYTES);
    if (crc32(body) !== h.readUInt32LE(8)) return null;
    try {
      const m = JSON.parse(body.toString('utf8')) as Partial<SegmentMeta>;
      if (typeof m.key !== 'string' || typeof m.codec !== 'string' || typeof m.createdAtMs !== 'number') return null;
      this.#pos = SEGMENT_HEADER_BYTES + len;
      return { key: m.key, codec: m.codec, createdAtMs: m.createdAtMs };
    } catch {
      return null;
    }
  }

  /** The next good frame, or null at the end of the good prefix (see tail()). */
  next(): SpooledFrame | null {
    if (this.#done) return null;
    const rest = this.size - this.#pos;
    if (rest === 0) return this.#finish();
    const hdr = this.#hdr;
    if (rest < RECORD_HEADER_BYTES) {
      this.#problem = 'torn';
      return this.#finish();
    }
    readSync(this.#fd, hdr, 0, RECORD_HEADER_BYTES, this.#pos);
    if (hdr.readUInt32LE(0) !== RECORD_MAGIC) {
      this.#problem = 'corrupt';
      return this.#finish();
    }
    const len = hdr.readUInt32LE(4);
    if (RECORD_HEADER_BYTES + len > rest) {
      // A flipped length bit also lands here; either way the rest is not recoverable.
      this.#problem = 'torn';
      return this.#finish();
    }
    const payload = Buffer.allocUnsafe(len);
    if (len > 0) readSync(this.#fd, payload, 0, len, this.#pos + RECORD_HEADER_BYTES);
    if (crc32(payload, crc32(hdr.subarray(4, 16))) !== hdr.readUInt32LE(16)) {
      this.#problem = 'corrupt';
      return this.#finish();
    }
    this.#pos += RECORD_HEADER_BYTES + len;
    this.#frames++;
    return { bytes: payload, records: hdr.readUInt32LE(8), rawBytes: hdr.readUInt32LE(12) };
  }

  /** Where reading stopped; final once next() returned null. */
  tail(): SegmentTail {
    return { problem: this.#problem, goodBytes: this.#pos, lostBytes: this.size - this.#pos, frames: this.#frames };
  }

  /** Read to the end of the good prefix (counting) and close. */
  drainAndClose(): SegmentTail {
    while (this.next() !== null);
    return this.tail();
  }

  close(): void {
    if (this.#fd >= 0) {
      closeSync(this.#fd);
      this.#fd = -1;
    }
  }

  #finish(): null {
    this.#done = true;
    this.close();
    return null;
  }
}
