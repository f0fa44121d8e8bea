import { forEachRecord, headPeerLength, isBlockHead, type Ring } from '@sluice/ring';

/** One line of a ring record, decoded: the peer prefix and the line as text (a block record gives one per line). */
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
    const peerLen = headPeerLength(b[s]!);
    const peer = text.decode(b.subarray(s + 1, s + 1 + peerLen));
    const body = text.decode(b.subarray(s + 1 + peerLen, e));
    if (!isBlockHead(b[s]!)) {
      into.push({ peer, record: body });
      return;
    }
    // A block (TCP): '\n'-terminated lines, one trailing '\r' each is the line ending's.
    const lines = body.split('\n');
    if (lines.pop() !== '') throw new Error('a block record that does not end with a newline');
    for (const line of lines) into.push({ peer, record: line.endsWith('\r') ? line.slice(0, -1) : line });
  });
  ring.release(span.end);
  return span.records;
}
