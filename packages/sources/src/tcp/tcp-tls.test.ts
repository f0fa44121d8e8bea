import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Ring } from '@sluice/ring';
import { Metrics } from '@sluice/telemetry';
import type { Source } from '../source.ts';
import { makeTestPki, type TestPki } from '../test-certs.ts';
import { drainRing, type RingRecord } from '../test-ring.ts';
import type { TlsSettings } from '../tls.ts';
import { startTcpSource } from './tcp.ts';

const logger = pino({ level: 'silent' });

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

const running: Source[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.drain(10)));
});

function lines(ring: Ring): string[] {
  const got: RingRecord[] = [];
  while (drainRing(ring, got) > 0);
  return got.map((r) => r.record);
}

async function startTls(tls: TlsSettings): Promise<{ src: Source; ring: Ring; metrics: Metrics; port: number }> {
  const ring = Ring.create(1 << 16);
  const metrics = new Metrics('test');
  const src = await startTcpSource(
    { id: 't', ring, metrics, logger, wrote: () => {} },
    { host: '127.0.0.1', port: 0, maxLineBytes: 1024, maxConnections: 16, idleTimeoutSecs: 0, hostKey: '__host', tls },
  );
  running.push(src);
  return { src, ring, metrics, port: Number(src.addresses[0]!.split(':').pop()) };
}

/** Connect, send `data`, close; resolves once the server closed too. Rejects on a TLS error. */
function sendTls(port: number, opts: ConnectionOptions, data: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ...opts }, () => {
      socket.end(data);
    });
    socket.on('error', reject);
    socket.on('data', () => {});
    socket.on('close', () => resolve(socket));
  });
}

/** Every line the ring has held so far: each call drains it and returns all lines seen. */
function collector(ring: Ring): () => string[] {
  const seen: string[] = [];
  return () => {
    seen.push(...lines(ring));
    return seen;
  };
}

/** How long a test waits for lines: generous, the machine may be loaded. */
const WAIT = { timeout: 30_000, interval: 10 };

const serverOnly = (): TlsSettings => ({
  certFile: pki.certFile,
  keyFile: pki.keyFile,
  caFile: null,
  clientAuth: 'none',
});

