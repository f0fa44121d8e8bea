import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  decodeHecBody,
  decodeHecBodyUsing,
  loadNativeHecScan,
  type HecDecodeOptions,
  type HecDecodeResult,
} from './hec-decode.ts';
import { mulberry32, TalosLineGenerator } from '@sluice/testkit';
import { BatchProcessor, compileTagPlan } from './process.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const base: HecDecodeOptions = {
  endpoint: 'event',
  gzip: false,
  maxDecodedBytes: 1 << 20,
  maxRecordBytes: 1 << 16,
  maxDepth: 128,
  rawFields: '',
};

function decode(body: string | Uint8Array, opts: Partial<HecDecodeOptions> = {}): HecDecodeResult {
  return decodeHecBody(typeof body === 'string' ? enc.encode(body) : body, { ...base, ...opts });
}

function records(result: HecDecodeResult): string[] {
  if (!result.ok) throw new Error(`rejected: ${result.rejection} at ${result.index}: ${result.detail}`);
  const out: string[] = [];
  for (let i = 0; i < result.records; i++)
    out.push(dec.decode(result.data.subarray(result.spans[2 * i]!, result.spans[2 * i + 1]!)));
  return out;
}

function rejection(result: HecDecodeResult): [string, number] {
  if (result.ok) throw new Error('accepted');
  return [result.rejection, result.index];
}

describe('decodeHecBody: event endpoints', () => {
  it('splits stacked envelopes, keeping each one exactly as sent', () => {
    const a =
      '{"time":1732270000.123,"host":"n1","source":"s","sourcetype":"st","index":"main","event":{"action":"UPDATE","n":1.50},"fields":{"k":"v"}}';
    const b = '{ "event" : "a \\"quoted\\" } { string" }';
    const c = '{"event":{"nested":[{"x":"]"}]}}';
    expect(records(decode(`${a}${b}\n\r\t ${c}\n`))).toEqual([a, b, c]);
  });

  it('reads a JSON array of envelopes, and arrays mixed with stacked envelopes', () => {
    expect(records(decode('[{"event":1}, {"event":"two"} ]'))).toEqual(['{"event":1}', '{"event":"two"}']);
    expect(records(decode('[] {"event":1}[{"event":2}]\n[ ]'))).toEqual(['{"event":1}', '{"event":2}']);
  });

  it('skips a UTF-8 BOM at the start and keeps multi-byte text', () => {
    expect(records(decode('\uFEFF{"event":"héllo ✓ 🙂"}'))).toEqual(['{"event":"héllo ✓ 🙂"}']);
  });

  it('gunzips, multi-member streams included', () => {
    const body = Buffer.concat([gzipSync('{"event":"a"}\n'), gzipSync('{"event":"b"}')]);
    expect(records(decode(body, { gzip: true }))).toEqual(['{"event":"a"}', '{"event":"b"}']);
  });

  it('answers no_data for an empty or blank body, and an empty array', () => {
    expect(rejection(decode(''))).toEqual(['no_data', 0]);
    expect(rejection(decode(' \n\t'))).toEqual(['no_data', 0]);
    expect(rejection(decode('[]'))).toEqual(['no_data', 0]);
  });

  it('rejects the whole body at the first bad envelope, with its zero-based index', () => {
    const ok = '{"event":"ok"}';
    expect(rejection(decode(`${ok}${ok}{"event":"x",}`))).toEqual(['invalid_event', 2]);
    expect(rejection(decode(`${ok}{"event":"unterminated`))).toEqual(['invalid_event', 1]);
    expect(rejection(decode(`${ok}"a string"`))).toEqual(['invalid_event', 1]);
    expect(rejection(decode(`${ok}, ${ok}`))).toEqual(['invalid_event', 1]);
    expect(rejection(decode(`[${ok},${ok},]`))).toEqual(['invalid_event', 2]);
    expect(rejection(decode(`[${ok} ${ok}]`))).toEqual(['invalid_event', 1]);
    expect(rejection(decode(`[${ok},[${ok}]]`))).toEqual(['invalid_event', 1]);
    expect(rejection(decode(`${ok}{"event":1]`))).toEqual(['invalid_event', 1]);
  });

  it('requires event, not null and not blank', () => {
    expect(rejection(decode('{"event":1}{"time":1}'))).toEqual(['event_missing', 1]);
    expect(rejection(decode('{"event":null}'))).toEqual(['event_blank', 0]);
    expect(rejection(decode('{"event":1}{"event":""}'))).toEqual(['event_blank', 1]);
    expect(rejection(decode('{"event":" \\n "}'))).toEqual(['event_blank', 0]);
    expect(records(decode('{"event":{}}{"event":0}{"event":false}'))).toHaveLength(3);
  });

  it('rejects what the worker would: ill-formed UTF-8 and nesting deeper than maxDepth', () => {
    const bad = Buffer.concat([enc.encode('{"event":"ok"}{"event":"'), Buffer.from([0xc0, 0xaf]), enc.encode('"}')]);
    expect(rejection(decode(bad))).toEqual(['invalid_event', 1]);
    const deep = (d: number) => `{"event":${'['.repeat(d - 1)}${']'.repeat(d - 1)}}`;
    expect(records(decode(deep(4), { maxDepth: 4 }))).toHaveLength(1);
    expect(rejection(decode(deep(5), { maxDepth: 4 }))).toEqual(['invalid_event', 0]);
  });

  it('every envelope it accepts, the worker accepts as a record', () => {
    const body = '{"event":{"a":[1,2,{"b":"c"}]},\n  "time": 1.5}\n{"event":"x","fields":{"f":"1"}}';
    const result = decode(body);
    if (!result.ok) throw new Error('rejected');
    const ring: number[] = [];
    for (let i = 0; i < result.records; i++) {
      const rec = result.data.subarray(result.spans[2 * i]!, result.spans[2 * i + 1]!);
      const payload = [0, ...rec];
      ring.push(payload.length & 255, (payload.length >> 8) & 255, 0, 0, ...payload);
      while (ring.length % 4 !== 0) ring.push(0);
    }
    const out = new BatchProcessor().process(
      new Uint8Array(ring),
      ring.length,
      compileTagPlan({ cluster: 'c' }, null),
      'h',
      false,
    );
    expect(out.counts.accepted).toBe(2);
    expect(dec.decode(out.ndjson)).toBe(
      '{"event":{"a":[1,2,{"b":"c"}]},   "time": 1.5,"cluster":"c"}\n{"event":"x","fields":{"f":"1"},"cluster":"c"}\n',
    );
  });

  it('rejects an envelope larger than maxRecordBytes as oversize', () => {
    expect(rejection(decode(`{"event":"a"}{"event":"${'x'.repeat(100)}"}`, { maxRecordBytes: 50 }))).toEqual([
      'oversize',
      1,
    ]);
  });

  it('stops gunzip at maxDecodedBytes (a gzip bomb), and reports a broken gzip stream', () => {
    const bomb = gzipSync(Buffer.alloc(16 << 20, 0x20));
    expect(bomb.length).toBeLessThan(20_000);
    expect(rejection(decode(bomb, { gzip: true, maxDecodedBytes: 1 << 20 }))).toEqual(['body_too_large', 0]);
    expect(rejection(decode(Buffer.from('not gzip at all'), { gzip: true }))).toEqual(['invalid_encoding', 0]);
    const truncated = gzipSync('{"event":"a"}'.repeat(100)).subarray(0, 30);
    expect(rejection(decode(truncated, { gzip: true }))).toEqual(['invalid_encoding', 0]);
  });
});

