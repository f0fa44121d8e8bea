/** The `tcp` source: json_lines over TCP (Talos service logs), optionally TLS. */
import { def, integer } from '@sluice/schema';
import { sourceBuild, streamSourceOptions, tls } from '../config.ts';
import type { SourceBase, SourceDefinition, TlsConfig } from '../config.ts';
import { tlsSettings } from '../tls.ts';

export interface TcpSourceConfig extends SourceBase {
  readonly type: 'tcp';
  readonly max_line_bytes: number;
  readonly max_connections: number;
  readonly idle_timeout_secs: number;
  /** null = plain TCP. */
  readonly tls: TlsConfig | null;
}

const tcpOptions = {
  ...streamSourceOptions,
  max_line_bytes: def(integer(1, 16_777_216), 262_144),
  max_connections: def(integer(1, 65_535), 1024),
  idle_timeout_secs: def(integer(0, 86_400), 300),
  tls,
};

export const tcpSource: SourceDefinition<TcpSourceConfig> = {
  type: 'tcp',
  protocol: 'tcp',
  ...sourceBuild<typeof tcpOptions, TcpSourceConfig>(tcpOptions, (v) => ({
    type: 'tcp',
    max_line_bytes: v.max_line_bytes,
    max_connections: v.max_connections,
    idle_timeout_secs: v.idle_timeout_secs,
    tls: v.tls,
  })),
  async start(ctx, c) {
    const { startTcpSource } = await import('./tcp.ts');
    return startTcpSource(ctx, {
      host: c.host,
      port: c.port,
      hostKey: c.host_key,
      maxLineBytes: c.max_line_bytes,
      maxConnections: c.max_connections,
      idleTimeoutSecs: c.idle_timeout_secs,
      tls: tlsSettings(c.tls),
    });
  },
};
