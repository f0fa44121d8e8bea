export { SluiceError, ConfigError, ERR_CONFIG, parseAddress, type ConfigIssue } from '@sluice/schema';
export { validateConfig } from './validate.ts';
export { parseConfig, loadConfigFile } from './load.ts';
export { defaultConfig, DEFAULT_CONFIG_YAML } from './defaults.ts';
export type {
  SluiceConfig,
  ApiConfig,
  LogConfig,
  LogLevel,
  LogFormat,
  WorkersConfig,
  DeadLetterConfig,
  SourceConfig,
  SourceType,
  TcpSourceConfig,
  UdpSourceConfig,
  SplunkHecSourceConfig,
  TlsConfig,
  ClientAuth,
  SinkConfig,
  SinkType,
  FileSinkConfig,
  AwsS3SinkConfig,
  Compression,
  WhenFull,
  HostPort,
  ListenAddress,
  Env,
} from './types.ts';
