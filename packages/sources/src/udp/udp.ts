import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { UdpSourceConfig } from './config.ts';
import { RateLimitedLog } from '@sluice/telemetry';
import { udpKernelDrops } from './kernel-drops.ts';
import { loadNativeUdp, type NativeUdpAddon, type NativeUdpReceiver, type OnBatch } from './native.ts';
import { peerHead } from '@sluice/ring';
import { formatAddress, normalizePeer, type Source, type SourceContext } from '../source.ts';

/**
 * How datagrams are read: `native` (the recvmmsg addon, packages/sources/native), `dgram`
 * (node:dgram), or `auto`: native where it loads, else dgram with a warning naming the reason.
 */
export type UdpReader = UdpSourceConfig['reader'];

export interface UdpSourceOptions {
  host: string;
  port: number;
  /** Sockets bound to the same port with SO_REUSEPORT; the kernel spreads datagrams across them. */
  sockets: number;
  receiveBufferBytes: number;
  hostKey: string | null;
  /** Default `auto`. */
  reader?: UdpReader;
}

/** Peer heads are cached: a Talos fleet is a few thousand addresses, not one per datagram. */
const MAX_CACHED_PEERS = 4096;

/** What the source needs of either reader once its sockets are bound. */
interface Reading {
  reader: 'native' | 'dgram';
  port: number;
  /** SO_RCVBUF of the first socket, as the kernel reports it. */
  granted: number;
  /** Datagrams ever received: drain() watches it to see the sockets go quiet. */
  messages(): number;
  /** Close every socket and settle the counters; nothing is written into the ring afterwards. */
  close(): Promise<void>;
}

/** The source's counters, settled in batches by either reader. */
interface Counters {
  received: { inc(n: number): void };
  bytes: { inc(n: number): void };
  ringFull: { inc(n: number): void };
  oversize: { inc(n: number): void };
  errors: RateLimitedLog;
}

/**
 * One JSON object per datagram (Talos `json_lines` over UDP). Several sockets share the port
 * (reusePort) and each asks for a large receive buffer. UDP cannot push back: a full ring is
 * a counted drop. Reads with the native recvmmsg receiver unless `reader` says otherwise: on
 * the 2-core bench machine the daemon's main thread spent 7.4-7.6 µs a line with node:dgram
 * and lost 0.3-9 % at 100,000 datagrams/s, against 1.4-1.9 µs and 0 % native
 * (bench/e2e.bench.ts udp-paced; docs/architecture.md, "The native UDP reader").
 */
export async function startUdpSource(ctx: SourceContext, opts: UdpSourceOptions): Promise<Source> {
  const labels = { component_id: ctx.id, component_type: 'udp' };
  const counters: Counters = {
    received: ctx.metrics.receivedEvents.labels(labels),
    bytes: ctx.metrics.receivedBytes.labels(labels),
    ringFull: ctx.metrics.discardedEvents.labels({ ...labels, reason: 'ring_full' }),
    oversize: ctx.metrics.discardedEvents.labels({ ...labels, reason: 'oversize' }),
    errors: new RateLimitedLog(ctx.logger),
  };
  const reading = await openReading(ctx, opts, counters);
  const { port } = reading;
  let open = true;
  let lastDrops = 0;
  ctx.metrics.probe('sluice_source_kernel_dropped_datagrams_total', () => {
    // Read at scrape time; the counter only moves forward (a closed socket's drops are gone from /proc).
    const drops = udpKernelDrops(port);
    if (drops > lastDrops) ctx.metrics.kernelDrops.inc({ component_id: ctx.id }, drops - lastDrops);
    lastDrops = Math.max(lastDrops, drops);
  });
  if (reading.granted < opts.receiveBufferBytes) {
    ctx.logger.warn(
      { requested: opts.receiveBufferBytes, granted: reading.granted },
      'the kernel granted a smaller UDP receive buffer than receive_buffer_bytes (raise net.core.rmem_max)',
    );
  }
  ctx.logger.debug({ reader: reading.reader, port }, 'udp source reading');

  return {
    id: ctx.id,
    type: 'udp',
    addresses: [formatAddress(opts.host, port)],
    ready: () => open,
    ringSpace(): void {
      // UDP cannot pause a sender; nothing waits on ring space here.
    },
    async drain(lingerMs: number): Promise<void> {
      if (!open) return;
      // Datagrams the kernel already holds were received: read until the sockets are quiet
      // for a moment (or lingerMs passes), then close.
      const quietMs = Math.min(100, lingerMs);
      const until = performance.now() + lingerMs;
      let seen = reading.messages();
      let quietSince = performance.now();
      while (performance.now() - quietSince < quietMs && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
        if (reading.messages() !== seen) {
          seen = reading.messages();
          quietSince = performance.now();
        }
      }
      open = false;
      await reading.close();
    },
  };
}

