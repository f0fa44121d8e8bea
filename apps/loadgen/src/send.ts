/**
 * Senders: push a {@link LineSet} to a Sluice source over TCP (N connections), UDP (paced or
 * full rate) or HTTP (Splunk HEC style POSTs), and report what was sent. The line bytes are
 * generated before the clock starts; a sender only slices the set's buffer, so the figures
 * measure the receiver, not the generator.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { LineSet } from './line-set.ts';

export interface SendReport {
  protocol: 'tcp' | 'udp' | 'hec';
  /** Where the lines went: host:port or the URL. */
  target: string;
  /** Lines handed to the kernel (TCP, UDP) or acknowledged with a 2xx (HEC). */
  lines: number;
  /** Line bytes sent, '\n' included for TCP. */
  bytes: number;
  /** Sends the kernel refused (UDP: ENOBUFS, EAGAIN...) or lines in failed requests (HEC). */
  errors: number;
  /** From the first byte written until the last connection closed (TCP: the receiver read it all) / last send. */
  seconds: number;
  linesPerSec: number;
  /** Megabytes (10^6) per second. */
  mbPerSec: number;
  /** Wall clock (ms since the epoch) when sending started. */
  startedAtMs: number;
  /** Requested rate in lines/s; 0 = as fast as possible. */
  rate: number;
  connections: number;
}

function report(
  protocol: SendReport['protocol'],
  target: string,
  lines: number,
  bytes: number,
  errors: number,
  startedAtMs: number,
  t0: number,
  rate: number,
  connections: number,
): SendReport {
  const seconds = (performance.now() - t0) / 1000;
  return {
    protocol,
    target,
    lines,
    bytes,
    errors,
    seconds: +seconds.toFixed(4),
    linesPerSec: Math.round(lines / seconds),
    mbPerSec: +(bytes / 1e6 / seconds).toFixed(2),
    startedAtMs,
    rate,
    connections,
  };
}

/** Split [0, count) into `parts` contiguous ranges of near-equal size. */
function ranges(count: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  for (let k = 0; k < parts; k++) out.push([Math.floor((count * k) / parts), Math.floor((count * (k + 1)) / parts)]);
  return out;
}

export interface TcpSendOptions {
  host: string;
  port: number;
  /** Connections opened at once, each sending a contiguous share of the lines. Default 1. */
  connections?: number;
  /** Bytes per socket.write (cut at line ends). Default 64 KiB. */
  chunkBytes?: number;
}

/**
 * Send every line over `connections` TCP connections, honouring backpressure, then half-close
 * each and wait until the receiver closes it: when this resolves the receiver has read every byte.
 */
