/**
 * The validated configuration: every default filled in, deeply frozen. Option names are the
 * YAML names (snake_case, units in the name); docs/configuration.md describes each one. Each
 * component type's config is defined beside its code (packages/{sources,sinks}/src/<type>/config.ts).
 * An option that is "not set" and has no default is `null`, never missing.
 */

import type { ListenAddress } from '@sluice/schema';
import type { SinkConfig } from '@sluice/sinks/registry';
import type { SourceConfig } from '@sluice/sources/registry';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type LogFormat = 'json' | 'pretty';
export type { Compression, WhenFull, HostPort, ListenAddress, Env } from '@sluice/schema';
export type {
  SourceConfig,
  SourceType,
  TcpSourceConfig,
  UdpSourceConfig,
  SplunkHecSourceConfig,
  TlsConfig,
  ClientAuth,
} from '@sluice/sources/registry';
export type { SinkConfig, SinkType, FileSinkConfig, AwsS3SinkConfig } from '@sluice/sinks/registry';

export interface ApiConfig extends ListenAddress {
  readonly enabled: boolean;
}

export interface LogConfig {
  readonly level: LogLevel;
  readonly format: LogFormat;
}

export interface WorkersConfig {
  readonly threads: number;
  readonly batch_bytes: number;
  readonly batch_timeout_ms: number;
}

export interface DeadLetterConfig {
  readonly path: string;
  readonly key_prefix: string;
  readonly upload_period_secs: number;
}

export interface SluiceConfig {
  readonly data_dir: string;
  readonly shutdown_timeout_secs: number;
  readonly api: ApiConfig;
  readonly log: LogConfig;
  readonly workers: WorkersConfig;
  /** null = malformed records are counted and dropped. */
  readonly dead_letter: DeadLetterConfig | null;
  /** In the order of the file. */
  readonly sources: Readonly<Record<string, SourceConfig>>;
  readonly sinks: Readonly<Record<string, SinkConfig>>;
}
