/**
 * Sluice under Bun (the `bun` package from the npm registry, a root devDependency): the
 * daemon starts from the TypeScript sources, takes Talos lines over TCP and UDP, writes zstd
 * and gzip objects through the piscina worker threads and the SharedArrayBuffer rings,
 * uploads to S3 (the run's Ceph RGW), and drains on SIGTERM; every line is checked. What
 * differs from Node is asserted as documented in docs/deploy.md, "Bun".
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { isIndexKey } from '@sluice/sinks/registry';
import { decompress as zstdDecompress } from '@mongodb-js/zstd';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { kernelLine, mulberry32, serviceLine } from '@sluice/testkit';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';
import { rgwClient } from '../s3/rgw.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
/** How long a test waits for the daemon: generous, the machine may be loaded. */
const WAIT = { timeout: 60_000, interval: 100 };
const BUN = join(ROOT, 'node_modules/.bin/bun');
const CLI = join(ROOT, 'apps/sluice/src/cli.ts');
const HAVE_BUN = existsSync(BUN) && spawnSync(BUN, ['--version']).status === 0;
const NOT_RUN = HAVE_BUN
  ? ''
  : ' (NOT RUN: node_modules/.bin/bun is missing or does not start: npm ci installs it with its platform binary @oven/bun-*)';

interface BunDaemon {
  proc: ChildProcess;
  sources: Record<string, string[]>;
  apiPort: number;
  stdout: () => string;
  stop(): Promise<number | null>;
}

/** `bun apps/sluice/src/cli.ts run --config FILE`, resolved once it logs "sluice is running". */
async function startUnderBun(configYaml: string, dir: string, env: Record<string, string> = {}): Promise<BunDaemon> {
  const file = join(dir, 'sluice.yaml');
  writeFileSync(file, configYaml);
  const proc = spawn(BUN, [CLI, 'run', '--config', file], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const running = await new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /^.*"sluice is running".*$/m.exec(out);
      if (m !== null) resolve(JSON.parse(m[0]) as Record<string, unknown>);
    });
    void exited.then((code) =>
      reject(new Error(`sluice under Bun exited with ${code} before running\n${err}\n${out}`)),
    );
  });
  return {
    proc,
    sources: running['sources'] as Record<string, string[]>,
    apiPort: running['api_port'] as number,
    stdout: () => out + err,
    stop: async () => {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

async function sendTcp(address: string, lines: string[]): Promise<void> {
  const { host, port } = splitAddress(address);
  const socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  for (let i = 0; i < lines.length; i += 500) {
    if (!socket.write(`${lines.slice(i, i + 500).join('\n')}\n`)) await new Promise((r) => socket.once('drain', r));
  }
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.end();
  });
}

async function sendUdp(address: string, lines: string[]): Promise<void> {
  const { host, port } = splitAddress(address);
  const socket = createSocket('udp4');
  for (let i = 0; i < lines.length; i += 50) {
    await Promise.all(
      lines
        .slice(i, i + 50)
        .map(
          (l) => new Promise<void>((resolve, reject) => socket.send(l, port, host, (e) => (e ? reject(e) : resolve()))),
        ),
    );
    await new Promise((r) => setTimeout(r, 2)); // a pause on purpose: paced, UDP has no backpressure
  }
  socket.close();
}

