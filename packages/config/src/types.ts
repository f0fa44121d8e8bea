/**
 * The validated configuration: every default filled in, deeply frozen. Option names are the
 * YAML names (snake_case, units in the name); the README, "Configuration reference" describes each one.
 * An option that is "not set" and has no default is `null`, never missing.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type LogFormat = 'json' | 'pretty';
export type Compression = 'zstd' | 'gzip' | 'none';
/** What an aws_s3 sink does when `max_buffered_bytes` is reached. */
export type WhenFull = 'block' | 'drop_newest';

/** A listening address: `host` is ready for `listen()` (IPv6 without brackets). */
export interface HostPort {
  readonly host: string;
  /** 0..65535; 0 = any free port. */
  readonly port: number;
}

/** An `address` option: the text as written (after interpolation) and its parts. */
export interface ListenAddress extends HostPort {
  readonly address: string;
}

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

interface SourceBase extends ListenAddress {
  /** The key this source has under `sources`. */
  readonly id: string;
  readonly extra_tags: Readonly<Record<string, string>>;
  readonly host_key: string | null;
  readonly ring_bytes: number;
}

/** Who must show a client certificate: nobody, whoever shows one (it must verify), everybody. */
export type ClientAuth = 'none' | 'optional' | 'required';

/** A `tls` block: PEM files, checked to exist and to form a usable key pair at validation. */
export interface TlsConfig {
  readonly cert_file: string;
  readonly key_file: string;
  /** CA bundle that client certificates must chain to; required unless client_auth is none. */
  readonly ca_file: string | null;
  readonly client_auth: ClientAuth;
}

export interface TcpSourceConfig extends SourceBase {
  readonly type: 'tcp';
  readonly max_line_bytes: number;
  readonly max_connections: number;
  readonly idle_timeout_secs: number;
  /** null = plain TCP. */
  readonly tls: TlsConfig | null;
}

export interface UdpSourceConfig extends SourceBase {
  readonly type: 'udp';
  readonly receive_buffer_bytes: number;
  readonly sockets: number;
  /**
   * `native`: the recvmmsg addon (Linux, Node; startup fails if it cannot load), `dgram`:
   * node:dgram, `auto`: native where it loads, else dgram with a warning.
   */
  readonly reader: 'auto' | 'native' | 'dgram';
}

/** Splunk HTTP Event Collector (what Tailscale log streaming and many agents send). */
export interface SplunkHecSourceConfig extends SourceBase {
  readonly type: 'splunk_hec';
  /** Accepted tokens. Secrets: never log them. */
  readonly valid_tokens: readonly string[];
  readonly max_body_bytes: number;
  readonly max_connections: number;
  /** null = plain HTTP. */
  readonly tls: TlsConfig | null;
}

export type SourceConfig = TcpSourceConfig | UdpSourceConfig | SplunkHecSourceConfig;
export type SourceType = SourceConfig['type'];

interface SinkBase {
  /** The key this sink has under `sinks`. */
  readonly id: string;
  readonly inputs: readonly string[];
  readonly key_prefix: string;
  readonly compression: Compression;
  /** null exactly when `compression` is `none`. */
  readonly compression_level: number | null;
  readonly upload_period_secs: number;
  readonly max_object_bytes: number;
  /** Write-ahead spool under `<data_dir>/spool/<id>/`. */
  readonly spool: boolean;
  readonly max_spool_bytes: number;
  readonly spool_sync: 'per_batch' | 'interval';
  readonly spool_sync_interval_ms: number;
  /** While the sink cannot take more (slow store, blocked disk, full spool): hold the sources back, or drop and count. */
  readonly when_full: WhenFull;
}

export interface FileSinkConfig extends SinkBase {
  readonly type: 'file';
  readonly path: string;
}

export interface AwsS3SinkConfig extends SinkBase {
  readonly type: 'aws_s3';
  /** null = AWS. */
  readonly endpoint: string | null;
  readonly bucket: string;
  readonly region: string;
  /** Both null = the AWS default credential chain; otherwise both set. */
  readonly access_key_id: string | null;
  /** A secret: never log it. */
  readonly secret_access_key: string | null;
  readonly force_path_style: boolean;
  readonly part_size_bytes: number;
  readonly queue_size: number;
  readonly max_buffered_bytes: number;
  readonly shutdown_timeout_secs: number;
}

export type SinkConfig = FileSinkConfig | AwsS3SinkConfig;
export type SinkType = SinkConfig['type'];

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

/** Environment variables for `${VAR}` interpolation. */
export type Env = Readonly<Record<string, string | undefined>>;
