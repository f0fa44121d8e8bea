/**
 * The udp source with both readers, on real sockets (port 0) and real rings: the native
 * recvmmsg reader must write the very bytes Ring.tryWrite writes for the same datagram and
 * head, count what it drops exactly as node:dgram does, and let go of its sockets on drain.
 *
 * The native reader's tests run when the addon loads here; under CI=true they always run, so
 * a build or load failure fails them instead of skipping them.
 */
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Ring, peerHead } from '@sluice/ring';
import { Metrics } from '@sluice/telemetry';
import { normalizePeer, type Source, type SourceContext } from '../source.ts';
import { drainRing, type RingRecord } from '../test-ring.ts';
import { udpKernelDrops } from './kernel-drops.ts';
import { loadNativeUdp } from './native.ts';
import { startUdpSource, type UdpReader, type UdpSourceOptions } from './udp.ts';
import { counter } from '../test-metrics.ts';

const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const native = loadNativeUdp();
const logger = pino({ level: 'silent' });

interface Counts {
  received: number;
  bytes: number;
  ringFull: number;
  oversize: number;
}

async function counts(metrics: Metrics): Promise<Counts> {
  return {
    received: await counter(metrics, 'sluice_source_received_events_total'),
    bytes: await counter(metrics, 'sluice_source_received_bytes_total'),
    ringFull: await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'ring_full' }),
    oversize: await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'oversize' }),
  };
}

/** How long a test waits for datagrams: generous, the machine may be loaded; a short interval, tests wait often. */
const WAIT = { timeout: 30_000, interval: 2 };

function portOf(src: Source): number {
  return Number(src.addresses[0]!.slice(src.addresses[0]!.lastIndexOf(':') + 1));
}

async function client(type: 'udp4' | 'udp6', address?: string): Promise<DgramSocket> {
  const socket = createSocket(type);
  await new Promise<void>((resolve) =>
    socket.bind({ port: 0, ...(address === undefined ? {} : { address }) }, resolve),
  );
  opened.push(socket);
  return socket;
}

function send(socket: DgramSocket, msg: Uint8Array | string, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => socket.send(msg, port, host, (err) => (err ? reject(err) : resolve())));
}

const running: Source[] = [];
const opened: DgramSocket[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.drain(10)));
  for (const s of opened.splice(0)) s.close();
});

/** A datagram of the sequence: length and bytes from its index, every byte value, straddles included. */
function datagram(i: number): Uint8Array {
  const len = (i * 37) % 301;
  const out = new Uint8Array(len);
  for (let j = 0; j < len; j++) out[j] = (i * 131 + j * 7) & 0xff;
  return out;
}

