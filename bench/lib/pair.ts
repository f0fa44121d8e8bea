/**
 * Two workloads measured in alternating rounds on this thread, for the gate's micro stages:
 * the tree under test's code (`head`) and the reference commit's (`reference`) doing the same
 * work on the same input.
 *
 * Noise control on a shared 2-core machine:
 * - each round runs both, back to back, the order alternating (A B, B A, ...), so slow drifts
 *   of the machine hit both sides alike and neither always runs first;
 * - time is the wall clock (performance.now()): this thread's CPU time (threadCpuUsage,
 *   /proc/thread-self/schedstat) advances in 4 ms scheduler ticks here, ±8 % of a 50 ms round.
 *   Being preempted only ever adds time, so the gate takes each side's fastest round
 *   (bench/gate.ts), which a preempted round does not move.
 */
export interface PairOptions {
  /** Rounds, each one paired ratio. Default 15. */
  rounds?: number;
  /** Milliseconds each side runs per round (whole calls). Default 100. */
  roundMs?: number;
}

export interface PairResult {
  /** Per round, µs per call. */
  headUs: number[];
  referenceUs: number[];
}

/** µs per call of `fn`, running whole calls until `ms` have passed. */
function perCall(fn: () => unknown, ms: number): number {
  const t0 = performance.now();
  let calls = 0;
  let t = t0;
  do {
    fn();
    calls++;
    t = performance.now();
  } while (t - t0 < ms);
  return ((t - t0) * 1000) / calls;
}

export function measurePair(head: () => unknown, reference: () => unknown, opts: PairOptions = {}): PairResult {
  const rounds = opts.rounds ?? 15;
  const roundMs = opts.roundMs ?? 100;
  // Warm-up: JIT both sides, grow their buffers.
  for (let k = 0; k < 2; k++) {
    perCall(head, roundMs);
    perCall(reference, roundMs);
  }
  const out: PairResult = { headUs: [], referenceUs: [] };
  for (let k = 0; k < rounds; k++) {
    let h: number;
    let r: number;
    if (k % 2 === 0) {
      h = perCall(head, roundMs);
      r = perCall(reference, roundMs);
    } else {
      r = perCall(reference, roundMs);
      h = perCall(head, roundMs);
    }
    out.headUs.push(h);
    out.referenceUs.push(r);
  }
  return out;
}
