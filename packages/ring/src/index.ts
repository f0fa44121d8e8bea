export { Ring, forEachRecord } from './ring.ts';
export type { RingSpan } from './ring.ts';
export {
  BLOCK_FLAG,
  CAPACITY,
  HEADER_BYTES,
  MAX_PEER_BYTES,
  PEER_LEN_MASK,
  READ_INDEX,
  RECORD_HEADER_BYTES,
  WRITE_INDEX,
  blockHead,
  encodePayload,
  encodeSpan,
  headPeerLength,
  isBlockHead,
  peerHead,
  recordSpan,
} from './record-format.ts';
