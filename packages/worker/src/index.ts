export { BatchProcessor, DEFAULT_MAX_DEPTH, MALFORMED_REASONS, compileTagPlan } from './process.ts';
export type { BatchCounts, BatchOutput, MalformedReason, TagPlan } from './process.ts';
export { CODECS, DEFAULT_LEVELS, LEVEL_RANGES, compressFrame, decompressObject, zstdFrameLength } from './codecs.ts';
export type { Codec } from './codecs.ts';
export { createWorkerPool } from './pool.ts';
export type { WorkerPool, WorkerPoolOptions } from './pool.ts';
export type { BatchResult, BatchTask, SourceSettings, WorkerSettings } from './types.ts';
