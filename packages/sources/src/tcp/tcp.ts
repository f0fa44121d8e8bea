import { Socket, createServer, type Server } from 'node:net';
import { createRequire } from 'node:module';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { LineFramer } from '@sluice/wire';
import { RateLimitedLog } from '@sluice/telemetry';
import { MAX_PEER_BYTES, blockHead, peerHead } from '@sluice/ring';
import { formatAddress, listen, normalizePeer, type Source, type SourceContext } from '../source.ts';
import {
  isHandshakeTimeout,
  rejectBadClientCert,
  reloadServerTls,
  tlsServerOptions,
  type TlsSettings,
} from '../tls.ts';

/** One socket read, and so the largest block record. */
const READ_BYTES = 64 * 1024;

/**
 * Every plain TCP connection reads into this one buffer: libuv runs read callbacks one at a time
 * on the main thread, each frames its bytes at once, and the framer copies what it must keep
 * (LineFramer.retain). A fresh 64 KiB buffer per read instead cost the main thread most of its
 * garbage collection: V8 runs full collections on the external memory those buffers add up to
 * (docs/benchmarks.md).
 */
const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BYTES);

/** Adoption needs Node's net internals; Bun's net has neither `_handle` nor `onread`: plain 'data' there. */
const SHARED_READS = process.versions['bun'] === undefined;

/** The parts of a socket and a server that adoption moves (net.js internals, stable since Node 12). */
interface Adoptable {
  _handle: unknown;
  _server: unknown;
  server: unknown;
}

/**
 * net.Server has no `onread` option, so an accepted connection (paused by pauseOnConnect) moves
 * to a new Socket made with one: the same handle, read into {@link sharedReadBuffer}. The husk
 * gives up the handle and the server's connection count (maxConnections, close()) moves with it.
 * `onRead(n, buf)`: buf[0, n) is valid only during the call; return false to pause reading.
 */
function adoptWithSharedBuffer(husk: Socket, onRead: (n: number, buf: Buffer) => boolean): Socket {
  const h = husk as unknown as Adoptable;
  const handle = h._handle;
  const server = h._server;
  h._handle = null;
  h._server = null;
  h.server = null;
  const socket = new Socket({
    handle,
    readable: true,
    writable: true,
    noDelay: true,
    onread: { buffer: sharedReadBuffer, callback: onRead },
  } as ConstructorParameters<typeof Socket>[0]);
  const s = socket as unknown as Adoptable;
  s._server = server;
  s.server = server;
  return socket;
}

export interface TcpSourceOptions {
  host: string;
  port: number;
  maxLineBytes: number;
  maxConnections: number;
  /** 0 = never. */
  idleTimeoutSecs: number;
  /** Record key for the peer address; null = none. */
  hostKey: string | null;
  /** TLS only (every connection), or null for plain TCP. */
  tls?: TlsSettings | null;
}

/**
 * Newline-delimited JSON over TCP (Talos `json_lines`). One LineFramer per connection; lines
 * go into the source's ring. A full ring pauses the socket (the kernel's window then pushes
 * back on the sender) instead of buffering without bound or dropping.
 */
