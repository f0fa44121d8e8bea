/**
 * The gate's statistics: paired ratios head / reference, one per round, and a bootstrap
 * interval of their median.
 *
 * Each round measures both trees back to back on the same machine, so what the machine does
 * to one it mostly does to the other, and the ratio of the pair carries the difference of the
 * code. The rounds' ratios are summarised by their median, and how sure we are of it by a
 * percentile bootstrap: resample the rounds with replacement, take the median of each
 * resample, and read the interval off the resampled medians. The resampling uses a fixed seed,
 * so the same samples always give the same verdict.
 */
import { mulberry32 } from '@sluice/testkit';

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Interval {
  /** Median of the samples. */
  median: number;
  low: number;
  high: number;
  /** Coverage asked for, e.g. 0.95. */
  confidence: number;
  samples: number;
}

/**
 * Percentile-bootstrap interval of the median of `xs`. The medians are taken of the
 * logarithms (a ratio of 2 and one of 1/2 are the same distance from 1) and turned back.
 */
export function bootstrapMedian(xs: readonly number[], confidence = 0.95, resamples = 10_000, seed = 0x5eed): Interval {
  const n = xs.length;
  if (n === 0) throw new RangeError('bootstrap of nothing');
  if (xs.some((x) => !(x > 0) || !Number.isFinite(x)))
    throw new RangeError(`ratios must be positive and finite: ${xs.join(' ')}`);
  const logs = xs.map(Math.log);
  const rand = mulberry32(seed);
  const medians = new Float64Array(resamples);
  const pick = new Float64Array(n);
  for (let r = 0; r < resamples; r++) {
    for (let k = 0; k < n; k++) pick[k] = logs[Math.floor(rand() * n)]!;
    pick.sort();
    medians[r] = n % 2 === 1 ? pick[n >> 1]! : (pick[(n >> 1) - 1]! + pick[n >> 1]!) / 2;
  }
  medians.sort();
  const tail = (1 - confidence) / 2;
  const at = (q: number): number => medians[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))]!;
  return {
    median: Math.exp(median(logs)),
    low: Math.exp(at(tail)),
    high: Math.exp(at(1 - tail)),
    confidence,
    samples: n,
  };
}

export type Verdict = 'ok' | 'slower' | 'faster';

/**
 * `slower` only when the whole interval lies above 1 + tolerance: the head is slower than the
 * reference by more than the tolerance, with the interval's confidence. `faster` when it lies
 * wholly below 1 - tolerance (reported, never a failure).
 */
export function verdict(i: Interval, tolerance: number): Verdict {
  if (i.low > 1 + tolerance) return 'slower';
  if (i.high < 1 - tolerance) return 'faster';
  return 'ok';
}
