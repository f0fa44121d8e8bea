/**
 * The `splunk_hec` source: Splunk HTTP Event Collector over HTTP or HTTPS, what Tailscale log
 * streaming and many agents send.
 *
 * ```
 *  request ─ route, auth, channel ─ read body (≤ max_body_bytes, else 413 + close)
 *     └─ decoder (plain bodies below 256 KiB inline, native scanner first; else a worker: gunzip ≤ 8 × max_body_bytes, split, validate)
 *          └─ all or nothing: a bad envelope → 400 with invalid-event-number, nothing kept
 *               └─ ring writer (FIFO): every record in the ring → 200 {"text":"Success","code":0}
 *                                      no room within busy_timeout → 503 code 9, nothing kept
 * ```
 *
 * A 200 means every record of the request is in the source's ring, so a client that got one
 * never has to resend. A request that fits in the ring is written at once when there is room for
 * all of it (never partly); one larger than the whole ring is streamed in as space frees, once
 * it is first in line, and then always completes.
 *
 * Records (see README): each envelope exactly as sent (one JSON object; extra_tags and host_key
 * are spliced in at its top level by the worker); each raw line as `{"event":"<line>"}` plus the
 * `host`, `source`, `sourcetype`, `index` query parameters given.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { peerHead, recordSpan } from '@sluice/ring';
import { RateLimitedLog } from '@sluice/telemetry';
import {
  DEFAULT_MAX_DEPTH,
  type HecDecoder,
  type HecDecodeOptions,
  type HecDecodeResult,
  type HecEndpoint,
  type HecRejection,
} from '@sluice/worker';
import { formatAddress, listen, normalizePeer, type Source, type SourceContext } from '../source.ts';
import {
  isHandshakeTimeout,
  rejectBadClientCert,
  reloadServerTls,
  tlsServerOptions,
  type TlsSettings,
} from '../tls.ts';
import { TokenSet, parseAuthorization } from './auth.ts';

// node:http and node:https by require(), not import: importing them as ES modules reads every
// export, and node:http's lazy WebSocket/MessageEvent getters then load Node's fetch
// implementation (undici, ~12 MiB resident) that nothing here uses.
const require = createRequire(import.meta.url);

export interface SplunkHecSourceOptions {
  host: string;
  port: number;
  /** Accepted tokens (`valid_tokens`). */
  validTokens: readonly string[];
  /** Largest body as sent; a gzip body may inflate to GZIP_INFLATE_LIMIT times this. */
  maxBodyBytes: number;
  maxConnections: number;
  /** Record key for the peer address; null = none. */
  hostKey: string | null;
  /** HTTPS with this certificate, or null for plain HTTP. */
  tls?: TlsSettings | null;
  /** How long a request may wait for ring space before 503 code 9. Default {@link BUSY_TIMEOUT_MS}. */
  busyTimeoutMs?: number;
  /** `header_timeout_secs`: the request head must be complete this long after it began. Default {@link HEADER_TIMEOUT_SECS}. */
  headerTimeoutSecs?: number;
  /** `body_timeout_secs`: the body's time before any credit for bytes received. Default {@link BODY_TIMEOUT_SECS}. */
  bodyTimeoutSecs?: number;
  /** `min_body_bytes_per_sec`: each this many body bytes received add 1 s to the body's deadline; 0 = none. Default {@link MIN_BODY_BYTES_PER_SEC}. */
  minBodyBytesPerSec?: number;
}

/** Defaults of the slow-client deadlines; the reasoning is at their options in @sluice/config. */
const HEADER_TIMEOUT_SECS = 10;
const BODY_TIMEOUT_SECS = 10;
const MIN_BODY_BYTES_PER_SEC = 1024;

/**
 * Node looks for connections past header_timeout_secs every this often (its default is 30 s,
 * which would let a 10 s deadline run to 40 s). Each look is one walk, in C++, over the
 * connections with a request in progress; idle ones are not in that list.
 */
const CONNECTIONS_CHECK_MS = 1000;

/**
 * At max_connections, a new connection closes the one that has waited longest without a request
 * in progress (an idle keep-alive connection, or one whose head is still arriving), as nginx
 * closes idle keep-alive connections when it runs short. Only one idle at least this long: a
 * well-behaved client sends its head within milliseconds of connecting, so it is never the one
 * closed, and trickling clients that reconnect at once cannot take one another's place more
 * than max_connections times a second.
 */
