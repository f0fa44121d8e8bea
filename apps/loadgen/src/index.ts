export { LINE_KINDS, generateLineSet, lineId, lineLength } from './line-set.ts';
export type { LineKind, LineSet, LineSetOptions } from './line-set.ts';
export { sendHec, sendTcp, sendUdp } from './send.ts';
export type { HecSendOptions, SendReport, TcpSendOptions, UdpSendOptions } from './send.ts';
