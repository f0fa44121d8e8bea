import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { type ConfigError, SluiceError, validateConfig } from './index.ts';
import { fullRaw, issueLines, setPath } from './test-helpers.ts';

const MIB = 1024 * 1024;

describe('defaults', () => {
  const config = validateConfig(fullRaw(), {});

  it('fills every top-level default', () => {
    expect(config.data_dir).toBe('./data');
    expect(config.shutdown_timeout_secs).toBe(30);
    expect(config.api).toEqual({ enabled: true, address: '127.0.0.1:9598', host: '127.0.0.1', port: 9598 });
    expect(config.log).toEqual({ level: 'info', format: 'json' });
    expect(config.workers).toEqual({
      threads: Math.min(64, Math.max(1, availableParallelism() - 1)),
      batch_bytes: 262_144,
      batch_timeout_ms: 50,
    });
    expect(config.dead_letter).toBeNull();
  });

  it('fills every tcp source default', () => {
    expect(config.sources.t).toEqual({
      id: 't',
      type: 'tcp',
      address: '127.0.0.1:5170',
      host: '127.0.0.1',
      port: 5170,
      extra_tags: {},
      host_key: null,
      ring_bytes: 2 * MIB,
      max_line_bytes: 262_144,
      max_connections: 1024,
      idle_timeout_secs: 300,
      tls: null,
    });
  });

  it('fills every udp source default', () => {
    expect(config.sources.u).toEqual({
      id: 'u',
      type: 'udp',
      address: '127.0.0.1:6050',
      host: '127.0.0.1',
      port: 6050,
      extra_tags: {},
      host_key: null,
      ring_bytes: 8 * MIB,
      receive_buffer_bytes: 8 * MIB,
      sockets: 2,
      reader: 'auto',
    });
  });

  it('fills every file sink default', () => {
    expect(config.sinks.f).toEqual({
      id: 'f',
      type: 'file',
      inputs: ['t', 'u'],
      path: './out',
      key_prefix: '',
      compression: 'zstd',
      compression_level: 1,
      upload_period_secs: 60,
      max_object_bytes: 256 * MIB,
      spool: false,
      max_spool_bytes: 1024 * MIB,
      spool_sync: 'interval',
      spool_sync_interval_ms: 1000,
      when_full: 'block',
      index: true,
    });
  });

  it('fills every aws_s3 sink default', () => {
    expect(config.sinks.s3).toEqual({
      id: 's3',
      type: 'aws_s3',
      inputs: ['t'],
      key_prefix: '',
      compression: 'zstd',
      compression_level: 1,
      upload_period_secs: 60,
      max_object_bytes: 256 * MIB,
      spool: true,
      max_spool_bytes: 1024 * MIB,
      spool_sync: 'interval',
      spool_sync_interval_ms: 1000,
      endpoint: null,
      bucket: 'logs',
      region: 'us-east-1',
      access_key_id: null,
      secret_access_key: null,
      force_path_style: true,
      part_size_bytes: 5 * MIB,
      queue_size: 4,
      max_buffered_bytes: 64 * MIB,
      when_full: 'block',
      index: true,
      shutdown_timeout_secs: 30,
    });
  });

  it('fills dead_letter defaults when dead_letter is given', () => {
    const withDeadLetter = validateConfig({ ...fullRaw(), dead_letter: { path: './dl' } }, {});
    expect(withDeadLetter.dead_letter).toEqual({ path: './dl', key_prefix: '', upload_period_secs: 60 });
  });

  it('defaults compression_level by codec, and has none for none', () => {
    const raw = fullRaw();
    raw.sinks.f.compression = 'gzip';
    raw.sinks.s3.compression = 'none';
    const config = validateConfig(raw, {});
    expect(config.sinks.f?.compression_level).toBe(6);
    expect(config.sinks.s3?.compression_level).toBeNull();
  });

  it('defaults max_buffered_bytes to hold at least one part', () => {
    const raw = fullRaw();
    raw.sinks.s3.part_size_bytes = 100 * MIB;
    const s3 = validateConfig(raw, {}).sinks.s3;
    expect(s3?.type === 'aws_s3' && s3.max_buffered_bytes).toBe(100 * MIB);
  });

  it('treats null (an empty YAML value) as not given', () => {
    const raw = fullRaw();
    raw.api = null;
    raw.dead_letter = null;
    raw.sources.t.host_key = null;
    raw.sinks.f.compression = null;
    const config = validateConfig(raw, {});
    expect(config.api.enabled).toBe(true);
    expect(config.dead_letter).toBeNull();
    expect(config.sinks.f?.compression).toBe('zstd');
  });

  it('keeps options that were given', () => {
    const raw = fullRaw();
    raw.api = { enabled: false };
    raw.log = { level: 'debug', format: 'pretty' };
    raw.sources.t.extra_tags = { cluster: 'prod', zone: 'a' };
    raw.sources.t.host_key = '__host';
    Object.assign(raw.sinks.s3, {
      endpoint: 'https://s3.example.com:7480',
      access_key_id: 'AKID',
      secret_access_key: 'SECRET',
      force_path_style: false,
      when_full: 'drop_newest',
    });
    const config = validateConfig(raw, {});
    expect(config.api.enabled).toBe(false);
    expect(config.log).toEqual({ level: 'debug', format: 'pretty' });
    expect(config.sources.t?.extra_tags).toEqual({ cluster: 'prod', zone: 'a' });
    expect(config.sources.t?.host_key).toBe('__host');
    expect(config.sinks.s3).toMatchObject({
      endpoint: 'https://s3.example.com:7480',
      access_key_id: 'AKID',
      secret_access_key: 'SECRET',
      force_path_style: false,
      when_full: 'drop_newest',
    });
  });

  it('takes when_full on a file sink too (what it does while its disk is blocked)', () => {
    const raw = fullRaw();
    raw.sinks.f.when_full = 'drop_newest';
    expect(validateConfig(raw, {}).sinks.f).toMatchObject({ type: 'file', when_full: 'drop_newest' });
    raw.sinks.f.when_full = 'drop';
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sinks.f.when_full: must be one of block, drop_newest, got "drop"; did you mean `drop_newest`?',
    ]);
  });

  it('is deeply frozen and keeps file order', () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.sources)).toBe(true);
    expect(Object.isFrozen(config.sources.t)).toBe(true);
    expect(Object.isFrozen(config.sources.t?.extra_tags)).toBe(true);
    expect(Object.isFrozen(config.sinks.f?.inputs)).toBe(true);
    expect(Object.keys(config.sources)).toEqual(['t', 'u']);
    expect(Object.keys(config.sinks)).toEqual(['f', 's3']);
  });
});

