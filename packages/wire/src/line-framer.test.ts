import { describe, expect, it } from 'vitest';
import { mulberry32 } from '@sluice/testkit';
import { LineFramer } from './line-framer.ts';

const MAX = 32;
const enc = new TextEncoder();

/** Bytes as a latin1 string: one char per byte, so comparisons are byte-exact. */
function bytesKey(buf: Uint8Array, start = 0, end = buf.length): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
}

interface Outcome {
  lines: string[];
  oversize: number;
  empty: number;
}

/** The specification, written the obvious way over the whole input. */
function reference(input: Uint8Array, max: number): Outcome {
  const out: Outcome = { lines: [], oversize: 0, empty: 0 };
  const pieces = bytesKey(input).split('\n');
  const last = pieces.pop()!; // after the final '\n': the unterminated line, often ""
  const take = (raw: string) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.length === 0) out.empty++;
    else if (line.length > max) out.oversize++;
    else out.lines.push(line);
  };
  pieces.forEach(take);
  if (last.length > 0) take(last);
  return out;
}

/**
 * Feed `chunks` through a framer like a TCP source would: push, drain until it returns true,
 * finish at the end. `refuse()` decides whether emit refuses a line (backpressure).
 */
function frame(
  chunks: Uint8Array[],
  max: number,
  refuse: () => boolean = () => false,
  batch = 1,
  maxBlock = 0,
  reuse = false,
): Outcome {
  const framer = new LineFramer(max, { maxBlockBytes: maxBlock });
  const lines: string[] = [];
  // Plain checks that throw: an expect() per line made the every-offset runs 10x slower.
  const fail = (what: string): never => {
    throw new Error(what);
  };
  const emit = (buf: Uint8Array, start: number, end: number, n: number): boolean => {
    if (refuse()) return false;
    if (n === 0) {
      if (!(end > start && end - start <= max)) fail(`emitted a line of ${end - start} bytes`);
      lines.push(bytesKey(buf, start, end));
      return true;
    }
    // A block: n complete lines, each with its '\n', none empty or oversize, at most maxBlock bytes.
    if (maxBlock === 0) fail('a block in line mode');
    if (end - start > maxBlock) fail(`a block of ${end - start} bytes (max ${maxBlock})`);
    const parts = bytesKey(buf, start, end).split('\n');
    if (parts.pop() !== '') fail('a block that does not end with a newline');
    if (parts.length !== n) fail(`a block of ${parts.length} lines announced as ${n}`);
    for (const raw of parts) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (!(line.length > 0 && line.length <= max)) fail(`a block holds a line of ${line.length} bytes`);
      lines.push(line);
    }
    return true;
  };
  let spins = 0;
  for (let i = 0; i < chunks.length; i++) {
    framer.push(chunks[i]!);
    // With batch > 1 several chunks queue up before the framer gets to run.
    if ((i + 1) % batch !== 0 && i + 1 < chunks.length) continue;
    if (reuse) {
      // A socket reading into one reused buffer: drain once, retain what is left, then scribble
      // over the chunks, as the next read would.
      framer.drain(emit);
      framer.retain();
      for (let k = Math.max(i + 1 - batch, 0); k <= i; k++) chunks[k]!.fill(0x5a);
    }
    while (!framer.drain(emit)) if (++spins > 1e6) fail('drain never completes');
    if (framer.bufferedBytes() > max + 1) fail(`holds ${framer.bufferedBytes()} bytes after drain`);
  }
  while (!framer.finish(emit)) if (++spins > 1e6) fail('finish never completes');
  if (framer.bufferedBytes() !== 0) fail('bytes left after finish');
  return { lines, oversize: framer.oversizeLines, empty: framer.emptyLines };
}

function splitAt(input: Uint8Array, offsets: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const o of [...offsets, input.length]) {
    // Fresh copies: a chunk must not alias a neighbour, as with real socket reads. Buffers, as a
    // socket gives (Buffer#slice is a view, not a copy: retain() must not rely on it).
    chunks.push(Buffer.from(input.subarray(prev, o)));
    prev = o;
  }
  return chunks;
}

