import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML, defaultConfig, parseConfig } from './index.ts';

describe('defaultConfig', () => {
  it('is the documented default', () => {
    const config = defaultConfig();
    expect(config.data_dir).toBe('./data');
    expect(config.api).toMatchObject({ enabled: true, host: '127.0.0.1', port: 9598 });
    expect(config.sources.talos_service).toMatchObject({
      type: 'tcp',
      host: '127.0.0.1',
      port: 5170,
      host_key: '__host',
    });
    expect(config.sources.talos_kernel).toMatchObject({
      type: 'udp',
      host: '127.0.0.1',
      port: 6050,
      host_key: '__host',
    });
    expect(config.sinks.local).toMatchObject({
      type: 'file',
      inputs: ['talos_service', 'talos_kernel'],
      path: './data/out',
      key_prefix: 'talos/',
      compression: 'zstd',
      compression_level: 1,
      upload_period_secs: 60,
    });
    expect(Object.isFrozen(config.sinks.local)).toBe(true);
  });

  it('equals DEFAULT_CONFIG_YAML parsed', () => {
    expect(parseConfig(DEFAULT_CONFIG_YAML, 'default.yaml', {})).toEqual(defaultConfig());
  });

  it('has a commented-out aws_s3 example that is valid once uncommented', () => {
    const uncommented = DEFAULT_CONFIG_YAML.split('\n')
      .map((line) => line.replace(/^ {2}# (s3:| {2})/, '  $1'))
      .join('\n');
    const config = parseConfig(uncommented, 'example.yaml', { S3_ACCESS_KEY_ID: 'AKID', S3_SECRET_ACCESS_KEY: 'x' });
    expect(config.sinks.s3).toMatchObject({ type: 'aws_s3', bucket: 'logs', endpoint: 'http://127.0.0.1:7480' });
  });

  it('has a commented-out splunk_hec example, at its defaults, that is valid once uncommented', () => {
    const uncommented = DEFAULT_CONFIG_YAML.split('\n')
      .map((line) => line.replace(/^#( {2}tailscale:| {4})/, '$1'))
      .join('\n')
      .replace('inputs: [talos_service, talos_kernel]', 'inputs: [talos_service, talos_kernel, tailscale]');
    const config = parseConfig(uncommented, 'example.yaml', { HEC_TOKEN: 'token' });
    expect(config.sources.tailscale).toMatchObject({
      type: 'splunk_hec',
      port: 8088,
      valid_tokens: ['token'],
      max_body_bytes: 16_777_216,
      max_connections: 1024,
      header_timeout_secs: 10,
      body_timeout_secs: 10,
      min_body_bytes_per_sec: 1024,
      tls: null,
    });
    const defaults = parseConfig(
      'sources: { h: { type: splunk_hec, address: "[::]:8088", valid_tokens: [t] } }\nsinks: { f: { type: file, inputs: [h], path: ./out } }',
      'd.yaml',
      {},
    );
    const { id: _a, valid_tokens: _b, ...example } = config.sources.tailscale as unknown as Record<string, unknown>;
    const { id: _c, valid_tokens: _d, ...builtIn } = defaults.sources.h as unknown as Record<string, unknown>;
    expect(example).toEqual(builtIn);
  });
});