const READERS: readonly UdpReader[] = ['native', 'dgram'];
for (const reader of READERS) {
  const runs = reader === 'dgram' || native.ok || CI;
  const notRun = runs ? '' : ` (NOT RUN: ${native.ok ? '' : native.reason})`;

  describe.runIf(runs)(`udp source, reader ${reader}${notRun}`, () => {
    async function start(
      ring: Ring,
      metrics: Metrics,
      opts: Partial<UdpSourceOptions> = {},
      onWrote = () => {},
    ): Promise<Source> {
      const ctx: SourceContext = { id: 'src', ring, metrics, logger, wrote: onWrote };
      const src = await startUdpSource(ctx, {
        host: '127.0.0.1',
        port: 0,
        sockets: 1,
        receiveBufferBytes: 1 << 20,
        hostKey: 'h',
        reader,
        ...opts,
      });
      running.push(src);
      return src;
    }

    for (const { name, host, senders, hostKey, peers } of [
      {
        name: 'IPv4, host_key',
        host: '127.0.0.1',
        senders: ['127.0.0.1', '127.0.0.2'],
        hostKey: 'h',
        peers: ['127.0.0.1', '127.0.0.2'],
      },
      { name: 'IPv4, no host_key', host: '127.0.0.1', senders: ['127.0.0.1'], hostKey: null, peers: [null] },
      { name: 'IPv6 ::1, host_key', host: '::1', senders: ['::1'], hostKey: 'h', peers: ['::1'] },
      // A v4 peer on the dual-stack socket arrives as ::ffff:127.0.0.2 and is written as 127.0.0.2.
      {
        name: 'dual stack ::, IPv4 and IPv6 peers',
        host: '::',
        senders: ['127.0.0.2', '::1'],
        hostKey: 'h',
        peers: ['127.0.0.2', '::1'],
      },
    ] as const) {
      it(`writes the ring byte for byte as Ring.tryWrite does (${name}), across every wrap of a 4 KiB ring`, async () => {
        const ring = Ring.create(4096);
        const reference = Ring.create(4096);
        const metrics = new Metrics('test');
        const src = await start(ring, metrics, { host, hostKey });
        const port = portOf(src);
        const sockets = await Promise.all(senders.map((a) => client(a.includes(':') ? 'udp6' : 'udp4', a)));
        const target = host === '::' ? ['127.0.0.1', '::1'] : [host];
        let bytes = 0;
        for (let i = 0; i < 300; i++) {
          // Senders alternate in runs of 1 to 3, so the native reader's last-peer cache must follow.
          const k = Math.floor(i / (1 + (i % 3))) % senders.length;
          const msg = datagram(i);
          const before = ring.writeIndex();
          await send(sockets[k]!, msg, port, senders[k]!.includes(':') ? target.at(-1)! : target[0]!);
          await vi.waitFor(() => expect(ring.writeIndex(), `datagram ${i} in the ring`).not.toBe(before), WAIT);
          const peer = peers[k]!;
          expect(reference.tryWrite(msg, peerHead(peer === null ? null : normalizePeer(peer)))).toBe(true);
          bytes += msg.length;
          // Consume both rings the same way, so they stay in step through the wraps.
          for (const r of [ring, reference]) {
            const span = r.claim(1 << 20)!;
            r.release(span.end);
          }
        }
        expect(ring.writeIndex()).toBeGreaterThan(4096 * 5);
        expect(Buffer.from(ring.sab).equals(Buffer.from(reference.sab))).toBe(true);
        expect(await counts(metrics)).toEqual({ received: 300, bytes, ringFull: 0, oversize: 0 });
      });
    }

    it('writes one record per datagram with the peer; a full ring is counted exactly (received = written + ring_full)', async () => {
      // 16 records of span 4 + 60 fill a 1 KiB ring that nobody drains; the other 84 are ring_full.
      const ring = Ring.create(1024);
      const metrics = new Metrics('test');
      let wrote = 0;
      const src = await start(ring, metrics, { sockets: 2 }, () => wrote++);
      const c = await client('udp4');
      const payload = (i: number): string => `{"i":${String(i).padStart(3, '0')},"pad":"${'z'.repeat(32)}"}`;
      for (let i = 0; i < 100; i++) await send(c, payload(i), portOf(src), '127.0.0.1');
      await vi.waitFor(async () => expect((await counts(metrics)).received, 'every datagram received').toBe(100), WAIT);
      const got: RingRecord[] = [];
      drainRing(ring, got);
      expect(got).toEqual(Array.from({ length: 16 }, (_, i) => ({ peer: '127.0.0.1', record: payload(i) })));
      expect(await counts(metrics)).toEqual({
        received: 100,
        bytes: 100 * payload(0).length,
        ringFull: 84,
        oversize: 0,
      });
      expect(wrote).toBeGreaterThan(0);
    });

    it('counts datagrams larger than the ring can hold, and truncated ones, as oversize with their full size', async () => {
      // maxPayloadBytes 1020; the head `\x09127.0.0.1` is 10 bytes. The native reader receives
      // into slots of max(maxPayload) bytes, so 5000 and 60000 arrive truncated (MSG_TRUNC).
      const ring = Ring.create(1024);
      const metrics = new Metrics('test');
      const src = await start(ring, metrics);
      const c = await client('udp4');
      const sizes = [1010, 1011, 1020, 5000, 60_000, 3];
      const got: RingRecord[] = [];
      for (const [i, n] of sizes.entries()) {
        await send(c, Buffer.alloc(n, 0x61), portOf(src), '127.0.0.1');
        await vi.waitFor(
          async () => expect((await counts(metrics)).received, `datagram ${i} received`).toBe(i + 1),
          WAIT,
        );
        drainRing(ring, got); // the 1010-byte record fills the whole ring
      }
      expect(got.map((g) => g.record.length)).toEqual([1010, 3]);
      expect(await counts(metrics)).toEqual({
        received: 6,
        bytes: sizes.reduce((a, b) => a + b, 0),
        ringFull: 0,
        oversize: 4,
      });
    });

    it('IPv6 with several sockets on one port (SO_REUSEPORT): every datagram once', async () => {
      const ring = Ring.create(1 << 16);
      const metrics = new Metrics('test');
      const src = await start(ring, metrics, { host: '::1', sockets: 4 });
      expect(src.addresses[0]).toMatch(/^\[::1\]:\d+$/);
      // Several client sockets, so the kernel's reuseport hash spreads them over our sockets.
      const clients = await Promise.all(Array.from({ length: 8 }, () => client('udp6')));
      for (let i = 0; i < 80; i++) await send(clients[i % 8]!, `{"i":${i}}`, portOf(src), '::1');
      const got: RingRecord[] = [];
      await vi.waitFor(() => {
        drainRing(ring, got);
        expect(got.length, 'every datagram in the ring').toBe(80);
      }, WAIT);
      expect(got.map((g) => g.record).sort()).toEqual(Array.from({ length: 80 }, (_, i) => `{"i":${i}}`).sort());
      expect(got.every((g) => g.peer === '::1')).toBe(true);
    });

    it('drain reads what the kernel holds, then closes the sockets: nothing more is written and the port is free', async () => {
      const ring = Ring.create(1 << 16);
      const metrics = new Metrics('test');
      const src = await start(ring, metrics, { sockets: 2 });
      const port = portOf(src);
      const c = await client('udp4');
      for (let i = 0; i < 50; i++) await send(c, `{"before":${i}}`, port, '127.0.0.1');
      await src.drain(2000);
      expect(src.ready()).toBe(false);
      const got: RingRecord[] = [];
      drainRing(ring, got);
      expect(got.length).toBe(50);
      const write = ring.writeIndex();
      for (let i = 0; i < 20; i++) await send(c, `{"after":${i}}`, port, '127.0.0.1');
      // A sleep on purpose: the test is that nothing arrives after the drain (100 ms for datagrams
      // sent to a closed port).
      await new Promise((r) => setTimeout(r, 100));
      expect(ring.writeIndex()).toBe(write);
      expect((await counts(metrics)).received).toBe(50);
      // Our sockets are closed: a socket without SO_REUSEPORT can take the port.
      const again = createSocket('udp4');
      opened.push(again);
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.bind({ port, address: '127.0.0.1', exclusive: true }, resolve);
      });
      await src.drain(10); // a second drain is a no-op
    });

    it('a port in use fails the start with EADDRINUSE', async () => {
      const taken = await client('udp4', '127.0.0.1');
      const port = taken.address().port;
      await expect(start(Ring.create(1024), new Metrics('test'), { port })).rejects.toMatchObject({
        code: 'EADDRINUSE',
      });
    });

    it('200,000 datagrams from a sender thread: sent = received + kernel drops, received = written + ring_full, every written one in the ring once', async () => {
      const N = 200_000;
      const ring = Ring.create(1 << 25);
      const metrics = new Metrics('test');
      const src = await start(ring, metrics, { sockets: 2, receiveBufferBytes: 8 << 20 });
      const port = portOf(src);
      const sender = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
         const socket = require('node:dgram').createSocket('udp4');
         let next = 0, inflight = 0, sent = 0, errors = 0;
         const pump = () => {
           while (inflight < 256 && next < workerData.n) {
             inflight++;
             socket.send('{"n":' + next++ + '}', workerData.port, '127.0.0.1', (err) => {
               inflight--;
               if (err) errors++; else sent++;
               if (next < workerData.n) pump();
               else if (inflight === 0) { socket.close(); parentPort.postMessage({ sent, errors }); }
             });
           }
         };
         pump();`,
        { eval: true, workerData: { n: N, port } },
      );
      const result = await new Promise<{ sent: number; errors: number }>((resolve, reject) =>
        sender.once('message', resolve).once('error', reject),
      );
      await sender.terminate();
      expect(result.sent + result.errors).toBe(N);
      // Kernel drops are those of our sockets' receive buffers (/proc/net/udp): never received.
      const accounted = async (): Promise<number> => (await counts(metrics)).received + udpKernelDrops(port);
      await vi.waitFor(
        async () => expect(await accounted(), 'every datagram received or dropped').toBe(result.sent),
        WAIT,
      );
      const c = await counts(metrics);
      const got: RingRecord[] = [];
      while (drainRing(ring, got, 1 << 24) !== 0);
      expect(c.oversize).toBe(0);
      expect(got.length).toBe(c.received - c.ringFull);
      const ids = got.map((g) => Number(/^\{"n":(\d+)\}$/.exec(g.record)![1]));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.every((n) => n >= 0 && n < N)).toBe(true);
      expect(got.every((g) => g.peer === '127.0.0.1')).toBe(true);
      // Not a gate (the machine is shared), but a reader that lost most of them is broken.
      expect(c.received).toBeGreaterThan(N / 10);
    });
  });
}

describe('reader selection', () => {
  function capture() {
    const out: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk.toString());
        cb();
      },
    });
    return {
      logger: pino({ level: 'debug' }, stream),
      lines: () =>
        out
          .join('')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
    };
  }

  it.runIf(native.ok || CI)(
    `auto reads with the native reader where it loads${native.ok ? '' : ` (${native.reason})`}`,
    async () => {
      expect(native).toMatchObject({ ok: true });
      const { logger: log, lines } = capture();
      const ctx: SourceContext = {
        id: 'src',
        ring: Ring.create(1 << 16),
        metrics: new Metrics('test'),
        logger: log,
        wrote: () => {},
      };
      // A host name: resolved to an IPv4 literal first, as dgram's udp4 socket does.
      const src = await startUdpSource(ctx, {
        host: 'localhost',
        port: 0,
        sockets: 1,
        receiveBufferBytes: 1 << 16,
        hostKey: null,
      });
      running.push(src);
      expect(lines().find((l) => l['msg'] === 'udp source reading')).toMatchObject({ reader: 'native' });
      expect(lines().some((l) => l['level'] === 40 && String(l['msg']).includes('native UDP reader'))).toBe(false);
    },
  );

  it('dgram is used when asked for', async () => {
    const { logger: log, lines } = capture();
    const ctx: SourceContext = {
      id: 'src',
      ring: Ring.create(1 << 16),
      metrics: new Metrics('test'),
      logger: log,
      wrote: () => {},
    };
    running.push(
      await startUdpSource(ctx, {
        host: '127.0.0.1',
        port: 0,
        sockets: 1,
        receiveBufferBytes: 1 << 16,
        hostKey: null,
        reader: 'dgram',
      }),
    );
    expect(lines().find((l) => l['msg'] === 'udp source reading')).toMatchObject({ reader: 'dgram' });
  });

  // Bun runs N-API addons but has no libuv loop: the real "unavailable" case, without a mock.
  const BUN = new URL('../../../../node_modules/.bin/bun', import.meta.url).pathname;
  const haveBun = existsSync(BUN) && spawnSync(BUN, ['--version']).status === 0;
  it.skipIf(!haveBun)(
    `under Bun: auto falls back to dgram with one warning naming the reason, native refuses to start${haveBun ? '' : ' (NOT RUN: node_modules/.bin/bun is missing)'}`,
    () => {
      const udp = new URL('./udp.ts', import.meta.url).pathname;
      const script = (reader: UdpReader): string => `
      import { pino } from 'pino';
      import { Ring } from '@sluice/ring';
      import { Metrics } from '@sluice/telemetry';
      import { startUdpSource } from ${JSON.stringify(udp)};
      const ctx = { id: 'u', ring: Ring.create(1 << 16), metrics: new Metrics('t'), logger: pino(), wrote: () => {} };
      try {
        const src = await startUdpSource(ctx, { host: '127.0.0.1', port: 0, sockets: 1, receiveBufferBytes: 1 << 16, hostKey: null, reader: ${JSON.stringify(reader)} });
        await src.drain(10);
        console.log(JSON.stringify({ started: true }));
      } catch (err) {
        console.log(JSON.stringify({ error: err.message }));
      }`;
      const run = (reader: UdpReader): Record<string, unknown>[] => {
        const r = spawnSync(BUN, ['-e', script(reader)], {
          cwd: new URL('../../../../', import.meta.url).pathname,
          encoding: 'utf8',
        });
        expect(r.status, r.stderr).toBe(0);
        return r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
      };
      const auto = run('auto');
      expect(auto.filter((l) => l['level'] === 40)).toEqual([
        expect.objectContaining({
          msg: 'the native UDP reader cannot be used; reading with node:dgram (reader: auto)',
          reason: expect.stringMatching(/^Bun .* has no libuv event loop/),
        }),
      ]);
      expect(auto.at(-1)).toEqual({ started: true });
      expect(run('native').at(-1)).toEqual({
        error: expect.stringMatching(
          /^reader is native, but the native UDP reader cannot be used: Bun .* has no libuv event loop \(uv_poll\); set reader: auto/,
        ),
      });
    },
  );

  it.runIf(native.ok)('the addon refuses a buffer that is not a whole ring', () => {
    if (!native.ok) return;
    const { UdpReceiver } = native.addon;
    const ring = Ring.create(1024);
    const open = (bytes: Uint8Array): unknown => new UdpReceiver('127.0.0.1', 0, 1, 1 << 16, bytes, false, () => {});
    expect(() => open(new Uint8Array(ring.sab, 64))).toThrow(/whole ring/);
    expect(() => open(new Uint8Array(new SharedArrayBuffer(64 + 1024)))).toThrow(/not a ring/);
    expect(() => open(new Uint8Array(2048))).toThrow(/not a ring/);
  });
});
