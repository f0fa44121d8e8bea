import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { mulberry32, serviceLine } from '@sluice/testkit';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';

const DATAGRAMS = 10_000;
const STREAMS = 40;

/** A mutation of a valid line, or plain random bytes: what a broken sender or a scanner sends. */
function garbage(rand: () => number, valid: string): Buffer {
  const bytes = Buffer.from(valid);
  const pick = Math.floor(rand() * 8);
  switch (pick) {
    case 0: // random bytes
      return Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 400) }, () => Math.floor(rand() * 256)));
    case 1: // truncated
      return bytes.subarray(0, Math.floor(rand() * bytes.length));
    case 2: {
      // bit flips
      const b = Buffer.from(bytes);
      for (let i = 0; i < 1 + rand() * 4; i++) b[Math.floor(rand() * b.length)]! ^= 1 << Math.floor(rand() * 8);
      return b;
    }
    case 3: // a random byte overwritten
      return Buffer.concat([bytes.subarray(0, 10), Buffer.from([Math.floor(rand() * 256)]), bytes.subarray(11)]);
    case 4: // doubled
      return Buffer.concat([bytes, bytes]);
    case 5: // nested deep
      return Buffer.from('['.repeat(1 + Math.floor(rand() * 5000)));
    case 6: // valid JSON, not an object
      return Buffer.from(JSON.stringify([valid]));
    default: // valid: some mutations leave valid records, which must be stored
      return bytes;
  }
}

describe('fuzz: seeded garbage over UDP and TCP', () => {
  it('crashes nothing, and every received record is stored or counted as dropped', async () => {
    const dir = tempDir();
    const out = join(dir, 'out');
    const daemon = await startDaemon(
      `
api: { address: 127.0.0.1:0 }
sources:
  t: { type: tcp, address: 127.0.0.1:0, max_line_bytes: 2048, extra_tags: { src: t } }
  u: { type: udp, address: 127.0.0.1:0, extra_tags: { src: u } }
sinks:
  f: { type: file, inputs: [t, u], path: ${out}, compression: zstd }
`,
      { dir },
    );
    const rand = mulberry32(20261122);

    // UDP: 10,000 datagrams, paced so the kernel keeps them (kernel drops are counted anyway).
    const u = splitAddress(daemon.sources['u']![0]!);
    const client = createSocket('udp4');
    for (let i = 0; i < DATAGRAMS; i += 100) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < i + 100; j++) {
        const d = garbage(rand, serviceLine({ id: j, rand }));
        batch.push(new Promise<void>((r) => client.send(d, u.port, u.host, () => r())));
      }
      await Promise.all(batch);
      await new Promise((r) => setTimeout(r, 2)); // a pause on purpose: paced, UDP has no backpressure
    }
    client.close();

    // TCP: garbage streams with random chunking; some end cleanly, some are reset mid-line.
    const t = splitAddress(daemon.sources['t']![0]!);
    await Promise.all(
      Array.from({ length: STREAMS }, async (_, s) => {
        const parts: Buffer[] = [];
        for (let k = 0; k < 200; k++) {
          parts.push(garbage(rand, serviceLine({ id: s * 1000 + k, rand })));
          if (rand() < 0.9) parts.push(Buffer.from(rand() < 0.2 ? '\r\n' : '\n'));
        }
        const stream = Buffer.concat(parts);
        const socket = connect(t);
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', reject);
        });
        const reset = s % 5 === 0;
        let pos = 0;
        while (pos < stream.length) {
          const n = 1 + Math.floor(rand() * 3000);
          if (!socket.write(stream.subarray(pos, pos + n))) await new Promise((r) => socket.once('drain', r));
          pos += n;
        }
        await new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          socket.on('error', () => undefined);
          if (reset)
            setTimeout(() => socket.resetAndDestroy(), 20); // on purpose: reset while the server reads
          else socket.end();
        });
      }),
    );

    // Wait until every received record has gone through the workers: the ring empty, and no new
    // worker batch between two looks 200 ms apart (nothing in flight).
    let batches = Number.NaN;
    const m = await vi.waitFor(
      async () => {
        const next = await scrape(daemon.apiPort);
        const before = batches;
        batches = metricSum(next, 'sluice_worker_batches_total');
        expect(metricSum(next, 'sluice_ring_used_bytes'), 'an empty ring').toBe(0);
        expect(batches, 'no worker batch since the last look').toBe(before);
        return next;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(daemon.proc.exitCode).toBe(null); // still alive
    expect(await daemon.stop()).toBe(0);

    const stored = { t: 0, u: 0 };
    for (const key of listObjects(out)) {
      for (const line of await readObjectLines(join(out, key))) {
        const rec = JSON.parse(line) as { src: 't' | 'u' };
        stored[rec.src]++;
      }
    }
    for (const id of ['t', 'u'] as const) {
      const received = metricSum(m, 'sluice_source_received_events_total', { component_id: id });
      const dropped = metricSum(m, 'sluice_source_discarded_events_total', { component_id: id });
      expect(received, id).toBeGreaterThan(0);
      expect(stored[id] + dropped, `${id}: stored ${stored[id]} + dropped ${dropped} = received ${received}`).toBe(
        received,
      );
    }
    const udpReceived = metricSum(m, 'sluice_source_received_events_total', { component_id: 'u' });
    expect(udpReceived + metricSum(m, 'sluice_source_kernel_dropped_datagrams_total', { component_id: 'u' })).toBe(
      DATAGRAMS,
    );
    expect(metricSum(m, 'sluice_source_malformed_events_total')).toBeGreaterThan(DATAGRAMS / 2);
  });
});