// [path, min, max]: each edge is accepted, one past it is rejected with the range message.
const RANGES: [string, number, number][] = [
  ['shutdown_timeout_secs', 1, 3600],
  ['workers.threads', 1, 64],
  ['workers.batch_bytes', 4096, 67_108_864],
  ['workers.batch_timeout_ms', 1, 10_000],
  ['dead_letter.upload_period_secs', 1, 86_400],
  ['sources.t.ring_bytes', 65_536, 1_073_741_824],
  ['sources.u.ring_bytes', 65_536, 1_073_741_824],
  ['sources.t.max_line_bytes', 1, 16_777_216],
  ['sources.t.max_connections', 1, 65_535],
  ['sources.t.idle_timeout_secs', 0, 86_400],
  ['sources.u.receive_buffer_bytes', 65_536, 268_435_456],
  ['sources.u.sockets', 1, 64],
  ['sinks.f.upload_period_secs', 1, 86_400],
  ['sinks.f.max_object_bytes', 1024, 5_497_558_138_880],
  ['sinks.s3.upload_period_secs', 1, 86_400],
  ['sinks.s3.max_object_bytes', 1024, 5_497_558_138_880],
  ['sinks.s3.part_size_bytes', 5_242_880, 5_368_709_120],
  ['sinks.s3.queue_size', 1, 64],
  ['sinks.s3.shutdown_timeout_secs', 1, 3600],
];

