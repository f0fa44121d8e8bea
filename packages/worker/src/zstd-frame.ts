/**
 * The zstd frame walker: where a frame (or skippable frame) ends, from its header and block
 * headers (RFC 8878 section 3.1), without decompressing it. One walker for the worker's
 * decompressObject (whole objects) and `sluice read` (objects streamed in chunks, where a frame
 * may not have arrived whole yet). Node's zstd decoder stops after the first frame of a
 * concatenation, so both decompress frame by frame.
 */

export const ZSTD_MAGIC = 0xfd2fb528;
export const ZSTD_SKIPPABLE_MASK = 0xfffffff0;
export const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;

/** Bytes at `pos` that are not a zstd frame; `problem` says why, `at` where. */
export class ZstdFrameError extends Error {
  readonly problem: 'not_a_frame' | 'reserved_bit' | 'reserved_block';
  readonly at: number;

  constructor(problem: ZstdFrameError['problem'], pos: number, at: number) {
    super(
      problem === 'not_a_frame'
        ? `not a zstd frame at byte ${pos}`
        : problem === 'reserved_bit'
          ? `zstd frame at byte ${pos}: reserved bit set`
          : `zstd frame at byte ${pos}: reserved block type at byte ${at}`,
    );
    this.problem = problem;
    this.at = at;
  }
}

function u32(buf: Uint8Array, pos: number): number {
  return (buf[pos]! | (buf[pos + 1]! << 8) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 24)) >>> 0;
}

/** Whether the 4 bytes at `pos` open a skippable frame (its bytes are not data). */
export function isSkippableFrame(buf: Uint8Array, pos: number): boolean {
  return (u32(buf, pos) & ZSTD_SKIPPABLE_MASK) >>> 0 === ZSTD_SKIPPABLE_MAGIC;
}

/**
 * End offset of the frame starting at `pos` within `buf[..end)`, or -1 when `end` comes before
 * the frame does (more bytes needed). `info.contentSize` gets the frame's declared content size
 * (0: not given). @throws ZstdFrameError when the bytes at `pos` are not a frame.
 */
export function zstdFrameEnd(buf: Uint8Array, pos: number, end: number, info?: { contentSize: number }): number {
  if (end - pos < 8) {
    if (end - pos < 4) return -1;
    const magic = u32(buf, pos);
    if (magic === ZSTD_MAGIC || isSkippableFrame(buf, pos)) return -1;
    throw new ZstdFrameError('not_a_frame', pos, pos);
  }
  if (isSkippableFrame(buf, pos)) {
    const size = u32(buf, pos + 4);
    if (info !== undefined) info.contentSize = 0;
    return pos + 8 + size <= end ? pos + 8 + size : -1;
  }
  if (u32(buf, pos) !== ZSTD_MAGIC) throw new ZstdFrameError('not_a_frame', pos, pos);
  const fhd = buf[pos + 4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  if ((fhd >> 3) & 1) throw new ZstdFrameError('reserved_bit', pos, pos + 4);
  const checksum = (fhd >> 2) & 1;
  const dictIdSize = [0, 1, 2, 4][fhd & 3]!;
  const fcsSize = [singleSegment, 2, 4, 8][fcsFlag]!;
  let p = pos + 5 + (singleSegment ? 0 : 1) + dictIdSize + fcsSize;
  if (p > end) return -1;
  if (info !== undefined) {
    // Frame_Content_Size (little endian; the 2-byte form is offset by 256), 0 = not given.
    let fcs = 0;
    for (let i = fcsSize - 1; i >= 0; i--) fcs = fcs * 256 + buf[p - fcsSize + i]!;
    info.contentSize = fcsSize === 2 ? fcs + 256 : fcs;
  }
  for (;;) {
    if (p + 3 > end) return -1;
    const header = buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16);
    const type = (header >> 1) & 3;
    if (type === 3) throw new ZstdFrameError('reserved_block', pos, p);
    p += 3 + (type === 1 ? 1 : header >>> 3); // an RLE block stores one byte
    if (p > end) return -1;
    if (header & 1) break;
  }
  p += checksum ? 4 : 0;
  return p <= end ? p : -1;
}
