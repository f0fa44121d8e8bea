import type { Server } from 'node:net';
import type { Ring } from '@sluice/ring';
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
