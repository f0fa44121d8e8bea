import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { ObjectMeta, ObjectStore, ObjectUpload } from '../object-store.ts';
import { toFrameFacts } from '@sluice/worker';
import {
  decodeIndex,
  encodeIndex,
  type IndexFacts,
  indexKeyOf,
  isIndexKey,
  mergeFacts,
  mergeFrameFacts,
} from './object-index.ts';
import { ObjectWriter } from './object-writer.ts';

const KEY = 'talos/2024/05/01/12:00:00-feedfacecafebeef-000001.ndjson.zst';

function facts(over: Partial<IndexFacts> = {}): IndexFacts {
  return {
    records: 3,
    untimed: 1,
    minTime: '2024-05-01T11:59:58.123456789',
    maxTime: '2024-05-01T12:00:59.456000000',
    fields: { 'talos-service': ['machined'], host: null, source: [] },
    ...over,
  };
}

/** A store in memory: objects by key, and index keys (by a part of them) whose close fails. */
class MemoryStore implements ObjectStore {
  readonly objects = new Map<string, { bytes: Buffer; meta: ObjectMeta }>();
  readonly failing = new Set<string>();
  open(key: string, meta: ObjectMeta): ObjectUpload {
    const chunks: Uint8Array[] = [];
    const ee = new EventEmitter();
    return {
      write: (c) => {
        chunks.push(c);
        return true;
      },
      once: (e, fn) => void ee.once(e, fn),
      close: async () => {
        if ([...this.failing].some((f) => key.includes(f) && isIndexKey(key))) throw new Error(`refused ${key}`);
        this.objects.set(key, { bytes: Buffer.concat(chunks), meta });
      },
      abort: async () => {},
    };
  }
  async check(): Promise<void> {}
}

describe('object index format', () => {
  it('sidecar key: `_` + name + `.index.json` in the object folder; told apart from objects', () => {
    expect(indexKeyOf(KEY)).toBe('talos/2024/05/01/_12:00:00-feedfacecafebeef-000001.ndjson.zst.index.json');
    expect(indexKeyOf('a.ndjson')).toBe('_a.ndjson.index.json');
    expect(isIndexKey(indexKeyOf(KEY))).toBe(true);
    expect(isIndexKey(KEY)).toBe(false);
  });

  it('round-trips; anything damaged, of another version or of another object is no index', () => {
    const bytes = encodeIndex(KEY, facts());
    expect(decodeIndex(KEY, bytes)).toEqual(facts());
    const doc = JSON.parse(Buffer.from(bytes).toString()) as Record<string, unknown>;
    const bad = (d: unknown): IndexFacts | null => decodeIndex(KEY, Buffer.from(JSON.stringify(d)));
    expect(bad({ ...doc, sluice_index: 2 })).toBeNull();
    expect(decodeIndex(KEY.replace('000001', '000002'), bytes)).toBeNull();
    expect(bad({ ...doc, min_time: '2024-05-01T12:00:00Z' })).toBeNull();
    expect(bad({ ...doc, min_time: doc['max_time'], max_time: doc['min_time'] })).toBeNull();
    expect(bad({ ...doc, untimed_records: 4 })).toBeNull();
    expect(bad({ ...doc, min_time: null, max_time: null })).toBeNull(); // timed records need a range
    expect(bad({ ...doc, fields: { host: [1] } })).toBeNull();
    expect(bad({ ...doc, records: '3' })).toBeNull();
    expect(decodeIndex(KEY, bytes.subarray(0, 40))).toBeNull();
    expect(decodeIndex(KEY, Buffer.from('null'))).toBeNull();
  });

  it('merging: sums, the wider range, set unions up to 64, and many stays many', () => {
    const a = facts({ fields: { 'talos-service': ['a'], host: ['h1'], source: [] } });
    mergeFacts(
      a,
      facts({
        records: 2,
        untimed: 0,
        minTime: '2024-05-01T11:00:00.000000000',
        maxTime: '2024-05-01T11:30:00.000000000',
        fields: { 'talos-service': ['b', 'a'], host: null, source: [] },
      }),
    );
    expect(a).toEqual({
      records: 5,
      untimed: 1,
      minTime: '2024-05-01T11:00:00.000000000',
      maxTime: '2024-05-01T12:00:59.456000000',
      fields: { 'talos-service': ['a', 'b'], host: null, source: [] },
    });
    const big = facts({ fields: { host: Array.from({ length: 64 }, (_, i) => `h${i}`) } });
    mergeFacts(big, facts({ fields: { host: ['h0', 'new'] } }));
    expect(big.fields['host']).toBeNull();
  });

  it('frames as the workers send them: values sorted into one text; a frame with the fields of the one before adds counts and times only', () => {
    const f = toFrameFacts(facts({ fields: { 'talos-service': ['kubelet', 'etcd'], host: null, source: [] } }));
    expect(f.fields).toBe('{"talos-service":["etcd","kubelet"],"host":null,"source":[]}');
    expect(
      toFrameFacts(facts({ fields: { 'talos-service': ['etcd', 'kubelet'], host: null, source: [] } })).fields,
    ).toBe(f.fields);
    const a = facts({ fields: { 'talos-service': ['etcd', 'kubelet'], host: ['h'], source: [] } });
    mergeFrameFacts(a, { ...f, records: 7, untimed: 2, minTime: '2024-05-01T09:00:00.000000000' }, true);
    expect(a).toEqual({
      records: 10,
      untimed: 3,
      minTime: '2024-05-01T09:00:00.000000000',
      maxTime: '2024-05-01T12:00:59.456000000',
      fields: { 'talos-service': ['etcd', 'kubelet'], host: ['h'], source: [] },
    });
    mergeFrameFacts(a, f, false); // host many in this frame: many in the object
    expect(a.fields['host']).toBeNull();
  });
});

