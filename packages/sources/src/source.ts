import type { Server } from 'node:net';
import type { Ring } from '@sluice/ring';
import { BLOCK_FLAG, PEER_LEN_MASK } from '@sluice/worker';
import type { Logger, Metrics } from '@sluice/telemetry';

/** What every source gets from the daemon when it is built. */
export interface SourceContext {
  id: string;
  ring: Ring;
  metrics: Metrics;
  logger: Logger;
  /** Tell the dispatcher that records were written into the ring. Cheap; call once per read. */
  wrote(): void;
}

/** A running source. */
export interface Source {
  readonly id: string;
  readonly type: string;
  /** Addresses actually bound (port 0 resolved), as `host:port`. */
  readonly addresses: readonly string[];
  /** The dispatcher freed ring space: writers paused on a full ring may go on. */
  ringSpace(): void;
  /** True while every listener is bound. */
  ready(): boolean;
  /**
   * Stop accepting, finish reading what peers already sent (a TCP peer gets up to
   * `lingerMs` of quiet before its connection is closed), and write every framed record into
   * the ring. Resolves when the source will write nothing more.
   */
  drain(lingerMs: number): Promise<void>;
  /**
   * Sources with `tls`: re-read the certificate, key and CA files for new connections (call on
   * SIGHUP). Rejects with a SluiceError (SLUICE_ERR_TLS) and keeps the old ones on any problem.
   */
  reloadTls?(): Promise<void>;
}

/** Longest peer address in a record head (an IPv6 address with a zone fits): the head byte's low 7 bits; its top bit is BLOCK_FLAG. */
export const MAX_PEER_BYTES = PEER_LEN_MASK;

/**
 * The peer prefix of a ring record: `u8 length | ASCII address`. Empty (a single 0 byte)
 * when the source has no host_key. See docs/internals.md.
 */
export function peerHead(address: string | null): Uint8Array {
  if (address === null) return EMPTY_HEAD;
  const len = Math.min(address.length, MAX_PEER_BYTES);
  const head = new Uint8Array(1 + len);
  head[0] = len;
  for (let i = 0; i < len; i++) head[1 + i] = address.charCodeAt(i) & 0x7f;
  return head;
}

const EMPTY_HEAD = new Uint8Array([0]);

/** The head of a block record: `head` with {@link BLOCK_FLAG} set in its length byte. */
export function blockHead(head: Uint8Array): Uint8Array {
  const flagged = Uint8Array.from(head);
  flagged[0] = head[0]! | BLOCK_FLAG;
  return flagged;
}

/** `::ffff:10.0.0.7` (a v4 peer on a dual-stack socket) reads better as `10.0.0.7`. */
export function normalizePeer(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Listen on host:port (dual stack for `::`); resolves with the port actually bound (port 0 resolved). */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: false, backlog: 1024 }, () => {
      server.off('error', reject);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound !== null ? bound.port : port);
    });
  });
}

/** `host:port` with IPv6 hosts in brackets. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
