import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Ring } from '@sluice/ring';
import { Metrics } from '@sluice/telemetry';
import type { Source, SourceContext } from './source.ts';
import { drainRing, type RingRecord } from './test-ring.ts';
import { startTcpSource } from './tcp/tcp.ts';
import { counter } from './test-metrics.ts';

const logger = pino({ level: 'silent' });

type Got = RingRecord;

function context(ring: Ring, metrics: Metrics, onWrote: () => void = () => {}): SourceContext {
  return { id: 'src', ring, metrics, logger, wrote: onWrote };
}

function splitAddress(a: string): { host: string; port: number } {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(a.slice(i + 1)) };
}

async function open(address: string): Promise<Socket> {
  const socket = connect(splitAddress(address));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

async function closeFromClient(socket: Socket, data?: string): Promise<void> {
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    if (data === undefined) socket.end();
    else socket.end(data);
  });
}

/** How long a test waits for lines or connections: generous, the machine may be loaded. */
const WAIT = { timeout: 30_000, interval: 5 };

const running: Source[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.drain(10)));
});

describe('tcp source', () => {
  const base = {
    host: '127.0.0.1',
    port: 0,
    maxLineBytes: 64,
    maxConnections: 16,
    idleTimeoutSecs: 0,
    hostKey: '__host',
  };

  it('frames lines with CRLF, skips and counts empty and oversize lines, delivers a last line without newline', async () => {
    const ring = Ring.create(1 << 16);
    const metrics = new Metrics('test');
    const src = await startTcpSource(context(ring, metrics), base);
    running.push(src);
    const socket = await open(src.addresses[0]!);
    const long = 'x'.repeat(65);
    await closeFromClient(socket, `{"a":1}\r\n\n{"b":2}\n${long}\n{"c":3}\n{"tail":true}`);
    const got: Got[] = [];
    await vi.waitFor(() => {
      drainRing(ring, got);
      expect(got.length, 'every good line in the ring').toBe(4);
    }, WAIT);
    expect(got.map((g) => g.record)).toEqual(['{"a":1}', '{"b":2}', '{"c":3}', '{"tail":true}']);
    expect(got.every((g) => g.peer === '127.0.0.1')).toBe(true);
    expect(await counter(metrics, 'sluice_source_received_events_total', {})).toBe(6);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'oversize' })).toBe(1);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'empty_line' })).toBe(1);
  });

  it('a full ring pauses the socket; every line arrives once, in order, when the consumer catches up', async () => {
    const ring = Ring.create(4096);
    const metrics = new Metrics('test');
    let src: Source | null = null;
    src = await startTcpSource(context(ring, metrics), { ...base, hostKey: null, maxLineBytes: 1024 });
    running.push(src);
    const socket = await open(src.addresses[0]!);
    const lines = Array.from({ length: 20_000 }, (_, i) => `{"n":${i},"pad":"${'p'.repeat(i % 50)}"}`);
    const sent = closeFromClient(socket, `${lines.join('\n')}\n`);
    const got: Got[] = [];
    // Drain slowly, in small spans, telling the source about the space each time: a slow consumer on
    // purpose, that backs off 1 ms on an empty ring (the test's timeout bounds the loop).
    while (got.length < lines.length) {
      if (drainRing(ring, got, 512) === 0) await new Promise((r) => setTimeout(r, 1));
      src.ringSpace();
    }
    await sent;
    expect(got.map((g) => g.record)).toEqual(lines);
    expect(got.every((g) => g.peer === '')).toBe(true);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', {})).toBe(0);
    expect(await counter(metrics, 'sluice_source_received_bytes_total', {})).toBe(lines.join('\n').length + 1);
  });

  it('three connections through a full ring: each line once, in order per connection (reads share one buffer)', async () => {
    const ring = Ring.create(4096);
    const metrics = new Metrics('test');
    const src = await startTcpSource(context(ring, metrics), { ...base, hostKey: null, maxLineBytes: 1024 });
    running.push(src);
    const streams = [0, 1, 2].map((c) =>
      Array.from({ length: 15_000 }, (_, i) => `{"c":${c},"n":${i},"pad":"${'q'.repeat((i * 7) % 120)}"}`),
    );
    const sockets = await Promise.all(streams.map(() => open(src.addresses[0]!)));
    const sent = sockets.map((socket, c) => closeFromClient(socket, `${streams[c]!.join('\n')}\n`));
    const got: Got[] = [];
    const total = streams.reduce((n, l) => n + l.length, 0);
    while (got.length < total) {
      // A slow consumer on purpose, as above: 1 ms back-off on an empty ring.
      if (drainRing(ring, got, 512) === 0) await new Promise((r) => setTimeout(r, 1));
      src.ringSpace();
    }
    await Promise.all(sent);
    for (const [c, lines] of streams.entries()) {
      expect(got.filter((g) => g.record.startsWith(`{"c":${c},`)).map((g) => g.record)).toEqual(lines);
    }
    expect(got).toHaveLength(total);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', {})).toBe(0);
  });

  it('refuses connections beyond max_connections and counts them', async () => {
    const ring = Ring.create(1 << 16);
    const metrics = new Metrics('test');
    const src = await startTcpSource(context(ring, metrics), { ...base, maxConnections: 2 });
    running.push(src);
    const a = await open(src.addresses[0]!);
    const b = await open(src.addresses[0]!);
    const openConnections = async (): Promise<number> => counter(metrics, 'sluice_source_open_connections', {});
    await vi.waitFor(async () => expect(await openConnections(), 'the source to hold both connections').toBe(2), WAIT);
    const c = connect(splitAddress(src.addresses[0]!));
    await new Promise<void>((resolve) => c.once('close', () => resolve()));
    expect(await counter(metrics, 'sluice_source_connections_refused_total', { reason: 'max_connections' })).toBe(1);
    expect(await counter(metrics, 'sluice_source_open_connections', {})).toBe(2);
    a.destroy();
    b.destroy();
  });

  it('closes idle connections after idle_timeout_secs, delivering what they sent', async () => {
    const ring = Ring.create(1 << 16);
    const metrics = new Metrics('test');
    const src = await startTcpSource(context(ring, metrics), { ...base, idleTimeoutSecs: 1 });
    running.push(src);
    const socket = await open(src.addresses[0]!);
    socket.write('{"idle":1}\n{"partial":');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got.map((g) => g.record)).toEqual(['{"idle":1}', '{"partial":']);
    expect(await counter(metrics, 'sluice_source_connections_refused_total', { reason: 'idle_timeout' })).toBe(1);
  });

  it('listens on IPv6', async () => {
    const ring = Ring.create(1 << 16);
    const src = await startTcpSource(context(ring, new Metrics('test')), { ...base, host: '::1' });
    running.push(src);
    expect(src.addresses[0]).toMatch(/^\[::1\]:\d+$/);
    const socket = await open(src.addresses[0]!);
    await closeFromClient(socket, '{"v6":true}\n');
    const got: Got[] = [];
    await vi.waitFor(() => {
      drainRing(ring, got);
      expect(got.length, 'the line in the ring').toBe(1);
    }, WAIT);
    expect(got[0]).toEqual({ peer: '::1', record: '{"v6":true}' });
  });

  it('drain(): reads what a connected peer already sent, then closes it', async () => {
    const ring = Ring.create(1 << 16);
    const src = await startTcpSource(context(ring, new Metrics('test')), base);
    const socket = await open(src.addresses[0]!);
    // Handed to the kernel, not necessarily read yet: drain() must still read it.
    await new Promise<void>((resolve, reject) =>
      socket.write('{"before":"shutdown"}\n', (err) => (err ? reject(err) : resolve())),
    );
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('end', () => socket.end());
    await src.drain(200);
    await closed;
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got.map((g) => g.record)).toEqual(['{"before":"shutdown"}']);
    expect(src.ready()).toBe(false);
  });
});
