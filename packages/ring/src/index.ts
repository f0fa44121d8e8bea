export {
  CAPACITY,
  HEADER_BYTES,
  READ_INDEX,
  RECORD_HEADER_BYTES,
  Ring,
  WAITERS,
  WRITE_INDEX,
  forEachRecord,
  recordSpan,
} from './ring.ts';
export type { RingSpan } from './ring.ts';