/** Bind with the reader `opts.reader` asks for (default auto: native where it loads). */
async function openReading(ctx: SourceContext, opts: UdpSourceOptions, counters: Counters): Promise<Reading> {
  const reader = opts.reader ?? 'auto';
  if (reader === 'dgram') return readDgram(ctx, opts, counters);
  const native = loadNativeUdp();
  if (native.ok) return readNative(ctx, opts, counters, native.addon);
  if (reader === 'native') {
    // No `code`: the daemon's bind error then shows this message, which names the option.
    throw new Error(
      `reader is native, but the native UDP reader cannot be used: ${native.reason}; set reader: auto (falls back to node:dgram) or reader: dgram`,
    );
  }
  ctx.logger.warn(
    { reason: native.reason },
    'the native UDP reader cannot be used; reading with node:dgram (reader: auto)',
  );
  return readDgram(ctx, opts, counters);
}

/** A literal for the addon: host names are resolved as dgram's udp4 socket would (IPv4). */
async function literalHost(host: string): Promise<string> {
  return isIP(host) !== 0 ? host : (await lookup(host, { family: 4 })).address;
}

/**
 * The native receiver: recvmmsg batches (on readability, or every millisecond while
 * datagrams keep coming), datagrams written into the ring in C, and one call here per read of
 * a socket with that batch's counts (received = written + ring_full + oversize), so the
 * metrics and the dispatcher's wrote() cost nothing per datagram.
 */
async function readNative(
  ctx: SourceContext,
  opts: UdpSourceOptions,
  c: Counters,
  addon: NativeUdpAddon,
): Promise<Reading> {
  const ring = ctx.ring;
  let messages = 0;
  const onBatch: OnBatch = (received, bytes, written, ringFull, oversize, errno) => {
    if (errno !== 0) {
      const code = getSystemErrorName(errno);
      c.errors.error(
        `socket-error:${code}`,
        { err: Object.assign(new Error(`recvmmsg ${code}`), { code, errno, syscall: 'recvmmsg' }) },
        'udp socket error',
      );
    }
    if (received === 0) return;
    messages += received;
    c.received.inc(received);
    c.bytes.inc(bytes);
    if (ringFull !== 0) c.ringFull.inc(ringFull);
    if (oversize !== 0) c.oversize.inc(oversize);
    if (written !== 0) ctx.wrote();
  };
  const host = await literalHost(opts.host);
  const open = (sockets: number): NativeUdpReceiver =>
    new addon.UdpReceiver(
      host,
      opts.port,
      sockets,
      opts.receiveBufferBytes,
      new Uint8Array(ring.sab),
      opts.hostKey !== null,
      onBatch,
    );
  let receiver: NativeUdpReceiver;
  try {
    receiver = open(opts.sockets);
  } catch (err) {
    if (
      opts.sockets === 1 ||
      !(err as Error).message.startsWith('setsockopt ') ||
      !(err as Error).message.endsWith(' SO_REUSEPORT')
    )
      throw err;
    // Platforms without SO_REUSEPORT: one socket.
    ctx.logger.warn({ err }, 'reusePort is not available here; using one UDP socket');
    receiver = open(1);
  }
  return {
    reader: 'native',
    port: receiver.port,
    granted: receiver.receiveBufferBytes,
    messages: () => messages,
    close: async () => receiver.close(),
  };
}

