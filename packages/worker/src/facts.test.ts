import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BatchFacts, FactsScanner, indexFieldsFor, MAX_FIELD_VALUES, parsedRecordTime } from './facts.ts';
import { mulberry32 } from '@sluice/testkit';
import { buildBatch, encodeBlock, encodePayload } from './fixture.ts';
import { BatchProcessor, compileTagPlan, type TagPlan } from './process.ts';
import { BATCH_BUILDS, useBatchBuild, type BatchBuild } from './test-batch-builds.ts';

const CI = process.env['CI'] === 'true';
const FIELDS = indexFieldsFor(['__host', 'region']);

/** The oracle: every record parsed, the facts computed from the objects (what the reader sees). */
function oracle(lines: string[]): {
  records: number;
  untimed: number;
  minTime: string | null;
  maxTime: string | null;
  fields: Record<string, Set<string> | null>;
} {
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
      const text =
        typeof v === 'string'
          ? v
          : typeof v === 'number' || typeof v === 'boolean' || v === null
            ? JSON.stringify(v)
            : undefined;
      if (text === undefined) continue;
      const set = sets[f];
      if (set === null || set === undefined) continue;
      if (!set.has(text) && set.size >= MAX_FIELD_VALUES) sets[f] = null;
      else set.add(text);
    }
  }
  return { records: lines.length, untimed, minTime, maxTime, fields: sets };
}

type Way = 'native' | 'js';

/** Sources' shapes the facts are gathered behind: no tags, a host key (an indexed field), tags naming indexed fields. */
const PLANS = {
  plain: compileTagPlan({}, null),
  host: compileTagPlan({ cluster: 'prod' }, '__host'),
  tags: compileTagPlan({ source: 'talos-node', region: 'eu' }, '__host'),
};

/**
 * The lines through a BatchProcessor (the native scan, or TypeScript alone) with a FactsScanner, as
 * task.ts runs them: the facts of the output, and the output's lines. Half the lines go as UDP-like
 * records, half as one TCP-like block, from peers 127.0.0.2 and 127.0.0.3.
 */
function run(
  lines: readonly string[],
  way: Way,
  plan: TagPlan = PLANS.host,
  fields: readonly string[] = FIELDS,
): { facts: BatchFacts; out: string[] } {
  // Under CI the addon is built (npm ci fails otherwise): the native scan must be what runs.
  const processor = new BatchProcessor({ native: way === 'js' ? 'off' : CI ? 'on' : 'auto' });
  const half = Math.ceil(lines.length / 2);
  const payloads = [...lines.slice(0, half).map((l, i) => encodePayload(i % 2 === 0 ? '127.0.0.2' : '127.0.0.3', l))];
  if (lines.length > half) payloads.push(encodeBlock('127.0.0.3', lines.slice(half)));
  const batch = buildBatch(payloads);
  const out = processor.process(batch, batch.length, plan, 'facts-test', false, new FactsScanner(fields));
  const text = Buffer.from(out.ndjson).toString('utf8');
  return { facts: out.facts!, out: text === '' ? [] : text.slice(0, -1).split('\n') };
}

/**
 * Facts must equal the oracle's of the output on times and counts, and hold every text it has
 * (TypeScript alone takes nested keys too). `exact`: the sets must be the oracle's (lines without
 * nested or repeated indexed keys).
 */