const EVICT_AFTER_IDLE_MS = 1000;

/** Answer to a head or body that missed its deadline (RFC 9110 §15.5.9); docs/hec.md. */
const TIMEOUT_BODY = '{"text":"Request timeout","code":408}';
const TIMEOUT_RESPONSE = `HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${TIMEOUT_BODY.length}\r\nConnection: close\r\n\r\n${TIMEOUT_BODY}`;

/** What Node answers a request it cannot parse (its own default, kept now that 'clientError' is ours). */
const PARSE_ERROR_RESPONSES: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n',
};
const BAD_REQUEST_RESPONSE = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
const JSON_TYPE = 'application/json; charset=utf-8';

/** One accepted TCP connection (the raw socket, under TLS too). */
interface Conn {
  socket: Socket;
  /** Requests whose response is not finished yet (pipelining may give more than one). */
  requests: number;
  /** It has sent at least one complete request head. */
  served: boolean;
  /** When it last had no request in progress (connected, or its last response finished). */
  idleSince: number;
  /** The peer head of its records, made by its first request. */
  head: Uint8Array | null;
  /**
   * The Authorization header of its last accepted request: the same value again is not parsed
   * and hashed again (a SHA-256 per request was ~10 µs of main thread). Comparing with it leaks
   * nothing: it is what this connection itself sent.
   */
  authorized: string | null;
}

/** A request whose body is still arriving. */
interface BodyRead {
  res: ServerResponse;
  /** When its body began (Date.now()). */
  started: number;
  /** Body bytes received so far. */
  size: number;
  /** The body's first chunk, and the others when it arrives in more than one. */
  first: Buffer | null;
  more: Buffer[] | null;
  /** Refused (too large, too slow): the rest is not kept. */
  over: boolean;
}

/**
 * A gzip body may inflate to 8 × max_body_bytes (128 MiB by default). Log JSON compresses
 * 10x (synthetic Tailscale flow logs) to 35x (audit events): a 16 MiB limit on the wire with an
 * 8x limit inflated refuses only batches far beyond what HEC senders post, and a gzip bomb
 * (1000x) stops at the limit instead of allocating gigabytes.
 */
export const GZIP_INFLATE_LIMIT = 8;

/**
 * A request waits at most 1 s for ring space before 503 code 9: the dispatcher releases ring
 * space every batch_timeout_ms (50 ms) while the sinks keep up, so a second without room means
 * the sinks push back, and HEC senders retry a 503 with their own backoff.
 */
export const BUSY_TIMEOUT_MS = 1000;

/** Health answers 503 code 18 once the ring is fuller than this. */
export const HEALTH_HIGH_WATER = 0.9;

/**
 * Idle keep-alive connections are kept 120 s: longer than the idle timeout of common clients
 * (Go's http.Transport, which Tailscale's streamer uses, keeps idle connections 90 s), so a
 * client never reuses a connection the server is closing at that moment (a POST lost to a race).
 */
const KEEP_ALIVE_TIMEOUT_MS = 120_000;

/**
 * Bodies past their deadline are looked for every 250 ms, by one timer per source while any
 * body is arriving, instead of a timer per request (setTimeout + clearTimeout per request were
 * ~3 µs of it). A slow body is cut at most 250 ms after its deadline, never before.
 */
const BODY_SWEEP_MS = 250;

const EVENT_PATHS = new Set(['/services/collector', '/services/collector/event', '/services/collector/event/1.0']);
const RAW_PATHS = new Set(['/services/collector/raw', '/services/collector/raw/1.0']);
const HEALTH_PATHS = new Set(['/services/collector/health', '/services/collector/health/1.0']);
const ACK_PATHS = new Set(['/services/collector/ack', '/services/collector/ack/1.0']);
/** Query parameters a raw request may set on each of its records (Splunk's names). */
const RAW_FIELDS = ['host', 'source', 'sourcetype', 'index'] as const;

