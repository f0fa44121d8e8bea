import { afterEach, describe, expect, it } from 'vitest';
import { contentEncodingFor, extensionFor, NDJSON_CONTENT_TYPE, newUniqueId, objectKey } from './keys.ts';

const ID = '0123456789abcdef';

describe('objectKey', () => {
  const savedTz = process.env.TZ;
  afterEach(() => {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });

  it('lays out <prefix>YYYY/MM/DD/HH:MM:SS-<id>-<seq>.<ext> like Tailscale plus id and seq', () => {
    const t = Date.UTC(2024, 3, 22, 12, 34, 56, 789);
    expect(objectKey('audit-logs/', t, ID, 7, '.ndjson.zst')).toBe(
      'audit-logs/2024/04/22/12:34:56-0123456789abcdef-000007.ndjson.zst',
    );
    expect(objectKey('', t, ID, 0, '.ndjson')).toBe('2024/04/22/12:34:56-0123456789abcdef-000000.ndjson');
  });

  it('zero-pads every field, and seq to 6 digits (longer seqs are kept whole)', () => {
    const t = Date.UTC(2025, 0, 2, 3, 4, 5);
    expect(objectKey('p/', t, ID, 42, '.ndjson.gz')).toBe('p/2025/01/02/03:04:05-0123456789abcdef-000042.ndjson.gz');
    expect(objectKey('p/', t, ID, 999_999, '')).toMatch(/-999999$/);
    expect(objectKey('p/', t, ID, 1_234_567, '')).toMatch(/-1234567$/);
  });

  it('uses UTC at day and year boundaries whatever the local time zone', () => {
    for (const tz of ['UTC', 'Pacific/Kiritimati', 'America/Los_Angeles']) {
      process.env.TZ = tz; // +14 h and -8 h: a local-time bug would move the date
      const lastMs = Date.UTC(2023, 11, 31, 23, 59, 59, 999);
      expect(objectKey('', lastMs, ID, 1, '')).toBe(`2023/12/31/23:59:59-${ID}-000001`);
      expect(objectKey('', lastMs + 1, ID, 2, '')).toBe(`2024/01/01/00:00:00-${ID}-000002`);
      expect(objectKey('', Date.UTC(2024, 1, 29, 0, 0, 0), ID, 3, '')).toBe(`2024/02/29/00:00:00-${ID}-000003`);
    }
  });

  it('sorts lexicographically by time, then by seq within a second', () => {
    let seed = 12345; // deterministic LCG
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const times = Array.from({ length: 500 }, () => Date.UTC(2020, 0, 1) + Math.floor(rand() * 6 * 365 * 86_400_000));
    times.push(Date.UTC(2024, 0, 1, 0, 0, 9), Date.UTC(2024, 0, 1, 0, 0, 10), Date.UTC(2024, 0, 1, 0, 1, 0));
    const byTime = [...times].sort((a, b) => a - b);
    // seq follows opening order, as in the writer
    const keys = byTime.map((t, seq) => objectKey('logs/', t, ID, seq, '.ndjson.zst'));
    expect([...keys].sort()).toEqual(keys);
    const sameSecond = [0, 1, 9, 10, 99, 100, 123_456].map((seq) => objectKey('', 0, ID, seq, '.ndjson'));
    expect([...sameSecond].sort()).toEqual(sameSecond);
  });
});

describe('newUniqueId', () => {
  it('is 16 lowercase hex chars and differs between draws', () => {
    const ids = new Set(Array.from({ length: 100 }, newUniqueId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('extensionFor / contentEncodingFor', () => {
  it('maps each codec', () => {
    expect(extensionFor('zstd')).toBe('.ndjson.zst');
    expect(extensionFor('gzip')).toBe('.ndjson.gz');
    expect(extensionFor('none')).toBe('.ndjson');
    expect(contentEncodingFor('zstd')).toBe('zstd');
    expect(contentEncodingFor('gzip')).toBe('gzip');
    expect(contentEncodingFor('none')).toBeUndefined();
    expect(NDJSON_CONTENT_TYPE).toBe('application/x-ndjson');
  });
});
