/**
 * The ring's byte format, the one definition of it: the header slots of the SharedArrayBuffer,
 * the length prefix of a record, and the head byte of a payload. Ring (ring.ts) moves records
 * of this format; the sources write payloads in it (packages/sources: peerHead, blockHead, and
 * the native UDP reader), the worker reads them (packages/worker: process.ts, batch.cc).
 *
 * ```
 *  record  = u32 LE payload length | payload | 0..3 zero pad        (recordSpan(length) bytes)
 *  payload = u8 head | peer (peerLen bytes, ASCII) | raw line bytes
 *  head    = peerLen (bits 0-6, PEER_LEN_MASK) | BLOCK_FLAG (bit 7) when the line bytes are a
 *            block: one or more lines, each ending with '\n' (TCP); otherwise one line (UDP, HEC)
 * ```
 *
 * The C++ that shares the format includes headers generated from this file
 * (scripts/gen-native-constants.ts writes them; its --check fails when one is stale).
 * Nothing here may import anything: the generator and the worker build load this file alone.
 */

/** Byte size of the header before the data region. */
export const HEADER_BYTES = 64;
/** Int32 slot: the producer's free-running u32 write index (bytes). */
export const WRITE_INDEX = 0;
/** Int32 slot: the consumer's free-running u32 read index (bytes). */
export const READ_INDEX = 1;
/** Int32 slot: the data region's capacity in bytes, written once by Ring.create. */
export const CAPACITY = 2;
/** Bytes of the u32 LE payload length that precedes every payload. */
export const RECORD_HEADER_BYTES = 4;
/** The head byte's peer length bits. */
export const PEER_LEN_MASK = 0x7f;
/** The head byte's flag for a block record: '\n'-terminated lines (a '\r' before one is part of its ending). */
export const BLOCK_FLAG = 0x80;
/** Longest peer address in a head (an IPv6 address with a zone fits): all of PEER_LEN_MASK. */
export const MAX_PEER_BYTES = 127;

/** Bytes a record with `payloadBytes` of payload occupies in the ring: 4 + payload rounded up to 4. */
export function recordSpan(payloadBytes: number): number {
  return RECORD_HEADER_BYTES + ((payloadBytes + 3) & ~3);
}

const EMPTY_HEAD = new Uint8Array([0]);

/**
 * The head of a record from a peer address: `u8 length | ASCII address`, cut to
 * {@link MAX_PEER_BYTES} and each character to 7 bits. A single 0 byte for null (a source
 * without host_key). Shared: do not write into the result.
 */
export function peerHead(address: string | null): Uint8Array {
  if (address === null) return EMPTY_HEAD;
  const len = Math.min(address.length, MAX_PEER_BYTES);
  const head = new Uint8Array(1 + len);
  head[0] = len;
  for (let i = 0; i < len; i++) head[1 + i] = address.charCodeAt(i) & 0x7f;
  return head;
}

/** The head of a block record: a copy of `head` with {@link BLOCK_FLAG} set in its first byte. */
export function blockHead(head: Uint8Array): Uint8Array {
  const flagged = Uint8Array.from(head);
  flagged[0] = head[0]! | BLOCK_FLAG;
  return flagged;
}

/** The peer length a head byte gives. */
export function headPeerLength(head: number): number {
  return head & PEER_LEN_MASK;
}

/** Whether a head byte marks a block record. */
export function isBlockHead(head: number): boolean {
  return (head & BLOCK_FLAG) !== 0;
}

const encoder = new TextEncoder();

/**
 * A whole payload, `head | peer | line`, with the peer taken as is (UTF-8 of a string, or any
 * bytes): for tests, benches and tools that build records without a source.
 * @throws RangeError when the peer is longer than {@link MAX_PEER_BYTES}.
 */
export function encodePayload(peer: string | Uint8Array, line: string | Uint8Array, block = false): Uint8Array {
  const peerBytes = typeof peer === 'string' ? encoder.encode(peer) : peer;
  if (peerBytes.length > MAX_PEER_BYTES) {
    throw new RangeError(`peer longer than ${MAX_PEER_BYTES} bytes: ${peerBytes.length}`);
  }
  const lineBytes = typeof line === 'string' ? encoder.encode(line) : line;
  const out = new Uint8Array(1 + peerBytes.length + lineBytes.length);
  out[0] = peerBytes.length | (block ? BLOCK_FLAG : 0);
  out.set(peerBytes, 1);
  out.set(lineBytes, 1 + peerBytes.length);
  return out;
}

/**
 * Payloads laid out exactly as a span of the ring holds them (what Ring.copyOut gives), padding
 * filled with `pad` (tests use 0xff to catch a reader that looks past a payload).
 */
export function encodeSpan(payloads: readonly Uint8Array[], pad = 0): Uint8Array {
  let total = 0;
  for (const p of payloads) total += recordSpan(p.length);
  const out = new Uint8Array(total).fill(pad);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const p of payloads) {
    view.setUint32(o, p.length, true);
    out.set(p, o + RECORD_HEADER_BYTES);
    o += recordSpan(p.length);
  }
  return out;
}
