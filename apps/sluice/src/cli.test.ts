import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = new URL('./cli.ts', import.meta.url).pathname;
const BIN = new URL('../bin/sluice.js', import.meta.url).pathname;

function sluice(
  args: string[],
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const path = join(dir, 'sluice.yaml');
  writeFileSync(path, text);
  return path;
}

describe('sluice CLI', () => {
  it('--version and --help', () => {
    expect(sluice(['--version']).stdout).toMatch(/^sluice \d+\.\d+\.\d+ \(node 24\./);
    const help = sluice(['--help']);
    expect(help.status).toBe(0);
    // The first line says what goes in: both wire formats.
    expect(help.stdout.split('\n')[0]).toMatch(/Talos json_lines .*Splunk HEC/);
    expect(help.stdout).toContain('sluice run [--config FILE]');
    expect(help.stdout).toContain('sluice validate --config FILE');
  });

  it('the launcher re-executes itself on Node 24 when started by an older node', () => {
    // /usr/bin/node on these machines is 20; the launcher must still answer, on 24.
    const r = spawnSync('/usr/bin/env', ['node', BIN, '--version'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `/usr/bin:${process.env['PATH'] ?? ''}` },
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\(node 24\./);
  });

  it('validate: exit 0 on a good file', () => {
    const path = configFile(`
sources:
  t: { type: tcp, address: 127.0.0.1:0 }
sinks:
  f: { type: file, inputs: [t], path: ./out }
`);
    const r = sluice(['validate', '--config', path]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('OK (1 sources, 1 sinks)');
  });

  it('validate: exit 1 with one line per problem, naming the option', () => {
    const path = configFile(`
sources:
  t: { type: tcp, address: "127.0.0.1:notaport" }
sinks:
  f: { type: file, inputs: [t], path: ./out, upload_period_secs: 0 }
`);
    const r = sluice(['validate', '--config', path]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('sources.t.address: "127.0.0.1:notaport" is not host:port');
    expect(r.stderr).toContain('sinks.f.upload_period_secs: must be between 1 and 86400, got 0');
  });

  it('validate --check-connectivity: one line per sink, exit 1 naming a sink that cannot write', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    writeFileSync(join(dir, 'a-file'), ''); // a directory cannot be made under a file
    const path = configFile(`
sources:
  t: { type: tcp, address: 127.0.0.1:0 }
sinks:
  ok: { type: file, inputs: [t], path: ${dir}/out }
  bad: { type: file, inputs: [t], path: ${dir}/a-file/out }
`);
    const r = sluice(['validate', '--config', path, '--check-connectivity']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe(`${path}: OK (1 sources, 2 sinks)\nsinks.ok (file): OK\n`);
    expect(r.stderr).toBe(
      `sinks.bad (file): file sink path ${dir}/a-file/out is not writable (ENOTDIR): point path at a directory this process can create files in (SLUICE_ERR_SINK_UNWRITABLE)\n`,
    );
    // Without the flag, nothing is touched.
    expect(sluice(['validate', '--config', path]).status).toBe(0);
  });

  it('run: a bad config is reported before any port is bound', async () => {
    // Find a free port, then ask sluice to listen there with a broken sink.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const path = configFile(`
api: { enabled: false }
sources:
  t: { type: tcp, address: 127.0.0.1:${port} }
sinks:
  f: { type: file, inputs: [t], path: ./out, compression: brotli }
`);
    const r = sluice(['run', '--config', path]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('sinks.f.compression');
    expect(r.stdout).not.toContain('sluice is running');
  });

  it('run: a port already in use is one clear error naming the source', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
      const path = join(dir, 'sluice.yaml');
      writeFileSync(
        path,
        `
api: { enabled: false }
sources:
  t: { type: tcp, address: 127.0.0.1:${port} }
sinks:
  f: { type: file, inputs: [t], path: ${dir}/out }
`,
      );
      const r = sluice(['run', '--config', path]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`sources.t: cannot listen on 127.0.0.1:${port} (tcp): EADDRINUSE`);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('an unknown command says so', () => {
    const r = sluice(['frobnicate']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });
});
