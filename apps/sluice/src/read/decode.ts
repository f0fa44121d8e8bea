/**
 * An object's stored bytes → its NDJSON bytes, in buffers, streaming.
 *
 * zstd: Node 24's zstd decoders stop after an object's first frame without an error
 * (nodejs/node#64741, docs/architecture.md "Objects"), and an object is one frame per worker
 * batch. So frames are found here by walking their headers and block headers (RFC 8878 §3.1,
 * no decompression needed) and each is decompressed on its own with node:zlib's async
 * zstdDecompress, on libuv's thread pool: the main thread only scans. Several frames are in
 * flight at once, in order. gzip: node:zlib's gunzip reads concatenated members itself.
 */
import { createGunzip, zstdDecompress, zstdDecompressSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { isSkippableFrame, zstdFrameEnd, ZstdFrameError } from '@sluice/worker/zstd-frame';

export type Codec = 'zstd' | 'gzip' | 'none';

/** The codec an object's key names (`.ndjson.zst`, `.ndjson.gz`, `.ndjson`), or undefined. */
export function codecOfKey(key: string): Codec | undefined {
  if (key.endsWith('.ndjson.zst')) return 'zstd';
  if (key.endsWith('.ndjson.gz')) return 'gzip';
  if (key.endsWith('.ndjson')) return 'none';
  return undefined;
}

/** The reason an object could not be read, with the byte offset where it went wrong. */
export class ObjectDecodeError extends Error {}

/** A Sluice frame holds one worker batch (~256 KiB); a frame claiming more is not ours to trust. */
const MAX_FRAME_OUTPUT_BYTES = 256 * 1024 * 1024;
/** Sluice frames hold ~256 KiB batches (and a little more with tags). */
const FRAME_CHUNK_BYTES = 256 * 1024;
/** Frames decompressing at once per object: 4 keeps libuv's 4 threads fed from 2-3 objects. */
const FRAMES_IN_FLIGHT = 4;

/**
 * End offset of the zstd frame (or skippable frame) starting at `pos`, -1 when `buf` ends
 * before it does (zstd-frame.ts); `info.contentSize` gets its declared content size (0: not given).
 * @throws ObjectDecodeError when the bytes at `pos` are not a frame.
 */
function frameEnd(buf: Uint8Array, pos: number, end: number, info: { contentSize: number }): number {
  try {
    return zstdFrameEnd(buf, pos, end, info);
  } catch (err) {
    if (!(err instanceof ZstdFrameError)) throw err;
    throw new ObjectDecodeError(
      err.problem === 'not_a_frame' ? `no zstd frame at byte ${pos} (not zstd, or corrupt)` : err.message,
    );
  }
}

function decompressFrame(frame: Uint8Array, offset: number, contentSize: number): Promise<Buffer> {
  // One output chunk of exactly the frame's size: zlib's default 16 KiB chunks cost the main
  // thread a callback each and a Buffer.concat per frame (zlib was 12 % of a read's profile),
  // a fixed 1 MiB one allocates 4x what a 256 KiB batch needs (GC 16 %).
  const chunkSize =
    contentSize > 0 && contentSize <= MAX_FRAME_OUTPUT_BYTES ? Math.max(64, contentSize) : FRAME_CHUNK_BYTES;
  return new Promise((resolve, reject) => {
    zstdDecompress(frame, { maxOutputLength: MAX_FRAME_OUTPUT_BYTES, chunkSize }, (err, out) => {
      if (err !== null) reject(new ObjectDecodeError(`zstd frame at byte ${offset}: ${err.message}`));
      else resolve(out);
    });
  });
}

/** Each zstd frame of `chunks`, decompressed, in order; FRAMES_IN_FLIGHT at a time. */
async function* zstdFrames(chunks: AsyncIterable<Uint8Array>, counter: { bytes: number }): AsyncIterable<Buffer> {
  const info = { contentSize: 0 };
  const inFlight: Promise<Buffer>[] = [];
  // A frame cut by a chunk boundary is copied once into a buffer of its own (never reused:
  // a decompression in flight still reads it).
  let pending: Uint8Array | null = null;
  let offset = 0; // object offset of pending[0] / of the chunk's first unconsumed byte
  try {
    for await (const chunk of chunks) {
      counter.bytes += chunk.length;
      let buf: Uint8Array;
      if (pending !== null) {
        const joined = new Uint8Array(pending.length + chunk.length);
        joined.set(pending, 0);
        joined.set(chunk, pending.length);
        buf = joined;
        pending = null;
      } else {
        buf = chunk;
      }
      let pos = 0;
      for (;;) {
        let end: number;
        try {
          end = frameEnd(buf, pos, buf.length, info);
        } catch (err) {
          // What came before the bad bytes is printed first (as a scan worker does).
          while (inFlight.length > 0) yield await inFlight.shift()!;
          throw err;
        }
        if (end < 0) break;
        if (!isSkippableFrame(buf, pos))
          inFlight.push(decompressFrame(buf.subarray(pos, end), offset + pos, info.contentSize));
        pos = end;
        if (inFlight.length >= FRAMES_IN_FLIGHT) yield await inFlight.shift()!;
      }
      offset += pos;
      if (pos < buf.length) pending = buf.slice(pos);
    }
    while (inFlight.length > 0) yield await inFlight.shift()!;
    if (pending !== null)
      throw new ObjectDecodeError(`truncated zstd frame at byte ${offset} (${pending.length} bytes left)`);
  } finally {
    // Whatever stopped us, no rejection may go unhandled.
    for (const p of inFlight) p.catch(() => undefined);
  }
}

/**
 * An object's zstd frames fed in chunks, each decompressed synchronously as soon as it is
 * whole: for a scan worker, whose thread exists to do exactly that (the async path's
 * callbacks and promises were 24 % of the main thread's profile).
 */
export class ZstdFrameDecoder {
  /** A frame cut by a chunk boundary, copied. */
  #pending: Uint8Array | null = null;
  /** Object offset of the first byte not yet decompressed. */
  #offset = 0;
  /** The declared content size of the frame last walked. */
  readonly #info = { contentSize: 0 };

  /** Decompresses the frames `chunk` completes; `onFrame` gets each one's bytes, in order. */
  push(chunk: Uint8Array, onFrame: (out: Buffer) => void): void {
    let buf = chunk;
    if (this.#pending !== null) {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending, 0);
      buf.set(chunk, this.#pending.length);
      this.#pending = null;
    }
    let pos = 0;
    for (;;) {
      const end = frameEnd(buf, pos, buf.length, this.#info);
      if (end < 0) break;
      if (!isSkippableFrame(buf, pos))
        onFrame(decompressFrameSync(buf.subarray(pos, end), this.#offset + pos, this.#info.contentSize));
      pos = end;
    }
    this.#offset += pos;
    if (pos < buf.length) this.#pending = buf.slice(pos);
  }

  /** @throws ObjectDecodeError when the object ends inside a frame. */
  finish(): void {
    if (this.#pending !== null)
      throw new ObjectDecodeError(`truncated zstd frame at byte ${this.#offset} (${this.#pending.length} bytes left)`);
  }
}

function decompressFrameSync(frame: Uint8Array, offset: number, contentSize: number): Buffer {
  // One output chunk of the frame's size, as decompressFrame.
  const chunkSize =
    contentSize > 0 && contentSize <= MAX_FRAME_OUTPUT_BYTES ? Math.max(64, contentSize) : FRAME_CHUNK_BYTES;
  try {
    return zstdDecompressSync(frame, { maxOutputLength: MAX_FRAME_OUTPUT_BYTES, chunkSize });
  } catch (err) {
    throw new ObjectDecodeError(`zstd frame at byte ${offset}: ${(err as Error).message}`);
  }
}

async function* counted(chunks: AsyncIterable<Uint8Array>, counter: { bytes: number }): AsyncIterable<Uint8Array> {
  for await (const chunk of chunks) {
    counter.bytes += chunk.length;
    yield chunk;
  }
}

/**
 * The NDJSON bytes of an object, in buffers of any size (lines may straddle them).
 * `counter.bytes` grows by the stored bytes as they are read.
 * @throws ObjectDecodeError (or the store's error) when the object cannot be read whole.
 */
export async function* decoded(
  chunks: AsyncIterable<Uint8Array>,
  codec: Codec,
  counter: { bytes: number },
): AsyncIterable<Uint8Array> {
  if (codec === 'zstd') {
    yield* zstdFrames(chunks, counter);
  } else if (codec === 'gzip') {
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    const source = Readable.from(counted(chunks, counter), { objectMode: false });
    source.on('error', (err) => gunzip.destroy(err));
    source.pipe(gunzip);
    try {
      for await (const out of gunzip) yield out as Buffer;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code?.startsWith('Z_') === true)
        throw new ObjectDecodeError(`gzip: ${(err as Error).message}`);
      throw err;
    } finally {
      source.destroy();
    }
  } else {
    yield* counted(chunks, counter);
  }
}
