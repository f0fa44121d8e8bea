/**
 * The udp source's native receiver (packages/sources/native/udp_recv.cc, built by
 * scripts/build-native.ts into packages/sources/build/udp_recv.node): UDP sockets read with
 * recvmmsg on the main loop, each datagram written straight into the source's ring.
 */
import { loadAddon, type AddonLoad } from '@sluice/worker';

/** Path of the built addon. */
const NATIVE_UDP_ADDON = new URL('../../build/udp_recv.node', import.meta.url).pathname;

/**
 * Called once per read of one socket (a poll wake-up, or a 1 ms timer while datagrams keep
 * coming), with that read's counts:
 * received = written + ringFull + oversize. `errno` is a negative errno (the socket's read
 * failed; reading goes on) or 0.
 */
export type OnBatch = (
  received: number,
  bytes: number,
  written: number,
  ringFull: number,
  oversize: number,
  errno: number,
) => void;

/** Bound, polling sockets that write into one ring. */
export interface NativeUdpReceiver {
  /** The port bound (port 0 resolved); every socket shares it. */
  readonly port: number;
  /** SO_RCVBUF of the first socket as the kernel reports it (what dgram's getRecvBufferSize says). */
  readonly receiveBufferBytes: number;
  /** Sockets bound. */
  readonly sockets: number;
  /** Stop polling and close the sockets; nothing is written into the ring after it returns. Idempotent. */
  close(): void;
}

export interface NativeUdpAddon {
  /**
   * Bind `sockets` UDP sockets on host:port (an IP literal; SO_REUSEPORT when sockets > 1,
   * IPV6_V6ONLY off, SO_RCVBUF = receiveBufferBytes) and start reading them into the ring whose
   * whole SharedArrayBuffer `ringBytes` views. `withPeer`: records start with the peer head
   * (`u8 len | address`), else with the single byte 0. Throws like dgram (`bind EADDRINUSE …`,
   * with `code`, `errno` and `syscall`).
   */
  UdpReceiver: new (
    host: string,
    port: number,
    sockets: number,
    receiveBufferBytes: number,
    ringBytes: Uint8Array,
    withPeer: boolean,
    onBatch: OnBatch,
  ) => NativeUdpReceiver;
  /** Datagrams per recvmmsg call. */
  recvmmsgBatch: number;
  /** Datagrams read per wake-up of one socket, at most. */
  wakeupBudget: number;
}

export type NativeUdpLoad = AddonLoad<NativeUdpAddon>;

let loaded: NativeUdpLoad | undefined;

/** The addon, or why it cannot be used here. Loaded once per process (thread). */
export function loadNativeUdp(): NativeUdpLoad {
  loaded ??= load();
  return loaded;
}

function load(): NativeUdpLoad {
  if (process.platform !== 'linux')
    return { ok: false, reason: `it is Linux only (recvmmsg), this is ${process.platform}` };
  // Bun runs N-API addons but has no libuv loop to hand out: uv_poll is not there.
  if (process.versions['bun'] !== undefined)
    return { ok: false, reason: `Bun ${process.versions['bun']} has no libuv event loop (uv_poll)` };
  return loadAddon<NativeUdpAddon>(NATIVE_UDP_ADDON, 'UdpReceiver');
}
