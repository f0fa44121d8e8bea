/** The `splunk_hec` source: Splunk HTTP Event Collector (Tailscale log streaming and many agents). */
import { INVALID, childPath, componentType, def, integer, report, req, secret, stringList, type Invalid } from '@sluice/schema';
import { commonSource, sourceOptions, tls, type SourceBase, type SourceDefinition, type TlsConfig } from '../config.ts';
import { tlsSettings } from '../tls.ts';

const MIB = 1024 * 1024;

export interface SplunkHecSourceConfig extends SourceBase {
  readonly type: 'splunk_hec';
  /** Accepted tokens. Secrets: never log them. */
  readonly valid_tokens: readonly string[];
  readonly max_body_bytes: number;
  readonly max_connections: number;
  /** null = plain HTTP. */
  readonly tls: TlsConfig | null;
}

/**
 * 16 MiB by default: HEC senders batch far below it (Vector's splunk_hec sink sends at most
 * 1 MB, Tailscale's streamer a few hundred KiB), while one aggregator still bounds what a
 * request can make it hold. Splunk's own default (800 MB) is for an indexer, not a DaemonSet.
 */
export const splunkHecOptions = {
  ...sourceOptions,
  valid_tokens: secret(req(stringList())),
  max_body_bytes: def(integer(1024, 268_435_456), 16 * MIB),
  max_connections: def(integer(1, 65_535), 1024),
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
        report(ctx, childPath(childPath(path, 'valid_tokens'), index), 'must be visible ASCII characters without spaces (value not shown)');
        ok = false;
      }
    });
    if (!ok || common === INVALID) return INVALID;
    const { valid_tokens, max_body_bytes, max_connections } = v;
    return { ...common, type: 'splunk_hec', valid_tokens, max_body_bytes, max_connections, tls: v.tls };
  }),
  async start(ctx, c, runtime) {
    const { startSplunkHecSource } = await import('./hec.ts');
    return startSplunkHecSource(
      ctx,
      { host: c.host, port: c.port, hostKey: c.host_key, validTokens: c.valid_tokens, maxBodyBytes: c.max_body_bytes, maxConnections: c.max_connections, tls: tlsSettings(c.tls) },
      runtime.hecDecoder(),
    );
  },
};