/**
 * node:dgram: one 'message' event per datagram. libuv reads at most 32 datagrams per loop
 * turn per socket.
 */
async function readDgram(ctx: SourceContext, opts: UdpSourceOptions, c: Counters): Promise<Reading> {
  const type = opts.host.includes(':') ? 'udp6' : 'udp4';
  const heads = new Map<string, Uint8Array>();
  const noHead = peerHead(null);
  const ring = ctx.ring;
  const sockets: Socket[] = [];
  // Per datagram only plain counters: the metrics, the dispatcher's wrote() and the "last
  // datagram" clock are settled once per event-loop turn (libuv delivers up to 32 datagrams per
  // socket per turn). Two prom-client inc() per datagram cost ~850 ns and performance.now()
  // ~60 ns on this machine (thread CPU, 2M calls), next to Node's own ~3-5 µs to deliver a datagram.
  let nReceived = 0;
  let nBytes = 0;
  let nRingFull = 0;
  let nOversize = 0;
  let nWritten = 0;
  let messages = 0;
  let settleScheduled = false;

  const settle = (): void => {
    settleScheduled = false;
    if (nReceived !== 0) c.received.inc(nReceived);
    if (nBytes !== 0) c.bytes.inc(nBytes);
    if (nRingFull !== 0) c.ringFull.inc(nRingFull);
    if (nOversize !== 0) c.oversize.inc(nOversize);
    const wrote = nWritten !== 0;
    nReceived = nBytes = nRingFull = nOversize = nWritten = 0;
    if (wrote) ctx.wrote();
  };

  const headFor = (rinfo: RemoteInfo): Uint8Array => {
    if (opts.hostKey === null) return noHead;
    let head = heads.get(rinfo.address);
    if (head === undefined) {
      if (heads.size >= MAX_CACHED_PEERS) heads.clear();
      head = peerHead(normalizePeer(rinfo.address));
      heads.set(rinfo.address, head);
    }
    return head;
  };

  const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    messages++;
    nReceived++;
    nBytes += msg.length;
    if (!settleScheduled) {
      settleScheduled = true;
      setImmediate(settle);
    }
    const head = headFor(rinfo);
    if (msg.length + head.length > ring.maxPayloadBytes) nOversize++;
    else if (ring.tryWrite(msg, head)) nWritten++;
    else nRingFull++;
  };

  const bind = (port: number, reusePort: boolean): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = createSocket({ type, reuseAddr: false, reusePort, recvBufferSize: opts.receiveBufferBytes });
      socket.once('error', reject);
      socket.bind({ address: opts.host, port, exclusive: true }, () => {
        socket.off('error', reject);
        socket.on('error', (err: NodeJS.ErrnoException) =>
          c.errors.error(`socket-error:${err.code ?? 'unknown'}`, { err }, 'udp socket error'),
        );
        socket.on('message', onMessage);
        resolve(socket);
      });
    });

  let reuse = opts.sockets > 1;
  let first: Socket;
  try {
    first = await bind(opts.port, reuse);
  } catch (err) {
    if (!reuse) throw err;
    // Platforms without SO_REUSEPORT: one socket.
    ctx.logger.warn({ err }, 'reusePort is not available here; using one UDP socket');
    reuse = false;
    first = await bind(opts.port, false);
  }
  sockets.push(first);
  const port = first.address().port;
  for (let i = 1; reuse && i < opts.sockets; i++) sockets.push(await bind(port, true));
  return {
    reader: 'dgram',
    port,
    granted: first.getRecvBufferSize(),
    messages: () => messages,
    close: async () => {
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      settle();
    },
  };
}