const BODY = [
  'hello',
  '{"msg":"crlf"}\r',
  '',
  '\r',
  'héllo wörld ✓ 🚀', // 2-, 3- and 4-byte UTF-8
  '€€€€€€€€€€', // 30 bytes of 3-byte chars
  'x'.repeat(MAX), // exactly max: accepted
  `${'y'.repeat(MAX)}\r`, // exactly max after CRLF: accepted
  'z'.repeat(MAX + 1), // max + 1: oversize
  `${'w'.repeat(MAX + 1)}\r`, // max + 1 after CRLF: oversize
  `${'v'.repeat(MAX - 1)}\r\r`, // one '\r' removed, the other is data: max, accepted
  '\r\r',
  'L'.repeat(100),
  'M'.repeat(1000),
  '😀'.repeat(8), // exactly max in 4-byte chars
  'after the long ones',
  '',
  '',
  'ok',
].join('\n');

const CORPORA: Record<string, Uint8Array> = {
  'ends with a newline': enc.encode(`${BODY}\n`),
  'unterminated final line': enc.encode(`${BODY}\ntail-line-€`),
  'final line with a trailing CR': enc.encode(`${BODY}\nabc\r`),
  'final line exactly max + CR': enc.encode(`${BODY}\n${'P'.repeat(MAX)}\r`),
  'oversize final line': enc.encode(`${BODY}\n${'Q'.repeat(MAX + 9)}`),
  'oversize final line of max + 1': enc.encode(`${BODY}\n${'R'.repeat(MAX + 1)}`),
  'only newlines': enc.encode('\n\n\r\n\n'),
};

describe('LineFramer against the reference, any chunking', () => {
  for (const [name, input] of Object.entries(CORPORA)) {
    const expected = reference(input, MAX);

    // Block mode with blocks of one short line at most, a few lines, and a whole chunk.
    for (const maxBlock of [0, 8, 70, 1 << 16]) {
      const mode = maxBlock === 0 ? 'line mode' : `blocks of <= ${maxBlock} bytes`;

      it(`${name}, ${mode}: one chunk, two chunks split at every offset, one byte at a time`, () => {
        expect(frame([input], MAX, undefined, 1, maxBlock)).toEqual(expected);
        for (let cut = 0; cut <= input.length; cut++) {
          const got = frame(splitAt(input, [cut]), MAX, undefined, 1, maxBlock);
          if (JSON.stringify(got) !== JSON.stringify(expected)) expect({ cut, ...got }).toEqual({ cut, ...expected });
        }
        const bytes = Array.from({ length: input.length - 1 }, (_, i) => i + 1);
        expect(frame(splitAt(input, bytes), MAX, undefined, 1, maxBlock)).toEqual(expected);
      });
    }

    it(`${name}: seeded random chunkings, with and without random backpressure`, () => {
      const rng = mulberry32(input.length * 31 + name.length);
      for (let round = 0; round < 150; round++) {
        const offsets: number[] = [];
        for (let o = 0; ; ) {
          o += 1 + Math.floor(rng() * (round % 3 === 0 ? 8 : 80));
          if (o >= input.length) break;
          offsets.push(o);
        }
        const chunks = splitAt(input, offsets);
        const refuseRate = round % 2 === 0 ? 0 : 0.4;
        const batch = 1 + (round % 4); // 1: drain per chunk; >1: chunks queue while paused
        const maxBlock = [0, 8, 70, 1 << 16][round % 4 === 0 ? 0 : Math.floor(rng() * 4)]!;
        const reuse = round % 3 === 1; // every third round: chunk memory is reused after each read
        const got = frame(chunks, MAX, () => rng() < refuseRate, batch, maxBlock, reuse);
        if (JSON.stringify(got) !== JSON.stringify(expected)) {
          expect({ round, offsets, ...got }).toEqual({ round, offsets, ...expected });
        }
      }
    });
  }

  it('the reference itself: the corpus exercises every rule', () => {
    const r = reference(CORPORA['unterminated final line']!, MAX);
    expect(r.oversize).toBe(4); // z, w, L, M
    expect(r.empty).toBe(4); // '', '\r', '', ''
    expect(r.lines).toContain('x'.repeat(MAX));
    expect(r.lines).toContain('y'.repeat(MAX));
    expect(r.lines).toContain(`${'v'.repeat(MAX - 1)}\r`);
    expect(r.lines).toContain('\r');
    expect(r.lines.at(-1)).toBe(bytesKey(enc.encode('tail-line-€')));
    const dec = new TextDecoder('utf-8', { fatal: true });
    const decoded = frame(splitAt(CORPORA['unterminated final line']!, [30, 31, 32, 33, 34, 35]), MAX).lines.map((l) =>
      dec.decode(Buffer.from(l, 'latin1')),
    );
    expect(decoded).toContain('héllo wörld ✓ 🚀');
    expect(decoded).toContain('😀'.repeat(8));
  });
});

