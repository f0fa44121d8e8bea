import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, READ_INDEX, RECORD_HEADER_BYTES, WRITE_INDEX, recordSpan } from './record-format.ts';
import { Ring, forEachRecord } from './ring.ts';
import { checkRecord, lengthStream, makeRecord, mulberry32, randInt, readRecord } from './testing.ts';

const CAPACITIES = [16, 32, 64];

/** Set both indices through the header, then attach a fresh Ring (whose claim cursor starts there). */
function ringAt(capacity: number, index: number): Ring {
  const sab = Ring.create(capacity).sab;
  const header = new Int32Array(sab, 0, HEADER_BYTES / 4);
  Atomics.store(header, WRITE_INDEX, index | 0);
  Atomics.store(header, READ_INDEX, index | 0);
  return new Ring(sab);
}

function payloadOf(seq: number, len: number): Uint8Array {
  return makeRecord(new Uint8Array(len), seq, len);
}

/** Claim everything unclaimed as one span, copy it out and return the payloads. */
function drainByClaim(ring: Ring): Uint8Array[] {
  const span = ring.claim(ring.capacity);
  if (span === null) return [];
  const dst = new Uint8Array(ring.capacity);
  const n = ring.copyOut(span.start, span.end, dst);
  expect(n).toBe((span.end - span.start) >>> 0);
  const out: Uint8Array[] = [];
  const records = forEachRecord(dst, n, (buf, s, e) => out.push(buf.slice(s, e)));
  expect(records).toBe(span.records);
  ring.release(span.end);
  return out;
}

describe('recordSpan', () => {
  it('is 4 + payload rounded up to 4', () => {
    expect(RECORD_HEADER_BYTES).toBe(4);
    expect([0, 1, 2, 3, 4, 5, 8, 245].map(recordSpan)).toEqual([4, 8, 8, 8, 8, 12, 12, 252]);
  });
});

describe('Ring.create / attach', () => {
  it('accepts powers of two from 16 to 2^30 and rejects the rest', () => {
    for (const bad of [0, 8, 15, 24, 100, 2 ** 31, -16, 16.5, Number.NaN]) {
      expect(() => Ring.create(bad), String(bad)).toThrow(RangeError);
    }
    const ring = Ring.create(16);
    expect(ring.capacity).toBe(16);
    expect(ring.maxPayloadBytes).toBe(12);
    expect(ring.sab.byteLength).toBe(HEADER_BYTES + 16);
    expect([ring.writeIndex(), ring.readIndex(), ring.usedBytes(), ring.freeBytes()]).toEqual([0, 0, 0, 16]);
  });

  it('attaches to an existing ring and shares its state', () => {
    const a = Ring.create(64);
    const b = new Ring(a.sab);
    expect(b.capacity).toBe(64);
    expect(a.tryWrite(payloadOf(7, 10))).toBe(true);
    expect(b.usedBytes()).toBe(recordSpan(10));
    const got = readRecord(b);
    expect(got && checkRecord(got, 0, got.length, 7, 10)).toBeNull();
    expect(a.usedBytes()).toBe(0);
  });

  it('refuses a SharedArrayBuffer that is not a ring', () => {
    expect(() => new Ring(new SharedArrayBuffer(8))).toThrow(TypeError);
    expect(() => new Ring(new SharedArrayBuffer(HEADER_BYTES + 64))).toThrow(TypeError); // capacity slot 0
  });
});

