/** The `tcp` source: json_lines over TCP (Talos service logs), optionally TLS. */
import { INVALID, componentType, def, integer, type Invalid } from '@sluice/schema';
import { commonSource, sourceOptions, tls, type SourceBase, type SourceDefinition, type TlsConfig } from '../config.ts';
import { tlsSettings } from '../tls.ts';

export interface TcpSourceConfig extends SourceBase {
  readonly type: 'tcp';
  readonly max_line_bytes: number;
  readonly max_connections: number;
  readonly idle_timeout_secs: number;
  /** null = plain TCP. */
  readonly tls: TlsConfig | null;
}

export const tcpOptions = {
  ...sourceOptions,
  max_line_bytes: def(integer(1, 16_777_216), 262_144),
  max_connections: def(integer(1, 65_535), 1024),
  idle_timeout_secs: def(integer(0, 86_400), 300),
  tls,
};

export const tcpSource: SourceDefinition<TcpSourceConfig> = {
  type: 'tcp',
  protocol: 'tcp',
  ...componentType(tcpOptions, (v, id, path, ctx): TcpSourceConfig | Invalid => {
    const common = commonSource(v, id, path, ctx);
    if (common === INVALID) return INVALID;
    const { max_line_bytes, max_connections, idle_timeout_secs } = v;
    return { ...common, type: 'tcp', max_line_bytes, max_connections, idle_timeout_secs, tls: v.tls };
  }),
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