describe('decodeHecBody: raw endpoint', () => {
  it('wraps each non-blank line as {"event": line} plus the request fields, skipping blank lines', () => {
    const result = decode('first line\r\n\n   \nsecond "quoted" \\ line\ttab\nlast without newline', {
      endpoint: 'raw',
      rawFields: ',"host":"h1","sourcetype":"st"',
    });
    expect(records(result)).toEqual([
      '{"event":"first line","host":"h1","sourcetype":"st"}',
      '{"event":"second \\"quoted\\" \\\\ line\\ttab","host":"h1","sourcetype":"st"}',
      '{"event":"last without newline","host":"h1","sourcetype":"st"}',
    ]);
    expect(result.ok && result.emptyLines).toBe(2);
    for (const r of records(result)) expect(() => JSON.parse(r)).not.toThrow();
  });

  it('keeps a line that is JSON as a string, and control characters escaped', () => {
    expect(records(decode('{"a":1}\n\u0001x', { endpoint: 'raw' }))).toEqual([
      '{"event":"{\\"a\\":1}"}',
      '{"event":"\\u0001x"}',
    ]);
  });

  it('answers no_data when every line is blank; oversize with the line index', () => {
    expect(rejection(decode('\n\r\n  \n', { endpoint: 'raw' }))).toEqual(['no_data', 0]);
    expect(rejection(decode(`a\n\n${'b'.repeat(100)}\n`, { endpoint: 'raw', maxRecordBytes: 64 }))).toEqual([
      'oversize',
      1,
    ]);
  });

  it('grows its output for lines that escape to six times their size', () => {
    const body = '\u0001'.repeat(50_000);
    const [rec] = records(decode(body, { endpoint: 'raw', maxRecordBytes: 1 << 20 }));
    expect(JSON.parse(rec!)).toEqual({ event: body });
  });
});