describe('tcp source with tls', () => {
  it('a client that verifies the certificate sends lines; one that trusts another CA fails and sends nothing', async () => {
    const { ring, port } = await startTls(serverOnly());
    const ok = await sendTls(port, { ca: pki.ca }, '{"a":1}\n{"b":2}\n');
    expect(ok.authorized).toBe(true);
    await expect(sendTls(port, { ca: pki.otherCa }, '{"evil":1}\n')).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    // The host name is checked too.
    await expect(sendTls(port, { ca: pki.ca, servername: 'not-localhost' }, '{"evil":2}\n')).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
    const seen = collector(ring);
    await vi.waitFor(() => expect(seen(), "the good client's lines, alone").toEqual(['{"a":1}', '{"b":2}']), WAIT);
  });

  it('refuses plain TCP on a tls port and counts the failed handshake', async () => {
    const { ring, port, metrics } = await startTls(serverOnly());
    const plain = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => {
      plain.on('error', () => {});
      plain.on('close', () => resolve());
      plain.end('{"plain":1}\n');
    });
    expect(ring.usedBytes()).toBe(0);
    const refused = await metrics.connectionsRefused.get();
    expect(refused.values.find((v) => v.labels.reason === 'tls_handshake')?.value).toBe(1);
  });

  it('a connection that never starts its handshake is closed after handshake_timeout_secs and counted as slow_client; an idle plain tcp connection is kept', async () => {
    const { port, metrics } = await startTls({ ...serverOnly(), handshakeTimeoutSecs: 1 });
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => {});
    const t0 = Date.now();
    await new Promise<void>((resolve) => silent.on('close', () => resolve()));
    // Not before the deadline; the upper bound is the test's own timeout (a loaded machine is slow).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    const refused = await metrics.connectionsRefused.get();
    expect(refused.values.find((v) => v.labels.reason === 'slow_client')?.value).toBe(1);
    expect(refused.values.find((v) => v.labels.reason === 'tls_handshake')?.value ?? 0).toBe(0);
    // A client that completes its handshake at once is served as before.
    const ok = await sendTls(port, { ca: pki.ca }, '{"a":1}\n');
    expect(ok.authorized).toBe(true);

    // Plain tcp (idle_timeout_secs 0): a node that connects and says nothing is a quiet Talos node, kept.
    const ring = Ring.create(1 << 16);
    const plainMetrics = new Metrics('test');
    const plainSrc = await startTcpSource(
      { id: 'p', ring, metrics: plainMetrics, logger, wrote: () => {} },
      { host: '127.0.0.1', port: 0, maxLineBytes: 64, maxConnections: 4, idleTimeoutSecs: 0, hostKey: null },
    );
    running.push(plainSrc);
    const quiet = connect(Number(plainSrc.addresses[0]!.split(':').pop()), '127.0.0.1');
    let closed = false;
    quiet.on('close', () => (closed = true));
    // A sleep on purpose: the test is that a quiet connection stays open (2 s, twice the tls handshake timeout).
    await new Promise((r) => setTimeout(r, 2000));
    expect(closed).toBe(false);
    quiet.end('{"late":1}\n');
    const seen = collector(ring);
    await vi.waitFor(() => expect(seen(), "the quiet node's line").toEqual(['{"late":1}']), WAIT);
  }, 60_000);

  it('client_auth required: only clients with a certificate from ca_file get in', async () => {
    const { ring, port, metrics } = await startTls({ ...serverOnly(), caFile: pki.caFile, clientAuth: 'required' });
    // With TLS 1.3 the client may finish its side of the handshake before the server's alert
    // arrives: what counts is that nothing it sent is taken.
    await sendTls(port, { ca: pki.ca }, '{"anon":1}\n').catch(() => null);
    await sendTls(
      port,
      { ca: pki.ca, cert: readFileSync(pki.otherCertFile), key: readFileSync(pki.otherKeyFile) },
      '{"stranger":1}\n',
    ).catch(() => null);
    await sendTls(port, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey }, '{"node":1}\n');
    const seen = collector(ring);
    await vi.waitFor(
      () => expect(seen(), 'the line of the client with a certificate, alone').toEqual(['{"node":1}']),
      WAIT,
    );
    const refused = await metrics.connectionsRefused.get();
    expect(refused.values.find((v) => v.labels.reason === 'tls_handshake')?.value).toBe(2);
  });

  it('client_auth optional: clients without a certificate get in, ones with a bad certificate do not', async () => {
    const { ring, port } = await startTls({ ...serverOnly(), caFile: pki.caFile, clientAuth: 'optional' });
    await sendTls(port, { ca: pki.ca }, '{"anon":1}\n');
    await sendTls(port, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey }, '{"node":1}\n');
    await sendTls(
      port,
      { ca: pki.ca, cert: readFileSync(pki.otherCertFile), key: readFileSync(pki.otherKeyFile) },
      '{"stranger":1}\n',
    ).catch(() => null);
    const seen = collector(ring);
    await vi.waitFor(
      () => expect([...seen()].sort(), 'the lines of the good clients').toEqual(['{"anon":1}', '{"node":1}']),
      WAIT,
    );
  });

  it('reloadTls(): new connections get the new certificate; a bad file keeps the old one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-reload-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(pki.certFile, cert);
    copyFileSync(pki.keyFile, key);
    const { src, ring, port } = await startTls({ certFile: cert, keyFile: key, caFile: null, clientAuth: 'none' });
    await sendTls(port, { ca: pki.ca }, '{"before":1}\n');
    copyFileSync(pki.otherCertFile, cert);
    copyFileSync(pki.otherKeyFile, key);
    await src.reloadTls!();
    await expect(sendTls(port, { ca: pki.ca }, '{"old-ca":1}\n')).rejects.toBeDefined();
    await sendTls(port, { ca: pki.otherCa }, '{"after":1}\n');
    // A key that does not match: rejected, the current certificate stays.
    copyFileSync(pki.keyFile, key);
    await expect(src.reloadTls!()).rejects.toMatchObject({
      code: 'SLUICE_ERR_TLS',
      message: expect.stringContaining('sources.t.tls: the new files are not a usable TLS setup'),
    });
    await sendTls(port, { ca: pki.otherCa }, '{"still":1}\n');
    const seen = collector(ring);
    const want = ['{"before":1}', '{"after":1}', '{"still":1}'];
    await vi.waitFor(() => expect(seen(), 'the lines sent with a good certificate').toEqual(want), WAIT);
  });

  it('a plain tcp source has no reloadTls', async () => {
    const ring = Ring.create(1 << 16);
    const src = await startTcpSource(
      { id: 't', ring, metrics: new Metrics('t'), logger, wrote: () => {} },
      { host: '127.0.0.1', port: 0, maxLineBytes: 64, maxConnections: 4, idleTimeoutSecs: 0, hostKey: null },
    );
    running.push(src);
    expect(src.reloadTls).toBeUndefined();
  });
});
