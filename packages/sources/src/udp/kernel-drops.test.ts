import { createSocket } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { udpKernelDrops } from './kernel-drops.ts';

describe('udpKernelDrops', () => {
  it('reads the kernel drop count of our own socket when its receive buffer overflows', async () => {
    const socket = createSocket({ type: 'udp4', recvBufferSize: 4096 });
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    const { port } = socket.address();
    let received = 0;
    socket.on('message', () => received++);
    expect(udpKernelDrops(port)).toBe(0);

    // A second thread sends while this one is blocked (not reading): the tiny buffer overflows.
    // The sender signals through shared memory once its last datagram has left, so this thread
    // stays blocked for the whole send however slowly either thread is scheduled.
    const done = new Int32Array(new SharedArrayBuffer(4));
    const sender = new Worker(
      `const { createSocket } = require('node:dgram');
       const { workerData: done } = require('node:worker_threads');
       const s = createSocket('udp4'); let left = 2000; const msg = Buffer.alloc(512, 120);
       const next = () => {
         if (left-- === 0) { Atomics.store(done, 0, 1); Atomics.notify(done, 0); s.close(); return; }
         s.send(msg, ${port}, '127.0.0.1', next);
       };
       next();`,
      { eval: true, workerData: done },
    );
    expect(Atomics.wait(done, 0, 0, 60_000)).not.toBe('timed-out');
    await new Promise<void>((r) => sender.once('exit', () => r()));
    // Now read what the buffer held: every datagram is either read or dropped by the kernel.
    const accounted = (): number => received + udpKernelDrops(port);
    await vi.waitFor(() => expect(accounted(), 'every datagram read or dropped').toBeGreaterThanOrEqual(2000), {
      timeout: 30_000,
      interval: 10,
    });
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