describe('LineFramer behaviour', () => {
  it('emits lines inside one chunk as subranges of that chunk (zero copy)', () => {
    const framer = new LineFramer(64);
    const chunk = enc.encode('one\ntwo\r\nthree\npart');
    const seen: [Uint8Array, number, number][] = [];
    expect(framer.drain(() => true)).toBe(true);
    framer.push(chunk);
    expect(
      framer.drain((buf, s, e) => {
        seen.push([buf, s, e]);
        return true;
      }),
    ).toBe(true);
    expect(seen).toEqual([
      [chunk, 0, 3],
      [chunk, 4, 7],
      [chunk, 9, 14],
    ]);
    for (const [buf] of seen) expect(buf).toBe(chunk);
    expect(framer.bufferedBytes()).toBe(4); // "part", copied out of the chunk
    const next = enc.encode('ial\n');
    framer.push(next);
    let assembled: Uint8Array | null = null;
    framer.drain((buf, s, e) => {
      assembled = buf;
      expect(bytesKey(buf, s, e)).toBe('partial');
      return true;
    });
    expect(assembled).not.toBe(next);
    expect(assembled).not.toBe(chunk);
  });

  it('backpressure: a refused line is kept and offered again, nothing lost or duplicated', () => {
    const framer = new LineFramer(64);
    framer.push(enc.encode('a\nbb\nccc\ndd'));
    const got: string[] = [];
    let refuseNext = false;
    const emit = (buf: Uint8Array, s: number, e: number) => {
      if (refuseNext) return (refuseNext = false);
      got.push(bytesKey(buf, s, e));
      if (got.length === 1) refuseNext = true;
      return true;
    };
    expect(framer.drain(emit)).toBe(false); // refused "bb"
    expect(got).toEqual(['a']);
    expect(framer.bufferedBytes()).toBe(9); // "bb\nccc\ndd"
    framer.push(enc.encode('d\nee\n')); // the socket may still deliver one chunk: it queues
    expect(framer.drain(emit)).toBe(true);
    expect(got).toEqual(['a', 'bb', 'ccc', 'ddd', 'ee']);
    expect(framer.bufferedBytes()).toBe(0);
  });

  it('backpressure on a line assembled across chunks keeps it until accepted', () => {
    const framer = new LineFramer(64);
    framer.push(enc.encode('spl'));
    framer.push(enc.encode('it\nnext\n'));
    let refusals = 2;
    const got: string[] = [];
    const emit = (buf: Uint8Array, s: number, e: number) => refusals-- <= 0 && got.push(bytesKey(buf, s, e)) > 0;
    expect(framer.drain(emit)).toBe(false);
    expect(framer.drain(emit)).toBe(false);
    expect(framer.drain(emit)).toBe(true);
    expect(got).toEqual(['split', 'next']);
  });

  it('counts an oversize line as soon as it is too long, keeps nothing of it, and goes on', () => {
    const framer = new LineFramer(8);
    const got: string[] = [];
    const emit = (buf: Uint8Array, s: number, e: number) => got.push(bytesKey(buf, s, e)) > 0;
    framer.push(enc.encode(`ok\n${'A'.repeat(12)}`));
    expect(framer.drain(emit)).toBe(true);
    expect(framer.oversizeLines).toBe(1); // before its '\n' arrived
    expect(framer.bufferedBytes()).toBe(0);
    for (let i = 0; i < 100; i++) {
      framer.push(enc.encode('A'.repeat(50)));
      expect(framer.drain(emit)).toBe(true);
      expect(framer.bufferedBytes()).toBe(0);
    }
    framer.push(enc.encode(`AAA\nfine\n${'B'.repeat(20)}\nalso ok\n`));
    expect(framer.drain(emit)).toBe(true);
    expect(got).toEqual(['ok', 'fine', 'also ok']);
    expect(framer.oversizeLines).toBe(2);
  });

  it('holds at most maxLineBytes + 1 bytes of a partial line (the +1 for a CR before LF)', () => {
    const framer = new LineFramer(8);
    const got: string[] = [];
    const emit = (buf: Uint8Array, s: number, e: number) => got.push(bytesKey(buf, s, e)) > 0;
    let peak = 0;
    for (const byte of enc.encode(`12345678\r\n${'C'.repeat(500)}\nabc`)) {
      framer.push(Uint8Array.of(byte));
      framer.drain(emit);
      peak = Math.max(peak, framer.bufferedBytes());
    }
    expect(peak).toBe(9);
    expect(framer.oversizeLines).toBe(1);
    expect(framer.finish(emit)).toBe(true);
    expect(got).toEqual(['12345678', 'abc']);
  });

  it('finish(): final line without newline, CR stripped, empty and oversize cases, reusable', () => {
    const got: string[] = [];
    const emit = (buf: Uint8Array, s: number, e: number) => got.push(bytesKey(buf, s, e)) > 0;
    const framer = new LineFramer(8);

    expect(framer.finish(emit)).toBe(true); // nothing buffered: nothing emitted
    expect(got).toEqual([]);

    framer.push(enc.encode('a\nlast'));
    expect(framer.finish(emit)).toBe(true); // drains complete lines first
    expect(got).toEqual(['a', 'last']);

    framer.push(enc.encode('crlf\r'));
    expect(framer.finish(emit)).toBe(true);
    expect(got.at(-1)).toBe('crlf');

    framer.push(enc.encode('\r'));
    expect(framer.finish(emit)).toBe(true);
    expect(framer.emptyLines).toBe(1);

    framer.push(enc.encode('D'.repeat(20)));
    expect(framer.finish(emit)).toBe(true);
    expect(framer.oversizeLines).toBe(1);

    framer.push(enc.encode('after'));
    let refuse = true;
    const picky = (buf: Uint8Array, s: number, e: number) => !(refuse && !(refuse = false)) && emit(buf, s, e);
    expect(framer.finish(picky)).toBe(false); // backpressure on the final line
    expect(framer.bufferedBytes()).toBe(5);
    expect(framer.finish(picky)).toBe(true);
    expect(got).toEqual(['a', 'last', 'crlf', 'after']);
    expect(framer.bufferedBytes()).toBe(0);
  });

  it('accepts Buffer chunks and rejects a bad maxLineBytes', () => {
    const framer = new LineFramer(16);
    const got: string[] = [];
    framer.push(Buffer.from('buf one\nbuf two\n'));
    framer.drain((buf, s, e) => got.push(bytesKey(buf, s, e)) > 0);
    expect(got).toEqual(['buf one', 'buf two']);
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 31]) expect(() => new LineFramer(bad)).toThrow(RangeError);
  });
});
