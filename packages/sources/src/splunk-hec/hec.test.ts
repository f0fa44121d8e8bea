import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Ring } from '@sluice/ring';
import { Metrics } from '@sluice/telemetry';
import { createHecDecoder, type HecDecoder } from '@sluice/worker';
import type { Source, SourceContext } from '../source.ts';
import { makeTestPki, type TestPki } from '../test-certs.ts';
import { drainRing, type RingRecord } from '../test-ring.ts';
import { startSplunkHecSource, type SplunkHecSourceOptions } from './hec.ts';
import { counter } from '../test-metrics.ts';
import { writeInPieces } from '@sluice/testkit/pieces';

const logger = pino({ level: 'silent' });
const TOKEN = '11111111-2222-3333-4444-555555555555';
const OTHER_TOKEN = 'second-token';

let decoder: HecDecoder;
/** The daemon's decoder: small plain bodies decoded inline, in the turn they arrive. */
let inlineDecoder: HecDecoder;
let pki: TestPki;
beforeAll(() => {
  // Every body goes to the worker threads except where a test says otherwise.
  decoder = createHecDecoder({ threads: 2, inlineBelowBytes: 0 });
  inlineDecoder = createHecDecoder({ threads: 1 });
  pki = makeTestPki();
});
afterAll(async () => {
  await Promise.all([decoder.destroy(), inlineDecoder.destroy()]);
});

type Got = RingRecord;

/** A consumer that keeps draining the ring and tells the source about the space, like the dispatcher. */
function consumer(ring: Ring, src: Source, spanBytes = 1 << 20): { got: Got[]; stop(): void } {
  const got: Got[] = [];
  const timer = setInterval(() => {
    while (drainRing(ring, got, spanBytes) > 0) src.ringSpace();
  }, 2);
  return { got, stop: () => clearInterval(timer) };
}

const running: Source[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.drain(10)));
});

async function start(
  opts: Partial<SplunkHecSourceOptions> = {},
  ringBytes = 1 << 20,
  dec: HecDecoder = decoder,
): Promise<{ src: Source; ring: Ring; metrics: Metrics; url: string }> {
  const ring = Ring.create(ringBytes);
  const metrics = new Metrics('test');
  const ctx: SourceContext = { id: 'hec', ring, metrics, logger, wrote: () => {} };
  const src = await startSplunkHecSource(
    ctx,
    {
      host: '127.0.0.1',
      port: 0,
      validTokens: [TOKEN, OTHER_TOKEN],
      maxBodyBytes: 1 << 20,
      maxConnections: 256,
      hostKey: '__host',
      ...opts,
    },
    dec,
  );
  running.push(src);
  const scheme = opts.tls ? 'https' : 'http';
  return { src, ring, metrics, url: `${scheme}://${src.addresses[0]}` };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown> | null;
}