function withOption(path: string, value: unknown): Record<string, any> {
  const raw = fullRaw();
  if (path.startsWith('dead_letter.')) raw.dead_letter = { path: './dl' };
  // Keep max_buffered_bytes >= part_size_bytes so only the option under test can fail.
  if (path === 'sinks.s3.part_size_bytes') raw.sinks.s3.max_buffered_bytes = 6 * 1024 * MIB;
  return setPath(raw, path, value);
}

function read(config: unknown, path: string): unknown {
  return path.split('.').reduce<any>((node, key) => node[key], config);
}

describe('numeric ranges', () => {
  for (const [path, min, max] of RANGES) {
    it(`${path}: ${min}..${max}`, () => {
      expect(read(validateConfig(withOption(path, min), {}), path)).toBe(min);
      expect(read(validateConfig(withOption(path, max), {}), path)).toBe(max);
      expect(issueLines(() => validateConfig(withOption(path, min - 1), {}))).toEqual([
        `${path}: must be between ${min} and ${max}, got ${min - 1}`,
      ]);
      expect(issueLines(() => validateConfig(withOption(path, max + 1), {}))).toEqual([
        `${path}: must be between ${min} and ${max}, got ${max + 1}`,
      ]);
    });
  }

  it('compression_level: zstd 1..19, gzip 1..9', () => {
    const level = (compression: string, value: number) =>
      setPath(setPath(fullRaw(), 'sinks.f.compression', compression), 'sinks.f.compression_level', value);
    expect(validateConfig(level('zstd', 1), {}).sinks.f?.compression_level).toBe(1);
    expect(validateConfig(level('zstd', 19), {}).sinks.f?.compression_level).toBe(19);
    expect(validateConfig(level('gzip', 1), {}).sinks.f?.compression_level).toBe(1);
    expect(validateConfig(level('gzip', 9), {}).sinks.f?.compression_level).toBe(9);
    expect(issueLines(() => validateConfig(level('zstd', 0), {}))).toEqual([
      'sinks.f.compression_level: must be between 1 and 19 for zstd, got 0',
    ]);
    expect(issueLines(() => validateConfig(level('zstd', 20), {}))).toEqual([
      'sinks.f.compression_level: must be between 1 and 19 for zstd, got 20',
    ]);
    expect(issueLines(() => validateConfig(level('gzip', 0), {}))).toEqual([
      'sinks.f.compression_level: must be between 1 and 9 for gzip, got 0',
    ]);
    expect(issueLines(() => validateConfig(level('gzip', 10), {}))).toEqual([
      'sinks.f.compression_level: must be between 1 and 9 for gzip, got 10',
    ]);
    expect(issueLines(() => validateConfig(level('none', 3), {}))).toEqual([
      'sinks.f.compression_level: has no effect with compression none; remove it',
    ]);
  });

  it('ring_bytes must be a power of two', () => {
    expect(issueLines(() => validateConfig(withOption('sources.t.ring_bytes', 100_000), {}))).toEqual([
      'sources.t.ring_bytes: must be a power of two, got 100000 (nearest: 65536 or 131072)',
    ]);
    expect(validateConfig(withOption('sources.t.ring_bytes', 131_072), {}).sources.t?.ring_bytes).toBe(131_072);
  });

  it('max_buffered_bytes: at least 5 MiB and at least part_size_bytes', () => {
    expect(issueLines(() => validateConfig(withOption('sinks.s3.max_buffered_bytes', 5_242_879), {}))).toEqual([
      'sinks.s3.max_buffered_bytes: must be at least 5242880, got 5242879',
    ]);
    const withParts = (maxBuffered: number): Record<string, any> =>
      setPath(withOption('sinks.s3.max_buffered_bytes', maxBuffered), 'sinks.s3.part_size_bytes', 8 * MIB);
    expect(issueLines(() => validateConfig(withParts(8 * MIB - 1), {}))).toEqual([
      `sinks.s3.max_buffered_bytes: must be at least part_size_bytes (${8 * MIB}), got ${8 * MIB - 1}`,
    ]);
    const s3 = validateConfig(withParts(8 * MIB), {}).sinks.s3;
    expect(s3?.type === 'aws_s3' && s3.max_buffered_bytes).toBe(8 * MIB);
  });

  it('rejects non-integers and unsafe integers', () => {
    expect(issueLines(() => validateConfig(withOption('sources.u.sockets', 1.5), {}))).toEqual([
      'sources.u.sockets: expected an integer, got number 1.5',
    ]);
    expect(issueLines(() => validateConfig(withOption('sinks.s3.max_buffered_bytes', 2 ** 60), {}))).toEqual([
      `sinks.s3.max_buffered_bytes: must be at most ${Number.MAX_SAFE_INTEGER}, got ${2 ** 60}`,
    ]);
  });
});

