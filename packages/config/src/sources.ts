/** Option tables for sources. A new source type is one entry in `sourceTypes`. */
import { componentType, type ComponentType } from './components.ts';
import { INVALID, address, childPath, def, integer, opt, report, req, string, stringMap, type Ctx, type Invalid, type Values } from './schema.ts';
import type { SourceConfig, SourceType, TcpSourceConfig, UdpSourceConfig } from './types.ts';

const MIB = 1024 * 1024;

/** Options every source has. */
export const sourceOptions = {
  address: req(address()),
  extra_tags: def(stringMap(), {}),
  host_key: opt(string()),
  ring_bytes: def(integer(65_536, 1_073_741_824, { powerOfTwo: true }), 8 * MIB),
};

export const tcpOptions = {
  ...sourceOptions,
  max_line_bytes: def(integer(1, 16_777_216), 262_144),
  max_connections: def(integer(1, 65_535), 1024),
  idle_timeout_secs: def(integer(0, 86_400), 300),
};

export const udpOptions = {
  ...sourceOptions,
  receive_buffer_bytes: def(integer(65_536, 268_435_456), 8 * MIB),
  sockets: def(integer(1, 64), 2),
};

type CommonSource = Omit<TcpSourceConfig, 'type' | 'max_line_bytes' | 'max_connections' | 'idle_timeout_secs'>;

/** The fields every source config has; reports a tag that the host_key would overwrite. */
function commonSource(v: Values<typeof sourceOptions>, id: string, path: string, ctx: Ctx): CommonSource | Invalid {
  if (v.host_key !== null && Object.hasOwn(v.extra_tags, v.host_key)) {
    const tagPath = childPath(childPath(path, 'extra_tags'), v.host_key);
    return report(ctx, tagPath, `conflicts with host_key \`${v.host_key}\`, which receives the peer address`);
  }
  return { id, ...v.address, extra_tags: v.extra_tags, host_key: v.host_key, ring_bytes: v.ring_bytes };
}

export const sourceTypes: { readonly [T in SourceType]: ComponentType<Extract<SourceConfig, { type: T }>> } = {
  tcp: componentType(tcpOptions, (v, id, path, ctx): TcpSourceConfig | Invalid => {
    const common = commonSource(v, id, path, ctx);
    if (common === INVALID) return INVALID;
    const { max_line_bytes, max_connections, idle_timeout_secs } = v;
    return { ...common, type: 'tcp', max_line_bytes, max_connections, idle_timeout_secs };
  }),
  udp: componentType(udpOptions, (v, id, path, ctx): UdpSourceConfig | Invalid => {
    const common = commonSource(v, id, path, ctx);
    if (common === INVALID) return INVALID;
    const { receive_buffer_bytes, sockets } = v;
    return { ...common, type: 'udp', receive_buffer_bytes, sockets };
  }),
};

/** The socket protocol a source listens on: two sources may not share protocol+address. */
export const sourceProtocol: { readonly [T in SourceType]: 'tcp' | 'udp' } = {
  tcp: 'tcp',
  udp: 'udp',
};