/** One request with node:http(s); `body` may be a string or bytes. */
function send(
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Uint8Array;
    ca?: Buffer;
    agent?: false;
  } = {},
): Promise<Reply> {
  const u = new URL(url);
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      {
        method: opts.method ?? 'POST',
        headers: opts.headers ?? {},
        ...(opts.ca ? { ca: opts.ca } : {}),
        ...(opts.agent === false ? { agent: false } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | null = null;
          try {
            json = JSON.parse(body) as Record<string, unknown>;
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const auth = { authorization: `Splunk ${TOKEN}` };
const envelope = (i: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    time: 1732270000 + i / 1000,
    host: 'tailnet',
    source: 'tailscale',
    sourcetype: 'audit',
    index: 'main',
    event: { action: 'UPDATE', n: i },
    fields: { f: 'v' },
    ...extra,
  });

/** How long a test waits for events or counters: generous, the machine may be loaded. */
const WAIT = { timeout: 30_000, interval: 5 };

describe('splunk_hec source: event endpoints', () => {
  it('stores stacked envelopes exactly as sent, answers 200 only once they are in the ring', async () => {
    const { ring, url, metrics } = await start();
    const envelopes = [envelope(0), envelope(1), '{"event":"a plain string","time":"1732270000.5"}'];
    const reply = await send(`${url}/services/collector/event`, {
      headers: auth,
      body: `${envelopes[0]}\n${envelopes[1]}  \r\n\t${envelopes[2]}`,
    });
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ text: 'Success', code: 0 });
    // No consumer ran: the records were in the ring before the answer.
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got).toEqual(envelopes.map((record) => ({ peer: '127.0.0.1', record })));
    expect(await counter(metrics, 'sluice_source_received_events_total', {})).toBe(3);
    expect(await counter(metrics, 'sluice_source_http_requests_total', { status: '200', code: '0' })).toBe(1);
  });

  it('takes a JSON array of envelopes on every event path', async () => {
    const { ring, url } = await start();
    const paths = [
      '/services/collector',
      '/services/collector/event',
      '/services/collector/event/1.0',
      '/services/collector/event/',
    ];
    for (const [i, path] of paths.entries()) {
      const reply = await send(`${url}${path}`, {
        headers: auth,
        body: `[${envelope(2 * i)},\n ${envelope(2 * i + 1)}]`,
      });
      expect(reply.json).toEqual({ text: 'Success', code: 0 });
    }
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got.map((g) => g.record)).toEqual(Array.from({ length: 8 }, (_, i) => envelope(i)));
  });

  it('decodes gzip bodies, inline and on the worker threads', async () => {
    const inline = createHecDecoder({ threads: 1 });
    try {
      for (const dec of [decoder, inline]) {
        const ring = Ring.create(1 << 20);
        const src = await startSplunkHecSource(
          { id: 'hec', ring, metrics: new Metrics('t'), logger, wrote: () => {} },
          { host: '127.0.0.1', port: 0, validTokens: [TOKEN], maxBodyBytes: 1 << 20, maxConnections: 8, hostKey: null },
          dec,
        );
        running.push(src);
        const envelopes = Array.from({ length: 500 }, (_, i) => envelope(i));
        const reply = await send(`http://${src.addresses[0]}/services/collector/event`, {
          headers: { ...auth, 'content-encoding': 'gzip' },
          body: gzipSync(envelopes.join('\n')),
        });
        expect(reply.json).toEqual({ text: 'Success', code: 0 });
        const small = await send(`http://${src.addresses[0]}/services/collector/event`, {
          headers: auth,
          body: envelope(500),
        });
        expect(small.status).toBe(200);
        const got: Got[] = [];
        drainRing(ring, got);
        expect(got).toEqual([...envelopes, envelope(500)].map((record) => ({ peer: '', record })));
      }
    } finally {
      await inline.destroy();
    }
  });

  it('refuses a request with a bad envelope whole, naming the zero-based envelope number', async () => {
    const { ring, url, metrics } = await start();
    const cases: [string, number, number, string, number][] = [
      [`${envelope(0)}${envelope(1)}{"event":"x",}`, 400, 6, 'Invalid data format', 2],
      [`${envelope(0)}{"event":"unterminated`, 400, 6, 'Invalid data format', 1],
      [`[${envelope(0)}, 42]`, 400, 6, 'Invalid data format', 1],
      [`${envelope(0)}{"time":1}`, 400, 12, 'Event field is required', 1],
      [`{"event":""}${envelope(1)}`, 400, 13, 'Event field cannot be blank', 0],
      [`${envelope(0)}{"event":null}`, 400, 13, 'Event field cannot be blank', 1],
    ];
    for (const [body, status, code, msg, n] of cases) {
      const reply = await send(`${url}/services/collector/event`, { headers: auth, body });
      expect(reply.status).toBe(status);
      expect(reply.json).toEqual({ text: msg, code, 'invalid-event-number': n });
    }
    expect(ring.usedBytes()).toBe(0);
    // Every envelope looked at is counted as received and discarded: the books balance.
    const seen = 3 + 2 + 2 + 2 + 1 + 2;
    expect(await counter(metrics, 'sluice_source_received_events_total', {})).toBe(seen);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'invalid_event' })).toBe(seen);
  });

  it('answers 400 code 5 for no data, 400 code 6 for a broken gzip stream', async () => {
    const { ring, url } = await start();
    expect((await send(`${url}/services/collector/event`, { headers: auth, body: '' })).json).toEqual({
      text: 'No data',
      code: 5,
    });
    expect((await send(`${url}/services/collector/event`, { headers: auth, body: ' \n ' })).json).toEqual({
      text: 'No data',
      code: 5,
    });
    const broken = await send(`${url}/services/collector/event`, {
      headers: { ...auth, 'content-encoding': 'gzip' },
      body: 'not gzip',
    });
    expect(broken.status).toBe(400);
    expect(broken.json).toEqual({ text: 'Invalid data format', code: 6, 'invalid-event-number': 0 });
    expect(ring.usedBytes()).toBe(0);
  });
});

