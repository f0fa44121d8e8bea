import { describe, expect, it } from 'vitest';
import {
  BLOCK_FLAG,
  MAX_PEER_BYTES,
  blockHead,
  encodePayload,
  encodeSpan,
  headPeerLength,
  isBlockHead,
  peerHead,
  recordSpan,
} from './record-format.ts';
import { Ring, forEachRecord } from './ring.ts';

describe('the record format', () => {
  it('peerHead: length byte and 7-bit ASCII, cut to MAX_PEER_BYTES; a single 0 without a peer', () => {
    expect([...peerHead(null)]).toEqual([0]);
    expect([...peerHead('10.0.0.7')]).toEqual([8, ...Buffer.from('10.0.0.7')]);
    expect([...peerHead('fe80::1%é')]).toEqual([9, ...Buffer.from('fe80::1%'), 0xe9 & 0x7f]);
    const long = peerHead('a'.repeat(200));
    expect([long[0], long.length]).toEqual([MAX_PEER_BYTES, 1 + MAX_PEER_BYTES]);
  });

  it('blockHead flags a copy; headPeerLength and isBlockHead read a head byte back', () => {
    const head = peerHead('::1');
    const block = blockHead(head);
    expect(head[0]).toBe(3);
    expect(block[0]).toBe(BLOCK_FLAG | 3);
    expect([headPeerLength(head[0]!), isBlockHead(head[0]!)]).toEqual([3, false]);
    expect([headPeerLength(block[0]!), isBlockHead(block[0]!)]).toEqual([3, true]);
    expect(headPeerLength(BLOCK_FLAG | MAX_PEER_BYTES)).toBe(MAX_PEER_BYTES);
  });

  it('encodePayload and encodeSpan lay records out byte for byte as Ring.tryWrite + copyOut do', () => {
    const lines = ['{"a":1}', '', '{"b":"é"}\n{"c":2}\r\n', 'x'.repeat(13)];
    const peerOf = (i: number): string | Uint8Array => (i === 1 ? Uint8Array.of(0xff, 0x00) : `10.0.0.${i}`);
    const payloads = lines.map((l, i) => encodePayload(peerOf(i), l, i === 2));
    const ring = Ring.create(256);
    for (const [i, l] of lines.entries()) {
      const head = i === 1 ? Uint8Array.of(2, 0xff, 0x00) : peerHead(`10.0.0.${i}`);
      expect(ring.tryWrite(Buffer.from(l), i === 2 ? blockHead(head) : head)).toBe(true);
    }
    const span = ring.claim(256)!;
    const copy = new Uint8Array(256);
    const n = ring.copyOut(span.start, span.end, copy);
    expect(encodeSpan(payloads)).toEqual(copy.subarray(0, n));
    expect(n).toBe(payloads.reduce((a, p) => a + recordSpan(p.length), 0));
    const padded = encodeSpan(payloads, 0xff);
    const seen: Uint8Array[] = [];
    forEachRecord(padded, padded.length, (b, s, e) => seen.push(b.slice(s, e)));
    expect(seen).toEqual(payloads);
    expect(() => encodePayload('p'.repeat(MAX_PEER_BYTES + 1), '{}')).toThrow(RangeError);
  });
});