describe('messages', () => {
  it('says what is not host:port', () => {
    expect(issueLines(() => validateConfig(withOption('sources.t.address', '127.0.0.1:notaport'), {}))).toEqual([
      'sources.t.address: "127.0.0.1:notaport" is not host:port',
    ]);
    expect(issueLines(() => validateConfig(withOption('api.address', 'localhost'), {}))).toEqual([
      'api.address: "localhost" is not host:port',
    ]);
  });

  it('accepts IPv6 addresses in brackets', () => {
    const raw = withOption('sources.t.address', '[::1]:5170');
    setPath(raw, 'sources.u.address', '[fd00::7]:0');
    setPath(raw, 'api.address', '[::]:9598');
    const config = validateConfig(raw, {});
    expect(config.sources.t).toMatchObject({ address: '[::1]:5170', host: '::1', port: 5170 });
    expect(config.sources.u).toMatchObject({ host: 'fd00::7', port: 0 });
    expect(config.api).toMatchObject({ host: '::', port: 9598 });
    expect(issueLines(() => validateConfig(withOption('sources.t.address', '::1:5170'), {}))).toEqual([
      'sources.t.address: "::1:5170" is not host:port: write IPv6 addresses in brackets, as in [::1]:5170',
    ]);
  });

  it('names the expected and the given type', () => {
    const raw = fullRaw();
    raw.data_dir = 5;
    raw.log = 'debug';
    raw.sources.t.max_connections = 'many';
    raw.sources.t.extra_tags = ['a'];
    raw.sinks.f.inputs = 't';
    raw.sinks.s3.force_path_style = 'yes';
    raw.sinks.s3.queue_size = '4';
    raw.sinks.s3.region = { name: 'x' };
    raw.api = { enabled: 'true' };
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'data_dir: expected a string, got number 5',
      'api.enabled: expected true or false, got string "true" (remove the quotes)',
      'log: expected a map, got string "debug"',
      'sources.t.extra_tags: expected a map of string to string, got a list',
      'sources.t.max_connections: expected an integer, got string "many"',
      'sinks.f.inputs: expected a list of strings, got string "t"',
      'sinks.s3.region: expected a string, got a map',
      'sinks.s3.force_path_style: expected true or false, got string "yes"',
      'sinks.s3.queue_size: expected an integer, got string "4" (remove the quotes)',
    ]);
  });

  it('rejects tag values that are not strings', () => {
    const raw = withOption('sources.t.extra_tags', { cluster: 'prod', port: 5170, debug: false, none: null });
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources.t.extra_tags.port: expected a string, got number 5170 (values are strings: write "5170")',
      'sources.t.extra_tags.debug: expected a string, got boolean false (values are strings: write "false")',
      'sources.t.extra_tags.none: expected a string, got null',
    ]);
  });

  it('rejects a tag that host_key would overwrite', () => {
    const raw = withOption('sources.t.extra_tags', { __host: 'x' });
    setPath(raw, 'sources.t.host_key', '__host');
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources.t.extra_tags.__host: conflicts with host_key `__host`, which receives the peer address',
    ]);
  });

  it('checks words against their allowed values', () => {
    const raw = fullRaw();
    raw.log = { level: 'warning', format: 'text' };
    raw.sinks.f.compression = 'zsdt';
    raw.sinks.s3.when_full = 'drop_oldest';
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'log.level: must be one of trace, debug, info, warn, error, fatal, got "warning"; did you mean `warn`?',
      'log.format: must be one of json, pretty, got "text"',
      'sinks.f.compression: must be one of zstd, gzip, none, got "zsdt"; did you mean `zstd`?',
      'sinks.s3.when_full: must be one of block, drop_newest, got "drop_oldest"; did you mean `drop_newest`?',
    ]);
  });

  it('requires required options', () => {
    const raw = fullRaw();
    raw.dead_letter = {};
    delete raw.sources.t.address;
    delete raw.sources.u.type;
    delete raw.sinks.f.inputs;
    delete raw.sinks.f.path;
    delete raw.sinks.s3.bucket;
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'dead_letter.path: is required',
      'sources.t.address: is required',
      'sources.u.type: is required (one of tcp, udp, splunk_hec)',
      'sinks.f.inputs: is required',
      'sinks.f.path: is required',
      'sinks.s3.bucket: is required',
    ]);
  });

  it('checks S3 bucket names and endpoints', () => {
    for (const bucket of ['ab', 'a'.repeat(64), 'Logs', 'my_logs', '-logs', 'logs-', 'my..logs', '192.168.1.10']) {
      expect(issueLines(() => validateConfig(withOption('sinks.s3.bucket', bucket), {}))).toEqual([
        `sinks.s3.bucket: ${JSON.stringify(bucket)} is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, no "..", not an IP address)`,
      ]);
    }
    for (const bucket of ['abc', 'a'.repeat(63), 'my.logs-2024']) {
      expect(validateConfig(withOption('sinks.s3.bucket', bucket), {}).sinks.s3).toMatchObject({ bucket });
    }
    expect(issueLines(() => validateConfig(withOption('sinks.s3.endpoint', 'ftp://x'), {}))).toEqual([
      'sinks.s3.endpoint: "ftp://x" is not an http(s) URL',
    ]);
    expect(issueLines(() => validateConfig(withOption('sinks.s3.endpoint', '127.0.0.1:7480'), {}))).toEqual([
      'sinks.s3.endpoint: "127.0.0.1:7480" is not an http(s) URL',
    ]);
  });

  it('requires both keys of the credential pair, or neither', () => {
    expect(issueLines(() => validateConfig(withOption('sinks.s3.access_key_id', 'AKID'), {}))).toEqual([
      'sinks.s3.secret_access_key: is required when access_key_id is given (give both, or neither to use the AWS default credential chain)',
    ]);
    expect(issueLines(() => validateConfig(withOption('sinks.s3.secret_access_key', 'SECRET'), {}))).toEqual([
      'sinks.s3.access_key_id: is required when secret_access_key is given (give both, or neither to use the AWS default credential chain)',
    ]);
  });

  it('checks component ids', () => {
    const raw = fullRaw();
    raw.sources['bad.id'] = { type: 'tcp', address: '127.0.0.1:1' };
    raw.sources['x'.repeat(65)] = { type: 'tcp', address: '127.0.0.1:2' };
    raw.sources['ok-ID_9'] = { type: 'tcp', address: '127.0.0.1:3' };
    raw.sinks.f.inputs.push('ok-ID_9');
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources["bad.id"]: invalid source id "bad.id": use 1 to 64 characters from A-Z a-z 0-9 _ -',
      `sources.${'x'.repeat(65)}: invalid source id "${'x'.repeat(65)}": use 1 to 64 characters from A-Z a-z 0-9 _ -`,
    ]);
    raw.sources = { 'ok-ID_9': raw.sources['ok-ID_9'], t: raw.sources.t, u: raw.sources.u };
    expect(Object.keys(validateConfig(raw, {}).sources)).toEqual(['ok-ID_9', 't', 'u']);
  });

  it('handles ids that are Object.prototype names', () => {
    const raw = JSON.parse(
      '{"sources": {"__proto__": {"type": "tcp", "address": "127.0.0.1:1"}, "constructor": {"type": "udp", "address": "127.0.0.1:1"}}, "sinks": {"toString": {"type": "file", "path": "x", "inputs": ["__proto__", "constructor"]}}}',
    );
    const config = validateConfig(raw, {});
    expect(Object.keys(config.sources)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(config.sources)).toBe(Object.prototype);
    expect(Object.entries(config.sinks)).toEqual([['toString', expect.objectContaining({ type: 'file' })]]);
  });

  it('requires sources and sinks', () => {
    expect(issueLines(() => validateConfig({}, {}))).toEqual([
      'sources: at least one source is required',
      'sinks: at least one sink is required',
    ]);
    expect(issueLines(() => validateConfig({ sources: {}, sinks: [] }, {}))).toEqual([
      'sources: at least one source is required',
      'sinks: expected a map of sink id to sink, got a list',
    ]);
    expect(issueLines(() => validateConfig(null, {}))).toEqual([
      'sources: at least one source is required',
      'sinks: at least one sink is required',
    ]);
    expect(issueLines(() => validateConfig(['a'], {}))).toEqual(['(root): expected a map of options, got a list']);
  });

  it('checks that inputs name sources and that every source is consumed', () => {
    const raw = fullRaw();
    raw.sources.spare = { type: 'udp', address: '127.0.0.1:7000' };
    raw.sinks.s3.inputs = ['t', 'uu', 'nothing_like_it'];
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sinks.s3.inputs[1]: unknown source `uu`; did you mean `u`?',
      'sinks.s3.inputs[2]: unknown source `nothing_like_it`',
      'sources.spare: source `spare` is not an input of any sink',
    ]);
  });

  it('rejects duplicate entries in inputs', () => {
    expect(issueLines(() => validateConfig(withOption('sinks.f.inputs', ['t', 'u', 't']), {}))).toEqual([
      'sinks.f.inputs[2]: `t` is listed twice',
    ]);
    expect(issueLines(() => validateConfig(withOption('sinks.f.inputs', []), {}))).toEqual([
      'sinks.f.inputs: must not be empty',
    ]);
  });

  it('rejects an id used by a source and a sink', () => {
    const raw = fullRaw();
    raw.sinks.t = { type: 'file', inputs: ['t'], path: 'x' };
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sinks.t: id `t` is also a source id; sources and sinks need distinct ids',
    ]);
  });

  it('rejects two listeners on the same protocol and address', () => {
    const raw = fullRaw();
    raw.sources.t2 = { type: 'tcp', address: '127.0.0.1:5170' };
    raw.sources.u2 = { type: 'udp', address: '127.0.0.1:5170' }; // another protocol: fine
    raw.sources.v6a = { type: 'udp', address: '[::1]:6000' };
    raw.sources.v6b = { type: 'udp', address: '[0:0::1]:6000' };
    raw.sources.any1 = { type: 'tcp', address: '0.0.0.0:0' }; // port 0 never collides
    raw.sources.any2 = { type: 'tcp', address: '0.0.0.0:0' };
    raw.sources.api = { type: 'tcp', address: '127.0.0.1:9598' };
    raw.sinks.f.inputs = Object.keys(raw.sources);
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources.t2.address: tcp 127.0.0.1:5170 is already used by source `t`',
      'sources.v6b.address: udp [0:0::1]:6000 is already used by source `v6a`',
      'sources.api.address: tcp 127.0.0.1:9598 is already used by api.address',
    ]);
    raw.api = { enabled: false };
    raw.sources.t2.address = '127.0.0.1:5171';
    raw.sources.v6b.address = '[::1]:6001';
    expect(() => validateConfig(raw, {})).not.toThrow();
  });

  it('reports several issues at once, in file order', () => {
    const raw = fullRaw();
    raw.shutdown_timeout_secs = 0;
    raw.sources.t.address = 'nope';
    raw.sources.u.sockets = 65;
    raw.sinks.s3.upload_period_secs = 0;
    raw.sinks.s3.bucket = 'B';
    const error = (() => {
      try {
        validateConfig(raw, {});
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('no error');
    })();
    expect(error).toBeInstanceOf(SluiceError);
    expect(error.name).toBe('ConfigError');
    expect(error.issues).toEqual([
      { path: 'shutdown_timeout_secs', message: 'must be between 1 and 3600, got 0' },
      { path: 'sources.t.address', message: '"nope" is not host:port' },
      { path: 'sources.u.sockets', message: 'must be between 1 and 64, got 65' },
      { path: 'sinks.s3.upload_period_secs', message: 'must be between 1 and 86400, got 0' },
      { path: 'sinks.s3.bucket', message: expect.stringContaining('"B" is not a valid S3 bucket name') },
    ]);
  });
});