describe('every wrap case at tiny capacities', () => {
  for (const capacity of CAPACITIES) {
    it(`capacity ${capacity}: every start position x every payload length x head split`, () => {
      // Plain checks collected into one list: an expect() per byte made this 10x slower.
      const errors: string[] = [];
      const check = (ok: boolean, what: string) => ok || errors.push(what);
      const dst = new Uint8Array(capacity);
      let seq = 0;
      for (let startPos = 0; startPos < capacity; startPos += 4) {
        for (let len = 0; len <= capacity - 4; len++) {
          for (let headLen = 0; headLen <= Math.min(len, 5); headLen++) {
            seq++;
            const at = `pos ${startPos} len ${len} head ${headLen}`;
            const payload = payloadOf(seq, len);
            // Both a plain index and one just below 2^32, at the same ring position.
            const base = seq & 1 ? startPos : 2 ** 32 - capacity + startPos;
            const ring = ringAt(capacity, base);
            const data = new Uint8Array(ring.sab, HEADER_BYTES, capacity);
            data.fill(0xaa); // stale bytes, so the padding check below means something
            const head = headLen === 0 ? undefined : payload.subarray(0, headLen);
            check(ring.tryWrite(payload.subarray(headLen), head), `${at}: tryWrite refused`);
            check(ring.writeIndex() === (base + recordSpan(len)) >>> 0, `${at}: writeIndex`);
            check(ring.usedBytes() === recordSpan(len), `${at}: usedBytes`);
            check(data[startPos] === len && data[startPos + 1] === 0, `${at}: length header`);
            for (let i = len; i < ((len + 3) & ~3); i++) {
              check(data[(startPos + 4 + i) & (capacity - 1)] === 0, `${at}: padding byte ${i}`);
            }

            // Dispatcher path: claim + copyOut + forEachRecord + release.
            const span = ring.claim(1);
            check(span !== null && span.records === 1 && span.start === base, `${at}: claim`);
            const n = ring.copyOut(span!.start, span!.end, dst);
            check(n === recordSpan(len), `${at}: copyOut bytes`);
            const records = forEachRecord(dst, n, (buf, s, e) => {
              const bad = checkRecord(buf, s, e, seq, len);
              if (bad !== null) errors.push(`${at}: claim path: ${bad}`);
            });
            check(records === 1, `${at}: forEachRecord count`);
            ring.release(span!.end);
            check(ring.usedBytes() === 0 && ring.claim(1) === null, `${at}: released`);

            // One record at a time from a second attachment, body given as a range.
            const ring2 = ringAt(capacity, base);
            check(ring2.tryWriteRange(payload, headLen, len, head), `${at}: tryWriteRange refused`);
            const reader = new Ring(ring2.sab);
            const got = readRecord(reader);
            const bad = got === null ? 'null' : checkRecord(got, 0, got.length, seq, len);
            if (bad !== null) errors.push(`${at}: read path: ${bad}`);
            check(ring2.usedBytes() === 0 && readRecord(reader) === null, `${at}: read released`);
          }
        }
      }
      expect(errors).toEqual([]);
      expect(seq).toBeGreaterThan(capacity * 4);
    });
  }

  it('exact fill: a maxPayloadBytes record fills the ring, then nothing fits', () => {
    for (const capacity of CAPACITIES) {
      for (let startPos = 0; startPos < capacity; startPos += 4) {
        const ring = ringAt(capacity, startPos);
        expect(ring.tryWrite(payloadOf(1, ring.maxPayloadBytes))).toBe(true);
        expect(ring.freeBytes()).toBe(0);
        expect(ring.tryWrite(new Uint8Array(0))).toBe(false);
        const got = readRecord(ring)!;
        expect(checkRecord(got, 0, got.length, 1, capacity - 4)).toBeNull();
        expect(ring.freeBytes()).toBe(capacity);
      }
    }
  });

  it('empty records take 4 bytes and read back empty', () => {
    const ring = Ring.create(16);
    for (let i = 0; i < 4; i++) expect(ring.tryWrite(new Uint8Array(0))).toBe(true);
    expect(ring.tryWrite(new Uint8Array(0))).toBe(false);
    expect(ring.claim(1)).toEqual({ start: 0, end: 4, records: 1 });
    expect(ring.claim(100)).toEqual({ start: 4, end: 16, records: 3 });
    ring.release(16);
    for (let i = 0; i < 4; i++) expect(ring.tryWrite(new Uint8Array(0))).toBe(true);
    for (let i = 0; i < 4; i++) expect(readRecord(ring)).toEqual(new Uint8Array(0));
    expect(readRecord(ring)).toBeNull();
  });
});