export async function startTcpSource(ctx: SourceContext, opts: TcpSourceOptions): Promise<Source> {
  const labels = { component_id: ctx.id, component_type: 'tcp' };
  const m = {
    received: ctx.metrics.receivedEvents.labels(labels),
    bytes: ctx.metrics.receivedBytes.labels(labels),
    oversize: ctx.metrics.discardedEvents.labels({ ...labels, reason: 'oversize' }),
    empty: ctx.metrics.discardedEvents.labels({ ...labels, reason: 'empty_line' }),
    open: ctx.metrics.openConnections.labels({ component_id: ctx.id }),
    refusedMax: ctx.metrics.connectionsRefused.labels({ component_id: ctx.id, reason: 'max_connections' }),
    idle: ctx.metrics.connectionsRefused.labels({ component_id: ctx.id, reason: 'idle_timeout' }),
    tlsFailed: ctx.metrics.connectionsRefused.labels({ component_id: ctx.id, reason: 'tls_handshake' }),
    slow: ctx.metrics.connectionsRefused.labels({ component_id: ctx.id, reason: 'slow_client' }),
  };
  const tls = opts.tls ?? null;
  const warnings = new RateLimitedLog(ctx.logger);
  const connections = new Set<Connection>();
  const blocked = new Set<Connection>();
  let draining = false;
  let listening = false;
  let drainWaiter: (() => void) | null = null;

  const settled = (): void => {
    if (drainWaiter !== null && connections.size === 0 && blocked.size === 0) {
      const w = drainWaiter;
      drainWaiter = null;
      w();
    }
  };

  // One ring record per run of complete lines (at most one socket read, 64 KiB): the main thread
  // pays one memchr per line instead of a record write, and the dispatcher walks one length header
  // per block. docs/internals.md has the record layout; the numbers are in docs/benchmarks.md.
  const maxBlockBytes = Math.max(1, Math.min(READ_BYTES, ctx.ring.maxPayloadBytes - 1 - MAX_PEER_BYTES));

  class Connection {
    readonly socket: Socket;
    readonly framer = new LineFramer(opts.maxLineBytes, { maxBlockBytes });
    readonly head: Uint8Array;
    /** The head of a block record: the same peer, flagged. */
    readonly blockHead: Uint8Array;
    readonly peer: string;
    ended = false;
    finished = false;
    isBlocked = false;
    lingerTimer: NodeJS.Timeout | null = null;
    lingerMs = 0;
    #accepted = 0;
    #tooBigForRing = 0;
    #lastOversize = 0;
    #lastEmpty = 0;
    readonly #emit = (buf: Uint8Array, start: number, end: number, lines: number): boolean => {
      const head = lines === 0 ? this.head : this.blockHead;
      // A line that can never fit in the ring is counted as oversize, like one over max_line_bytes.
      // (Blocks always fit: maxBlockBytes leaves room for the longest head.)
      if (end - start + head.length > ctx.ring.maxPayloadBytes) {
        this.#tooBigForRing++;
        return true;
      }
      if (!ctx.ring.tryWriteRange(buf, start, end, head)) return false;
      this.#accepted += lines === 0 ? 1 : lines;
      return true;
    };

    constructor(accepted: Socket, plain: boolean) {
      // Plain TCP reads into the one shared buffer (see adoptWithSharedBuffer); TLS sockets
      // decrypt into their own chunks.
      const socket = plain ? adoptWithSharedBuffer(accepted, (n, buf) => this.onRead(n, buf)) : accepted;
      this.socket = socket;
      this.peer = normalizePeer(socket.remoteAddress);
      this.head = peerHead(opts.hostKey === null ? null : this.peer);
      this.blockHead = blockHead(this.head);
      socket.setNoDelay(true);
      if (opts.idleTimeoutSecs > 0) socket.setTimeout(opts.idleTimeoutSecs * 1000);
      if (!plain) socket.on('data', (chunk: Buffer) => this.onRead(chunk.length, chunk));
      socket.on('end', () => this.onEnd());
      socket.on('timeout', () => {
        m.idle.inc();
        this.onEnd();
        socket.destroy();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        warnings.warn(
          `conn-error:${err.code ?? 'unknown'}`,
          { peer: this.peer, code: err.code },
          'tcp connection error',
        );
      });
      socket.on('close', () => {
        // A reset connection delivers what it sent, a last line without newline included.
        this.onEnd();
        m.open.dec();
        connections.delete(this);
        settled();
      });
    }

    /** A socket read: frame it; false (pause reading) when the ring is full. */
    onRead(n: number, buf: Buffer): boolean {
      m.bytes.inc(n);
      this.framer.push(n === buf.length ? buf : buf.subarray(0, n));
      if (this.lingerTimer !== null) this.lingerTimer.refresh();
      this.pump();
      // The shared buffer is read into again next: the framer copies what it still queues.
      this.framer.retain();
      return !this.isBlocked;
    }

    onEnd(): void {
      if (this.ended) return;
      this.ended = true;
      if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
      this.pump();
    }

    /** Move framed lines into the ring; pause the socket when the ring is full. */
    pump(): void {
      let done = this.framer.drain(this.#emit);
      if (done && this.ended && !this.finished) {
        done = this.framer.finish(this.#emit);
        if (done) this.finished = true;
      }
      this.#account();
      if (!done) {
        if (!this.isBlocked) {
          this.isBlocked = true;
          blocked.add(this);
          this.socket.pause();
        }
        return;
      }
      if (this.isBlocked) {
        this.isBlocked = false;
        blocked.delete(this);
        if (!this.ended) this.socket.resume();
        settled();
      }
    }

    #account(): void {
      const oversize = this.framer.oversizeLines - this.#lastOversize + this.#tooBigForRing;
      const empty = this.framer.emptyLines - this.#lastEmpty;
      const n = this.#accepted + oversize + empty;
      if (n === 0) return;
      m.received.inc(n);
      if (oversize > 0) m.oversize.inc(oversize);
      if (empty > 0) m.empty.inc(empty);
      if (this.#accepted > 0) ctx.wrote();
      this.#accepted = 0;
      this.#tooBigForRing = 0;
      this.#lastOversize = this.framer.oversizeLines;
      this.#lastEmpty = this.framer.emptyLines;
    }

    /** Shutdown: say goodbye, read until the peer closes or is quiet for lingerMs. */
    linger(ms: number): void {
      this.lingerMs = ms;
      if (this.ended) return;
      this.socket.end();
      this.lingerTimer = setTimeout(() => {
        this.onEnd();
        this.socket.destroy();
      }, ms);
    }
  }

  const accept = (socket: Socket): void => {
    if (draining) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, SHARED_READS && tls === null);
    connections.add(conn);
    m.open.inc();
  };
  let server: Server;
  let tlsServer: TlsServer | null = null;
  if (tls === null) {
    // Paused: the connection is read by the socket adoptWithSharedBuffer makes of it.
    server = createServer({ noDelay: true, pauseOnConnect: SHARED_READS }, accept);
  } else {
    // Same connection handling once the handshake is done; a TLSSocket is a Socket.
    // node:tls loads only for a source with TLS (~6 MiB resident a plain TCP source does not need).
    const { createServer: createTlsServer } = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
    server = tlsServer = createTlsServer({ ...tlsServerOptions(tls), noDelay: true }, (socket: TLSSocket) => {
      if (rejectBadClientCert(socket, tls)) {
        m.tlsFailed.inc();
        return;
      }
      accept(socket);
    });
    // An idle plain connection is a quiet Talos node (idle_timeout_secs decides); one that has not
    // finished its handshake within tls.handshake_timeout_secs is a slow client.
    tlsServer.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      if (isHandshakeTimeout(err)) {
        socket.destroy();
        m.slow.inc();
        warnings.warn(
          'tls-handshake-timeout',
          { peer: normalizePeer(socket.remoteAddress) },
          'tls handshake not completed within tls.handshake_timeout_secs; connection closed',
        );
        return;
      }
      m.tlsFailed.inc();
      warnings.warn(
        `tls-error:${err.code ?? 'unknown'}`,
        { peer: normalizePeer(socket.remoteAddress), code: err.code, reason: err.message },
        'tls handshake failed',
      );
    });
  }
  server.maxConnections = opts.maxConnections;
  server.on('drop', () => m.refusedMax.inc());
  server.on('error', (err) => ctx.logger.error({ err }, 'tcp listener error'));

  const port = await listen(server, opts.host, opts.port);
  listening = true;

  return {
    id: ctx.id,
    type: 'tcp',
    addresses: [formatAddress(opts.host, port)],
    ready: () => listening && !draining,
    ringSpace(): void {
      for (const conn of blocked) {
        conn.pump();
        if (conn.isBlocked) return; // the ring filled again; the rest wait for the next release
      }
    },
    reloadTls: tlsServer === null || tls === null ? undefined : reloadServerTls.bind(null, tlsServer, tls, ctx.id),
    drain(lingerMs: number): Promise<void> {
      draining = true;
      server.close(() => {
        listening = false;
      });
      for (const conn of connections) conn.linger(lingerMs);
      return new Promise<void>((resolve) => {
        drainWaiter = resolve;
        settled();
      });
    },
  };
}