/** HEC's answers, HTTP status, code and text, as Splunk gives them: docs/hec.md. */
const HEC = {
  success: [200, 0, 'Success'],
  tokenRequired: [401, 2, 'Token is required'],
  invalidAuthorization: [401, 3, 'Invalid authorization'],
  invalidToken: [403, 4, 'Invalid token'],
  noData: [400, 5, 'No data'],
  invalidDataFormat: [400, 6, 'Invalid data format'],
  internalError: [500, 8, 'Internal server error'],
  busy: [503, 9, 'Server is busy'],
  noChannel: [400, 10, 'Data channel is missing'],
  eventRequired: [400, 12, 'Event field is required'],
  eventBlank: [400, 13, 'Event field cannot be blank'],
  ackDisabled: [400, 14, 'ACK is disabled'],
  healthy: [200, 17, 'HEC is healthy'],
  unhealthy: [503, 18, 'HEC is unhealthy, queues are full'],
  notFound: [404, 404, 'The requested URL was not found on this server.'],
  methodNotAllowed: [405, 405, 'Method not allowed'],
} as const satisfies Record<string, readonly [number, number, string]>;
type Answer = (typeof HEC)[keyof typeof HEC];

/** Why a decoded request was refused → the answer and the discard reason its events are counted under. */
const REJECTED: Record<HecRejection, { answer: Answer | 'too_large'; reason: string; eventNumber: boolean }> = {
  // Only blank lines (raw) are counted: an empty body has no event.
  no_data: { answer: HEC.noData, reason: 'empty_line', eventNumber: false },
  invalid_event: { answer: HEC.invalidDataFormat, reason: 'invalid_event', eventNumber: true },
  event_missing: { answer: HEC.eventRequired, reason: 'invalid_event', eventNumber: true },
  event_blank: { answer: HEC.eventBlank, reason: 'invalid_event', eventNumber: true },
  oversize: { answer: HEC.invalidDataFormat, reason: 'oversize', eventNumber: true },
  invalid_encoding: { answer: HEC.invalidDataFormat, reason: 'invalid_event', eventNumber: true },
  body_too_large: { answer: 'too_large', reason: 'body_too_large', eventNumber: false },
  internal_error: { answer: HEC.internalError, reason: 'internal_error', eventNumber: false },
};

/** One decoded request waiting for (or streaming into) the ring. */
interface Pending {
  data: Uint8Array;
  spans: Uint32Array;
  records: number;
  head: Uint8Array;
  /** Next span to write. */
  next: number;
  /** Ring bytes the unwritten records need. */
  need: number;
  /** Writing has begun: it will complete. */
  started: boolean;
  timer: NodeJS.Timeout | null;
  done: (outcome: 'ok' | 'busy' | 'gone') => void;
}

/**
 * Start listening. `decoder` decodes bodies (createHecDecoder from @sluice/worker: small bodies
 * inline, large and gzip ones on its worker threads).
 */