describe('full-ring refusal', () => {
  it('returns false and writes nothing when a record does not fit now', () => {
    const ring = Ring.create(64);
    expect(ring.tryWrite(payloadOf(1, 30))).toBe(true); // span 36
    expect(ring.tryWrite(payloadOf(2, 20))).toBe(true); // span 24 -> used 60
    const data = new Uint8Array(ring.sab);
    const before = data.slice();
    expect(ring.tryWrite(payloadOf(3, 1))).toBe(false); // needs 8, 4 free
    expect(ring.tryWriteRange(payloadOf(3, 9), 0, 9, new Uint8Array(1))).toBe(false);
    expect(data).toEqual(before);
    expect(ring.tryWrite(new Uint8Array(0))).toBe(true); // exactly the 4 left
    expect(ring.freeBytes()).toBe(0);
    expect(ring.tryWrite(new Uint8Array(0))).toBe(false);
    readRecord(ring);
    expect(ring.tryWrite(payloadOf(4, 32))).toBe(true); // span 36 into the 36 freed
    expect(ring.freeBytes()).toBe(0);
  });

  it('throws RangeError for a payload that can never fit, even into an empty ring', () => {
    const ring = Ring.create(32);
    expect(() => ring.tryWrite(new Uint8Array(29))).toThrow(RangeError);
    expect(() => ring.tryWrite(new Uint8Array(20), new Uint8Array(9))).toThrow(RangeError);
    expect(() => ring.tryWriteRange(new Uint8Array(10), 5, 4)).toThrow(RangeError);
    expect(() => ring.tryWriteRange(new Uint8Array(10), 0, 11)).toThrow(RangeError);
    expect(ring.writeIndex()).toBe(0);
    expect(ring.tryWrite(new Uint8Array(28))).toBe(true);
  });
});

describe('multi-byte UTF-8 straddling the wrap point', () => {
  const strings = ['é', '€', '😀', 'aé€😀', '😀😀😀', 'ñ€😀z', '{"msg":"héllo wörld ✓ 🚀"}'.slice(0, 12)];
  const enc = new TextEncoder();
  const dec = new TextDecoder('utf-8', { fatal: true });

  for (const capacity of [32, 64]) {
    it(`capacity ${capacity}: decodes identically from every start position and shift`, () => {
      const splits = new Set<string>();
      for (const s of strings) {
        for (let shift = 0; shift < 4; shift++) {
          const text = 'x'.repeat(shift) + s;
          const bytes = enc.encode(text);
          if (bytes.length > capacity - 4) continue;
          for (let startPos = 0; startPos < capacity; startPos += 4) {
            // Record which byte of which multi-byte character the wrap point falls after.
            const before = capacity - (startPos + 4);
            if (before > 0 && before < bytes.length && (bytes[before]! & 0xc0) === 0x80) {
              let lead = before;
              while ((bytes[lead]! & 0xc0) === 0x80) lead--;
              const width = bytes[lead]! >= 0xf0 ? 4 : bytes[lead]! >= 0xe0 ? 3 : 2;
              splits.add(`${width}:${before - lead}`);
            }
            const ring = ringAt(capacity, startPos);
            expect(ring.tryWrite(bytes)).toBe(true);
            const viaClaim = drainByClaim(ring);
            expect(dec.decode(viaClaim[0])).toBe(text);
            expect(ring.tryWrite(bytes.subarray(1), bytes.subarray(0, 1))).toBe(true);
            expect(dec.decode(readRecord(ring)!)).toBe(text);
          }
        }
      }
      // Every inner offset of every UTF-8 width was split by the wrap point at least once.
      expect([...splits].sort()).toEqual(['2:1', '3:1', '3:2', '4:1', '4:2', '4:3']);
    });
  }
});

