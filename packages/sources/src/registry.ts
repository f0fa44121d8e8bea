/**
 * Every source type Sluice knows, by type id. The config reads `sources:` through this table
 * and the daemon starts each source through it; neither names a type. A new source type is a
 * folder beside these with its config.ts, and one line here (docs/internals.md).
 *
 * Importing this module loads only the definitions: each one imports its runtime when it starts.
 */
import { splunkHecSource, type SplunkHecSourceConfig } from './splunk-hec/config.ts';
import { tcpSource, type TcpSourceConfig } from './tcp/config.ts';
import { udpSource, type UdpSourceConfig } from './udp/config.ts';
import type { SourceDefinition } from './config.ts';

export type SourceConfig = TcpSourceConfig | UdpSourceConfig | SplunkHecSourceConfig;
export type SourceType = SourceConfig['type'];

export const sourceTypes: { readonly [T in SourceType]: SourceDefinition<Extract<SourceConfig, { type: T }>> } = {
  tcp: tcpSource,
  udp: udpSource,
  splunk_hec: splunkHecSource,
};

/** The definition of a configured source. */
export function sourceDefinition<C extends SourceConfig>(config: C): SourceDefinition<C> {
  return sourceTypes[config.type] as unknown as SourceDefinition<C>;
}

export type { SplunkHecSourceConfig, TcpSourceConfig, UdpSourceConfig };
export {
  tlsOptions,
  type ClientAuth,
  type SourceBase,
  type SourceDefinition,
  type SourceRuntime,
  type TlsConfig,
} from './config.ts';
