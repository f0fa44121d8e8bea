export {
  encodeRecordHeader,
  encodeSegmentHeader,
  RECORD_HEADER_BYTES,
  SEGMENT_HEADER_BYTES,
  SegmentReader,
  type SegmentMeta,
  type SegmentTail,
  type SpooledFrame,
  type TailProblem,
} from './segment.ts';
export { Segment, Spool, type SpoolOptions, type SpoolStats, type SpoolSync } from './spool.ts';