describe('claim / release / copyOut', () => {
  it('claims record-aligned spans of at most maxBytes, or one oversized record', () => {
    const ring = Ring.create(128);
    const lens = [10, 3, 0, 40, 7]; // spans 16, 8, 4, 44, 12 = 84
    lens.forEach((len, seq) => {
      expect(ring.tryWrite(payloadOf(seq, len))).toBe(true);
    });
    expect(ring.unclaimedBytes()).toBe(84);
    expect(ring.claim(27)).toEqual({ start: 0, end: 24, records: 2 }); // 16 + 8 (+ 4 would be 28)
    expect(ring.claim(4)).toEqual({ start: 24, end: 28, records: 1 });
    expect(ring.claim(20)).toEqual({ start: 28, end: 72, records: 1 }); // first alone is bigger
    expect(ring.unclaimedBytes()).toBe(12);
    expect(ring.usedBytes()).toBe(84); // claimed is not freed
    expect(ring.claim(1000)).toEqual({ start: 72, end: 84, records: 1 });
    expect(ring.claim(1000)).toBeNull();
    expect(ring.unclaimedBytes()).toBe(0);
    expect(() => ring.release(88)).toThrow(RangeError); // past the claim cursor
    ring.release(28);
    expect(ring.usedBytes()).toBe(56);
    ring.release(84);
    expect(ring.usedBytes()).toBe(0);
    expect(ring.claim(1000)).toBeNull();
  });

  it('copyOut copies the raw span across the wrap, headers and padding included', () => {
    const capacity = 32;
    const ring = ringAt(capacity, 20);
    expect(ring.tryWrite(payloadOf(1, 5))).toBe(true); // at 20, span 12 -> ends at 32 (wrap)
    expect(ring.tryWrite(payloadOf(2, 9))).toBe(true); // at 0, span 16
    const span = ring.claim(64)!;
    expect(span).toEqual({ start: 20, end: 48, records: 2 });
    const dst = new Uint8Array(40).fill(0xee);
    expect(ring.copyOut(span.start, span.end, dst)).toBe(28);
    const data = new Uint8Array(ring.sab, HEADER_BYTES, capacity);
    expect(dst.subarray(0, 12)).toEqual(data.subarray(20, 32));
    expect(dst.subarray(12, 28)).toEqual(data.subarray(0, 16));
    expect(dst[28]).toBe(0xee);
    expect(Array.from(dst.subarray(0, 4))).toEqual([5, 0, 0, 0]);
    expect(Array.from(dst.subarray(9, 12))).toEqual([0, 0, 0]); // padding
    const seen: number[] = [];
    forEachRecord(dst, 28, (buf, s, e) => {
      const seq = seen.length + 1;
      expect(checkRecord(buf, s, e, seq, seq === 1 ? 5 : 9)).toBeNull();
      seen.push(seq);
    });
    expect(seen).toEqual([1, 2]);
    expect(() => ring.copyOut(span.start, span.end, new Uint8Array(27))).toThrow(RangeError);
  });

  it('forEachRecord rejects a buffer that is not a copyOut span', () => {
    const buf = new Uint8Array([8, 0, 0, 0, 1, 2, 3, 4]);
    expect(() => forEachRecord(buf, 8, () => {})).toThrow(RangeError);
    expect(() => forEachRecord(buf, 3, () => {})).toThrow(RangeError);
    expect(forEachRecord(buf, 0, () => {})).toBe(0);
  });
});

describe('u32 index wrap-around', () => {
  it('keeps used/free/claim/copyOut right when the indices wrap past 2^32', () => {
    const start = 2 ** 32 - 24;
    const ring = ringAt(64, start);
    expect(ring.writeIndex()).toBe(start);
    for (let seq = 0; seq < 3; seq++) expect(ring.tryWrite(payloadOf(seq, 10))).toBe(true); // 3 x 16
    expect(ring.writeIndex()).toBe(24); // wrapped
    expect(ring.readIndex()).toBe(start);
    expect(ring.usedBytes()).toBe(48);
    expect(ring.freeBytes()).toBe(16);
    expect(ring.unclaimedBytes()).toBe(48);
    const span = ring.claim(32)!;
    expect(span).toEqual({ start, end: 2 ** 32 - 24 + 32 - 2 ** 32, records: 2 });
    expect(span.end).toBe(8);
    const dst = new Uint8Array(64);
    expect(ring.copyOut(span.start, span.end, dst)).toBe(32);
    let seq = 0;
    forEachRecord(dst, 32, (buf, s, e) => expect(checkRecord(buf, s, e, seq++, 10)).toBeNull());
    ring.release(span.end);
    expect(ring.readIndex()).toBe(8);
    expect(ring.usedBytes()).toBe(16);
    const last = readRecord(ring)!;
    expect(checkRecord(last, 0, last.length, 2, 10)).toBeNull();
    expect(ring.usedBytes()).toBe(0);
  });
});

