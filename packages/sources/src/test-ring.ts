import { forEachRecord, type Ring } from '@sluice/ring';

/** One ring record, decoded: the peer prefix and the record bytes as text. */
export interface RingRecord {
  peer: string;
  record: string;
}

const text = new TextDecoder();

/**
 * For source tests: stands in for the dispatcher. Claims one span of at most `maxBytes`,
 * decodes its records into `into`, releases it, and returns how many records it held.
 */
export function drainRing(ring: Ring, into: RingRecord[], maxBytes = 1 << 20): number {
  const span = ring.claim(maxBytes);
  if (span === null) return 0;
  const buf = new Uint8Array(span.end - span.start);
  const n = ring.copyOut(span.start, span.end, buf);
  forEachRecord(buf, n, (b, s, e) => {
    const peerLen = b[s]!;
    into.push({ peer: text.decode(b.subarray(s + 1, s + 1 + peerLen)), record: text.decode(b.subarray(s + 1 + peerLen, e)) });
  });
  ring.release(span.end);
  return span.records;
}
