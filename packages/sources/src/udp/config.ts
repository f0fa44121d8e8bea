/** The `udp` source: json_lines, one record per datagram (Talos kernel logs). */
import { def, integer, oneOf } from '@sluice/schema';
import { sourceBuild, sourceOptions, type SourceBase, type SourceDefinition } from '../config.ts';

const MIB = 1024 * 1024;

export interface UdpSourceConfig extends SourceBase {
  readonly type: 'udp';
  readonly receive_buffer_bytes: number;
  readonly sockets: number;
  /**
   * `native`: the recvmmsg addon (Linux, Node; startup fails if it cannot load), `dgram`:
   * node:dgram, `auto`: native where it loads, else dgram with a warning.
   */
  readonly reader: 'auto' | 'native' | 'dgram';
}

const udpOptions = {
  ...sourceOptions,
  receive_buffer_bytes: def(integer(65_536, 268_435_456), 8 * MIB),
  sockets: def(integer(1, 64), 2),
  reader: def(oneOf(['auto', 'native', 'dgram']), 'auto'),
};

export const udpSource: SourceDefinition<UdpSourceConfig> = {
  type: 'udp',
  protocol: 'udp',
  ...sourceBuild<typeof udpOptions, UdpSourceConfig>(udpOptions, (v) => ({
    type: 'udp',
    receive_buffer_bytes: v.receive_buffer_bytes,
    sockets: v.sockets,
    reader: v.reader,
  })),
  async start(ctx, c) {
    const { startUdpSource } = await import('./udp.ts');
    return startUdpSource(ctx, {
      host: c.host,
      port: c.port,
      hostKey: c.host_key,
      sockets: c.sockets,
      receiveBufferBytes: c.receive_buffer_bytes,
      reader: c.reader,
    });
  },
};