describe('unknown options', () => {
  const cases: [string, string, string][] = [
    ['top level', 'sourcse', 'sourcse: unknown option `sourcse`; did you mean `sources`?'],
    ['top level', 'data_dri', 'data_dri: unknown option `data_dri`; did you mean `data_dir`?'],
    ['api', 'api.adress', 'api.adress: unknown option `adress`; did you mean `address`?'],
    ['log', 'log.levle', 'log.levle: unknown option `levle`; did you mean `level`?'],
    ['workers', 'workers.thread', 'workers.thread: unknown option `thread`; did you mean `threads`?'],
    ['dead_letter', 'dead_letter.paht', 'dead_letter.paht: unknown option `paht`; did you mean `path`?'],
    ['tcp source', 'sources.t.adress', 'sources.t.adress: unknown option `adress`; did you mean `address`?'],
    ['udp source', 'sources.u.socket', 'sources.u.socket: unknown option `socket`; did you mean `sockets`?'],
    ['file sink', 'sinks.f.input', 'sinks.f.input: unknown option `input`; did you mean `inputs`?'],
    ['aws_s3 sink', 'sinks.s3.buckets', 'sinks.s3.buckets: unknown option `buckets`; did you mean `bucket`?'],
    ['component type', 'sinks.s3.typ', 'sinks.s3.typ: unknown option `typ`; did you mean `type`?'],
    ['no close match', 'sinks.s3.colour', 'sinks.s3.colour: unknown option `colour`'],
  ];
  for (const [where, path, line] of cases) {
    it(`at ${where}: ${path}`, () => {
      const raw = withOption(path, 1);
      if (path.endsWith('.input')) raw.sinks.f.inputs = ['t', 'u'];
      if (path === 'dead_letter.paht') raw.dead_letter.path = './dl';
      expect(issueLines(() => validateConfig(raw, {}))).toContain(line);
    });
  }

  it('names the type an option belongs to', () => {
    const raw = fullRaw();
    raw.sources.u.max_line_bytes = 100;
    raw.sinks.f.bucket = 'logs';
    raw.sinks.s3.path = './x';
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources.u.max_line_bytes: unknown option `max_line_bytes` for udp sources; it applies to tcp sources',
      'sinks.f.bucket: unknown option `bucket` for file sinks; it applies to aws_s3 sinks',
      'sinks.s3.path: unknown option `path` for aws_s3 sinks; it applies to file sinks',
    ]);
  });

  it('suggests a component type', () => {
    expect(issueLines(() => validateConfig(withOption('sinks.s3.type', 's3'), {}))).toEqual([
      'sinks.s3.type: must be one of file, aws_s3, got "s3"',
    ]);
    expect(issueLines(() => validateConfig(withOption('sinks.s3.type', 'aws-s3'), {}))).toEqual([
      'sinks.s3.type: must be one of file, aws_s3, got "aws-s3"; did you mean `aws_s3`?',
    ]);
  });
});

