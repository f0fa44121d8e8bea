/**
 * Main-thread side of HEC body decoding: small plain bodies are decoded inline, everything else
 * on a small piscina pool running hec-task.ts, so a 10 MiB or gzip body never blocks the loop.
 */
import { Piscina } from 'piscina';
import { workerEntry } from './entry.ts';
import { decodeHecBody, ownBytes, type HecDecodeOptions, type HecDecodeResult } from './hec-decode.ts';
import type { HecDecodeTask } from './hec-task.ts';

export interface HecDecoder {
  /**
   * Decode one request body on the calling thread when it is one of those decoded inline (plain,
   * below `inlineBelowBytes`); null when it is for the pool ({@link decode}). Never throws. Lets
   * the caller answer without a promise or a turn of the event loop. The result's `spans` may
   * be a view valid only until the next decode on this thread: copy them to keep them.
   */
  decodeNow(body: Uint8Array, opts: HecDecodeOptions): HecDecodeResult | null;
  /** Decode one request body. Never rejects. `body` may be transferred (unusable afterwards). */
  decode(body: Uint8Array, opts: HecDecodeOptions): Promise<HecDecodeResult>;
  /** Stop the threads; pending decodes answer `internal_error`. */
  destroy(): Promise<void>;
}

export interface HecDecoderOptions {
  /** Most threads; they start on first use and stop after `idleTimeoutMs` unused. */
  threads: number;
  /**
   * Plain (not gzip) bodies below this are decoded on the calling thread. Default
   * {@link INLINE_BELOW_BYTES}; 0 sends every body to the pool.
   */
  inlineBelowBytes?: number;
  idleTimeoutMs?: number;
}

/**
 * Plain bodies below 256 KiB are decoded inline. A body of 100 Talos-shaped envelopes (22 KiB)
 * costs 13 µs inline with the native scanner (92-110 µs with the TypeScript scanner, its
 * fallback), while the hand-off to a worker costs the main thread ~100 µs per request
 * (piscina's postTask, the clone of the options and the result, the wake-up) on top of the same
 * scan on the worker: inline is less CPU in total at every size (this 2-core machine). The
 * bound keeps the event loop from stalling on a large batch: 256 KiB is ~0.15 ms of native
 * scanning (~1 ms in TypeScript); larger bodies, and every gzip body, go to the pool.
 */
export const INLINE_BELOW_BYTES = 256 * 1024;

/** @throws RangeError when threads is not a positive integer. */
export function createHecDecoder(opts: HecDecoderOptions): HecDecoder {
  if (!Number.isInteger(opts.threads) || opts.threads < 1) {
    throw new RangeError(`hec decoder threads must be a positive integer, got ${opts.threads}`);
  }
  const inlineBelow = opts.inlineBelowBytes ?? INLINE_BELOW_BYTES;
  const piscina = new Piscina({
    filename: workerEntry('hec-task').href,
    minThreads: 0,
    maxThreads: opts.threads,
    idleTimeout: opts.idleTimeoutMs ?? 30_000,
  });
  return {
    decodeNow(body: Uint8Array, decodeOpts: HecDecodeOptions): HecDecodeResult | null {
      return !decodeOpts.gzip && body.length < inlineBelow ? decodeHecBody(body, decodeOpts, true) : null;
    },
    async decode(body: Uint8Array, decodeOpts: HecDecodeOptions): Promise<HecDecodeResult> {
      if (!decodeOpts.gzip && body.length < inlineBelow) return decodeHecBody(body, decodeOpts);
      const own = ownBytes(body);
      const task: HecDecodeTask = { body: own, opts: decodeOpts };
      try {
        return (await piscina.run(task, { transferList: [own.buffer as ArrayBuffer] })) as HecDecodeResult;
      } catch (err) {
        return {
          ok: false,
          rejection: 'internal_error',
          index: 0,
          seen: 0,
          detail: `hec decoder: ${err instanceof Error ? err.message : String(err)}`,
        };
      }
    },
    destroy() {
      return piscina.destroy();
    },
  };
}
