/** The `splunk_hec` source: Splunk HTTP Event Collector (Tailscale log streaming and many agents). */
import {
  INVALID,
  childPath,
  componentType,
  def,
  integer,
  report,
  req,
  secret,
  stringList,
  type Invalid,
} from '@sluice/schema';
import { commonSource, streamSourceOptions, tls } from '../config.ts';
import type { SourceBase, SourceDefinition, TlsConfig } from '../config.ts';
import { tlsSettings } from '../tls.ts';

const MIB = 1024 * 1024;

export interface SplunkHecSourceConfig extends SourceBase {
  readonly type: 'splunk_hec';
  /** Accepted tokens. Secrets: never log them. */
  readonly valid_tokens: readonly string[];
  readonly max_body_bytes: number;
  readonly max_connections: number;
  /** The request head (line and headers) must be complete this long after it began (or after connecting). */
  readonly header_timeout_secs: number;
  /** The body gets this long, plus one second per min_body_bytes_per_sec received. */
  readonly body_timeout_secs: number;
  /** 0 = the whole body within body_timeout_secs. */
  readonly min_body_bytes_per_sec: number;
  /** null = plain HTTP. */
  readonly tls: TlsConfig | null;
}

/**
 * Slow-client deadlines (docs/hec.md, "Slow clients"). 10 s for the request head: a client sends it
 * in one segment right after connecting; Node's own 60 s let 60 connections trickling a header
 * byte a second hold 50 slots for over a minute. The body gets body_timeout_secs plus one second
 * per min_body_bytes_per_sec received (Apache mod_reqtimeout's `body=…,MinRate=…` model): a
 * 16 MiB body over a 64 KiB/s link (256 s) is well inside its deadline (10 + 16384 s), a
 * 1 byte/s trickle is cut after 10 s.
 */
const slowClientOptions = {
  header_timeout_secs: def(integer(1, 3600), 10),
  body_timeout_secs: def(integer(1, 3600), 10),
  min_body_bytes_per_sec: def(integer(0, 1_073_741_824), 1024),
};

/**
 * 16 MiB by default: HEC senders batch far below it (Vector's splunk_hec sink sends at most
 * 1 MB, Tailscale's streamer a few hundred KiB), while one aggregator still bounds what a
 * request can make it hold. Splunk's own default (800 MB) is for an indexer, not a DaemonSet.
 */
const splunkHecOptions = {
  ...streamSourceOptions,
  valid_tokens: secret(req(stringList())),
  max_body_bytes: def(integer(1024, 268_435_456), 16 * MIB),
  max_connections: def(integer(1, 65_535), 1024),
  ...slowClientOptions,
  tls,
};

/** Tokens travel in an HTTP header after `Splunk `: visible ASCII, no spaces. */
const TOKEN_TEXT = /^[\x21-\x7e]+$/;

export const splunkHecSource: SourceDefinition<SplunkHecSourceConfig> = {
  type: 'splunk_hec',
  protocol: 'tcp',
  ...componentType(splunkHecOptions, (v, id, path, ctx): SplunkHecSourceConfig | Invalid => {
    const common = commonSource(v, id, path, ctx);
    let ok = common !== INVALID;
    v.valid_tokens.forEach((token, index) => {
      if (!TOKEN_TEXT.test(token)) {
        // Secret: say what is wrong, never what it is.
        report(
          ctx,
          childPath(childPath(path, 'valid_tokens'), index),
          'must be visible ASCII characters without spaces (value not shown)',
        );
        ok = false;
      }
    });
    if (!ok || common === INVALID) return INVALID;
    const {
      valid_tokens,
      max_body_bytes,
      max_connections,
      header_timeout_secs,
      body_timeout_secs,
      min_body_bytes_per_sec,
    } = v;
    return {
      ...common,
      type: 'splunk_hec',
      valid_tokens,
      max_body_bytes,
      max_connections,
      header_timeout_secs,
      body_timeout_secs,
      min_body_bytes_per_sec,
      tls: v.tls,
    };
  }),
  async start(ctx, c, runtime) {
    const { startSplunkHecSource } = await import('./hec.ts');
    return startSplunkHecSource(
      ctx,
      {
        host: c.host,
        port: c.port,
        hostKey: c.host_key,
        validTokens: c.valid_tokens,
        maxBodyBytes: c.max_body_bytes,
        maxConnections: c.max_connections,
        headerTimeoutSecs: c.header_timeout_secs,
        bodyTimeoutSecs: c.body_timeout_secs,
        minBodyBytesPerSec: c.min_body_bytes_per_sec,
        tls: tlsSettings(c.tls),
      },
      runtime.hecDecoder(),
    );
  },
};
