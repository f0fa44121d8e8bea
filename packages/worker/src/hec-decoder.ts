/**
 * Main-thread side of HEC body decoding: small plain bodies are decoded inline, everything else
 * on a small piscina pool running hec-task.ts, so a 10 MiB or gzip body never blocks the loop.
 */
import { Piscina } from 'piscina';
import { workerEntry } from './entry.ts';
import { decodeHecBody, ownBytes, type HecDecodeOptions, type HecDecodeResult } from './hec-decode.ts';
import type { HecDecodeTask } from './hec-task.ts';

export interface HecDecoder {
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
 * Plain bodies below 4 KiB are decoded inline: that is where inline decoding stops costing less
 * main-thread CPU than the hand-off to a worker (process.threadCpuUsage, Tailscale-audit-shaped
 * 330-byte envelopes, this 2-core machine: 1 KiB 27 us inline vs 100 us for the piscina round
 * trip; 4 KiB 77 vs 83 us; 16 KiB 289 vs 83 us; 1 MiB 19.6 ms vs 0.4 ms). JSON.parse is most of
 * the inline cost (4.5 us per envelope here).
 */
export const INLINE_BELOW_BYTES = 4 * 1024;

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
    async decode(body: Uint8Array, decodeOpts: HecDecodeOptions): Promise<HecDecodeResult> {
      if (!decodeOpts.gzip && body.length < inlineBelow) return decodeHecBody(body, decodeOpts);
      const own = ownBytes(body);
      const task: HecDecodeTask = { body: own, opts: decodeOpts };
      try {
        return (await piscina.run(task, { transferList: [own.buffer as ArrayBuffer] })) as HecDecodeResult;
      } catch (err) {
        return { ok: false, rejection: 'internal_error', index: 0, seen: 0, detail: `hec decoder: ${err instanceof Error ? err.message : String(err)}` };
      }
    },
    destroy() {
      return piscina.destroy();
    },
  };
}
