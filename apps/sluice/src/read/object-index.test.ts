import { describe, expect, it } from 'vitest';
import type { ListedObject, ObjectReader } from '@sluice/sinks/registry';
import { encodeIndex, indexKeyOf, type IndexFacts } from '@sluice/sinks';
import { parsedRecordTime } from '@sluice/worker';
import { recordTime } from './match.ts';
import { indexAdmits, SidecarIndex } from './object-index.ts';

const KEY = 'talos/2024/05/01/12:00:00-feedfacecafebeef-000001.ndjson.zst';
const KT = '2024-05-01T12:00:00.000000000';
const F: IndexFacts = {
  records: 10,
  untimed: 0,
  minTime: '2024-05-01T10:00:00.000000000',
  maxTime: '2024-05-01T11:00:00.000000000',
  fields: { 'talos-service': ['machined', 'etcd'], host: null },
};
const q = (since: string | null, until: string | null, where: [string, string][] = []) => ({
  since,
  until,
  where: where.map(([k, value]) => ({ path: k.split('.'), value })),
});

describe('indexAdmits: an object is ruled out only when no record can match', () => {
  it('time range against --since (inclusive) / --until (exclusive)', () => {
    expect(indexAdmits(F, KT, q('2024-05-01T11:00:00.000000000', null))).toBe(true); // max == since
    expect(indexAdmits(F, KT, q('2024-05-01T11:00:00.000000001', null))).toBe(false);
    expect(indexAdmits(F, KT, q(null, '2024-05-01T10:00:00.000000000'))).toBe(false); // min == until
    expect(indexAdmits(F, KT, q(null, '2024-05-01T10:00:00.000000001'))).toBe(true);
    expect(indexAdmits(F, KT, q('2024-05-01T09:00:00.000000000', '2024-05-01T12:00:00.000000000'))).toBe(true);
  });

  it('records without a time take the key time: they keep an object the range alone rules out', () => {
    const u = { ...F, untimed: 1 };
    expect(indexAdmits(u, KT, q('2024-05-01T11:30:00.000000000', null))).toBe(true);
    expect(indexAdmits(u, KT, q('2024-05-01T12:00:00.000000001', null))).toBe(false);
    expect(indexAdmits(u, undefined, q('2024-05-01T11:30:00.000000000', null))).toBe(false); // no key time: no time at all
    const none = { ...F, untimed: 10, minTime: null, maxTime: null };
    expect(indexAdmits(none, KT, q(null, '2024-05-01T12:00:00.000000001'))).toBe(true);
    expect(indexAdmits(none, KT, q(null, '2024-05-01T12:00:00.000000000'))).toBe(false);
  });

  it('--where on an indexed field; many, unindexed and dotted fields rule nothing out', () => {
    expect(indexAdmits(F, KT, q(null, null, [['talos-service', 'etcd']]))).toBe(true);
    expect(indexAdmits(F, KT, q(null, null, [['talos-service', 'kubelet']]))).toBe(false);
    expect(indexAdmits(F, KT, q(null, null, [['host', 'anything']]))).toBe(true);
    expect(indexAdmits(F, KT, q(null, null, [['talos-level', 'info']]))).toBe(true);
    expect(indexAdmits(F, KT, q(null, null, [['talos-service.x', 'kubelet']]))).toBe(true);
  });
});

/** A reader of one object and, maybe, its index bytes. */
function reader(index: Uint8Array | null): ObjectReader {
  return {
    location: 'mem://',
    async *list(): AsyncIterable<ListedObject> {},
    async *read(key: string): AsyncIterable<Uint8Array> {
      if (key !== indexKeyOf(KEY) || index === null) throw new Error('ENOENT');
      yield index.subarray(0, 10);
      yield index.subarray(10);
    },
    release() {},
  };
}

describe('SidecarIndex', () => {
  const narrow = q('2024-05-01T11:30:00.000000000', null);
  const signal = new AbortController().signal;
  it('skips by a good index; reads the object when the index is missing, damaged or of another version', async () => {
    const good = encodeIndex(KEY, F);
    const idx = new SidecarIndex(reader(good), narrow, 3_600_000);
    expect(await idx.wants(KEY, signal)).toBe(false);
    expect(idx.bytesRead).toBe(good.byteLength);
    expect(await new SidecarIndex(reader(null), narrow, 3_600_000).wants(KEY, signal)).toBe(true);
    expect(
      await new SidecarIndex(reader(good.subarray(0, good.length - 5)), narrow, 3_600_000).wants(KEY, signal),
    ).toBe(true);
    const v2 = Buffer.from(Buffer.from(good).toString().replace('"sluice_index":1', '"sluice_index":2'));
    expect(await new SidecarIndex(reader(v2), narrow, 3_600_000).wants(KEY, signal)).toBe(true);
  });

  it('fetches nothing when the query has nothing an index decides', async () => {
    const idx = new SidecarIndex(reader(encodeIndex(KEY, F)), q(null, null, [['event.action', 'x']]), 3_600_000);
    expect(await idx.wants(KEY, signal)).toBe(true);
    expect(idx.bytesRead).toBe(0);
  });
});

describe("the workers' record time is the reader's (facts.ts copies match.ts)", () => {
  it('on every shape of time', () => {
    const recs: unknown[] = [
      { 'talos-time': '2024-04-22T12:34:56.123456789Z' },
      { 'talos-time': '2024-04-22T12:34:56.1234567891234Z' },
      { 'talos-time': '2024-04-22t12:34:56z' },
      { 'talos-time': '2024-04-22 12:34:56+05:30' },
      { 'talos-time': '2024-04-22T12:34:56-23:59' },
      { 'talos-time': '2024-04-22T12:34:56+24:00' },
      { 'talos-time': '2024-02-31T12:34:56Z' },
      { 'talos-time': '2024-04-22T24:00:00Z' },
      { 'talos-time': 17, event: 'x', time: 1714000000 },
      { event: 'x', time: '1714000000.123456789' },
      { event: 'x', time: '-5' },
      { event: 'x', time: 1e20 },
      { event: null, time: 0 },
      { time: 1714000000 },
      { 'talos-time': '0000-01-01T00:00:00Z' },
      { 'talos-time': '9999-12-31T23:59:59.999999999+00:00' },
      { 'talos-time': '0000-01-01T00:30:00+01:00' },
      [1, 2],
      'text',
      null,
    ];
    for (const rec of recs) expect(parsedRecordTime(rec), JSON.stringify(rec)).toBe(recordTime(rec, undefined));
  });
});