describe('splunk_hec source: authorization', () => {
  it('answers the HEC codes for missing, malformed and wrong tokens, and accepts Splunk, Basic and bare tokens', async () => {
    const { ring, url, metrics } = await start();
    const post = (headers: Record<string, string>) =>
      send(`${url}/services/collector/event`, { headers, body: envelope(0) });
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    expect(await post({})).toMatchObject({ status: 401, json: { text: 'Token is required', code: 2 } });
    for (const header of [
      'Bearer x',
      'Splunk',
      'Splunk a b',
      'Basic',
      basic('x', ''),
      'Basic !!!',
      `Basic ${Buffer.from('no-colon').toString('base64')}`,
    ]) {
      expect(await post({ authorization: header }), header).toMatchObject({
        status: 401,
        json: { text: 'Invalid authorization', code: 3 },
      });
    }
    for (const header of ['Splunk wrong', `Splunk ${TOKEN}x`, basic('x', 'wrong'), 'wrong']) {
      expect(await post({ authorization: header }), header).toMatchObject({
        status: 403,
        json: { text: 'Invalid token', code: 4 },
      });
    }
    expect(ring.usedBytes()).toBe(0);
    for (const header of [
      `Splunk ${TOKEN}`,
      `splunk ${OTHER_TOKEN}`,
      basic('anyone', TOKEN),
      basic('', OTHER_TOKEN),
      TOKEN,
    ]) {
      expect(await post({ authorization: header }), header).toMatchObject({
        status: 200,
        json: { text: 'Success', code: 0 },
      });
    }
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got).toHaveLength(5);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'unauthorized' })).toBe(12);
    expect(await counter(metrics, 'sluice_source_http_requests_total', { status: '401', code: '2' })).toBe(1);
    expect(await counter(metrics, 'sluice_source_http_requests_total', { status: '401', code: '3' })).toBe(7);
    expect(await counter(metrics, 'sluice_source_http_requests_total', { status: '403', code: '4' })).toBe(4);
  });

  it('health needs no token; ack is disabled; unknown paths are 404; wrong methods 405', async () => {
    const { url } = await start();
    expect(await send(`${url}/services/collector/health`, { method: 'GET' })).toMatchObject({
      status: 200,
      json: { text: 'HEC is healthy', code: 17 },
    });
    expect(await send(`${url}/services/collector/health/1.0`, { method: 'GET' })).toMatchObject({
      status: 200,
      json: { code: 17 },
    });
    expect(await send(`${url}/services/collector/ack`, { headers: auth, body: '{"acks":[0]}' })).toMatchObject({
      status: 400,
      json: { text: 'ACK is disabled', code: 14 },
    });
    expect(await send(`${url}/services/collector/ack`, { body: '{}' })).toMatchObject({
      status: 401,
      json: { code: 2 },
    });
    expect(await send(`${url}/nope`, { headers: auth, body: envelope(0) })).toMatchObject({ status: 404 });
    const get = await send(`${url}/services/collector/event`, { method: 'GET', headers: auth });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
  });
});

describe('splunk_hec source: raw endpoint', () => {
  it('stores one record per non-blank line, wrapped as {"event": line}, with the query fields', async () => {
    const { ring, url, metrics } = await start();
    const withHeader = await send(`${url}/services/collector/raw`, {
      headers: { ...auth, 'x-splunk-request-channel': 'a5f9b1c2-0000-4000-8000-000000000001' },
      body: 'first line\r\n\nsecond "line" \\ ü\n',
    });
    expect(withHeader.json).toEqual({ text: 'Success', code: 0 });
    const withQuery = await send(
      `${url}/services/collector/raw/1.0?channel=c1&host=node-7&sourcetype=syslog&index=main&source=`,
      { headers: auth, body: 'third' },
    );
    expect(withQuery.json).toEqual({ text: 'Success', code: 0 });
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got.map((g) => g.record)).toEqual([
      '{"event":"first line"}',
      '{"event":"second \\"line\\" \\\\ ü"}',
      '{"event":"third","host":"node-7","sourcetype":"syslog","index":"main"}',
    ]);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'empty_line' })).toBe(1);
  });

  it('answers 400 code 10 without a channel, and stores nothing', async () => {
    const { ring, url } = await start();
    expect(await send(`${url}/services/collector/raw`, { headers: auth, body: 'line' })).toMatchObject({
      status: 400,
      json: { text: 'Data channel is missing', code: 10 },
    });
    expect(await send(`${url}/services/collector/raw?channel=`, { headers: auth, body: 'line' })).toMatchObject({
      status: 400,
      json: { code: 10 },
    });
    expect(ring.usedBytes()).toBe(0);
  });
});

