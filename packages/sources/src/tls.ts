/**
 * TLS for listening sources (tcp, splunk_hec): server options from PEM files, client
 * certificate policy, and reloading the files (on SIGHUP) into a running server.
 */
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { Server as TlsServer, SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import { ERR_TLS, SluiceError } from '@sluice/schema';
import type { TlsConfig } from './config.ts';

/** A source's `tls` block, as the daemon passes it (paths as configured). */
export interface TlsSettings {
  certFile: string;
  keyFile: string;
  /** CA bundle client certificates must chain to; null = none (client_auth none only). */
  caFile: string | null;
  /**
   * `none`: no client certificate asked for. `optional`: asked for; a client without one is
   * served, one whose certificate does not verify against caFile is dropped. `required`: every
   * client must show one that verifies (the handshake fails otherwise).
   */
  clientAuth: 'none' | 'optional' | 'required';
  /**
   * A connection whose handshake is not complete this long after it connected is closed and
   * counted as a slow client (`handshake_timeout_secs`). Default {@link HANDSHAKE_TIMEOUT_SECS}.
   */
  handshakeTimeoutSecs?: number;
}

/**
 * 10 s for a TLS handshake (Node's default is 120 s): a handshake is two round trips, under a
 * second even across continents; a connection that has not finished one in 10 s holds a
 * max_connections slot for nothing.
 */
const HANDSHAKE_TIMEOUT_SECS = 10;

/** The error tls.Server reports (tlsClientError) for a handshake not done within handshakeTimeout. */
export function isHandshakeTimeout(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
}

/** A validated config `tls` block (snake_case) as the sources take it; null stays null. */
export function tlsSettings(config: TlsConfig | null): TlsSettings | null {
  if (config === null) return null;
  return {
    certFile: config.cert_file,
    keyFile: config.key_file,
    caFile: config.ca_file,
    clientAuth: config.client_auth,
    handshakeTimeoutSecs: config.handshake_timeout_secs,
  };
}

function contextOptions(files: { cert: Buffer; key: Buffer; ca: Buffer | null }): SecureContextOptions {
  return { cert: files.cert, key: files.key, ...(files.ca === null ? {} : { ca: files.ca }) };
}

/** Options for tls.createServer / https.createServer. Reads the files synchronously (boot). */
export function tlsServerOptions(s: TlsSettings): TlsOptions {
  const files = {
    cert: readFileSync(s.certFile),
    key: readFileSync(s.keyFile),
    ca: s.caFile === null ? null : readFileSync(s.caFile),
  };
  return {
    ...contextOptions(files),
    requestCert: s.clientAuth !== 'none',
    // optional: the handshake completes without a certificate; rejectBadClientCert() drops bad ones.
    rejectUnauthorized: s.clientAuth === 'required',
    minVersion: 'TLSv1.2',
    // Timed from the TCP connection, so a client that never sends a ClientHello is cut too.
    handshakeTimeout: (s.handshakeTimeoutSecs ?? HANDSHAKE_TIMEOUT_SECS) * 1000,
  };
}

/**
 * For client_auth optional: a socket whose client showed a certificate that does not verify is
 * destroyed. Returns true when it was. (A client without a certificate is let through.)
 */
export function rejectBadClientCert(socket: TLSSocket, s: TlsSettings): boolean {
  if (s.clientAuth !== 'optional' || socket.authorized) return false;
  const peer = socket.getPeerCertificate();
  if (peer === null || Object.keys(peer).length === 0) return false;
  socket.destroy();
  return true;
}

/**
 * Re-read the PEM files and use them for new connections (open ones keep their session). On any
 * error the old certificate stays in use.
 * @throws SluiceError SLUICE_ERR_TLS naming the file or the problem.
 */
export async function reloadServerTls(server: TlsServer, s: TlsSettings, sourceId: string): Promise<void> {
  let files: { cert: Buffer; key: Buffer; ca: Buffer | null };
  try {
    const [cert, key, ca] = await Promise.all([
      readFile(s.certFile),
      readFile(s.keyFile),
      s.caFile === null ? null : readFile(s.caFile),
    ]);
    files = { cert, key, ca };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const what = `${e.path ?? 'a file'} (${e.code ?? e.message})`;
    throw new SluiceError(ERR_TLS, `sources.${sourceId}.tls: cannot read ${what}; keeping the current certificate`, {
      cause: err,
    });
  }
  try {
    server.setSecureContext(contextOptions(files));
  } catch (err) {
    const why = (err as Error).message;
    throw new SluiceError(
      ERR_TLS,
      `sources.${sourceId}.tls: the new files are not a usable TLS setup (${why}); keeping the current certificate`,
      { cause: err },
    );
  }
}