export async function sendTcp(set: LineSet, opts: TcpSendOptions): Promise<SendReport> {
  const connections = opts.connections ?? 1;
  const chunkBytes = opts.chunkBytes ?? 64 * 1024;
  if (!Number.isInteger(connections) || connections < 1)
    throw new RangeError(`connections must be >= 1, got ${connections}`);
  const sockets: Socket[] = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect({ host: opts.host, port: opts.port, noDelay: true });
          s.once('connect', () => {
            s.off('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        }),
    ),
  );
  const startedAtMs = Date.now();
  const t0 = performance.now();
  const { data, offsets } = set;
  await Promise.all(
    ranges(set.count, connections).map(async ([a, b], k) => {
      const socket = sockets[k]!;
      const closed = new Promise<void>((resolve, reject) => {
        socket.once('close', (hadError) =>
          hadError ? reject(new Error(`tcp connection ${k} closed with an error`)) : resolve(),
        );
        socket.once('error', reject);
      });
      // The receiver may answer nothing; reading keeps 'end' and 'close' flowing.
      socket.resume();
      let i = a;
      while (i < b) {
        // Whole lines up to chunkBytes (at least one line).
        let j = i + 1;
        const limit = offsets[i]! + chunkBytes;
        while (j < b && offsets[j + 1]! <= limit) j++;
        if (!socket.write(data.subarray(offsets[i]!, offsets[j]!))) {
          await new Promise<void>((resolve, reject) => {
            const onErr = (e: Error) => reject(e);
            socket.once('error', onErr);
            socket.once('drain', () => {
              socket.off('error', onErr);
              resolve();
            });
          });
        }
        i = j;
      }
      socket.end();
      await closed;
    }),
  );
  const bytes = offsets[set.count]! - offsets[0]!;
  return report('tcp', `${opts.host}:${opts.port}`, set.count, bytes, 0, startedAtMs, t0, 0, connections);
}

export interface UdpSendOptions {
  host: string;
  port: number;
  /** Datagrams per second; 0 = as fast as this thread can send. */
  rate: number;
  /** Sending sockets (each its own source port, so SO_REUSEPORT spreads them). Default 1. */
  sockets?: number;
}

/**
 * One datagram per line (without its '\n'), at `rate` datagrams/s or flat out. Pacing is a
 * token bucket refilled every ~1 ms timer tick, so bursts are ~rate/1000 datagrams.
 */
export async function sendUdp(set: LineSet, opts: UdpSendOptions): Promise<SendReport> {
  const nSockets = opts.sockets ?? 1;
  if (!(opts.rate >= 0)) throw new RangeError(`rate must be >= 0, got ${opts.rate}`);
  const type = opts.host.includes(':') ? 'udp6' : 'udp4';
  let errors = 0;
  const sockets: UdpSocket[] = await Promise.all(
    Array.from(
      { length: nSockets },
      () =>
        new Promise<UdpSocket>((resolve, reject) => {
          const s = createSocket({ type, sendBufferSize: 4 * 1024 * 1024 });
          s.once('error', reject);
          s.connect(opts.port, opts.host, () => {
            s.off('error', reject);
            // Without a callback, a failed send is an 'error' event: count it and go on.
            s.on('error', () => errors++);
            resolve(s);
          });
        }),
    ),
  );
  const { data, offsets, count } = set;
  let bytes = 0;
  const sendOne = (i: number): void => {
    const s = offsets[i]!;
    const len = offsets[i + 1]! - 1 - s;
    bytes += len;
    sockets[i % nSockets]!.send(data, s, len);
  };
  /** Let libuv flush sends it had to queue (EAGAIN) before queuing more. */
  const settle = async (): Promise<void> => {
    for (const s of sockets) while (s.getSendQueueCount() > 256) await yieldToLoop();
  };
  const startedAtMs = Date.now();
  const t0 = performance.now();
  let i = 0;
  if (opts.rate === 0) {
    while (i < count) {
      const stop = Math.min(count, i + 512);
      while (i < stop) sendOne(i++);
      await settle();
    }
  } else {
    const perMs = opts.rate / 1000;
    while (i < count) {
      const due = Math.min(count, Math.floor((performance.now() - t0) * perMs));
      while (i < due) sendOne(i++);
      if (i < count) await sleep(1);
    }
  }
  await settle();
  const out = report('udp', `${opts.host}:${opts.port}`, count, bytes, errors, startedAtMs, t0, opts.rate, nSockets);
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  out.errors = errors;
  return out;
}

export interface HecSendOptions {
  /** The collector URL, e.g. http://127.0.0.1:8088/services/collector/event. */
  url: string;
  /** Sent as `Authorization: Splunk <token>` when set. */
  token?: string;
  /** event: each line wrapped as {"event":<line>}, concatenated; raw: the lines as they are. Default event. */
  format?: 'event' | 'raw';
  /** Lines per POST. Default 500. */
  batchLines?: number;
  /** POSTs in flight. Default 4. */
  concurrency?: number;
}

/**
 * Plain HTTP POSTs of batches of lines, keep-alive, `concurrency` in flight. Lines in a request
 * answered with anything but 2xx (or that failed on the wire) count as errors. Sluice's own
 * splunk_hec source is a later issue: until then this targets any HEC-compatible endpoint.
 */
export async function sendHec(set: LineSet, opts: HecSendOptions): Promise<SendReport> {
  const url = new URL(opts.url);
  if (url.protocol !== 'http:') throw new RangeError(`hec: only http:// URLs are supported, got ${url.protocol}`);
  const format = opts.format ?? 'event';
  const batchLines = opts.batchLines ?? 500;
  const concurrency = opts.concurrency ?? 4;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const { data, offsets, count } = set;
  const OPEN = Buffer.from('{"event":');
  const CLOSE = Buffer.from('}\n');
  const body = (a: number, b: number): Buffer => {
    if (format === 'raw') return data.subarray(offsets[a]!, offsets[b]!);
    const parts: Buffer[] = [];
    for (let i = a; i < b; i++) parts.push(OPEN, data.subarray(offsets[i]!, offsets[i + 1]! - 1), CLOSE);
    return Buffer.concat(parts);
  };
  const headers: Record<string, string> = { 'content-type': format === 'raw' ? 'text/plain' : 'application/json' };
  if (opts.token !== undefined) headers['authorization'] = `Splunk ${opts.token}`;
  const post = (payload: Buffer): Promise<boolean> =>
    new Promise((resolve) => {
      const req = request(
        url,
        { method: 'POST', agent, headers: { ...headers, 'content-length': String(payload.length) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300));
          res.on('error', () => resolve(false));
        },
      );
      req.on('error', () => resolve(false));
      req.end(payload);
    });
  let next = 0;
  let lines = 0;
  let bytes = 0;
  let errors = 0;
  const startedAtMs = Date.now();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const a = next;
        const b = Math.min(count, a + batchLines);
        next = b;
        const ok = await post(body(a, b));
        if (ok) {
          lines += b - a;
          bytes += offsets[b]! - offsets[a]!;
        } else errors += b - a;
      }
    }),
  );
  agent.destroy();
  return report('hec', opts.url, lines, bytes, errors, startedAtMs, t0, 0, concurrency);
}
