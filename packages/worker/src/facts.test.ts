import { describe, expect, it } from 'vitest';
import { FactsScanner, indexFieldsFor, MAX_FIELD_VALUES, parsedRecordTime } from './facts.ts';
import { mulberry32 } from './fixture.ts';

const FIELDS = indexFieldsFor(['__host']);

/** The oracle: every record parsed, the facts computed from the objects (what the reader sees). */
function oracle(lines: string[]): { records: number; untimed: number; minTime: string | null; maxTime: string | null; fields: Record<string, Set<string> | null> } {
  const sets: Record<string, Set<string> | null> = {};
  for (const f of FIELDS) sets[f] = new Set();
  let untimed = 0;
  let minTime: string | null = null;
  let maxTime: string | null = null;
  for (const line of lines) {
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      untimed++;
      continue;
    }
    const t = parsedRecordTime(rec);
    if (t === undefined) untimed++;
    else {
      if (minTime === null || t < minTime) minTime = t;
      if (maxTime === null || t > maxTime) maxTime = t;
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) continue;
    for (const f of FIELDS) {
      if (!Object.hasOwn(rec, f)) continue;
      const v = (rec as Record<string, unknown>)[f];
      const text = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' || v === null ? JSON.stringify(v) : undefined;
      if (text === undefined) continue;
      const set = sets[f];
      if (set === null || set === undefined) continue;
      if (!set.has(text) && set.size >= MAX_FIELD_VALUES) sets[f] = null;
      else set.add(text);
    }
  }
  return { records: lines.length, untimed, minTime, maxTime, fields: sets };
}

/** Facts must equal the oracle on times and counts, and hold every text it has (a nested key may add more). */
function check(lines: string[]): void {
  const got = new FactsScanner(FIELDS).scan(Buffer.from(lines.map((l) => `${l}\n`).join('')));
  const want = oracle(lines);
  expect({ records: got.records, untimed: got.untimed, minTime: got.minTime, maxTime: got.maxTime }).toEqual({ records: want.records, untimed: want.untimed, minTime: want.minTime, maxTime: want.maxTime });
  for (const f of FIELDS) {
    const w = want.fields[f];
    const g = got.fields[f];
    if (w === null) {
      expect(g, f).toBeNull();
      continue;
    }
    if (g === null) continue; // many: never rules anything out
    for (const text of w!) expect(g, `${f} has ${text}`).toContain(text);
  }
}

const TRICKY = [
  '{"msg":"a","talos-level":"info","talos-service":"machined","talos-time":"2024-04-22T12:34:56.123456789Z","host":"10.0.0.1"}',
  '{"msg":"map[a:b] {x}","talos-service":"etcd","talos-time":"2024-04-22T12:30:00Z"}',
  '{"nested":{"talos-time":"2030-01-01T00:00:00Z","host":"inner"},"msg":"no top-level time"}',
  '{"nested":{"talos-time":"2030-01-01T00:00:00Z"},"talos-time":"2024-04-22T10:00:00.5Z"}',
  '{"talos-time":"2031-01-01T00:00:00Z","talos-time":"2024-04-22T09:00:00Z"}',
  '{"talos-time":"2024-04-22T12:00:00+02:00","talos-service":"kubelet"}',
  '{"talos-time":"2024-04-22t08:00:00z"}',
  '{"talos-time":"2024-13-22T08:00:00Z"}',
  '{"talos-time":"not a time","event":{"a":1},"time":1714000000.25}',
  '{"time":1714000001,"host":"hec-1","source":"tailscale","event":"x"}',
  '{"event":{"time":5},"time":"1714000002.5","source":"s"}',
  '{"time":1714000003,"host":"no-event"}',
  '{"t\\u0061los-time":"2022-01-01T00:00:00Z","h\\u006fst":"escaped"}',
  '{"msg":"say \\"host\\": \\"fake\\"","host":"real"}',
  '{"host":200,"source":2e2,"talos-level":true,"talos-service":null}',
  '{"host":{"name":"obj"},"source":["arr"]}',
  '{ "host" : "spaced" , "talos-time" : "2024-04-22T07:00:00Z" }',
  '{"host":"caf\u00e9 \u2603","msg":"\u00fc"}',
  '{"host":"a\\"b","source":"c\\\\"}',
  '{"__host":"10.9.9.9","talos-time":"2024-04-22T12:34:56.1Z"}',
  '{"msg":"' + 'x'.repeat(500) + '","talos-time":"2024-04-22T06:00:00Z"}',
  '{"a\\"talos-time":"2035-01-01T00:00:00Z"}',
  '{"k":"\\\\","talos-time":"2024-04-22T05:00:00Z"}',
  '{}',
];

describe('FactsScanner: the facts the reader would compute', () => {
  it('each tricky line alone, and all together', () => {
    for (const line of TRICKY) check([line]);
    check(TRICKY);
  });

  it('random mixes of lines (seeded), with a host set going past the cap', () => {
    const rand = mulberry32(5);
    for (let round = 0; round < 50; round++) {
      const lines: string[] = [];
      const n = 1 + Math.floor(rand() * 120);
      for (let i = 0; i < n; i++) {
        const pick = rand();
        if (pick < 0.3) lines.push(TRICKY[Math.floor(rand() * TRICKY.length)]!);
        else lines.push(JSON.stringify({ msg: `m ${i} [${rand()}]`, 'talos-level': ['info', 'warn'][i % 2], 'talos-service': 'svc', 'talos-time': new Date(1.7e12 + rand() * 1e9).toISOString(), host: `h${Math.floor(rand() * (round % 2 === 0 ? 5 : 100))}` }));
      }
      check(lines);
    }
  });

  it('a field past 64 distinct texts is many (null)', () => {
    const lines = Array.from({ length: 70 }, (_, i) => JSON.stringify({ host: `h${i}`, 'talos-service': 'one' }));
    const f = new FactsScanner(FIELDS).scan(Buffer.from(lines.join('\n') + '\n'));
    expect(f.fields['host']).toBeNull();
    expect(f.fields['talos-service']).toEqual(['one']);
    expect(f.untimed).toBe(70);
  });

  it('a host key the byte pass cannot find (not ASCII, needs an escape) is many, never an empty set', () => {
    const f = new FactsScanner(['hôst', 'a"b', 'host']).scan(Buffer.from('{"hôst":"x","a\\"b":"y","host":"z"}\n'));
    expect(f.fields).toEqual({ 'hôst': null, 'a"b': null, host: ['z'] });
  });
});
