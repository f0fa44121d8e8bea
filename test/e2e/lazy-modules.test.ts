/**
 * The daemon loads the code of the components it runs, not of every component it knows: no
 * AWS SDK without an aws_s3 sink, no TLS without a TLS source, no fetch implementation ever
 * (an ES import of node:http would load it). Each is several MiB of resident memory per
 * process (docs/deploy.md, "Memory"). The daemon runs with a preload that records every module
 * it resolves and every Node built-in it loads (test/helpers/record-modules.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startDaemon, tempDir } from '../helpers/daemon.ts';
import { freshBucket, s3Connection, s3Env } from '../helpers/s3.ts';
import { rgwClient } from '../s3/rgw.ts';

const CLI = new URL('../../apps/sluice/src/cli.ts', import.meta.url).pathname;
const RECORD = new URL('../helpers/record-modules.ts', import.meta.url).pathname;
const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

/** Start the daemon on `yaml`, stop it (SIGTERM, exit 0), and list what it loaded. */
async function loadedBy(yaml: (dir: string) => string, extraEnv: Record<string, string> = {}): Promise<string[]> {
  const dir = tempDir();
  const out = join(dir, 'modules.txt');
  const daemon = await startDaemon(yaml(dir), {
    dir,
    env: { ...extraEnv, SLUICE_RECORD_MODULES: out },
    command: [process.execPath, '--import', RECORD, CLI],
  });
  expect(await daemon.stop()).toBe(0);
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

const SOURCES = `
api: { address: 127.0.0.1:0 }
sources:
  talos_service: { type: tcp, address: 127.0.0.1:0 }
  talos_kernel: { type: udp, address: 127.0.0.1:0 }`;

const awsSdk = (loaded: string[]): string[] => loaded.filter((m) => m.includes('/node_modules/@aws-sdk/'));

describe('the daemon loads only what its config uses', () => {
  it('tcp + udp into a file sink: no AWS SDK, no TLS, no fetch implementation, no prom-client Pushgateway', {
    timeout: 60_000,
  }, async () => {
    const loaded = await loadedBy(
      (dir) => `data_dir: ${dir}/data${SOURCES}
sinks:
  local: { type: file, inputs: [talos_service, talos_kernel], path: ${dir}/out }
`,
    );
    // The recording saw the daemon's own modules (so an empty list cannot pass).
    expect(loaded.some((m) => m.endsWith('/apps/sluice/src/daemon.ts'))).toBe(true);
    expect(loaded).toContain('builtin:net');
    expect(awsSdk(loaded)).toEqual([]);
    expect(loaded.filter((m) => /^builtin:(tls|_tls_wrap|https|internal\/deps\/undici\/undici)$/.test(m))).toEqual([]);
    expect(loaded.filter((m) => m.includes('/prom-client/lib/pushgateway'))).toEqual([]);
  });

  it('with an aws_s3 sink the SDK is loaded (the recording sees it)', { timeout: 60_000 }, async () => {
    const bucket = await freshBucket(client, 'lazy-modules');
    const loaded = await loadedBy(
      (dir) => `data_dir: ${dir}/data${SOURCES}
sinks:
  s3:
    type: aws_s3
    inputs: [talos_service, talos_kernel]
    ${s3Connection(env.endpoint, bucket)}
`,
      s3Env(env),
    );
    expect(awsSdk(loaded).some((m) => m.includes('/@aws-sdk/client-s3/'))).toBe(true);
  });
});
