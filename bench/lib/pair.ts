/**
 * A ratio of two workloads measured side by side, for the gate: `subject` (Sluice code) over
 * `reference` (an alternative or a floor that does not change when Sluice does).
 *
 * Noise control on a shared 2-core machine:
 * - time is this thread's CPU time (process.threadCpuUsage), so being preempted by another
 *   process does not count;
 * - the two run in alternating rounds (A B A B ...), so slow drifts of the machine hit both;
 * - each round's ratio is taken, and the median of the rounds is the result.
 */
import { median } from './daemon.ts';

export interface PairOptions {
  /** Alternating rounds. Default 9. */
  rounds?: number;
  /** CPU milliseconds each side runs per round (whole calls). Default 120. */
  roundMs?: number;
}

export interface PairResult {
  /** Median over rounds of subject time per call / reference time per call. */
  ratio: number;
  /** Median CPU µs per call. */
  subjectUs: number;
  referenceUs: number;
  /** Every round's ratio, for the spread. */
  ratios: number[];
}

function cpuUs(): number {
  const u = process.threadCpuUsage();
  return u.user + u.system;
}

/** CPU µs per call of `fn`, running whole calls until `ms` of CPU are spent. */
function perCall(fn: () => unknown, ms: number): number {
  const t0 = cpuUs();
  let calls = 0;
  let t = t0;
  do {
    fn();
    calls++;
    t = cpuUs();
  } while (t - t0 < ms * 1000);
  return (t - t0) / calls;
}

export function measurePair(subject: () => unknown, reference: () => unknown, opts: PairOptions = {}): PairResult {
  const rounds = opts.rounds ?? 9;
  const roundMs = opts.roundMs ?? 120;
  // Warm-up: JIT both sides, grow their buffers.
  perCall(subject, roundMs);
  perCall(reference, roundMs);
  const s: number[] = [];
  const r: number[] = [];
  const ratios: number[] = [];
  for (let k = 0; k < rounds; k++) {
    // Alternate which side goes first, so neither always runs on a freshly warmed cache.
    const a = k % 2 === 0 ? perCall(subject, roundMs) : -1;
    const b = perCall(reference, roundMs);
    const a2 = a < 0 ? perCall(subject, roundMs) : a;
    s.push(a2);
    r.push(b);
    ratios.push(a2 / b);
  }
  return { ratio: +median(ratios).toFixed(4), subjectUs: +median(s).toFixed(2), referenceUs: +median(r).toFixed(2), ratios: ratios.map((x) => +x.toFixed(3)) };
}
