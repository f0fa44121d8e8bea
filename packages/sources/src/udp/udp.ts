import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { RateLimitedLog } from '@sluice/telemetry';
import { udpKernelDrops } from './kernel-drops.ts';
import { formatAddress, normalizePeer, peerHead, type Source, type SourceContext } from '../source.ts';

export interface UdpSourceOptions {
  host: string;
  port: number;
  /** Sockets bound to the same port with SO_REUSEPORT; the kernel spreads datagrams across them. */
  sockets: number;
  receiveBufferBytes: number;
  hostKey: string | null;
}

/** Peer heads are cached: a Talos fleet is a few thousand addresses, not one per datagram. */
const MAX_CACHED_PEERS = 4096;

/**
 * One JSON object per datagram (Talos `json_lines` over UDP). libuv reads at most 32
 * datagrams per loop turn per socket, so several sockets share the port (reusePort) and
 * each asks for a large receive buffer. UDP cannot push back: a full ring is a counted drop.
 */
export async function startUdpSource(ctx: SourceContext, opts: UdpSourceOptions): Promise<Source> {
  const labels = { component_id: ctx.id, component_type: 'udp' };
  const received = ctx.metrics.receivedEvents.labels(labels);
  const bytes = ctx.metrics.receivedBytes.labels(labels);
  const ringFull = ctx.metrics.discardedEvents.labels({ ...labels, reason: 'ring_full' });
  const oversize = ctx.metrics.discardedEvents.labels({ ...labels, reason: 'oversize' });
  const type = opts.host.includes(':') ? 'udp6' : 'udp4';
  const heads = new Map<string, Uint8Array>();
  const noHead = peerHead(null);
  const ring = ctx.ring;
  const sockets: Socket[] = [];
  const errors = new RateLimitedLog(ctx.logger);
  let open = false;
  // Per datagram only plain counters: the metrics, the dispatcher's wrote() and the "last
  // datagram" clock are settled once per event-loop turn (libuv delivers up to 32 datagrams per
  // socket per turn). Two prom-client inc() per datagram cost ~850 ns and performance.now()
  // ~60 ns on this machine (thread CPU, 2M calls), next to Node's own ~3-5 µs to deliver a datagram.
  let nReceived = 0;
  let nBytes = 0;
  let nRingFull = 0;
  let nOversize = 0;
  let nWritten = 0;
  /** Datagrams ever received: drain() watches it to see the sockets go quiet. */
  let messages = 0;
  let settleScheduled = false;

  const settle = (): void => {
    settleScheduled = false;
    if (nReceived !== 0) received.inc(nReceived);
    if (nBytes !== 0) bytes.inc(nBytes);
    if (nRingFull !== 0) ringFull.inc(nRingFull);
    if (nOversize !== 0) oversize.inc(nOversize);
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
        socket.on('error', (err: NodeJS.ErrnoException) => errors.error(`socket-error:${err.code ?? 'unknown'}`, { err }, 'udp socket error'));
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
  open = true;
  let lastDrops = 0;
  ctx.metrics.probe('sluice_source_kernel_dropped_datagrams_total', () => {
    // Read at scrape time; the counter only moves forward (a closed socket's drops are gone from /proc).
    const drops = udpKernelDrops(port);
    if (drops > lastDrops) ctx.metrics.kernelDrops.inc({ component_id: ctx.id }, drops - lastDrops);
    lastDrops = Math.max(lastDrops, drops);
  });
  const granted = first.getRecvBufferSize();
  if (granted < opts.receiveBufferBytes) {
    ctx.logger.warn(
      { requested: opts.receiveBufferBytes, granted },
      'the kernel granted a smaller UDP receive buffer than receive_buffer_bytes (raise net.core.rmem_max)',
    );
  }

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
      let seen = messages;
      let quietSince = performance.now();
      while (performance.now() - quietSince < quietMs && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
        if (messages !== seen) {
          seen = messages;
          quietSince = performance.now();
        }
      }
      open = false;
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      settle();
    },
  };
}