describe('seeded sequence through tiny rings', () => {
  for (const capacity of CAPACITIES) {
    for (const base of [0, 2 ** 32 - 3 * capacity]) {
      it(`capacity ${capacity}, indices from ${base}: one- and many-record claims agree with the generator`, () => {
        const rng = mulberry32(capacity * 7919 + base);
        const writeLen = lengthStream(capacity + base, capacity - 4);
        const pending: number[] = []; // lengths written, not yet consumed
        let nextWrite = 0;
        let nextRead = 0;
        const ring = ringAt(capacity, base);
        const scratch = new Uint8Array(capacity);
        const dst = new Uint8Array(capacity);
        let claimedFull = 0;
        let refusals = 0;
        const errors: string[] = []; // plain checks: expect() per record dominated the run time
        const verify = (buf: Uint8Array, s: number, e: number) => {
          const bad = checkRecord(buf, s, e, nextRead, pending.shift()!);
          if (bad !== null) errors.push(bad);
          nextRead++;
        };
        while (nextRead < 4000 && errors.length === 0) {
          // Produce a random burst, stopping at the first refusal.
          for (let burst = randInt(rng, 0, 4); burst > 0; burst--) {
            const len = pending.length === 0 && rng() < 0.3 ? capacity - 4 : writeLen();
            if (!ring.tryWrite(makeRecord(scratch, nextWrite, len))) {
              refusals++;
              // Nothing was written: record nextWrite is offered again (any length) next burst.
              if (ring.freeBytes() >= recordSpan(len)) errors.push(`refused ${len} with room`);
              break;
            }
            pending.push(len);
            nextWrite++;
          }
          // Consume with either consumer, at random.
          if (rng() < 0.5) {
            for (let n = randInt(rng, 0, 3); n > 0; n--) {
              const got = readRecord(ring);
              if (got === null) {
                if (pending.length !== 0) errors.push(`read() null with ${pending.length} pending`);
                break;
              }
              verify(got, 0, got.length);
            }
          } else {
            const span = ring.claim(randInt(rng, 1, capacity));
            if (span === null) {
              if (pending.length !== 0) errors.push(`claim() null with ${pending.length} pending`);
              continue;
            }
            const n = ring.copyOut(span.start, span.end, dst);
            if (n === capacity) claimedFull++;
            if (forEachRecord(dst, n, verify) !== span.records) errors.push('span record count');
            ring.release(span.end);
          }
        }
        expect(errors).toEqual([]);
        expect(pending.length).toBe(nextWrite - nextRead);
        expect(refusals).toBeGreaterThan(100);
        expect(claimedFull).toBeGreaterThan(0);
      });
    }
  }
});

describe('tryWriteRanges', () => {
  it('writes the ring byte for byte as one tryWriteRange per record, across every wrap, and stops at the first that does not fit', () => {
    const rand = mulberry32(7);
    for (const capacity of [64, 128]) {
      for (let start = 0; start < capacity; start += 4) {
        const a = ringAt(capacity, start);
        const b = ringAt(capacity, start);
        // A body of several records with a peer head, as the splunk_hec source writes them.
        const n = 1 + randInt(rand, 0, 5);
        const lens = Array.from({ length: n }, () => randInt(rand, 0, 12));
        const body = new Uint8Array(lens.reduce((x, y) => x + y, 0) + 3);
        const spans = new Uint32Array(2 * n);
        let off = 3;
        lens.forEach((len, i) => {
          makeRecord(body.subarray(off, off + len), start + i, len);
          spans[2 * i] = off;
          spans[2 * i + 1] = off + len;
          off += len;
        });
        const head = Uint8Array.from([2, 0x31, 0x32]);
        let expected = 0;
        while (expected < n && b.tryWriteRange(body, spans[2 * expected]!, spans[2 * expected + 1]!, head)) expected++;
        expect(a.tryWriteRanges(body, spans, 0, n, head), `capacity ${capacity}, start ${start}`).toBe(expected);
        expect(new Uint8Array(a.sab)).toEqual(new Uint8Array(b.sab));
        expect(a.writeIndex()).toBe(b.writeIndex());
        // The rest goes in once there is room, from where it stopped.
        readRecord(a);
        readRecord(b);
        let more = 0;
        while (
          expected + more < n &&
          b.tryWriteRange(body, spans[2 * (expected + more)]!, spans[2 * (expected + more) + 1]!, head)
        )
          more++;
        expect(a.tryWriteRanges(body, spans, expected, n, head)).toBe(more);
        expect(new Uint8Array(a.sab)).toEqual(new Uint8Array(b.sab));
      }
    }
  });

  it('throws RangeError for a bad span or a payload that can never fit, keeping the records before it', () => {
    const ring = Ring.create(64);
    const body = new Uint8Array(40);
    expect(() => ring.tryWriteRanges(body, Uint32Array.of(0, 4, 5, 4), 0, 2)).toThrow(RangeError);
    expect(ring.usedBytes()).toBe(recordSpan(4));
    expect(() => ring.tryWriteRanges(body, Uint32Array.of(0, 41), 0, 1)).toThrow(RangeError);
    expect(() => ring.tryWriteRanges(body, Uint32Array.of(0, 4), 0, 2)).toThrow(RangeError);
    expect(() => ring.tryWriteRanges(new Uint8Array(70), Uint32Array.of(0, 70), 0, 1)).toThrow(RangeError);
    expect(ring.usedBytes()).toBe(recordSpan(4));
  });
});
