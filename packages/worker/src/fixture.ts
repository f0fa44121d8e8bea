/**
 * Test and bench fixtures: ring records built as the sources write them (the format and its
 * encoders are @sluice/ring's record-format.ts), and batches of them from @sluice/testkit's
 * Talos line generator.
 *
 * Not on any hot path: allocation here is fine.
 */
import { encodePayload as encodeRingPayload, encodeSpan, recordSpan } from '@sluice/ring';
import type { TalosLineGenerator } from '@sluice/testkit';

const encoder = new TextEncoder();

export { recordSpan };

/** `u8 peerLen | peer | line`. `line` may be any bytes (tests feed malformed input); `peer` any bytes too. */
export function encodePayload(peer: string | Uint8Array, line: Uint8Array | string): Uint8Array {
  return encodeRingPayload(peer, line);
}

/** A block record's payload, as the TCP source writes it: `lines` each followed by `ending` ('\n' or '\r\n'). */
export function encodeBlock(peer: string, lines: readonly (Uint8Array | string)[], ending = '\n'): Uint8Array {
  const end = encoder.encode(ending);
  const parts = lines.map((l) => (typeof l === 'string' ? encoder.encode(l) : l));
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length + end.length, 0));
  let o = 0;
  for (const p of parts) {
    body.set(p, o);
    body.set(end, o + p.length);
    o += p.length + end.length;
  }
  return encodeRingPayload(peer, body, true);
}

/** Lay payloads out exactly as a ring span does. Padding bytes are filled with `pad` (tests use 0xff to catch over-reads). */
export function buildBatch(payloads: readonly Uint8Array[], pad = 0): Uint8Array {
  return encodeSpan(payloads, pad);
}

/** Records from `gen` until their payloads (with `peer`) fill about `bytes` of ring span. */
export function talosBatch(
  gen: TalosLineGenerator,
  peer: string,
  bytes: number,
): { payloads: Uint8Array[]; lines: string[] } {
  const payloads: Uint8Array[] = [];
  const lines: string[] = [];
  let total = 0;
  while (total < bytes) {
    const line = gen.next();
    const p = encodePayload(peer, line);
    total += recordSpan(p.length);
    payloads.push(p);
    lines.push(line);
  }
  return { payloads, lines };
}
