/**
 * The benchmark gate's decisions (bench/gate.ts): the statistics that turn paired rounds into
 * a verdict, and the reference commit it measures against, which must be named, present and
 * buildable or the gate fails with one line saying which.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GateSetupError, referenceSha, referenceTree } from './lib/reference-tree.ts';
import { bootstrapMedian, verdict } from './lib/stats.ts';

describe('gate statistics', () => {
  it('takes the median of the ratios and an interval around it', () => {
    const i = bootstrapMedian([0.98, 1.01, 1.0, 1.03, 0.97, 1.02, 0.99]);
    expect(i.median).toBeCloseTo(1.0, 10);
    expect(i.low).toBeGreaterThanOrEqual(0.97);
    expect(i.low).toBeLessThan(1.0);
    expect(i.high).toBeGreaterThan(1.0);
    expect(i.high).toBeLessThanOrEqual(1.03);
    expect(i.samples).toBe(7);
  });

  it('gives the same interval for the same samples (fixed seed)', () => {
    const xs = [1.1, 0.9, 1.3, 1.05, 0.95, 1.2, 1.0, 0.85];
    expect(bootstrapMedian(xs)).toEqual(bootstrapMedian(xs));
  });

  it('fails a stage only when the whole interval is above 1 + tolerance', () => {
    // A 20 % slowdown measured tightly: slower.
    expect(verdict(bootstrapMedian([1.21, 1.19, 1.2, 1.22, 1.18, 1.2, 1.21]), 0.05)).toBe('slower');
    // An unchanged tree with one wild round: not slower.
    expect(verdict(bootstrapMedian([1.0, 0.98, 1.02, 1.6, 0.99, 1.01, 1.0]), 0.05)).toBe('ok');
    // Slower on average, but too noisy to be sure by more than the tolerance: not failed.
    expect(verdict(bootstrapMedian([1.3, 0.9, 1.25, 0.95, 1.2, 1.0, 1.15]), 0.1)).toBe('ok');
    // Faster beyond the tolerance is reported, never a failure.
    expect(verdict(bootstrapMedian([0.7, 0.72, 0.69, 0.71, 0.7, 0.73, 0.7]), 0.05)).toBe('faster');
  });

  it('refuses ratios that are not positive and finite', () => {
    expect(() => bootstrapMedian([])).toThrow(RangeError);
    expect(() => bootstrapMedian([1, 0])).toThrow(/positive and finite/);
    expect(() => bootstrapMedian([1, Number.NaN])).toThrow(/positive and finite/);
  });
});

describe('gate reference', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-gate-test-'));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('reads the commit bench/reference names, past comments', () => {
    const sha = 'e65754eba55f26dba457cfcbdc5d489e234201d1';
    expect(referenceSha(file('ok', `# why this commit\n\n${sha}\n`))).toBe(sha);
  });

  it('says what is wrong with a file that names no commit', () => {
    expect(() => referenceSha(join(dir, 'absent'))).toThrow(GateSetupError);
    expect(() => referenceSha(join(dir, 'absent'))).toThrow(/bench\/reference is missing/);
    expect(() => referenceSha(file('short', 'e65754e\n'))).toThrow(/does not name a commit.*"e65754e"/);
    expect(() => referenceSha(file('empty', '# nothing\n'))).toThrow(/does not name a commit/);
  });

  it('fails in one line when the commit is not in the clone', () => {
    const missing = '0123456789abcdef0123456789abcdef01234567';
    let err: unknown;
    try {
      referenceTree(() => {}, { sha: missing, dir: join(dir, 'tree'), fetch: false });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GateSetupError);
    const message = (err as Error).message;
    expect(message).toBe(
      'the reference commit 0123456789ab (bench/reference) is not in this clone: fetch it (a shallow clone needs git fetch --unshallow)',
    );
  });
});