describe('Sluice under Bun', () => {
  it(`the bun package from the npm registry runs here, and reports a Node version >= 24 (so the bin launcher does not re-exec to Node)${NOT_RUN}`, () => {
    if (!HAVE_BUN) return expect(HAVE_BUN, NOT_RUN).toBe(true);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules/bun/package.json'), 'utf8')) as { version: string };
    expect(spawnSync(BUN, ['--version'], { encoding: 'utf8' }).stdout.trim()).toBe(pkg.version);
    const nodeVersion = spawnSync(BUN, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    expect(Number(nodeVersion.split('.')[0])).toBeGreaterThanOrEqual(24);
    // The launcher imports the CLI in the same Bun process: the version line names Bun's Node.
    const v = spawnSync(BUN, [join(ROOT, 'apps/sluice/bin/sluice.js'), '--version'], { encoding: 'utf8' });
    expect(v.stdout).toMatch(new RegExp(`\\(node ${nodeVersion.replace(/\./g, '\\.')}\\)`));
  });

  it.skipIf(!HAVE_BUN)(
    `end to end: TCP and UDP into zstd and gzip file sinks, SIGTERM drains, every line exactly once with its tags${NOT_RUN}`,
    async () => {
      const SERVICE = 40_000;
      const KERNEL = 4_000;
      const dir = tempDir('sluice-bun-');
      const daemon = await startUnderBun(
        `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
workers: { threads: 2 }
sources:
  talos_service: { type: tcp, address: 127.0.0.1:0, extra_tags: { cluster: bun, zone: "a\\"b" }, host_key: __host }
  talos_kernel: { type: udp, address: 127.0.0.1:0, extra_tags: { cluster: bun, node: worker-7 }, sockets: 2 }
sinks:
  zst: { type: file, inputs: [talos_service, talos_kernel], path: ${dir}/zst, key_prefix: talos/, compression: zstd, upload_period_secs: 1 }
  gz: { type: file, inputs: [talos_service, talos_kernel], path: ${dir}/gz, key_prefix: talos/, compression: gzip, upload_period_secs: 1 }
`,
        dir,
      );
      const rand = mulberry32(7);
      const service = Array.from({ length: SERVICE }, (_, id) => serviceLine({ id, rand }));
      const kernel = Array.from({ length: KERNEL }, (_, id) => kernelLine({ id, rand }));
      const tcp = daemon.sources['talos_service']![0]!;
      await Promise.all([sendTcp(tcp, service.slice(0, SERVICE / 2)), sendTcp(tcp, service.slice(SERVICE / 2))]);
      await sendUdp(daemon.sources['talos_kernel']![0]!, kernel);
      // UDP has no handshake: wait until the daemon counted every datagram.
      const kernelReceived = async (): Promise<number> =>
        metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total', {
          component_id: 'talos_kernel',
        });
      await vi.waitFor(
        async () => expect(await kernelReceived(), 'every kernel line received').toBeGreaterThanOrEqual(KERNEL),
        WAIT,
      );
      expect(await daemon.stop()).toBe(0);
      expect(daemon.stdout()).toMatch(/"msg":"shutdown complete"/);

      for (const sink of ['zst', 'gz']) {
        const out = join(dir, sink);
        const seenService = new Uint8Array(SERVICE);
        const seenKernel = new Uint8Array(KERNEL);
        const keys = listObjects(out);
        expect(keys.length).toBeGreaterThan(0);
        for (const key of keys) {
          expect(key).toMatch(
            new RegExp(`^talos/\\d{4}/\\d{2}/\\d{2}/\\d{2}:\\d{2}:\\d{2}-[0-9a-f]{16}-\\d{6}\\.ndjson\\.${sink}$`),
          );
          for (const line of await readObjectLines(join(out, key))) {
            const rec = JSON.parse(line) as Record<string, unknown>;
            expect(rec['cluster']).toBe('bun');
            if (typeof rec['seq'] === 'number') {
              const { cluster: _c, node, ...original } = rec;
              expect(node).toBe('worker-7');
              expect(JSON.stringify(original)).toBe(kernel[rec['seq']]);
              seenKernel[rec['seq']]!++;
            } else {
              const id = Number(/req=(\d+)$/.exec(String(rec['msg']))![1]);
              const { cluster: _c, zone, __host, ...original } = rec;
              expect(zone).toBe('a"b');
              expect(__host).toBe('127.0.0.1');
              expect(JSON.stringify(original)).toBe(service[id]);
              seenService[id]!++;
            }
          }
        }
        expect(seenService.every((n) => n === 1)).toBe(true);
        expect(seenKernel.every((n) => n === 1)).toBe(true);
      }
    },
  );

  const s3 = inject('s3');
  const client = rgwClient(s3);
  afterAll(() => client.destroy());

  it.skipIf(!HAVE_BUN)(`aws_s3 sink under Bun: lines land in S3 (Ceph RGW) and read back whole${NOT_RUN}`, async () => {
    const bucket = `bun-${Date.now().toString(36)}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const dir = tempDir('sluice-bun-s3-');
    const daemon = await startUnderBun(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  talos_service: { type: tcp, address: 127.0.0.1:0 }
sinks:
  s3:
    type: aws_s3
    inputs: [talos_service]
    endpoint: ${s3.endpoint}
    bucket: ${bucket}
    region: ${s3.region}
    access_key_id: \${K}
    secret_access_key: \${S}
    key_prefix: talos/
    upload_period_secs: 1
`,
      dir,
      { K: s3.accessKeyId, S: s3.secretAccessKey },
    );
    const lines = Array.from({ length: 20_000 }, (_, id) => serviceLine({ id, rand: mulberry32(3) }));
    await sendTcp(daemon.sources['talos_service']![0]!, lines);
    expect(await daemon.stop()).toBe(0);
    // Objects only: the `_<object>.index.json` sidecars beside them are their indexes.
    const keys = ((await client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [])
      .map((c) => c.Key!)
      .filter((k) => !isIndexKey(k));
    const got: string[] = [];
    for (const key of keys) {
      const body = await (
        await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      ).Body!.transformToByteArray();
      got.push(
        ...(await zstdDecompress(Buffer.from(body)))
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      );
    }
    expect(got.sort()).toEqual([...lines].sort());
  });

  it.skipIf(!HAVE_BUN)(
    `documented differences in /metrics: every metric family is declared under both; under Bun there are no series for sluice_nodejs_active_handles and _active_resources, though the daemon holds sockets and timers (Bun's process._getActiveHandles / getActiveResourcesInfo return []); no series for sluice_nodejs_gc_duration_seconds (Bun's PerformanceObserver accepts 'gc' but never delivers an entry); every other series is there${NOT_RUN}`,
    async () => {
      const config = `
api: { address: 127.0.0.1:0 }
sources:
  t: { type: tcp, address: 127.0.0.1:0 }
sinks:
  f: { type: file, inputs: [t], path: ./out }
`;
      const GC = 'sluice_nodejs_gc_duration_seconds';
      // prom-client's per-type gauges have a series per kind of handle, request or resource alive
      // at the scrape (an fs write in flight adds one): which appear is a matter of timing.
      const PER_TYPE = [
        'sluice_nodejs_active_handles',
        'sluice_nodejs_active_requests',
        'sluice_nodejs_active_resources',
      ];
      const family = (series: string): string => series.replace(/\{.*$/, '').replace(/_(bucket|count|sum)$/, '');
      const names = (m: Map<string, number>): Set<string> => new Set([...m.keys()].map((k) => k.replace(/\{.*$/, '')));
      const declared = async (apiPort: number): Promise<string[]> =>
        [...(await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text()).matchAll(/^# TYPE (\S+) /gm)]
          .map((m) => m[1]!)
          .sort();
      // The same load for both runtimes: enough allocation on the main thread that Node has
      // collected garbage (the GC histogram has series only once a collection was observed).
      const lines = Array.from({ length: 50_000 }, (_, id) => serviceLine({ id, rand: mulberry32(11) }));
      const loaded = async (apiPort: number, address: string, wantGc: boolean): Promise<Map<string, number>> => {
        await sendTcp(address, lines);
        return vi.waitFor(async () => {
          const m = await scrape(apiPort);
          const received = metricSum(m, 'sluice_source_received_events_total');
          expect(received, 'every line received').toBeGreaterThanOrEqual(lines.length);
          if (wantGc) expect(names(m).has(`${GC}_count`), `${GC} under Node after ${lines.length} lines`).toBe(true);
          return m;
        }, WAIT);
      };
      const underNode = await startDaemon(config);
      const nodeMetrics = await loaded(underNode.apiPort, underNode.sources['t']![0]!, true);
      const nodeFamilies = await declared(underNode.apiPort);
      expect(await underNode.stop()).toBe(0);
      const dir = tempDir('sluice-bun-metrics-');
      const underBun = await startUnderBun(config, dir);
      const bunMetrics = await loaded(underBun.apiPort, underBun.sources['t']![0]!, false);
      const bunFamilies = await declared(underBun.apiPort);
      expect(await underBun.stop()).toBe(0);
      expect(bunFamilies).toEqual(nodeFamilies);
      const nodeNames = names(nodeMetrics);
      const bunNames = names(bunMetrics);
      // GC: Node has observed collections after the load, Bun never reports one.
      expect(nodeNames.has(`${GC}_count`), `${GC} under Node after ${lines.length} lines`).toBe(true);
      expect([...bunNames].filter((n) => family(n) === GC)).toEqual([]);
      // The daemon holds a listening socket, an API server and timers: Node counts them, Bun has none.
      expect(metricSum(nodeMetrics, 'sluice_nodejs_active_handles')).toBeGreaterThan(0);
      expect(metricSum(nodeMetrics, 'sluice_nodejs_active_resources')).toBeGreaterThan(0);
      expect([...bunNames].filter((n) => PER_TYPE.includes(n))).toEqual([]);
      // Every other series is there under both.
      const steady = (set: Set<string>): string[] =>
        [...set].filter((n) => family(n) !== GC && !PER_TYPE.includes(n)).sort();
      expect(steady(bunNames)).toEqual(steady(nodeNames));
    },
  );
});