describe('the object writer stores an index after each object', () => {
  it('the frames facts merged; an object with a frame without facts gets none; a failing index never fails its object', async () => {
    const store = new MemoryStore();
    const w = new ObjectWriter({
      sinkId: 's',
      store,
      keyPrefix: 'p/',
      codec: 'none',
      uploadPeriodSecs: 3600,
      maxObjectBytes: 1e9,
      uniqueId: 'feedfacecafebeef',
    });
    const indexed: string[] = [];
    const failed: string[] = [];
    w.on('index', (e) => indexed.push(e.key));
    w.on('error-index', (e) => failed.push(e.key));
    // As the workers send them (toFrameFacts): the fields as one JSON text.
    const frame = (f?: IndexFacts) => ({
      bytes: Buffer.from('{}\n'),
      records: 1,
      rawBytes: 3,
      ...(f === undefined ? {} : { facts: toFrameFacts(f) }),
    });
    w.write(frame(facts({ records: 1, untimed: 0, fields: { 'talos-service': ['a'], host: ['h'], source: [] } })));
    w.write(
      frame(
        facts({
          records: 1,
          untimed: 1,
          minTime: '2024-05-01T10:00:00.000000000',
          fields: { 'talos-service': ['b'], host: ['h'], source: [] },
        }),
      ),
    );
    w.rotate();
    w.write(frame(facts()));
    w.write(frame()); // no facts: no index
    w.rotate();
    store.failing.add('000002');
    w.write(frame(facts()));
    await w.close();
    const keys = [...store.objects.keys()].sort();
    expect(keys.filter((k) => !isIndexKey(k)).length).toBe(3);
    expect(keys.filter(isIndexKey)).toEqual([indexKeyOf(indexed[0]!)]);
    expect(failed.length).toBe(1);
    expect(w.stats.objectsCompleted).toBe(3);
    const first = store.objects.get(indexKeyOf(indexed[0]!))!;
    expect(first.meta.contentType).toBe('application/json');
    expect(decodeIndex(indexed[0]!, first.bytes)).toEqual({
      records: 2,
      untimed: 1,
      minTime: '2024-05-01T10:00:00.000000000',
      maxTime: '2024-05-01T12:00:59.456000000',
      fields: { 'talos-service': ['a', 'b'], host: ['h'], source: [] },
    });
  });
});