export async function startSplunkHecSource(
  ctx: SourceContext,
  opts: SplunkHecSourceOptions,
  decoder: HecDecoder,
): Promise<Source> {
  const ring = ctx.ring;
  const tls = opts.tls ?? null;
  const tokens = new TokenSet(opts.validTokens);
  const busyTimeoutMs = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  const maxDecodedBytes = opts.maxBodyBytes * GZIP_INFLATE_LIMIT;
  const labels = { component_id: ctx.id, component_type: 'splunk_hec' };
  const received = ctx.metrics.receivedEvents.labels(labels);
  const receivedBytes = ctx.metrics.receivedBytes.labels(labels);
  const discarded = new Map<string, ReturnType<typeof ctx.metrics.discardedEvents.labels>>();
  const discard = (reason: string, n: number): void => {
    if (n <= 0) return;
    let c = discarded.get(reason);
    if (c === undefined) discarded.set(reason, (c = ctx.metrics.discardedEvents.labels({ ...labels, reason })));
    c.inc(n);
  };
  const answered = new Map<string, ReturnType<typeof ctx.metrics.httpRequests.labels>>();
  const open = ctx.metrics.openConnections.labels({ component_id: ctx.id });
  const refusedMax = ctx.metrics.connectionsRefused.labels({ component_id: ctx.id, reason: 'max_connections' });
  const tlsFailed = ctx.metrics.connectionsRefused.labels({ component_id: ctx.id, reason: 'tls_handshake' });
  const slow = ctx.metrics.connectionsRefused.labels({ component_id: ctx.id, reason: 'slow_client' });
  const headerTimeoutMs = (opts.headerTimeoutSecs ?? HEADER_TIMEOUT_SECS) * 1000;
  const bodyTimeoutMs = (opts.bodyTimeoutSecs ?? BODY_TIMEOUT_SECS) * 1000;
  const minBodyBytesPerSec = opts.minBodyBytesPerSec ?? MIN_BODY_BYTES_PER_SEC;
  const warnings = new RateLimitedLog(ctx.logger);

  let listening = false;
  let draining = false;
  let inflight = 0;
  let drainWaiter: (() => void) | null = null;
  /** Requests whose body is still arriving (checked by sweepBodies; given lingerMs of quiet at drain). */
  const reading = new Map<IncomingMessage, BodyRead>();
  let sweep: NodeJS.Timeout | null = null;
  /** Cut the bodies past their deadline: bodyTimeoutMs, plus 1 s per minBodyBytesPerSec received. */
  const sweepBodies = (): void => {
    if (reading.size === 0) {
      if (sweep !== null) clearInterval(sweep);
      sweep = null;
      return;
    }
    const now = Date.now();
    for (const [req, b] of reading) {
      const due = b.started + bodyTimeoutMs + (minBodyBytesPerSec > 0 ? (b.size * 1000) / minBodyBytesPerSec : 0);
      if (now >= due) slowBody(req, b);
    }
  };

  // ---------------------------------------------------------------- answers

  /**
   * Each answer's body as a string (ASCII), made once: Node writes the head and a string body
   * as one buffer in one write(), where a Buffer body takes a writev() of two.
   */
  const bodies = new Map<Answer, string>();
  /** The counter of each answer without an event number, looked up once. */
  const answerCounters = new Map<Answer, ReturnType<typeof ctx.metrics.httpRequests.labels>>();
  const send = (res: ServerResponse, answer: Answer, extra: { eventNumber?: number; close?: boolean } = {}): void => {
    const [status, code, text] = answer;
    let body: string;
    if (extra.eventNumber === undefined) {
      body = bodies.get(answer) ?? JSON.stringify({ text, code });
      bodies.set(answer, body);
      let c = answerCounters.get(answer);
      if (c === undefined) answerCounters.set(answer, (c = counter(status, String(code))));
      c.inc();
    } else {
      body = JSON.stringify({ text, code, 'invalid-event-number': extra.eventNumber });
      count(status, String(code));
    }
    if (res.headersSent || res.destroyed) return;
    const close = extra.close === true || draining;
    res.writeHead(
      status,
      close
        ? ['content-type', JSON_TYPE, 'content-length', String(body.length), 'connection', 'close']
        : ['content-type', JSON_TYPE, 'content-length', String(body.length)],
    );
    res.end(body, 'latin1');
  };
  const counter = (status: number, code: string): ReturnType<typeof ctx.metrics.httpRequests.labels> => {
    const key = `${status} ${code}`;
    let c = answered.get(key);
    if (c === undefined)
      answered.set(key, (c = ctx.metrics.httpRequests.labels({ component_id: ctx.id, status: String(status), code })));
    return c;
  };
  const count = (status: number, code: string): void => counter(status, code).inc();
  /** 413: stop reading and close the connection once the answer is out (the rest is never read). */
  const tooLarge = (req: IncomingMessage, res: ServerResponse): void => {
    count(413, '');
    reading.delete(req);
    if (res.headersSent || res.destroyed) return;
    const body = `{"text":"Request body is larger than max_body_bytes (${opts.maxBodyBytes})","code":413}`;
    res.writeHead(413, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body, () => req.socket.destroy());
  };

  // ---------------------------------------------------------------- ring writer

  const queue: Pending[] = [];
  /** Ring bytes the queued, not yet written records need. */
  let queuedBytes = 0;

  /** Write what fits of the queue's first requests, in order; answer those that are complete. */
  const pump = (): void => {
    let wrote = false;
    while (queue.length > 0) {
      const p = queue[0]!;
      if (!p.started) {
        // All or nothing for a request that can fit; a larger one streams in from the front.
        if (p.need <= ring.capacity && p.need > ring.freeBytes()) break;
        p.started = true;
        if (p.timer !== null) clearTimeout(p.timer);
      }
      const spans = p.spans;
      const from = p.next;
      p.next += ring.tryWriteRanges(p.data, spans, from, p.records, p.head);
      for (let i = from; i < p.next; i++) {
        const span = recordSpan(p.head.length + spans[2 * i + 1]! - spans[2 * i]!);
        p.need -= span;
        queuedBytes -= span;
      }
      if (p.next > from) wrote = true;
      if (p.next < p.records) break;
      queue.shift();
      p.done('ok');
    }
    if (wrote) ctx.wrote();
  };

  /** Resolves 'ok' once every record is in the ring, 'busy' if none could be written in time. */
  const admit = (p: Pending, res: ServerResponse): Promise<'ok' | 'busy' | 'gone'> =>
    new Promise((resolve) => {
      let settledOutcome = false;
      const finish = (outcome: 'ok' | 'busy' | 'gone'): void => {
        if (settledOutcome) return;
        settledOutcome = true;
        resolve(outcome);
      };
      p.done = finish;
      if (queue.length === 0 && p.need <= ring.freeBytes()) {
        queue.push(p);
        queuedBytes += p.need;
        pump();
        return;
      }
      // Wait, unless the line already holds a ring's worth (then the wait would be long anyway).
      if (queue.length > 0 && queuedBytes + p.need > ring.capacity) {
        finish('busy');
        return;
      }
      const withdraw = (outcome: 'busy' | 'gone'): void => {
        if (p.started) return;
        const i = queue.indexOf(p);
        if (i === -1) return;
        queue.splice(i, 1);
        queuedBytes -= p.need;
        if (p.timer !== null) clearTimeout(p.timer);
        finish(outcome);
        if (i === 0) pump(); // the next in line may fit
      };
      p.timer = setTimeout(() => withdraw('busy'), busyTimeoutMs);
      // A client that gives up before any record is written gets nothing stored (it will resend).
      res.once('close', () => withdraw('gone'));
      queue.push(p);
      queuedBytes += p.need;
      pump();
    });

  // ---------------------------------------------------------------- requests

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    inflight++;
    const conn = connOf(req.socket);
    if (conn !== undefined) {
      conn.requests++;
      conn.served = true;
    }
    res.once('close', () => {
      inflight--;
      reading.delete(req);
      if (conn !== undefined && --conn.requests === 0) conn.idleSince = Date.now();
      settled();
    });
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let path = q === -1 ? url : url.slice(0, q);
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const query = q === -1 ? null : new URLSearchParams(url.slice(q + 1));

    if (HEALTH_PATHS.has(path)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        methodNotAllowed(res, 'GET');
        return;
      }
      req.resume();
      const full = draining || ring.usedBytes() > ring.capacity * HEALTH_HIGH_WATER;
      send(res, full ? HEC.unhealthy : HEC.healthy);
      return;
    }
    const endpoint: HecEndpoint | 'ack' | null = EVENT_PATHS.has(path)
      ? 'event'
      : RAW_PATHS.has(path)
        ? 'raw'
        : ACK_PATHS.has(path)
          ? 'ack'
          : null;
    if (endpoint === null) {
      // Not ours: answer, never read the body.
      send(res, HEC.notFound, { close: true });
      return;
    }
    if (req.method !== 'POST') {
      methodNotAllowed(res, 'POST');
      return;
    }

    const authorization = req.headers.authorization;
    if (authorization === undefined || conn === undefined || authorization !== conn.authorized) {
      const auth = parseAuthorization(authorization);
      if (auth.kind !== 'token' || !tokens.has(auth.token)) {
        const answer =
          auth.kind === 'missing'
            ? HEC.tokenRequired
            : auth.kind === 'malformed'
              ? HEC.invalidAuthorization
              : HEC.invalidToken;
        received.inc();
        discard('unauthorized', 1);
        const [status, code, text] = answer;
        warnings.warn(
          `auth:${code}`,
          { peer: normalizePeer(req.socket.remoteAddress), status, code },
          `request refused: ${text}`,
        );
        send(res, answer, { close: true });
        return;
      }
      if (conn !== undefined) conn.authorized = authorization ?? null;
    }
    if (endpoint === 'ack') {
      send(res, HEC.ackDisabled, { close: true });
      return;
    }
    if (endpoint === 'raw') {
      const channel = req.headers['x-splunk-request-channel'] ?? query?.get('channel') ?? '';
      if (channel === '' || Array.isArray(channel)) {
        received.inc();
        discard('no_channel', 1);
        send(res, HEC.noChannel, { close: true });
        return;
      }
    }
    // Most senders give no Content-Encoding: no trim or lowercase then.
    const encodingHeader = req.headers['content-encoding'];
    const encoding = encodingHeader === undefined ? 'identity' : encodingHeader.trim().toLowerCase();
    if (encoding !== 'gzip' && encoding !== 'identity' && encoding !== '') {
      received.inc();
      discard('invalid_event', 1);
      send(res, HEC.invalidDataFormat, { eventNumber: 0, close: true });
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > opts.maxBodyBytes) {
      received.inc();
      discard('body_too_large', 1);
      tooLarge(req, res);
      return;
    }
    readBody(req, res, endpoint, encoding === 'gzip', query);
  };

  const methodNotAllowed = (res: ServerResponse, allow: string): void => {
    res.setHeader('allow', allow);
    send(res, HEC.methodNotAllowed, { close: true });
  };

  const readBody = (
    req: IncomingMessage,
    res: ServerResponse,
    endpoint: HecEndpoint,
    gzip: boolean,
    query: URLSearchParams | null,
  ): void => {
    const b: BodyRead = { res, started: Date.now(), size: 0, first: null, more: null, over: false };
    reading.set(req, b);
    // The deadline is sweepBodies', one timer for all bodies; a body ended, refused or closed
    // leaves `reading` ('end', tooLarge, slowBody, the response's 'close' in handle).
    sweep ??= setInterval(sweepBodies, BODY_SWEEP_MS).unref();
    req.on('data', (chunk: Buffer) => {
      if (b.over) return;
      receivedBytes.inc(chunk.length);
      b.size += chunk.length;
      if (b.size > opts.maxBodyBytes) {
        b.over = true;
        b.first = b.more = null;
        received.inc();
        discard('body_too_large', 1);
        req.pause();
        tooLarge(req, res);
        return;
      }
      if (b.first === null) b.first = chunk;
      else (b.more ??= [b.first]).push(chunk);
    });
    req.on('end', () => {
      reading.delete(req);
      if (b.over || res.destroyed) return;
      if (b.first === null) {
        send(res, HEC.noData);
        return;
      }
      // Most bodies arrive as one chunk (a 22 KiB batch of 100 envelopes on loopback): decoded
      // and stored straight from it. A copy per request was half of the ArrayBuffer bytes
      // allocated per request, which is what drives V8's full collections here.
      const body = b.more === null ? b.first : Buffer.concat(b.more, b.size);
      b.first = b.more = null;
      decodeAndStore(req, res, endpoint, gzip, query, body);
    });
  };

  /** A body below min_body_bytes_per_sec after body_timeout_secs: 408, close; its request counts as one event. */
  const slowBody = (req: IncomingMessage, b: BodyRead): void => {
    const { res, size } = b;
    b.over = true;
    b.first = b.more = null;
    reading.delete(req);
    slow.inc();
    received.inc();
    discard('slow_client', 1);
    count(408, '408');
    warnings.warn(
      'slow-body',
      { peer: normalizePeer(req.socket.remoteAddress), body_bytes: size },
      'request body slower than min_body_bytes_per_sec allows; answered 408 and closed',
    );
    if (res.headersSent || res.destroyed) {
      req.socket.destroy();
      return;
    }
    res.writeHead(408, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': TIMEOUT_BODY.length,
      connection: 'close',
    });
    res.end(TIMEOUT_BODY, () => req.socket.destroy());
  };

  const decodeAndStore = (
    req: IncomingMessage,
    res: ServerResponse,
    endpoint: HecEndpoint,
    gzip: boolean,
    query: URLSearchParams | null,
    body: Uint8Array,
  ): void => {
    const conn = connOf(req.socket);
    let head = conn?.head ?? null;
    if (head === null) {
      head = peerHead(opts.hostKey === null ? null : normalizePeer(req.socket.remoteAddress));
      if (conn !== undefined) conn.head = head;
    }
    const decodeOpts: HecDecodeOptions = {
      endpoint,
      gzip,
      maxDecodedBytes,
      maxRecordBytes: ring.maxPayloadBytes - head.length,
      maxDepth: DEFAULT_MAX_DEPTH,
      rawFields: endpoint === 'raw' ? rawFields(query) : '',
    };
    // Inline bodies are decoded and, when the ring has room, stored and answered in this turn:
    // no promise, busy timer or close listener.
    const now = decoder.decodeNow(body, decodeOpts);
    if (now !== null) store(req, res, head, now);
    else void decoder.decode(body, decodeOpts).then((result) => store(req, res, head, result));
  };

  const store = (req: IncomingMessage, res: ServerResponse, head: Uint8Array, result: HecDecodeResult): void => {
    if (!result.ok) {
      const rejected = REJECTED[result.rejection];
      // Events not looked at (a broken gzip stream, a bomb) count as one: the request is visible.
      const events = result.seen > 0 ? result.seen : result.rejection === 'no_data' ? 0 : 1;
      received.inc(events);
      discard(rejected.reason, events);
      if (result.rejection === 'internal_error')
        warnings.error('decoder', { detail: result.detail }, 'hec decoder failed');
      else
        warnings.warn(
          `bad:${result.rejection}`,
          {
            peer: normalizePeer(req.socket.remoteAddress),
            rejection: result.rejection,
            event_number: result.index,
            detail: result.detail,
          },
          'request refused: bad data',
        );
      if (rejected.answer === 'too_large') tooLarge(req, res);
      else send(res, rejected.answer, rejected.eventNumber ? { eventNumber: result.index } : {});
      return;
    }
    received.inc(result.records + result.emptyLines);
    discard('empty_line', result.emptyLines);
    if (res.destroyed) {
      discard('client_closed', result.records);
      return;
    }
    const { data, spans, records } = result;
    let need = 0;
    for (let i = 0; i < records; i++) need += recordSpan(head.length + spans[2 * i + 1]! - spans[2 * i]!);
    // Nothing waiting and room for all of it: written now, in order, as pump() would.
    let next = 0;
    if (queue.length === 0 && need <= ring.freeBytes()) {
      next = ring.tryWriteRanges(data, spans, 0, records, head);
      for (let i = 0; i < next; i++) need -= recordSpan(head.length + spans[2 * i + 1]! - spans[2 * i]!);
      if (next > 0) ctx.wrote();
      if (next === records) {
        send(res, HEC.success);
        return;
      }
      // Not expected (the room was there, and only this thread writes): the rest streams in
      // through the queue like a request larger than the ring, never written twice.
    }
    // decodeNow's spans may be the decoder's scratch, overwritten by the next body: a copy to wait with.
    const pending: Pending = {
      data,
      spans: spans.slice(),
      records,
      head,
      next,
      need,
      started: next > 0,
      timer: null,
      done: () => {},
    };
    void admit(pending, res).then((outcome) => {
      if (outcome === 'ok') send(res, HEC.success);
      else {
        discard(outcome === 'busy' ? 'busy' : 'client_closed', records);
        if (outcome === 'busy') send(res, HEC.busy);
      }
    });
  };

  // ---------------------------------------------------------------- server

  // ---------------------------------------------------------------- connections

  /** Every accepted connection, oldest first. max_connections is kept here, not by Node's maxConnections, so a slot can be taken back. */
  const conns = new Map<Socket, Conn>();
  /** Sockets this source closed itself: their TLS layer's ECONNRESET is no failed handshake. */
  const closedHere = new WeakSet<Socket>();
  /** The connection of a request's socket: under TLS the raw socket is the TLSSocket's `_parent` (net internals, stable since Node 0.11). */
  const connOf = (socket: Socket): Conn | undefined =>
    conns.get(socket) ?? conns.get((socket as { _parent?: Socket })._parent as Socket);
  const closeHere = (socket: Socket): void => {
    closedHere.add(socket);
    socket.destroy();
  };

  /** The connection without a request in progress for longest, if that is at least EVICT_AFTER_IDLE_MS. */
  const longestIdle = (now: number): Conn | null => {
    let found: Conn | null = null;
    for (const c of conns.values()) {
      if (
        c.requests === 0 &&
        now - c.idleSince >= EVICT_AFTER_IDLE_MS &&
        (found === null || c.idleSince < found.idleSince)
      )
        found = c;
    }
    return found;
  };

  const onConnection = (socket: Socket): void => {
    if (conns.size >= opts.maxConnections) {
      const victim = longestIdle(Date.now());
      if (victim === null) {
        refusedMax.inc();
        closeHere(socket);
        return;
      }
      // A connection that never completed a request head in EVICT_AFTER_IDLE_MS is a slow
      // client; an idle keep-alive connection was served and is only closed (its client reconnects).
      if (!victim.served) slow.inc();
      conns.delete(victim.socket);
      closeHere(victim.socket);
    }
    const conn: Conn = { socket, requests: 0, served: false, idleSince: Date.now(), head: null, authorized: null };
    conns.set(socket, conn);
    open.inc();
    socket.once('close', () => {
      conns.delete(socket);
      open.dec();
    });
  };

  /**
   * Node's own answer to a request it could not read, now with a 408 for a head not complete
   * within header_timeout_secs (counted as a slow client). Under TLS, handshake errors come here
   * too (https re-emits them); they are counted at 'tlsClientError'.
   */
  const onClientError = (err: NodeJS.ErrnoException, socket: Duplex): void => {
    const conn = connOf(socket as Socket);
    const answerable = socket.writable && (conn === undefined || conn.requests === 0);
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      slow.inc();
      count(408, '408');
      warnings.warn(
        'slow-head',
        { peer: normalizePeer((socket as Socket).remoteAddress) },
        'request head not complete within header_timeout_secs; answered 408 and closed',
      );
      if (answerable) {
        socket.end(TIMEOUT_RESPONSE, () => socket.destroy());
        return;
      }
    } else if (err.code?.startsWith('HPE_') === true && answerable) {
      socket.end(PARSE_ERROR_RESPONSES[err.code] ?? BAD_REQUEST_RESPONSE, () => socket.destroy());
      return;
    }
    socket.destroy();
  };

  // ---------------------------------------------------------------- server

  const httpOptions = {
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // Timed from the connection (or the first byte of a keep-alive connection's next request).
    headersTimeout: headerTimeoutMs,
    // Node's 300 s for a whole request would cut a large body on a slow link; the body has its
    // own deadline that grows with what arrives (readBody).
    requestTimeout: 0,
    connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
  };
  let server: HttpServer;
  let tlsServer: TlsServer | null = null;
  if (tls === null) {
    server = (require('node:http') as typeof import('node:http')).createServer(httpOptions, handle);
  } else {
    const https = (require('node:https') as typeof import('node:https')).createServer(
      { ...tlsServerOptions(tls), ...httpOptions },
      handle,
    );
    https.on('secureConnection', (socket: TLSSocket) => {
      if (rejectBadClientCert(socket, tls)) tlsFailed.inc();
    });
    https.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      const raw = (socket as { _parent?: Socket })._parent;
      if (raw !== undefined && closedHere.has(raw)) return;
      if (isHandshakeTimeout(err)) {
        slow.inc();
        warnings.warn(
          'tls-handshake-timeout',
          { peer: normalizePeer(socket.remoteAddress) },
          'tls handshake not completed within tls.handshake_timeout_secs; connection closed',
        );
        return;
      }
      tlsFailed.inc();
      warnings.warn(
        `tls-error:${err.code ?? 'unknown'}`,
        { peer: normalizePeer(socket.remoteAddress), code: err.code, reason: err.message },
        'tls handshake failed',
      );
    });
    server = https;
    tlsServer = https;
  }
  server.on('connection', onConnection);
  server.on('clientError', onClientError);
  server.on('error', (err) => ctx.logger.error({ err }, 'splunk_hec listener error'));

  const settled = (): void => {
    if (drainWaiter === null || inflight !== 0) return;
    server.closeAllConnections();
    const w = drainWaiter;
    drainWaiter = null;
    w();
  };

  const port = await listen(server, opts.host, opts.port);
  listening = true;

  return {
    id: ctx.id,
    type: 'splunk_hec',
    addresses: [formatAddress(opts.host, port)],
    ready: () => listening && !draining,
    ringSpace: pump,
    reloadTls: tlsServer === null || tls === null ? undefined : reloadServerTls.bind(null, tlsServer, tls, ctx.id),
    /**
     * Stop accepting; requests already in flight finish (a body still arriving gets `lingerMs`
     * of quiet), those waiting for ring space get it or 503 within busyTimeoutMs; then every
     * connection is closed.
     */
    drain(lingerMs: number): Promise<void> {
      draining = true;
      server.close(() => {
        listening = false;
      });
      server.closeIdleConnections();
      for (const req of reading.keys()) {
        req.socket.setTimeout(lingerMs, () => req.socket.destroy());
      }
      return new Promise<void>((resolve) => {
        drainWaiter = resolve;
        settled();
      });
    },
  };
}

/** `,"host":"a","sourcetype":"b"` from a raw request's query, serialized once per request. */
function rawFields(query: URLSearchParams | null): string {
  if (query === null) return '';
  let out = '';
  for (const name of RAW_FIELDS) {
    const value = query.get(name);
    if (value !== null && value !== '') out += `,"${name}":${JSON.stringify(value)}`;
  }
  return out;
}
