import { createSocket } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { udpKernelDrops } from './kernel-drops.ts';

describe('udpKernelDrops', () => {
  it('reads the kernel drop count of our own socket when its receive buffer overflows', async () => {
    const socket = createSocket({ type: 'udp4', recvBufferSize: 4096 });
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    const { port } = socket.address();
    let received = 0;
    socket.on('message', () => received++);
    expect(udpKernelDrops(port)).toBe(0);

    // A second thread sends while this one is too busy to read: the tiny buffer overflows.
    const sender = new Worker(
      `const { createSocket } = require('node:dgram');
       const s = createSocket('udp4'); let left = 2000; const msg = Buffer.alloc(512, 120);
       const next = () => { if (left-- === 0) { s.close(); return; } s.send(msg, ${port}, '127.0.0.1', next); };
       next();`,
      { eval: true },
    );
    const until = performance.now() + 500;
    while (performance.now() < until) {
      // busy: the event loop does not read the socket
    }
    await new Promise<void>((r) => sender.once('exit', () => r()));
    await new Promise((r) => setTimeout(r, 100));
    const drops = udpKernelDrops(port);
    expect(drops).toBeGreaterThan(0);
    // Every datagram was either read or dropped by the kernel, none vanished.
    expect(received + drops).toBe(2000);
    // The same sockets, read by pid as the benchmarks read a daemon's.
    expect(udpKernelDrops(port, process.pid)).toBe(drops);
    socket.close();
  });

  it('is 0 for a port we do not own', () => {
    expect(udpKernelDrops(1)).toBe(0);
  });
});