function check(lines: string[], way: Way = 'native', exact = false, plan: TagPlan = PLANS.host): void {
  const { facts: got, out } = run(lines, way, plan);
  const want = oracle(out);
  expect({ records: got.records, untimed: got.untimed, minTime: got.minTime, maxTime: got.maxTime }).toEqual({
    records: want.records,
    untimed: want.untimed,
    minTime: want.minTime,
    maxTime: want.maxTime,
  });
  for (const f of FIELDS) {
    const w = want.fields[f];
    const g = got.fields[f];
    if (w === null) {
      expect(g, f).toBeNull();
      continue;
    }
    if (exact) {
      expect(g === null ? null : new Set(g), f).toEqual(w);
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
  `{"msg":"${'x'.repeat(500)}","talos-time":"2024-04-22T06:00:00Z"}`,
  '{"a\\"talos-time":"2035-01-01T00:00:00Z"}',
  '{"k":"\\\\","talos-time":"2024-04-22T05:00:00Z"}',
  '{}',
];

/** HEC `time` values and what they must come to (record-time.ts canonicalFromEpochSeconds). */
const EPOCHS = [
  '1714000000.123456789',
  '0.5',
  '1e9',
  '1E3',
  '-1.5',
  '-0',
  '1e20',
  '253402300799.9999999999',
  '1714000000.0000000005',
  '"1714000000.25"',
  '"01"',
  '"1."',
  '"-5"',
  '"12a"',
  'true',
  'null',
  '{"a":1}',
  '[1]',
  '"\\u0031"',
  `"${'1'.repeat(70)}"`,
];

/**
 * The native scan on each build of batch.cc (test-batch-builds.ts: the default and the portable
 * one), then TypeScript alone. A build that is not there is left out, except under CI, where
 * its cases fail.
 */
const WAYS: Array<{ title: string; way: Way; build?: BatchBuild }> = [
  ...BATCH_BUILDS.filter((b) => b.load.ok || CI).map((build) => ({
    title: `native, ${build.name}`,
    way: 'native' as const,
    build,
  })),
  { title: 'js', way: 'js' },
];

describe.each(WAYS)('FactsScanner ($title): the facts the reader would compute', ({ way, build }) => {
  let undo = (): void => {};
  beforeAll(() => {
    if (build !== undefined) undo = useBatchBuild(build);
  });
  afterAll(() => undo());

  it('each tricky line alone, and all together, behind each kind of source', () => {
    for (const plan of Object.values(PLANS)) {
      for (const line of TRICKY) check([line], way, false, plan);
      check(TRICKY, way, false, plan);
    }
  });

  it('HEC times: numbers and numeric strings as the reader reads them, others untimed', () => {
    for (const t of EPOCHS) check([`{"time":${t},"event":"e","host":"h"}`], way, true);
    check(
      EPOCHS.map((t) => `{"event":{"x":[1,{"y":"}"}]},"time":${t}}`),
      way,
      true,
    );
  });

  it('random mixes of lines (seeded), with a host set going past the cap', () => {
    const rand = mulberry32(5);
    for (let round = 0; round < 50; round++) {
      const lines: string[] = [];
      const n = 1 + Math.floor(rand() * 120);
      for (let i = 0; i < n; i++) {
        const pick = rand();
        if (pick < 0.3) lines.push(TRICKY[Math.floor(rand() * TRICKY.length)]!);
        else
          lines.push(
            JSON.stringify({
              msg: `m ${i} [${rand()}]`,
              'talos-level': ['info', 'warn'][i % 2],
              'talos-service': 'svc',
              'talos-time': new Date(1.7e12 + rand() * 1e9).toISOString(),
              host: `h${Math.floor(rand() * (round % 2 === 0 ? 5 : 100))}`,
            }),
          );
      }
      check(lines, way);
    }
  });

  it("random records without nested or repeated indexed keys: exactly the reader's sets (seeded)", () => {
    const rand = mulberry32(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    for (let round = 0; round < 60; round++) {
      const lines: string[] = [];
      for (let i = 0, n = 1 + Math.floor(rand() * 200); i < n; i++) {
        const rec: Record<string, unknown> = {
          msg: pick(['plain', 'with "quotes"', 'back\\slash', 'ünï ☃', '{"host":"x"}']),
        };
        if (rand() < 0.8)
          rec['talos-service'] = pick(['machined', 'kubelet', 'etcd', 'apid', 'ünï', 'a"b', 12, true, null]);
        if (rand() < 0.7) rec['talos-level'] = pick(['info', 'warn', 'error']);
        if (rand() < 0.5) rec['host'] = `10.0.${Math.floor(rand() * (round % 3 === 0 ? 90 : 4))}.1`;
        if (rand() < 0.3) rec['source'] = pick(['tailscale', 'k8s', 0]);
        if (rand() < 0.3) rec['__host'] = pick(['127.0.0.2', '127.0.0.3']);
        const r = rand();
        if (r < 0.6)
          rec['talos-time'] = pick([
            new Date(1.7e12 + rand() * 1e10).toISOString(),
            '2024-04-22T12:00:00.123456789123Z',
            '2024-04-22T12:00:00+01:00',
            '2024-02-30T00:00:00Z',
            'garbage',
            5,
          ]);
        else if (r < 0.85) {
          rec['event'] = pick(['e', { nested: { time: 1 } }, [1, 2]]);
          rec['time'] = pick([
            1.7e9 + rand() * 1e8,
            Math.floor(1.7e9 + rand() * 1e8),
            `${Math.floor(1.7e9 + rand() * 1e8)}.5`,
            'x',
          ]);
        }
        const keys = Object.keys(rec);
        for (let k = keys.length - 1; k > 0; k--) {
          const j = Math.floor(rand() * (k + 1));
          [keys[k], keys[j]] = [keys[j]!, keys[k]!];
        }
        lines.push(JSON.stringify(Object.fromEntries(keys.map((k) => [k, rec[k]]))));
      }
      check(lines, way, way === 'native', Object.values(PLANS)[round % 3]!);
    }
  });

  it('a batch of more uncertain lines than the C++ pass sends back is still exact', () => {
    const lines = Array.from({ length: 3000 }, (_, i) =>
      JSON.stringify({ host: i % 3, 'talos-time': `2024-04-22T12:00:${String(i % 60).padStart(2, '0')}+00:00` }),
    );
    check(lines, way, true);
  });

  it('a field past 64 distinct texts is many (null)', () => {
    const lines = Array.from({ length: 70 }, (_, i) => JSON.stringify({ host: `h${i}`, 'talos-service': 'one' }));
    const f = run(lines, way, PLANS.plain).facts;
    expect(f.fields['host']).toBeNull();
    expect(f.fields['talos-service']).toEqual(['one']);
    expect(f.untimed).toBe(70);
  });

  it('a host key the byte pass cannot find (not ASCII, needs an escape) is many, never an empty set', () => {
    const f = run(['{"hôst":"x","a\\"b":"y","host":"z"}'], way, PLANS.plain, ['hôst', 'a"b', 'host']).facts;
    expect(f.fields).toEqual({ hôst: null, 'a"b': null, host: ['z'] });
  });
});