describe('splunk_hec source: sizes and load', () => {
  it('takes a 10 MiB body larger than the ring: streamed in, every record once, in order', async () => {
    const { src, ring, url } = await start({ maxBodyBytes: 16 << 20 }, 4 << 20);
    const c = consumer(ring, src, 256 << 10);
    try {
      const envelopes: string[] = [];
      let size = 0;
      for (let i = 0; size < 10 << 20; i++) {
        const e = envelope(i, { pad: 'x'.repeat(i % 200) });
        envelopes.push(e);
        size += e.length + 1;
      }
      const reply = await send(`${url}/services/collector/event`, { headers: auth, body: envelopes.join('\n') });
      expect(reply.json).toEqual({ text: 'Success', code: 0 });
      await vi.waitFor(() => expect(c.got.length, 'every event in the ring').toBe(envelopes.length), WAIT);
      expect(c.got.map((g) => g.record)).toEqual(envelopes);
    } finally {
      c.stop();
    }
  });

  it('answers 413 above max_body_bytes: by Content-Length at once, chunked once the limit is passed; a gzip bomb too', async () => {
    const { ring, url, metrics } = await start({ maxBodyBytes: 64 << 10 });
    const big = envelope(0, { pad: 'y'.repeat(70 << 10) });
    const declared = await send(`${url}/services/collector/event`, { headers: auth, body: big });
    expect(declared.status).toBe(413);
    expect(declared.headers.connection).toBe('close');
    // Chunked: no Content-Length, the limit is found while reading.
    const chunked = await new Promise<number>((resolve, reject) => {
      const u = new URL(`${url}/services/collector/event`);
      const req = httpRequest(u, { method: 'POST', headers: { ...auth, 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(big.slice(0, 40 << 10));
      // A pause on purpose (20 ms): the server reads the first chunk on its own before the rest comes.
      setTimeout(() => req.end(big.slice(40 << 10)), 20);
    });
    expect(chunked).toBe(413);
    // 64 KiB of gzip that inflates past 8 x 64 KiB.
    const bomb = gzipSync(Buffer.alloc(8 << 20, 0x20));
    const bombed = await send(`${url}/services/collector/event`, {
      headers: { ...auth, 'content-encoding': 'gzip' },
      body: bomb,
    });
    expect(bombed.status).toBe(413);
    expect(ring.usedBytes()).toBe(0);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'body_too_large' })).toBe(3);
    expect(await counter(metrics, 'sluice_source_http_requests_total', { status: '413' })).toBe(3);
  });

  it('50 concurrent clients: every event arrives exactly once, each request in order', async () => {
    const { src, ring, url } = await start({}, 256 << 10);
    const c = consumer(ring, src, 64 << 10);
    try {
      const clients = 50;
      const requests = 10;
      const perRequest = 40;
      await Promise.all(
        Array.from({ length: clients }, async (_, client) => {
          for (let r = 0; r < requests; r++) {
            const body = Array.from(
              { length: perRequest },
              (_, k) => `{"event":{"client":${client},"request":${r},"k":${k}}}`,
            ).join('\n');
            // Mixed: gzip on every other request.
            const gz = (client + r) % 2 === 0;
            const reply = await send(`${url}/services/collector/event`, {
              headers: gz ? { ...auth, 'content-encoding': 'gzip' } : auth,
              body: gz ? gzipSync(body) : body,
            });
            expect(reply.json).toEqual({ text: 'Success', code: 0 });
          }
        }),
      );
      const total = clients * requests * perRequest;
      await vi.waitFor(() => expect(c.got.length, 'every event in the ring').toBeGreaterThanOrEqual(total), WAIT);
      // A sleep on purpose: a duplicate would land right behind the last event (20 ms to show up).
      await new Promise((r) => setTimeout(r, 20));
      const events = c.got.map((g) => JSON.parse(g.record).event as { client: number; request: number; k: number });
      expect(events).toHaveLength(clients * requests * perRequest);
      expect(new Set(c.got.map((g) => g.record)).size).toBe(events.length);
      // A request's records are contiguous and in order (one writer, FIFO).
      for (let i = 0; i < events.length; i += perRequest) {
        const first = events[i]!;
        for (let k = 0; k < perRequest; k++)
          expect(events[i + k]).toEqual({ client: first.client, request: first.request, k });
      }
    } finally {
      c.stop();
    }
  });

  it('a full ring: 503 code 9 after busy_timeout with nothing of the request kept; 200 again once drained', async () => {
    const { src, ring, url, metrics } = await start({ busyTimeoutMs: 150 }, 4096);
    const body = (i: number) =>
      Array.from({ length: 5 }, (_, k) => `{"event":"r${i}-${k}","pad":"${'p'.repeat(60)}"}`).join('\n');
    const accepted: number[] = [];
    let busy: Reply | null = null;
    for (let i = 0; i < 50 && busy === null; i++) {
      const reply = await send(`${url}/services/collector/event`, { headers: auth, body: body(i) });
      if (reply.status === 200) accepted.push(i);
      else busy = reply;
    }
    expect(busy).toMatchObject({ status: 503, json: { text: 'Server is busy', code: 9 } });
    expect(accepted.length).toBeGreaterThan(2);
    expect(await send(`${url}/services/collector/health`, { method: 'GET' })).toMatchObject({
      status: 503,
      json: { text: 'HEC is unhealthy, queues are full', code: 18 },
    });
    const got: Got[] = [];
    drainRing(ring, got);
    src.ringSpace();
    expect(got.map((g) => g.record)).toEqual(accepted.flatMap((i) => body(i).split('\n')));
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'busy' })).toBe(5);
    // Space again: the next request is taken.
    expect(await send(`${url}/services/collector/event`, { headers: auth, body: body(99) })).toMatchObject({
      status: 200,
    });
  });

  it.each(['on the worker threads', 'inline'])(
    'a request waiting for ring space is written, in order, as soon as the consumer frees some (decoded %s)',
    async (where) => {
      // A busy timeout far longer than the test: no reply below depends on how fast this machine is.
      const dec = where === 'inline' ? inlineDecoder : decoder;
      const { src, ring, url } = await start({ busyTimeoutMs: 60_000 }, 4096, dec);
      // Envelopes of a different length in each request: a waiting request's record boundaries must
      // be its own, not those of a body decoded after it (the inline decoder reuses its scratch).
      const envelope = (i: number, k: number): string => `{"event":"w${i}-${k}","pad":"${'p'.repeat(30 + 5 * i)}"}`;
      const body = (i: number) => Array.from({ length: 5 }, (_, k) => envelope(i, k)).join('\n');
      let answered = 0;
      // 12 requests of 280-560 bytes into a 4 KiB ring with no consumer: most fit, the rest wait
      // (their line holds well under a ring's worth, so none is refused at once).
      const N = 12;
      const replies = Promise.all(
        Array.from({ length: N }, (_, i) =>
          send(`${url}/services/collector/event`, { headers: auth, body: body(i) }).then((r) => {
            answered++;
            return r;
          }),
        ),
      );
      // Some fit and are answered; with no consumer the rest cannot be, however long this waits.
      await vi.waitFor(() => expect(answered, 'the requests that fit to be answered').toBeGreaterThanOrEqual(3), WAIT);
      expect(answered).toBeLessThan(N);
      const c = consumer(ring, src, 512);
      try {
        expect((await replies).map((r) => r.status)).toEqual(Array.from({ length: N }, () => 200));
        await vi.waitFor(() => expect(c.got.length, 'every event in the ring').toBe(5 * N), WAIT);
        // Each request's records stay together and in the order sent.
        const byRequest = new Map<string, string[]>();
        for (const g of c.got) {
          const m = /"event":"w(\d+)-\d"/.exec(g.record)!;
          byRequest.set(m[1]!, [...(byRequest.get(m[1]!) ?? []), g.record]);
        }
        expect([...byRequest.keys()].sort((a, b) => Number(a) - Number(b))).toEqual(
          Array.from({ length: N }, (_, i) => String(i)),
        );
        for (const [i, records] of byRequest) expect(records).toEqual(body(Number(i)).split('\n'));
      } finally {
        c.stop();
      }
    },
  );
});

