/**
 * A pre-generated, seeded set of Talos lines laid out for sending: one Buffer holding every
 * line followed by '\n', and the offset of each line. Generating costs ~5 µs a line (JSON.stringify
 * and a date per line), so it happens once, before any clock starts; senders then only slice.
 *
 *   data:    {"msg":…}\n{"clock":…}\n{"msg":…}\n …
 *   offsets: 0         ^k         ^m            … data.length   (count + 1 entries)
 *
 * Line `i` carries the id `firstId + i`: `req=<id>` at the end of a service line's msg,
 * `kseq=<id>` in a kernel line's msg (and `"seq":<id>`), so a reader of the output can find
 * every line exactly once ({@link lineId}).
 */
import { kernelLine, mulberry32, serviceLine } from '@sluice/testkit';

/** service: Talos service logs (what Talos sends over TCP); kernel: kernel logs (UDP); mixed: 4 service to 1 kernel. */
export type LineKind = 'service' | 'kernel' | 'mixed';

export const LINE_KINDS: readonly LineKind[] = ['service', 'kernel', 'mixed'];

export interface LineSetOptions {
  count: number;
  kind: LineKind;
  /** PRNG seed: the same seed, kind, count and firstId give the same bytes. Default 1. */
  seed?: number;
  /** Id of the first line. Default 0. */
  firstId?: number;
}

export interface LineSet {
  readonly kind: LineKind;
  readonly seed: number;
  readonly firstId: number;
  readonly count: number;
  /** Every line, each followed by '\n'. */
  readonly data: Buffer;
  /** offsets[i] is where line i starts; offsets[count] === data.length. */
  readonly offsets: Uint32Array;
}

/** Bytes of line i without its '\n'. */
export function lineLength(set: LineSet, i: number): number {
  return set.offsets[i + 1]! - set.offsets[i]! - 1;
}

/** Generate `count` seeded Talos lines. */
export function generateLineSet(opts: LineSetOptions): LineSet {
  const { count, kind } = opts;
  const seed = opts.seed ?? 1;
  const firstId = opts.firstId ?? 0;
  if (!Number.isSafeInteger(count) || count < 0)
    throw new RangeError(`count must be a non-negative integer, got ${count}`);
  if (!LINE_KINDS.includes(kind))
    throw new RangeError(`kind must be one of ${LINE_KINDS.join(', ')}, got ${String(kind)}`);
  const rand = mulberry32(seed);
  const offsets = new Uint32Array(count + 1);
  // Lines are at most ~320 bytes (with multi-byte UTF-8): grow by doubling if ever exceeded.
  let data = Buffer.allocUnsafe(Math.max(1024, count * 256));
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const id = firstId + i;
    const isKernel = kind === 'kernel' || (kind === 'mixed' && i % 5 === 4);
    const line = isKernel ? kernelLine({ id, rand }) : serviceLine({ id, rand });
    if (pos + line.length * 3 + 1 > data.length) {
      const next = Buffer.allocUnsafe(data.length * 2);
      data.copy(next, 0, 0, pos);
      data = next;
    }
    offsets[i] = pos;
    pos += data.write(line, pos, 'utf8');
    data[pos++] = 0x0a;
  }
  offsets[count] = pos;
  if (pos > 0xffff_ffff) throw new RangeError('line set larger than 4 GiB');
  return { kind, seed, firstId, count, data: data.subarray(0, pos), offsets };
}

const REQ = Buffer.from(' req=');
const KSEQ = Buffer.from(' kseq=');

/**
 * The id a generated line carries (`req=<id>` or `kseq=<id>`), found in `text` (a line as
 * stored, tags added), or -1. For loss checks: not fast, not on any hot path.
 */
export function lineId(text: string): number {
  let i = text.lastIndexOf(' req=');
  let skip = REQ.length;
  if (i === -1) {
    i = text.lastIndexOf(' kseq=');
    skip = KSEQ.length;
  }
  if (i === -1) return -1;
  let n = 0;
  let j = i + skip;
  let digits = 0;
  for (; j < text.length; j++) {
    const c = text.charCodeAt(j) - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
    digits++;
  }
  return digits === 0 ? -1 : n;
}
