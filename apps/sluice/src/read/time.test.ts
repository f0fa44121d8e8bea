import { describe, expect, it } from 'vitest';
import { mulberry32 } from '@sluice/testkit';
import {
  canonicalFromEpochSeconds,
  canonicalFromMs,
  compareZBytes,
  keyTime,
  parseRfc3339,
  parseTimeArg,
} from './time.ts';

const NOW = Date.parse('2024-05-01T12:00:00Z');

describe('parseTimeArg: --since / --until', () => {
  it('reads RFC 3339 times in Z form as written, to the nanosecond', () => {
    expect(parseTimeArg('2024-05-01T10:00:00Z', NOW)).toBe('2024-05-01T10:00:00.000000000');
    expect(parseTimeArg('2024-05-01T10:00:00.5Z', NOW)).toBe('2024-05-01T10:00:00.500000000');
    expect(parseTimeArg('2024-05-01T10:00:00.123456789123Z', NOW)).toBe('2024-05-01T10:00:00.123456789');
  });

  it('moves offsets to UTC', () => {
    expect(parseTimeArg('2024-05-01T12:30:00+02:00', NOW)).toBe('2024-05-01T10:30:00.000000000');
    expect(parseTimeArg('2024-04-30T23:30:00.25-01:00', NOW)).toBe('2024-05-01T00:30:00.250000000');
  });

  it('reads durations back from now', () => {
    expect(parseTimeArg('90m', NOW)).toBe('2024-05-01T10:30:00.000000000');
    expect(parseTimeArg('2h', NOW)).toBe('2024-05-01T10:00:00.000000000');
    expect(parseTimeArg('1d', NOW)).toBe('2024-04-30T12:00:00.000000000');
    expect(parseTimeArg('30s', NOW)).toBe('2024-05-01T11:59:30.000000000');
  });

  it('refuses anything else with a message naming both forms', () => {
    for (const bad of [
      'yesterday',
      '2024-05-01',
      '2024-13-01T00:00:00Z',
      '2024-05-01T25:00:00Z',
      '10',
      '-2h',
      '2024-05-01T10:00:00',
    ]) {
      const r = parseTimeArg(bad, NOW);
      expect(r, bad).toEqual({ error: expect.stringContaining('RFC 3339') });
    }
  });
});

describe('record and key times', () => {
  it('HEC epoch seconds, as numbers or numeric strings', () => {
    expect(canonicalFromEpochSeconds(1714564800)).toBe('2024-05-01T12:00:00.000000000');
    expect(canonicalFromEpochSeconds(1714564800.25)).toBe('2024-05-01T12:00:00.250000000');
    expect(canonicalFromEpochSeconds('1714564800.5')).toBe('2024-05-01T12:00:00.500000000');
    expect(canonicalFromEpochSeconds('soon')).toBeUndefined();
    expect(canonicalFromEpochSeconds(null)).toBeUndefined();
  });

  it('the time in an object key, whatever the prefix', () => {
    expect(keyTime('talos/2024/05/01/12:34:56-0123456789abcdef-000001.ndjson.zst')).toBe(
      '2024-05-01T12:34:56.000000000',
    );
    expect(keyTime('2024/05/01/00:00:00-0123456789abcdef-000000.ndjson')).toBe('2024-05-01T00:00:00.000000000');
    expect(keyTime('logs-2024/05/01/00:00:00-x.ndjson.gz')).toBe('2024-05-01T00:00:00.000000000');
    expect(keyTime('notes.txt')).toBeUndefined();
  });

  it('canonicalFromMs', () => {
    expect(canonicalFromMs(Date.parse('2024-05-01T12:00:00.123Z'))).toBe('2024-05-01T12:00:00.123000000');
  });
});

describe('compareZBytes agrees with parseRfc3339 on every stored form', () => {
  it('a seeded differential over random times, fractions and malformed ones', () => {
    const rand = mulberry32(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const two = (n: number): string => String(n).padStart(2, '0');
    const time = (): string => {
      const base = `${pick(['2023', '2024', '2025'])}-${two(1 + Math.floor(rand() * 13))}-${two(Math.floor(rand() * 32))}T${two(Math.floor(rand() * 25))}:${two(Math.floor(rand() * 61))}:${two(Math.floor(rand() * 61))}`;
      const frac = rand() < 0.3 ? '' : `.${String(Math.floor(rand() * 1e12)).slice(0, 1 + Math.floor(rand() * 12))}`;
      const zone = pick(['Z', 'Z', 'Z', 'z', '+02:00', '-00:30']);
      const sep = rand() < 0.05 ? ' ' : 'T';
      return base.replace('T', sep) + frac + zone;
    };
    const bounds = Array.from({ length: 50 }, () => parseRfc3339(time())).filter((b): b is string => b !== undefined);
    let fast = 0;
    for (let i = 0; i < 20_000; i++) {
      const t = time();
      const stored = Buffer.from(`"${t}"`);
      const expected = parseRfc3339(t);
      for (const bound of bounds.slice(0, 5 + (i % 20))) {
        const c = compareZBytes(stored, 1, stored.length, Buffer.from(bound, 'latin1'));
        if (c === 2) continue; // the caller parses
        fast++;
        expect(expected, t).toBeDefined();
        expect(c, `${t} vs ${bound}`).toBe(expected! < bound ? -1 : expected! > bound ? 1 : 0);
      }
    }
    expect(fast).toBeGreaterThan(10_000);
  });

  it('is sure only of plain Z forms', () => {
    const b = Buffer.from('2024-05-01T12:00:00.000000000', 'latin1');
    const cmp = (t: string): number => {
      const buf = Buffer.from(`"${t}"`);
      return compareZBytes(buf, 1, buf.length, b);
    };
    expect(cmp('2024-05-01T12:00:00Z')).toBe(0);
    expect(cmp('2024-05-01T12:00:00.000000000001Z')).toBe(0);
    expect(cmp('2024-05-01T12:00:00.1Z')).toBe(1);
    expect(cmp('2024-05-01T11:59:59.999999999Z')).toBe(-1);
    expect(cmp('2024-05-01T12:00:00+00:00')).toBe(2);
    expect(cmp('2024-05-01 12:00:00Z')).toBe(2);
    expect(cmp('2024-05-01T12:00:00.Z')).toBe(2);
  });
});