describe('splunk_hec source: HTTPS', () => {
  it('serves HEC over https to a client that verifies the certificate; a client trusting another CA fails', async () => {
    const { ring, url } = await start({
      tls: { certFile: pki.certFile, keyFile: pki.keyFile, caFile: null, clientAuth: 'none' },
    });
    expect(url.startsWith('https://127.0.0.1:')).toBe(true);
    const reply = await send(`${url}/services/collector/event`, { headers: auth, body: envelope(0), ca: pki.ca });
    expect(reply.json).toEqual({ text: 'Success', code: 0 });
    await expect(
      send(`${url}/services/collector/event`, { headers: auth, body: envelope(1), ca: pki.otherCa, agent: false }),
    ).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got.map((g) => g.record)).toEqual([envelope(0)]);
  });
});

describe('splunk_hec source: drain', () => {
  it('finishes a request whose body is arriving, then closes every connection', async () => {
    const { src, ring, url, metrics } = await start();
    const u = new URL(`${url}/services/collector/event`);
    const body = `${envelope(0)}\n${envelope(1)}`;
    let finishBody = (): void => {};
    const answered = new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        u,
        { method: 'POST', headers: { ...auth, 'content-length': String(body.length) } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10));
      finishBody = () => req.end(body.slice(10));
    });
    // The server is reading the body: its first bytes are counted.
    const receivedBytes = (): Promise<number> => counter(metrics, 'sluice_source_received_bytes_total', {});
    await vi.waitFor(
      async () => expect(await receivedBytes(), "the body's first bytes").toBeGreaterThanOrEqual(10),
      WAIT,
    );
    const idle = connect(Number(u.port), '127.0.0.1');
    await new Promise((r) => idle.once('connect', r));
    const idleClosed = new Promise((r) => idle.once('close', r));
    running.splice(running.indexOf(src), 1);
    // The rest of the body arrives after the drain began, within the linger time.
    const drained = src.drain(30_000);
    finishBody();
    await drained;
    expect(await answered).toBe(200);
    await idleClosed;
    expect(src.ready()).toBe(false);
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got.map((g) => g.record)).toEqual([envelope(0), envelope(1)]);
  });
});

