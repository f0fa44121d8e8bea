import { describe, expect, it } from 'vitest';
import { mulberry32 } from './prng.ts';
import { kernelLine, serviceLine, TalosLineGenerator } from './talos-lines.ts';

describe('Talos lines', () => {
  it('serviceLine and kernelLine: the same seed gives the same lines, each carrying its id, keys sorted', () => {
    const make = (seed: number): string[] => {
      const rand = mulberry32(seed);
      const line = (id: number): string => (id % 5 === 4 ? kernelLine({ id, rand }) : serviceLine({ id, rand }));
      return Array.from({ length: 50 }, (_, id) => line(id));
    };
    const lines = make(3);
    expect(make(3)).toEqual(lines);
    expect(make(4)).not.toEqual(lines);
    for (const [id, line] of lines.entries()) {
      const rec = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(rec)).toEqual(Object.keys(rec).sort());
      expect(String(rec['msg'])).toContain(id % 5 === 4 ? `kseq=${id}` : `req=${id}`);
      expect(rec['talos-time']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
    }
  });

  it('TalosLineGenerator: a seeded stream of service and kernel records', () => {
    const a = new TalosLineGenerator(9);
    const b = new TalosLineGenerator(9);
    const lines = Array.from({ length: 400 }, () => a.next());
    expect(Array.from({ length: 400 }, () => b.next())).toEqual(lines);
    const recs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.every((r) => typeof r['talos-time'] === 'string' && typeof r['talos-level'] === 'string')).toBe(true);
    expect(recs.some((r) => 'seq' in r && String(r['msg']).endsWith('\n'))).toBe(true); // kernel records
    expect(recs.some((r) => r['talos-service'] === 'kubelet')).toBe(true);
  });
});