describe('decodeHecBody: the native and TypeScript envelope scanners', () => {
  const native = loadNativeHecScan();
  const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
  it('loads the native scanner (npm ci builds it)', (ctx) => {
    if (!native.ok && !CI) ctx.skip();
    expect(native).toMatchObject({ ok: true });
  });

  /** The three paths on one body: the same answer (`detail` may name a failure differently). */
  const same = (bytes: Uint8Array, opts: HecDecodeOptions): HecDecodeResult => {
    const want = decodeHecBodyUsing('exact', bytes, opts);
    for (const got of [decodeHecBody(bytes, opts), decodeHecBodyUsing('scanner', bytes, opts)]) {
      const what = Buffer.from(bytes).toString('latin1');
      if (!got.ok && !want.ok)
        expect([got.rejection, got.index, got.seen], what).toEqual([want.rejection, want.index, want.seen]);
      else
        expect(got.ok ? { ...got, data: [...got.data] } : got, what).toEqual(
          want.ok ? { ...want, data: [...want.data] } : want,
        );
    }
    return want;
  };

  const SEEDS = [
    '{"event":"x"}',
    '{"event":{"a":[1,2,{"b":"c"}]},\n  "time": 1.5}',
    '{"event":"x","fields":{"f":"1"}}',
    '{"time":1,"event":0}',
    '{"event":false}',
    '{"event":[]}',
    '{"event":null}',
    '{"event":""}',
    '{"event":"   "}',
    '{"event":" \\t\\n "}',
    '{"event":"\\u0020"}',
    '{"event":"\\u00a0\\u2028\\ufeff"}',
    '{"event":"\u00a0 \u3000"}',
    '{"event":" \u00e9"}',
    '{"event":"x","event":""}',
    '{"event":"","event":"x"}',
    '{"\\u0065vent":"x"}',
    '{"\\u0065vent":" "}',
    '{"events":"x","even":"y"}',
    '{"a":{"event":"nested is not the event"}}',
    '{"n":-0.5e+10,"m":0,"o":1E-3,"t":true,"f":false,"event":1}',
    '{"s":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\\ud800","event":"déjà vu 日志 😀"}',
    '{"__proto__":{"event":1}}',
    '{"__proto__":{"x":1},"event":"y"}',
  ];

  it('answers as the exact path on every seed, alone, stacked and in arrays', () => {
    for (const seed of SEEDS) {
      for (const body of [seed, `${seed}\n${seed}`, `[${seed}, ${seed}]`, `{"event":"ok"} ${seed}`]) {
        same(enc.encode(body), base);
      }
    }
    for (const body of [
      '',
      '  \n',
      '[]',
      '[ ] {"event":1}',
      '\uFEFF{"event":1}',
      '{"event":1}]',
      '[{"event":1}',
      '{"event":1},{"event":2}',
      '[{"event":1}][{"event":2}]',
    ]) {
      same(enc.encode(body), base);
    }
    const deep = (d: number) => `{"event":1,"x":${'['.repeat(d - 1)}${']'.repeat(d - 1)}}`;
    for (const maxDepth of [1, 2, 1023, 1024, 1025, Infinity])
      for (const d of [1, 2, 1024, 1025, 1030]) same(enc.encode(deep(d)), { ...base, maxDepth });
  });

  it('answers as the exact path on 20,000 random mutations of bodies of several envelopes', () => {
    const rand = mulberry32(20261207);
    const gen = new TalosLineGenerator(5);
    const pool = SEEDS.map((s) => [...enc.encode(s)]);
    for (let id = 0; id < 30; id++) pool.push([...enc.encode(`{"event":${gen.service()}}`)]);
    const INTERESTING = [
      ...enc.encode('{}[]",:\\/ \t\r\n-+.0123456789eEtrufalsnv'),
      0x00,
      0x1f,
      0x7f,
      0x80,
      0xbf,
      0xc0,
      0xc2,
      0xe0,
      0xed,
      0xf0,
      0xf4,
      0xf5,
      0xff,
      0xa0,
    ];
    const pick = () =>
      rand() < 0.7 ? INTERESTING[Math.floor(rand() * INTERESTING.length)]! : Math.floor(rand() * 256);
    let accepted = 0;
    let rejected = 0;
    for (let n = 0; n < 20_000; n++) {
      const parts: number[] = [];
      const envelopes = 1 + Math.floor(rand() * 3);
      for (let k = 0; k < envelopes; k++) parts.push(...pool[Math.floor(rand() * pool.length)]!, 0x0a);
      const edits = Math.floor(rand() * 3);
      for (let k = 0; k < edits && parts.length > 0; k++) {
        const at = Math.floor(rand() * (parts.length + 1));
        const op = rand();
        if (op < 0.35) parts.splice(at, 0, pick());
        else if (op < 0.65) parts.splice(Math.min(at, parts.length - 1), 1);
        else if (op < 0.95) parts[Math.min(at, parts.length - 1)] = pick();
        else parts.length = at;
      }
      const bytes = Uint8Array.from(parts);
      const opts = {
        ...base,
        maxDepth: rand() < 0.2 ? 2 : 128,
        maxRecordBytes: rand() < 0.1 ? 40 : base.maxRecordBytes,
      };
      if (same(bytes, opts).ok) accepted++;
      else rejected++;
    }
    expect(accepted).toBeGreaterThan(2000);
    expect(rejected).toBeGreaterThan(2000);
  });
});