describe('splunk_hec source: slow clients', () => {
  /** A raw connection; resolves with everything the server sent once it closed. */
  function rawClient(port: number): { socket: ReturnType<typeof connect>; closed: Promise<string> } {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8').on('data', (c: string) => (text += c));
    socket.on('error', () => {});
    return { socket, closed: new Promise((resolve) => socket.on('close', () => resolve(text))) };
  }
  const portOf = (url: string): number => Number(new URL(url).port);
  const slowCount = (metrics: Metrics): Promise<number> =>
    counter(metrics, 'sluice_source_connections_refused_total', { reason: 'slow_client' });

  it('a request head not complete within header_timeout_secs gets 408 and is closed; counted as slow_client', {
    timeout: 60_000,
  }, async () => {
    const { url, metrics } = await start({ headerTimeoutSecs: 1 });
    const t0 = Date.now();
    const half = rawClient(portOf(url));
    half.socket.write('POST /services/collector/event HTTP/1.1\r\nHost: x\r\n');
    const silent = rawClient(portOf(url));
    const [halfText, silentText] = await Promise.all([half.closed, silent.closed]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    for (const text of [halfText, silentText]) {
      expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(text.endsWith('\r\n\r\n{"text":"Request timeout","code":408}')).toBe(true);
    }
    expect(await slowCount(metrics)).toBe(2);
    expect(await counter(metrics, 'sluice_source_http_requests_total', { status: '408' })).toBe(2);
    // A client that sends its head at once is served.
    expect((await send(`${url}/services/collector/event`, { headers: auth, body: envelope(0) })).status).toBe(200);
  });

  it('a malformed request still gets 400 and is closed, not counted as slow', async () => {
    const { url, metrics } = await start();
    const bad = rawClient(portOf(url));
    bad.socket.write('NOT HTTP AT ALL\r\n\r\n');
    expect(await bad.closed).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(await slowCount(metrics)).toBe(0);
  });

  it('a body below min_body_bytes_per_sec after body_timeout_secs: 408, closed, one event discarded as slow_client', {
    timeout: 60_000,
  }, async () => {
    const { ring, url, metrics } = await start({ bodyTimeoutSecs: 1, minBodyBytesPerSec: 1024 });
    const c = rawClient(portOf(url));
    c.socket.write(
      `POST /services/collector/event HTTP/1.1\r\nHost: x\r\nAuthorization: Splunk ${TOKEN}\r\nContent-Length: 100\r\n\r\n{`,
    );
    const drip = setInterval(() => c.socket.write(' '), 200);
    const text = await c.closed.finally(() => clearInterval(drip));
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('{"text":"Request timeout","code":408}');
    expect(await slowCount(metrics)).toBe(1);
    expect(await counter(metrics, 'sluice_source_discarded_events_total', { reason: 'slow_client' })).toBe(1);
    expect(await counter(metrics, 'sluice_source_received_events_total', {})).toBe(1);
    expect(ring.usedBytes()).toBe(0);
  });

  it('a body that takes longer than body_timeout_secs but keeps above min_body_bytes_per_sec is accepted', {
    timeout: 60_000,
  }, async () => {
    const { ring, url, metrics } = await start({ bodyTimeoutSecs: 1, minBodyBytesPerSec: 1024 });
    const body = Array.from({ length: 64 }, (_, i) => envelope(i, { pad: 'y'.repeat(400) })).join('\n');
    const started = Date.now();
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        new URL(`${url}/services/collector/event`),
        { method: 'POST', headers: { ...auth, 'content-length': String(Buffer.byteLength(body)) } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      // 4 KiB every 250 ms: each piece buys 4 s against the 1024 B/s minimum, a wide margin on a slow machine.
      void writeInPieces(req, body, 4096, 250);
    });
    expect(Date.now() - started).toBeGreaterThan(1500);
    expect(status).toBe(200);
    const got: Got[] = [];
    drainRing(ring, got);
    expect(got.map((g) => g.record)).toEqual(body.split('\n'));
    expect(await slowCount(metrics)).toBe(0);
  });

  it('at max_connections a new connection takes the slot of one idle for over a second; with none idle it is refused', {
    timeout: 60_000,
  }, async () => {
    const { url, metrics } = await start({ maxConnections: 2, headerTimeoutSecs: 60, bodyTimeoutSecs: 60 });
    const port = portOf(url);
    // Two connections that never send anything hold both slots.
    const idle = [rawClient(port), rawClient(port)];
    await Promise.all(idle.map((c) => new Promise((r) => c.socket.once('connect', r))));
    // A sleep on purpose: the connections must have been idle for over a second (1.2 s).
    await new Promise((r) => setTimeout(r, 1200));
    expect(
      (await send(`${url}/services/collector/event`, { headers: auth, body: envelope(0), agent: false })).status,
    ).toBe(200);
    // Exactly one of them was closed to make room, and counted as a slow client.
    await Promise.race(idle.map((c) => c.closed));
    expect(await slowCount(metrics)).toBe(1);
    for (const c of idle) c.socket.destroy();
    // The server has seen them go (else the next two would find one still idle to take back).
    const open = (): Promise<number> => counter(metrics, 'sluice_source_open_connections', {});
    await vi.waitFor(async () => expect(await open(), 'the server to see both idle connections go').toBe(0), WAIT);

    // Both slots in the middle of a request (body half sent): nothing to take back.
    const busy = [rawClient(port), rawClient(port)];
    for (const c of busy)
      c.socket.write(
        `POST /services/collector/event HTTP/1.1\r\nHost: x\r\nAuthorization: Splunk ${TOKEN}\r\nContent-Length: 100\r\n\r\n{`,
      );
    const received = (): Promise<number> => counter(metrics, 'sluice_source_received_bytes_total', {});
    const headsRead = Buffer.byteLength(envelope(0)) + 2;
    await vi.waitFor(
      async () => expect(await received(), 'both half bodies read').toBeGreaterThanOrEqual(headsRead),
      WAIT,
    );
    // A sleep on purpose: both would be idle for over a second (1.2 s) were they not mid-request.
    await new Promise((r) => setTimeout(r, 1200));
    await expect(
      send(`${url}/services/collector/event`, { headers: auth, body: envelope(1), agent: false }),
    ).rejects.toBeDefined();
    expect(await counter(metrics, 'sluice_source_connections_refused_total', { reason: 'max_connections' })).toBe(1);
    expect(await slowCount(metrics)).toBe(1);
    for (const c of busy) c.socket.destroy();
  });
});
