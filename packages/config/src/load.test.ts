import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from './index.ts';
import { issueLines } from './test-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const YAML = `
data_dir: /var/lib/sluice
api:
  address: "[::1]:9598"
sources:
  talos_service:
    type: tcp
    address: 0.0.0.0:\${TCP_PORT:-5170}
    extra_tags: { cluster: "\${CLUSTER}" }
  talos_kernel:
    type: udp
    address: 0.0.0.0:6050
sinks:
  s3:
    type: aws_s3
    inputs: [talos_service, talos_kernel]
    endpoint: http://127.0.0.1:7480
    bucket: logs
    access_key_id: \${KEY_ID}
    secret_access_key: \${SECRET}
    queue_size: \${QUEUE:-8}
`;

describe('loadConfigFile', () => {
  it('loads YAML with environment interpolation', () => {
    const config = loadConfigFile(file('sluice.yaml', YAML), { CLUSTER: 'prod', KEY_ID: 'AKID', SECRET: 's3cr3t' });
    expect(config.data_dir).toBe('/var/lib/sluice');
    expect(config.api).toMatchObject({ host: '::1', port: 9598 });
    expect(config.sources.talos_service).toMatchObject({ type: 'tcp', port: 5170, extra_tags: { cluster: 'prod' } });
    expect(config.sinks.s3).toMatchObject({ access_key_id: 'AKID', secret_access_key: 's3cr3t', queue_size: 8 });
  });

  it('loads JSON (tab-indented, as editors write it)', () => {
    const json = JSON.stringify(
      {
        shutdown_timeout_secs: 10,
        sources: { t: { type: 'tcp', address: '[::]:5170', extra_tags: { env: '${ENV:-dev}' } } },
        sinks: { out: { type: 'file', inputs: ['t'], path: './out', compression: 'gzip' } },
      },
      null,
      '\t',
    );
    const config = loadConfigFile(file('sluice.json', json), {});
    expect(config.shutdown_timeout_secs).toBe(10);
    expect(config.sources.t).toMatchObject({ host: '::', port: 5170, extra_tags: { env: 'dev' } });
    expect(config.sinks.out).toMatchObject({ compression: 'gzip', compression_level: 6 });
  });

  it('names the file it cannot read', () => {
    const missing = join(dir, 'missing.yaml');
    expect(issueLines(() => loadConfigFile(missing, {}))).toEqual([
      `${missing}: cannot read the configuration file (ENOENT)`,
    ]);
  });

  it('reports every problem of a file at once', () => {
    const path = file(
      'bad.yaml',
      YAML.replace('bucket: logs', 'bucket: Logs').replace('type: udp', 'type: udp\n    sockets: 0'),
    );
    expect(issueLines(() => loadConfigFile(path, { KEY_ID: 'AKID', SECRET: 'x' }))).toEqual([
      'sources.talos_service.extra_tags.cluster: environment variable `CLUSTER` is not set (write `${CLUSTER:-default}` to give a default)',
      'sources.talos_kernel.sockets: must be between 1 and 64, got 0',
      'sinks.s3.bucket: "Logs" is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, no "..", not an IP address)',
    ]);
  });
});

describe('parseConfig', () => {
  const minimal =
    'sources: { t: { type: tcp, address: "127.0.0.1:1" } }\nsinks: { f: { type: file, inputs: [t], path: x } }\n';

  it('rejects duplicate keys at any depth, with lines', () => {
    const text = `data_dir: a
data_dir: b
sources:
  t:
    type: tcp
    address: 127.0.0.1:1
    type: udp
sinks:
  f: { type: file, inputs: [t], path: x, path: y }
`;
    expect(issueLines(() => parseConfig(text, 'c.yaml', {}))).toEqual([
      'data_dir: duplicate key (line 2; first given on line 1)',
      'sources.t.type: duplicate key (line 7; first given on line 5)',
      'sinks.f.path: duplicate key (line 9; first given on line 9)',
    ]);
  });

  it('rejects duplicate keys in JSON', () => {
    const text = '{"sources": {"t": {"type": "tcp", "address": "127.0.0.1:1"}}, "sinks": {}, "sinks": {}}';
    expect(issueLines(() => parseConfig(text, 'c.json', {}))).toContain(
      'sinks: duplicate key (line 1; first given on line 1)',
    );
  });

  it('reports duplicate keys together with other issues', () => {
    const text = `${minimal}log: { level: loud }\nlog: { level: info }\nworkers: { threads: 0 }\n`;
    expect(issueLines(() => parseConfig(text, 'c.yaml', {}))).toEqual([
      'log: duplicate key (line 4; first given on line 3)',
      'workers.threads: must be between 1 and 64, got 0',
    ]);
  });

  it('locates syntax errors by source, line and column', () => {
    const lines = issueLines(() => parseConfig('sources:\n  t: [1, 2\n', 'conf/sluice.yaml', {}));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatch(/^conf\/sluice\.yaml:\d+:\d+: /);
    expect(issueLines(() => parseConfig('a: 1\n---\nb: 2\n', 'x.yaml', {}))[0]).toMatch(
      /^x\.yaml:2:1: Source contains multiple documents/,
    );
    expect(issueLines(() => parseConfig('a: !custom x\n', 'x.yaml', {}))[0]).toMatch(
      /^x\.yaml:1:4: Unresolved tag: !custom/,
    );
  });

  it('treats an empty file as an empty map', () => {
    expect(issueLines(() => parseConfig('', 'empty.yaml', {}))).toEqual([
      'sources: at least one source is required',
      'sinks: at least one sink is required',
    ]);
    expect(issueLines(() => parseConfig('# only a comment\n', 'c.yaml', {}))).toHaveLength(2);
  });

  it('resolves anchors and aliases', () => {
    const text = `tags: &tags { cluster: prod }
sources:
  t: { type: tcp, address: "127.0.0.1:1", extra_tags: *tags }
sinks: { f: { type: file, inputs: [t], path: x } }
`;
    // `tags` is not an option: anchors live where options are allowed.
    expect(issueLines(() => parseConfig(text, 'c.yaml', {}))).toEqual(['tags: unknown option `tags`']);
    const ok = text
      .replace('tags: &tags { cluster: prod }', 'data_dir: ./data')
      .replace('extra_tags: *tags', 'extra_tags: &t { cluster: prod }');
    expect(parseConfig(ok, 'c.yaml', {}).sources.t?.extra_tags).toEqual({ cluster: 'prod' });
  });

  it('refuses an alias bomb', () => {
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++) {
      const name = String.fromCharCode(97 + i);
      const prev = String.fromCharCode(96 + i);
      rows.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    }
    const lines = issueLines(() => parseConfig(`${rows.join('\n')}\n`, 'bomb.yaml', {}));
    expect(lines[0]).toMatch(/^bomb\.yaml: /);
  });

  it('interpolates after parsing, so values cannot inject YAML', () => {
    const config = parseConfig(minimal.replace('path: x', 'path: "${P}"'), 'c.yaml', { P: 'x }\nsources: {}' });
    expect(config.sinks.f).toMatchObject({ path: 'x }\nsources: {}' });
    expect(Object.keys(config.sources)).toEqual(['t']);
  });
});
