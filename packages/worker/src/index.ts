export { BatchProcessor, DEFAULT_MAX_DEPTH, MALFORMED_REASONS, compileTagPlan, countLines } from './process.ts';
export type {
  BatchCounts,
  BatchOutput,
  BatchProcessorOptions,
  MalformedReason,
  NativeMode,
  TagPlan,
} from './process.ts';
export { NATIVE_BATCH_ADDON, loadNativeBatch } from './batch-native.ts';
export {
  CODECS,
  DEFAULT_LEVELS,
  LEVEL_RANGES,
  compressFrame,
  decompressObject,
  selectZstd,
  zstdFrameLength,
  zstdImplementation,
} from './codecs.ts';
export type { Codec, ZstdImplementation } from './codecs.ts';
export { NATIVE_ZSTD_ADDON, loadNativeZstd } from './zstd-native.ts';
export { loadAddon, type AddonLoad } from './native-addon.ts';
export { createWorkerPool } from './pool.ts';
export type { WorkerPool, WorkerPoolOptions } from './pool.ts';
export type { BatchResult, BatchTask, SourceSettings, WorkerSettings } from './types.ts';
export { decodeHecBody } from './hec-decode.ts';
export type { HecDecodeOptions, HecDecodeResult, HecEndpoint, HecRejection } from './hec-decode.ts';
export { INLINE_BELOW_BYTES, createHecDecoder } from './hec-decoder.ts';
export type { HecDecoder, HecDecoderOptions } from './hec-decoder.ts';
export {
  FactsScanner,
  INDEXED_FIELDS,
  MAX_FIELD_VALUES,
  indexFieldsFor,
  parsedRecordTime,
  toFrameFacts,
} from './facts.ts';
export type { BatchFacts, FrameFacts } from './facts.ts';
