/**
 * One compressed frame per batch. Every frame is independent (a whole zstd frame, a whole gzip
 * member), so an object made of concatenated frames reads whole with `zstd -d` and `gzip -d`
 * (node:zlib: see below), and the object writer can append frames from any worker in any grouping.
 *
 * zstd runs on the libzstd bundled with Node 24 (1.5.7), synchronously on the worker thread:
 * through the native addon zstd-native.ts loads (one context per thread, reused), or, when it
 * is not built, through node:zlib's zstdCompressSync, which makes and frees a context and a
 * stream per call. Both write byte-identical frames; the addon is 462 vs 498 ns/line at level 1
 * and 567 vs 635 at level 3 (bench/compress.bench.ts, 2026-11-23, one quiet run).
 * @mongodb-js/zstd was measured too and only has an async API that hops to the libuv
 * threadpool; numbers and the choice of default are in bench/compress.bench.ts and below.
 *
 * Reading such objects back in Node: zlib.gunzipSync reads every gzip member, but
 * zlib.zstdDecompressSync (and a zstd decompress stream fed several frames in one chunk) stops
 * after the FIRST zstd frame and silently drops the rest (Node 24.21; nodejs/node#64741, fix PR
 * #64748 closed unmerged). Use {@link decompressObject}, which decodes frame by frame.
 */
import { constants, gunzipSync, gzipSync, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { loadNativeZstd, type NativeZstdAddon } from './zstd-native.ts';
import { isSkippableFrame, zstdFrameEnd, ZstdFrameError } from './zstd-frame.ts';

export type Codec = 'zstd' | 'gzip' | 'none';

export const CODECS: readonly Codec[] = ['zstd', 'gzip', 'none'];

/**
 * Default levels, by bench/compress.bench.ts (290 KB of NDJSON from a 256 KiB span of Talos
 * records, one thread). zstd 1: on a quiet machine 517 ns per line against 659 for level 3
 * (2026-11-23, median of 7 rounds, the same batch) for 0.6% more bytes (7.98x vs 8.03x; 1.9%
 * more on 256 KiB of dpkg.log). Compression is the largest single cost of a worker, and CPU per
 * line is what a 2-core DaemonSet pays for, so the default is 1 and `compression_level` buys
 * the ratio back. zstd 6 stores 12% fewer bytes at ~5x the CPU of level 1. gzip 6 (zlib's own
 * default) is 67 MB/s at 7.08x. @mongodb-js/zstd's native binding runs at the same speed as
 * node:zlib but only asynchronously, on libuv's shared threadpool (4 threads) instead of the
 * piscina thread, so it was not used.
 */
export const DEFAULT_LEVELS: Readonly<Record<'zstd' | 'gzip', number>> = { zstd: 1, gzip: 6 };

/**
 * Valid levels: zstd 1..22 (node:zlib silently maps a level of -1 to the default, so negative
 * "fast" levels are not offered); zlib 0 (stored) to 9.
 */
export const LEVEL_RANGES: Readonly<Record<'zstd' | 'gzip', readonly [number, number]>> = {
  zstd: [1, 22],
  gzip: [0, 9],
};

/** Which zstd implementation compressFrame uses in this thread. */
export type ZstdImplementation = 'native' | 'zlib';

let nativeZstd: NativeZstdAddon | null = null;
let nativeTried = false;

/**
 * Choose this thread's zstd implementation: `auto` (the default) takes the native addon when it
 * loads, `native` insists on it, `zlib` is node:zlib. Returns the one in use.
 * @throws Error for `native` when the addon does not load, with the reason.
 */
export function selectZstd(mode: 'auto' | ZstdImplementation): ZstdImplementation {
  nativeTried = true;
  nativeZstd = null;
  if (mode === 'zlib') return 'zlib';
  const load = loadNativeZstd();
  if (load.ok) nativeZstd = load.addon;
  else if (mode === 'native') throw new Error(`native zstd: ${load.reason}`);
  return nativeZstd === null ? 'zlib' : 'native';
}

/** The zstd implementation compressFrame uses in this thread. */
export function zstdImplementation(): ZstdImplementation {
  if (!nativeTried) selectZstd('auto');
  return nativeZstd === null ? 'zlib' : 'native';
}

/**
 * Compress `data` into ONE independent frame of `codec` at `level` (default {@link DEFAULT_LEVELS}).
 * The result owns its whole ArrayBuffer (byteOffset 0), so it can be transferred across threads
 * without dragging along, or detaching, memory that belongs to anyone else. 'none' returns a copy.
 * @throws RangeError for a level outside {@link LEVEL_RANGES} or an unknown codec.
 */
export function compressFrame(codec: Codec, data: Uint8Array, level?: number): Uint8Array {
  // new Uint8Array(view) copies into a fresh, exactly sized ArrayBuffer (Buffer#slice would be a view).
  if (codec === 'none') return new Uint8Array(data);
  if (codec !== 'zstd' && codec !== 'gzip')
    throw new RangeError(`unknown codec ${JSON.stringify(codec)}: expected zstd, gzip or none`);
  const lvl = level ?? DEFAULT_LEVELS[codec];
  const [min, max] = LEVEL_RANGES[codec];
  if (!Number.isInteger(lvl) || lvl < min || lvl > max) {
    throw new RangeError(`${codec} level must be an integer between ${min} and ${max}, got ${lvl}`);
  }
  if (codec === 'zstd' && zstdImplementation() === 'native') {
    // A 4-byte XXH64 per frame and the content size, as below: the same bytes as node:zlib writes.
    return new Uint8Array(nativeZstd!.zstdCompress(data, lvl, true));
  }
  const out =
    codec === 'zstd'
      ? zstdCompressSync(data, {
          // The content size in the frame header lets readers size their buffers and shrinks the window.
          pledgedSrcSize: data.length,
          params: {
            [constants.ZSTD_c_compressionLevel]: lvl,
            // A 4-byte XXH64 per frame, as the zstd CLI writes by default, so `zstd -t` can verify stored
            // objects: within noise on bench/compress (310 MB/s vs 328 without it and the pledged size).
            [constants.ZSTD_c_checksumFlag]: 1,
          },
        })
      : gzipSync(data, { level: lvl });
  return ownsBuffer(out) ? out : new Uint8Array(out);
}

/** zlib's sync output is often a view into a larger chunk: transferring that would move the whole chunk. */
function ownsBuffer(a: Uint8Array): boolean {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer);
}

