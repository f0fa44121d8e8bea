/**
 * Slow clients never lock anyone out: the real daemon with a splunk_hec source at
 * max_connections 50 under 60 connections that trickle their request head a byte a second
 * (and reconnect whenever they are cut) still serves a well-behaved client; a body that trickles
 * below min_body_bytes_per_sec is cut with 408 while a 2 MB body sent at a modest pace is
 * stored; a connection that never starts its TLS handshake is closed after
 * tls.handshake_timeout_secs on tcp and splunk_hec sources. Every cut is counted as
 * sluice_source_connections_refused_total{reason="slow_client"}.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { writeInPieces } from '@sluice/testkit/pieces';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
  type RunningDaemon,
} from '../helpers/daemon.ts';
import { makeTestPki } from '@sluice/sources/test-certs';

const TOKEN = 'slow-clients-token';
const EVENT_PATH = '/services/collector/event';

/** A daemon with a splunk_hec source `hec` (with `hecOptions`), and any other sources, into a file sink. */
async function hecDaemon(
  hecOptions: Record<string, unknown>,
  extraSources: Record<string, unknown> = {},
): Promise<{ daemon: RunningDaemon; out: string }> {
  const dir = tempDir();
  const out = join(dir, 'out');
  const hec = { type: 'splunk_hec', address: '127.0.0.1:0', valid_tokens: [TOKEN], ...hecOptions };
  const sink = {
    type: 'file',
    inputs: ['hec', ...Object.keys(extraSources)],
    path: out,
    compression: 'none',
    upload_period_secs: 1,
  };
  const config = {
    data_dir: `${dir}/data`,
    api: { address: '127.0.0.1:0' },
    sources: { hec, ...extraSources },
    sinks: { local: sink },
  };
  const daemon = await startDaemon(stringify(config), { dir });
  return { daemon, out };
}

/** One POST on a connection of its own (no keep-alive pool): status and body. */
function post(
  address: string,
  body: string | Buffer,
  opts: { timeoutMs?: number } = {},
): Promise<{ status: number; text: string }> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path: EVENT_PATH,
        method: 'POST',
        agent: false,
        headers: { authorization: `Splunk ${TOKEN}`, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * `count` connections that each send a request head one byte a second and, when the server
 * closes them (or refuses them), connect again after 50 ms. stop() ends them all.
 */
function headTricklers(address: string, count: number): { cuts: () => number; stop: () => void } {
  const { host, port } = splitAddress(address);
  const head = Buffer.from(
    `POST ${EVENT_PATH} HTTP/1.1\r\nHost: sluice\r\nAuthorization: Splunk ${TOKEN}\r\nContent-Length: 2\r\n\r\n{}`,
  );
  let stopped = false;
  let cuts = 0;
  const sockets = new Set<Socket>();
  const one = (): void => {
    if (stopped) return;
    const socket = connect({ host, port });
    sockets.add(socket);
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < head.length) socket.write(head.subarray(sent, ++sent));
    }, 1000);
    socket.on('connect', () => socket.write(head.subarray(sent, ++sent)));
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      sockets.delete(socket);
      cuts++;
      if (!stopped) setTimeout(one, 50); // a trickler comes back 50 ms after a cut, as a retrying sender
    });
  };
  for (let i = 0; i < count; i++) one();
  return {
    cuts: () => cuts,
    stop: () => {
      stopped = true;
      for (const s of sockets) s.destroy();
    },
  };
}

/** Every line of every object under `out`. */
async function storedLines(out: string): Promise<string[]> {
  const lines: string[] = [];
  for (const key of listObjects(out)) lines.push(...(await readObjectLines(join(out, key))));
  return lines;
}

const refusedSlow = async (daemon: RunningDaemon, id: string): Promise<number> =>
  metricSum(await scrape(daemon.apiPort), 'sluice_source_connections_refused_total', {
    component_id: id,
    reason: 'slow_client',
  });

