export { startTcpSource } from './tcp/tcp.ts';
export type { TcpSourceOptions } from './tcp/tcp.ts';
export { startUdpSource } from './udp/udp.ts';
export type { UdpSourceOptions } from './udp/udp.ts';
export { peerHead, normalizePeer, formatAddress } from './source.ts';
export type { Source, SourceContext } from './source.ts';
