/**
 * Frees a buffer's memory now rather than at the main thread's next full collection: detaching
 * its ArrayBuffer (transfer to length 0) releases the backing store at once. Left to the
 * collector, a burst's frames and part buffers were tens of MiB of garbage at its peak
 * (docs/benchmarks.md, "Memory"). Only a buffer that owns its whole ArrayBuffer (one from
 * `Buffer.allocUnsafeSlow`, a frame a worker transferred) is detached, never a view into memory
 * something else may use, such as Buffer's shared pool.
 */
export function freeNow(bytes: Uint8Array): void {
  const buf = bytes.buffer;
  const whole = bytes.byteOffset === 0 && bytes.byteLength === buf.byteLength;
  if (buf instanceof ArrayBuffer && whole && !buf.detached) buf.transfer(0);
}