describe('end to end: slow clients never lock anyone out', () => {
  it('60 clients trickling request heads at 1 byte/s against max_connections 50: a well-behaved client is served within 15 s', {
    timeout: 120_000,
  }, async () => {
    const { daemon, out } = await hecDaemon({ max_connections: 50, header_timeout_secs: 2 });
    const address = daemon.sources['hec']![0]!;
    const tricklers = headTricklers(address, 60);
    try {
      // Every slot taken by a trickler before the well-behaved client comes.
      await vi.waitFor(
        async () => {
          expect(
            metricSum(await scrape(daemon.apiPort), 'sluice_source_open_connections', { component_id: 'hec' }),
          ).toBeGreaterThanOrEqual(50);
        },
        { timeout: 30_000, interval: 100 },
      );
      // A pause on purpose: every trickler has held its slot for over a second (1.5 s), the age from which
      // the server may take a slot back.
      await new Promise((r) => setTimeout(r, 1500));

      // A sender that retries a failed connection, as HEC senders do (its 200 ms back-off is on purpose).
      const event = JSON.stringify({ event: { msg: 'well-behaved', n: 1 } });
      const started = Date.now();
      let reply: { status: number; text: string } | null = null;
      while (reply === null && Date.now() - started < 15_000) {
        reply = await post(address, event).catch(() => null);
        if (reply === null) await new Promise((r) => setTimeout(r, 200));
      }
      expect(reply, 'the well-behaved client was not served within 15 s').not.toBeNull();
      expect(reply!.status).toBe(200);
      expect(JSON.parse(reply!.text)).toEqual({ text: 'Success', code: 0 });

      await vi.waitFor(
        async () => {
          expect(await refusedSlow(daemon, 'hec')).toBeGreaterThan(0);
        },
        { timeout: 30_000, interval: 200 },
      );
      expect(tricklers.cuts()).toBeGreaterThan(0);
    } finally {
      tricklers.stop();
    }
    expect(await daemon.stop('SIGTERM')).toBe(0);
    // Stored exactly once; the tricklers' heads never became requests.
    expect(await storedLines(out)).toEqual([JSON.stringify({ event: { msg: 'well-behaved', n: 1 } })]);
  });

  it('a body trickling below min_body_bytes_per_sec is cut with 408 and counted; a 2 MB body sent over ~3 s is stored', {
    timeout: 120_000,
  }, async () => {
    const { daemon, out } = await hecDaemon({ body_timeout_secs: 2, min_body_bytes_per_sec: 1024 });
    const address = daemon.sources['hec']![0]!;
    const { host, port } = splitAddress(address);

    // The trickle: a complete head, then one body byte a second.
    const trickle = connect({ host, port });
    trickle.on('error', () => {});
    let answer = '';
    trickle.setEncoding('utf8').on('data', (c: string) => (answer += c));
    const closed = new Promise<void>((resolve) => trickle.on('close', () => resolve()));
    const t0 = Date.now();
    trickle.write(
      `POST ${EVENT_PATH} HTTP/1.1\r\nHost: sluice\r\nAuthorization: Splunk ${TOKEN}\r\nContent-Length: 1000\r\n\r\n{`,
    );
    const drip = setInterval(() => trickle.write(' '), 1000);

    // The large request: 2 MB of envelopes in 64 KiB pieces every 100 ms (~640 KB/s, so ~3 s:
    // longer than body_timeout_secs, far above the minimum rate).
    const envelopes = Array.from({ length: 2000 }, (_, i) =>
      JSON.stringify({ time: 1732270000 + i, event: { i, pad: 'x'.repeat(1000) } }),
    );
    const big = Buffer.from(envelopes.join(''));
    expect(big.length).toBeGreaterThan(2_000_000);
    const bigReply = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host,
          port,
          path: EVENT_PATH,
          method: 'POST',
          agent: false,
          headers: { authorization: `Splunk ${TOKEN}`, 'content-length': big.length },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      void writeInPieces(req, big, 65_536, 100);
    });
    const bigStarted = Date.now();

    try {
      await Promise.race([
        closed,
        new Promise((_, reject) => setTimeout(() => reject(new Error('trickling body not cut within 30 s')), 30_000)),
      ]);
    } finally {
      clearInterval(drip);
      trickle.destroy();
    }
    // Not before its deadline (body_timeout_secs 2 plus ~1 ms of credit per byte).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"code":408');

    const reply = await bigReply;
    expect(Date.now() - bigStarted).toBeGreaterThan(2000);
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.text)).toEqual({ text: 'Success', code: 0 });

    const m = await scrape(daemon.apiPort);
    // One trickling request: one cut connection and one event counted and discarded.
    expect(
      metricSum(m, 'sluice_source_connections_refused_total', { component_id: 'hec', reason: 'slow_client' }),
    ).toBe(1);
    expect(metricSum(m, 'sluice_source_discarded_events_total', { component_id: 'hec', reason: 'slow_client' })).toBe(
      1,
    );
    expect(metricSum(m, 'sluice_source_received_events_total', { component_id: 'hec' })).toBe(envelopes.length + 1);
    expect(metricSum(m, 'sluice_source_http_requests_total', { component_id: 'hec', status: '408' })).toBe(1);

    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(await storedLines(out)).toEqual(envelopes);
  });

  it('a connection that never starts its TLS handshake is closed after handshake_timeout_secs (tcp and splunk_hec) and counted', {
    timeout: 120_000,
  }, async () => {
    const pki = makeTestPki();
    const tls = { cert_file: pki.certFile, key_file: pki.keyFile, handshake_timeout_secs: 2 };
    const { daemon } = await hecDaemon(
      { tls },
      { talos: { type: 'tcp', address: '127.0.0.1:0', idle_timeout_secs: 0, tls } },
    );
    const silentFor = async (address: string): Promise<number> => {
      const { host, port } = splitAddress(address);
      const socket = connect({ host, port });
      socket.on('error', () => {});
      const t0 = Date.now();
      await Promise.race([
        new Promise<void>((resolve) => socket.on('close', () => resolve())),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`${address}: not closed within 30 s`)), 30_000)),
      ]).finally(() => socket.destroy());
      return Date.now() - t0;
    };
    const [hecMs, tcpMs] = await Promise.all([
      silentFor(daemon.sources['hec']![0]!),
      silentFor(daemon.sources['talos']![0]!),
    ]);
    expect(hecMs).toBeGreaterThanOrEqual(1900);
    expect(tcpMs).toBeGreaterThanOrEqual(1900);
    // One silent connection each: one cut each, none counted as a failed handshake.
    const m = await scrape(daemon.apiPort);
    for (const id of ['hec', 'talos']) {
      expect(
        metricSum(m, 'sluice_source_connections_refused_total', { component_id: id, reason: 'slow_client' }),
        id,
      ).toBe(1);
      expect(
        metricSum(m, 'sluice_source_connections_refused_total', { component_id: id, reason: 'tls_handshake' }),
        id,
      ).toBe(0);
    }
    expect(await daemon.stop('SIGTERM')).toBe(0);
  });
});
