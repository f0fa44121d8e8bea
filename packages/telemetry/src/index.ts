export { createLogger, RateLimitedLog } from './logger.ts';
export type { LevelLogger, Logger, LoggerOptions } from './logger.ts';
export { Metrics } from './metrics.ts';
export type { ProbedMetric, UploadStage } from './metrics.ts';
export { startApiServer } from './api-server.ts';
export type { Readiness, ApiServerOptions } from './api-server.ts';
export { SPOOL_DROP_REASONS, SpoolMetrics, type SpoolDropReason } from './spool-metrics.ts';
export { DiskMetrics } from './disk-metrics.ts';
