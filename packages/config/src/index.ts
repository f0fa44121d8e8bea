export { SluiceError, ConfigError, ERR_CONFIG, type ConfigIssue } from './errors.ts';
export { parseAddress } from './address.ts';
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