/**
 * Byte length of the zstd frame (or skippable frame) starting at `data[off]` (zstd-frame.ts).
 * @throws RangeError when the bytes there are not a whole frame.
 */
export function zstdFrameLength(data: Uint8Array, off: number): number {
  let end: number;
  try {
    end = zstdFrameEnd(data, off, data.length);
  } catch (err) {
    if (!(err instanceof ZstdFrameError)) throw err;
    throw new RangeError(
      err.problem === 'reserved_block'
        ? `reserved zstd block type at byte ${err.at}`
        : `not a zstd frame at byte ${off}`,
    );
  }
  if (end < 0) throw new RangeError(`truncated zstd frame at byte ${off}`);
  return end - off;
}

/**
 * Decompress a whole object made of concatenated frames of `codec`. Tooling and tests: Node's own
 * zstdDecompressSync would return only the first zstd frame (see the file header).
 * @throws on corrupt input.
 */
export function decompressObject(codec: Codec, data: Uint8Array): Buffer {
  if (codec === 'none') return Buffer.from(data);
  if (codec === 'gzip') return gunzipSync(data);
  const parts: Buffer[] = [];
  let off = 0;
  while (off < data.length) {
    const len = zstdFrameLength(data, off);
    if (!isSkippableFrame(data, off)) {
      parts.push(zstdDecompressSync(data.subarray(off, off + len)));
    }
    off += len;
  }
  return Buffer.concat(parts);
}