describe('interpolation', () => {
  it('replaces ${VAR} and ${VAR:-default} in strings', () => {
    const raw = fullRaw();
    raw.data_dir = '${DATA}/sluice';
    raw.sources.t.address = '${HOST:-0.0.0.0}:${PORT}';
    raw.sources.t.extra_tags = { cluster: '${CLUSTER}', cost: '$$5', literal: '$HOME' };
    raw.sinks.s3.bucket = '${BUCKET:-logs}';
    const config = validateConfig(raw, { DATA: '/var/lib', PORT: '5171', CLUSTER: 'prod' });
    expect(config.data_dir).toBe('/var/lib/sluice');
    expect(config.sources.t).toMatchObject({ host: '0.0.0.0', port: 5171 });
    expect(config.sources.t?.extra_tags).toEqual({ cluster: 'prod', cost: '$5', literal: '$HOME' });
    expect(config.sinks.s3).toMatchObject({ bucket: 'logs' });
  });

  it('accepts numbers and booleans that came from the environment', () => {
    const raw = fullRaw();
    raw.shutdown_timeout_secs = '${GRACE}';
    raw.workers = { threads: '${THREADS:-3}' };
    raw.api = { enabled: '${API}' };
    raw.sinks.s3.force_path_style = '${PATH_STYLE:-false}';
    raw.sinks.s3.queue_size = '${QUEUE}';
    const config = validateConfig(raw, { GRACE: '45', API: 'false', QUEUE: '8' });
    expect(config.shutdown_timeout_secs).toBe(45);
    expect(config.workers.threads).toBe(3);
    expect(config.api.enabled).toBe(false);
    expect(config.sinks.s3).toMatchObject({ force_path_style: false, queue_size: 8 });
  });

  it('still checks types and ranges of values from the environment', () => {
    const raw = fullRaw();
    raw.shutdown_timeout_secs = '${GRACE}';
    raw.sources.u.sockets = '${SOCKETS}';
    raw.api = { enabled: '${API}' };
    raw.sinks.s3.queue_size = '${QUEUE}';
    expect(issueLines(() => validateConfig(raw, { GRACE: '4000', SOCKETS: '2.0', API: 'yes', QUEUE: ' 8' }))).toEqual([
      'shutdown_timeout_secs: must be between 1 and 3600, got 4000',
      'api.enabled: expected true or false, got string "yes"',
      'sources.u.sockets: expected an integer, got string "2.0"',
      'sinks.s3.queue_size: expected an integer, got string " 8"',
    ]);
  });

  it('reports missing variables at the option path', () => {
    const raw = fullRaw();
    raw.sources.t.address = '0.0.0.0:${TCP_PORT}';
    raw.sinks.s3.bucket = '${BUCKET}';
    raw.sinks.f.inputs = ['t', '${SECOND}'];
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources.t.address: environment variable `TCP_PORT` is not set (write `${TCP_PORT:-default}` to give a default)',
      'sinks.f.inputs[1]: environment variable `SECOND` is not set (write `${SECOND:-default}` to give a default)',
      'sinks.s3.bucket: environment variable `BUCKET` is not set (write `${BUCKET:-default}` to give a default)',
    ]);
  });

  it('cannot inject structure: a value stays one string', () => {
    const raw = withOption('sinks.s3.bucket', '${B}');
    expect(issueLines(() => validateConfig(raw, { B: 'logs\nendpoint: http://evil' }))).toEqual([
      expect.stringContaining('sinks.s3.bucket: "logs\\nendpoint: http://evil" is not a valid S3 bucket name'),
    ]);
  });

  it('uses process.env by default', () => {
    process.env.SLUICE_TEST_GRACE = '12';
    try {
      expect(validateConfig(withOption('shutdown_timeout_secs', '${SLUICE_TEST_GRACE}')).shutdown_timeout_secs).toBe(
        12,
      );
    } finally {
      delete process.env.SLUICE_TEST_GRACE;
    }
  });
});
