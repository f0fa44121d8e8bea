import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kernelLine, mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';

const SERVICE_LINES = 100_000;
const KERNEL_LINES = 20_000;

async function sendTcp(address: string, lines: string[]): Promise<void> {
  const { host, port } = splitAddress(address);
  const socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // Write in chunks the way a long-lived sender does, honouring backpressure.
  for (let i = 0; i < lines.length; i += 500) {
    const chunk = `${lines.slice(i, i + 500).join('\n')}\n`;
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  }
  // Half-close and wait for the server to close: then it has read every byte we sent.
  await new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
    socket.end();
  });
}

/** Paced UDP: `perTick` datagrams every `tickMs`. */
async function sendUdpPaced(address: string, lines: string[], perTick: number, tickMs: number): Promise<void> {
  const { host, port } = splitAddress(address);
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  for (let i = 0; i < lines.length; i += perTick) {
    const started = performance.now();
    await Promise.all(
      lines
        .slice(i, i + perTick)
        .map(
          (l) =>
            new Promise<void>((resolve, reject) =>
              socket.send(l, port, host, (err) => (err ? reject(err) : resolve())),
            ),
        ),
    );
    const left = tickMs - (performance.now() - started);
    if (left > 0) await new Promise((r) => setTimeout(r, left)); // a pause on purpose: a paced sender
  }
  socket.close();
}

describe('end to end: Talos TCP and UDP into the file sink', () => {
  it('stores every line exactly once with its tags (UDP: every datagram received; a kernel drop is counted), and drains on SIGTERM', async () => {
    const dir = tempDir();
    const out = join(dir, 'out');
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  talos_service:
    type: tcp
    address: 127.0.0.1:0
    extra_tags: { cluster: e2e, zone: "a\\"b" }
    host_key: __host
  talos_kernel:
    type: udp
    address: 127.0.0.1:0
    extra_tags: { cluster: e2e, node: worker-7 }
sinks:
  local:
    type: file
    inputs: [talos_service, talos_kernel]
    path: ${out}
    key_prefix: talos/
    compression: zstd
    upload_period_secs: 1
`,
      { dir },
    );
    const rand = mulberry32(42);
    const service = Array.from({ length: SERVICE_LINES }, (_, id) => serviceLine({ id, rand }));
    const kernel = Array.from({ length: KERNEL_LINES }, (_, id) => kernelLine({ id, rand }));

    const tcp = daemon.sources['talos_service']![0]!;
    // Two connections, half the lines each, the way two Talos nodes would send.
    await Promise.all([
      sendTcp(tcp, service.slice(0, SERVICE_LINES / 2)),
      sendTcp(tcp, service.slice(SERVICE_LINES / 2)),
    ]);
    await sendUdpPaced(daemon.sources['talos_kernel']![0]!, kernel, 100, 5);

    // UDP has no backpressure: a datagram the daemon did not read in time (a stall of ~0.4 s on a
    // loaded machine overflows the receive buffer at this rate) is dropped by the kernel and
    // counted. The books must balance either way: received + kernel drops = sent.
    const kernelDrops = (m: Map<string, number>): number =>
      metricSum(m, 'sluice_source_kernel_dropped_datagrams_total', { component_id: 'talos_kernel' });
    await waitUntil(
      'every line received (UDP: or dropped by the kernel)',
      async () => {
        const m = await scrape(daemon.apiPort);
        return (
          metricSum(m, 'sluice_source_received_events_total', { component_id: 'talos_service' }) === SERVICE_LINES &&
          metricSum(m, 'sluice_source_received_events_total', { component_id: 'talos_kernel' }) + kernelDrops(m) ===
            KERNEL_LINES
        );
      },
      30_000,
    );
    const mid = await scrape(daemon.apiPort);
    expect(metricSum(mid, 'sluice_source_received_events_total', { component_id: 'talos_service' })).toBe(
      SERVICE_LINES,
    );
    const kernelReceived = metricSum(mid, 'sluice_source_received_events_total', { component_id: 'talos_kernel' });
    expect(kernelReceived + kernelDrops(mid)).toBe(KERNEL_LINES);
    // On an unloaded machine none is dropped; more than a few percent would be a real problem.
    expect(kernelDrops(mid)).toBeLessThan(KERNEL_LINES / 20);
    expect(metricSum(mid, 'sluice_source_discarded_events_total')).toBe(0);

    expect(await daemon.stop('SIGTERM')).toBe(0);

    const objects = listObjects(out);
    expect(objects.length).toBeGreaterThan(0);
    for (const key of objects)
      expect(key).toMatch(/^talos\/\d{4}\/\d{2}\/\d{2}\/\d{2}:\d{2}:\d{2}-[0-9a-f]{16}-\d{6}\.ndjson\.zst$/);

    const seenService = new Uint8Array(SERVICE_LINES);
    const seenKernel = new Uint8Array(KERNEL_LINES);
    for (const key of objects) {
      for (const line of await readObjectLines(join(out, key))) {
        const rec = JSON.parse(line) as Record<string, unknown>;
        expect(rec['cluster']).toBe('e2e');
        if (typeof rec['seq'] === 'number') {
          const id = rec['seq'];
          expect(rec['node']).toBe('worker-7');
          expect(rec['__host']).toBeUndefined();
          const { cluster: _c, node: _n, ...original } = rec;
          expect(JSON.stringify(original)).toBe(kernel[id]);
          seenKernel[id]!++;
        } else {
          const id = Number(/req=(\d+)$/.exec(String(rec['msg']))![1]);
          expect(rec['zone']).toBe('a"b');
          expect(rec['__host']).toBe('127.0.0.1');
          const { cluster: _c, zone: _z, __host: _h, ...original } = rec;
          expect(JSON.stringify(original)).toBe(service[id]);
          seenService[id]!++;
        }
      }
    }
    expect(seenService.every((n) => n === 1)).toBe(true);
    // Every datagram the daemon received is stored once; none twice.
    expect(seenKernel.every((n) => n <= 1)).toBe(true);
    expect(seenKernel.reduce((a, n) => a + n, 0)).toBe(kernelReceived);
  });
});
