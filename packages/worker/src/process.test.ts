import { describe, expect, it } from 'vitest';
import {
  BatchProcessor,
  DEFAULT_MAX_DEPTH,
  MALFORMED_REASONS,
  compileTagPlan,
  countLines,
  type MalformedReason,
} from './process.ts';
import { mulberry32, TalosLineGenerator } from '@sluice/testkit';
import { buildBatch, encodeBlock, encodePayload, recordSpan, talosBatch } from './fixture.ts';
import { recordSpan as ringRecordSpan } from '@sluice/ring';
import { loadNativeBatch } from './batch-native.ts';

const td = new TextDecoder();
const b = (...xs: Array<number | string>): Uint8Array => {
  const parts: number[] = [];
  for (const x of xs) {
    if (typeof x === 'number') parts.push(x);
    else for (const c of new TextEncoder().encode(x)) parts.push(c);
  }
  return Uint8Array.from(parts);
};
const lines = (buf: Uint8Array): string[] => {
  const s = td.decode(buf);
  expect(s === '' || s.endsWith('\n')).toBe(true);
  return s === '' ? [] : s.slice(0, -1).split('\n');
};

const NO_TAGS = compileTagPlan({}, null);

interface Case {
  name: string;
  line: Uint8Array | string;
  reason: MalformedReason;
}

const D = 8; // maxDepth for the corpus run
const nest = (n: number, open: string, close: string, inner = ''): string => open.repeat(n) + inner + close.repeat(n);

// One entry per distinct way a line can be malformed, with the reason it must be counted under.
const CORPUS: Case[] = [
  // empty
  { name: 'empty line', line: '', reason: 'empty' },
  { name: 'spaces only', line: '    ', reason: 'empty' },
  { name: 'CRLF only', line: '\r\n', reason: 'empty' },
  { name: 'tab only', line: '\t', reason: 'empty' },
  { name: 'BOM only', line: b(0xef, 0xbb, 0xbf), reason: 'empty' },
  // not_object
  { name: 'empty array', line: '[]', reason: 'not_object' },
  { name: 'array of objects', line: '[{"msg":"a"}]', reason: 'not_object' },
  { name: 'bare string', line: '"msg"', reason: 'not_object' },
  { name: 'bare integer', line: '123', reason: 'not_object' },
  { name: 'bare float', line: '-1.5e3', reason: 'not_object' },
  { name: 'true', line: 'true', reason: 'not_object' },
  { name: 'false', line: 'false', reason: 'not_object' },
  { name: 'null with whitespace', line: '  null  ', reason: 'not_object' },
  // invalid_json: truncation
  { name: 'lone open brace', line: '{', reason: 'invalid_json' },
  { name: 'truncated after key', line: '{"msg"', reason: 'invalid_json' },
  { name: 'truncated after colon', line: '{"msg":', reason: 'invalid_json' },
  { name: 'truncated value string', line: '{"msg":"hel', reason: 'invalid_json' },
  { name: 'truncated before brace', line: '{"msg":"hello"', reason: 'invalid_json' },
  { name: 'truncated nested', line: '{"a":{"b":[1,2', reason: 'invalid_json' },
  { name: 'unterminated string before brace', line: '{"msg":"abc}', reason: 'invalid_json' },
  { name: 'escaped closing quote', line: '{"msg":"abc\\"}', reason: 'invalid_json' },
  // invalid_json: trailing garbage
  { name: 'trailing letter', line: '{"a":1}x', reason: 'invalid_json' },
  { name: 'two objects', line: '{"a":1}{"b":2}', reason: 'invalid_json' },
  { name: 'two objects with newline (UDP)', line: '{"a":1}\n{"b":2}', reason: 'invalid_json' },
  { name: 'extra closing brace', line: '{"a":1}}', reason: 'invalid_json' },
  { name: 'trailing NUL', line: b('{"a":1}', 0), reason: 'invalid_json' },
  { name: 'lone closing brace', line: '}', reason: 'invalid_json' },
  // invalid_json: syntax
  { name: 'trailing comma', line: '{"a":1,}', reason: 'invalid_json' },
  { name: 'single quotes', line: "{'a':1}", reason: 'invalid_json' },
  { name: 'unquoted key', line: '{a:1}', reason: 'invalid_json' },
  { name: 'numeric key', line: '{1:2}', reason: 'invalid_json' },
  { name: 'missing colon', line: '{"a" 1}', reason: 'invalid_json' },
  { name: 'double colon', line: '{"a"::1}', reason: 'invalid_json' },
  { name: 'missing comma', line: '{"a":1 "b":2}', reason: 'invalid_json' },
  { name: 'unescaped quote', line: '{"a":"b"c"}', reason: 'invalid_json' },
  { name: 'mismatched bracket', line: '{"a":[1}', reason: 'invalid_json' },
  { name: 'mismatched brace', line: '{"a":1]}', reason: 'invalid_json' },
  { name: 'object as key', line: '{{}}', reason: 'invalid_json' },
  { name: 'comment', line: '{"a":1 /* c */}', reason: 'invalid_json' },
  // invalid_json: escapes and control characters
  { name: 'bad escape \\x', line: '{"a":"\\x41"}', reason: 'invalid_json' },
  { name: 'bad escape \\a', line: '{"a":"\\a"}', reason: 'invalid_json' },
  { name: 'bad unicode escape digit', line: '{"a":"\\u12G4"}', reason: 'invalid_json' },
  { name: 'short unicode escape', line: '{"a":"\\u12"}', reason: 'invalid_json' },
  { name: 'raw tab in string', line: '{"a":"x\ty"}', reason: 'invalid_json' },
  { name: 'raw LF in string', line: '{"a":"x\ny"}', reason: 'invalid_json' },
  { name: 'raw 0x1f in string', line: b('{"a":"x', 0x1f, 'y"}'), reason: 'invalid_json' },
  { name: 'NUL in string', line: b('{"a":"x', 0, 'y"}'), reason: 'invalid_json' },
  { name: 'NUL between tokens', line: b('{', 0, '"a":1}'), reason: 'invalid_json' },
  // invalid_json: numbers and literals
  { name: 'leading zero', line: '{"a":01}', reason: 'invalid_json' },
  { name: 'NaN', line: '{"a":NaN}', reason: 'invalid_json' },
  { name: 'Infinity', line: '{"a":Infinity}', reason: 'invalid_json' },
  { name: 'leading dot', line: '{"a":.5}', reason: 'invalid_json' },
  { name: 'trailing dot', line: '{"a":1.}', reason: 'invalid_json' },
  { name: 'plus sign', line: '{"a":+1}', reason: 'invalid_json' },
  { name: 'hex number', line: '{"a":0x10}', reason: 'invalid_json' },
  { name: 'exponent without digits', line: '{"a":1e}', reason: 'invalid_json' },
  { name: 'lone minus', line: '{"a":-}', reason: 'invalid_json' },
  { name: 'undefined', line: '{"a":undefined}', reason: 'invalid_json' },
  { name: 'capitalized True', line: '{"a":True}', reason: 'invalid_json' },
  { name: 'truncated literal', line: '{"a":tru}', reason: 'invalid_json' },
  // invalid_json: whitespace JSON does not allow, BOM placement
  { name: 'NBSP as whitespace', line: '\u00a0{"a":1}', reason: 'invalid_json' },
  { name: 'form feed as whitespace', line: '\f{"a":1}', reason: 'invalid_json' },
  { name: 'vertical tab as whitespace', line: '{"a":1}\v', reason: 'invalid_json' },
  { name: 'BOM after whitespace', line: b(0x20, 0xef, 0xbb, 0xbf, '{}'), reason: 'invalid_json' },
  { name: 'double BOM', line: b(0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, '{}'), reason: 'invalid_json' },
  { name: 'BOM inside object', line: b('{', 0xef, 0xbb, 0xbf, '"a":1}'), reason: 'invalid_json' },
  // invalid_utf8
  { name: 'lone continuation byte', line: b('{"a":"', 0x80, '"}'), reason: 'invalid_utf8' },
  { name: 'overlong 2-byte slash', line: b('{"a":"', 0xc0, 0xaf, '"}'), reason: 'invalid_utf8' },
  { name: 'overlong 2-byte C1', line: b('{"a":"', 0xc1, 0xbf, '"}'), reason: 'invalid_utf8' },
  { name: 'overlong 3-byte', line: b('{"a":"', 0xe0, 0x80, 0xaf, '"}'), reason: 'invalid_utf8' },
  { name: 'overlong 4-byte', line: b('{"a":"', 0xf0, 0x80, 0x80, 0xaf, '"}'), reason: 'invalid_utf8' },
  { name: 'overlong quote (smuggling)', line: b('{"a":"', 0xc0, 0xa2, '}'), reason: 'invalid_utf8' },
  { name: 'encoded high surrogate', line: b('{"a":"', 0xed, 0xa0, 0x80, '"}'), reason: 'invalid_utf8' },
  { name: 'encoded low surrogate', line: b('{"a":"', 0xed, 0xbf, 0xbf, '"}'), reason: 'invalid_utf8' },
  {
    name: 'CESU-8 surrogate pair',
    line: b('{"a":"', 0xed, 0xa0, 0xbd, 0xed, 0xb2, 0xa9, '"}'),
    reason: 'invalid_utf8',
  },
  { name: 'above U+10FFFF', line: b('{"a":"', 0xf4, 0x90, 0x80, 0x80, '"}'), reason: 'invalid_utf8' },
  { name: 'F5 lead byte', line: b('{"a":"', 0xf5, 0x80, 0x80, 0x80, '"}'), reason: 'invalid_utf8' },
  { name: 'FF byte', line: b('{"a":"', 0xff, '"}'), reason: 'invalid_utf8' },
  { name: 'truncated 2-byte', line: b('{"a":"', 0xc3, '"}'), reason: 'invalid_utf8' },
  { name: 'truncated 3-byte', line: b('{"a":"', 0xe2, 0x82, '"}'), reason: 'invalid_utf8' },
  { name: 'truncated 4-byte at line end', line: b('{"a":"x"}', 0xf0, 0x9f, 0x98), reason: 'invalid_utf8' },
  { name: 'latin-1 e-acute', line: b('{"a":"caf', 0xe9, '"}'), reason: 'invalid_utf8' },
  { name: 'invalid byte in key', line: b('{"k', 0xfe, '":1}'), reason: 'invalid_utf8' },
  { name: 'invalid byte between tokens', line: b('{"a":1,', 0x80, '"b":2}'), reason: 'invalid_utf8' },
  { name: 'UTF-16LE with BOM', line: b(0xff, 0xfe, '{', 0, '}', 0), reason: 'invalid_utf8' },
  { name: 'half a BOM', line: b(0xef, 0xbb, '{}'), reason: 'invalid_utf8' },
  // too_deep (maxDepth = D for this run; the top-level object is depth 1)
  { name: 'objects nested D+1', line: nest(D, '{"a":', '}', '{}'), reason: 'too_deep' },
  { name: 'arrays nested D+1', line: `{"a":${nest(D, '[', ']')}}`, reason: 'too_deep' },
  { name: 'mixed nesting D+1', line: `{"a":[{"b":[{"c":[{"d":[{}]}]}]}]}`, reason: 'too_deep' },
];

const VALID_AROUND = [
  '{"msg":"before","talos-level":"info","talos-service":"machined","talos-time":"2024-04-22T12:34:56Z"}',
  '{"clock":6252819,"facility":"user","msg":"[talos] task\\n","priority":"warning","seq":711,"talos-level":"warn","talos-time":"2021-11-26T16:53:21.3258698Z"}',
];

describe('compileTagPlan', () => {
  it('pre-serializes tags with JSON escaping and drops an extra tag shadowed by host_key', () => {
    const plan = compileTagPlan({ cluster: 'prod', 'q"k': 'v\\"\n\u2028', host: 'shadowed' }, 'host');
    expect(plan.keys).toEqual(['cluster', 'q"k']);
    expect(plan.tagBytes.toString()).toBe('"cluster":"prod","q\\"k":"v\\\\\\"\\n\u2028"');
    expect(plan.tagHostBytes.toString()).toBe('"cluster":"prod","q\\"k":"v\\\\\\"\\n\u2028","host":"');
    expect(plan.injectKeyBytes.map(String)).toEqual(['"cluster"', '"q\\"k"', '"host"']);
    expect(compileTagPlan({}, 'h').tagHostBytes.toString()).toBe('"h":"');
    expect(compileTagPlan({}, null).tagHostBytes.length).toBe(0);
  });
  it('rejects non-string tag values', () => {
    expect(() => compileTagPlan({ n: 1 as unknown as string }, null)).toThrow(TypeError);
  });
});

describe('fixture', () => {
  it('lays records out like @sluice/ring', () => {
    for (let n = 0; n < 20; n++) expect(recordSpan(n)).toBe(ringRecordSpan(n));
    const batch = buildBatch([encodePayload('p', 'ab')]);
    expect([...batch]).toEqual([4, 0, 0, 0, 1, 0x70, 0x61, 0x62]);
  });
});

const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const nativeLoad = loadNativeBatch();
/**
 * Every BatchProcessor test runs against both implementations. The native one runs whenever the
 * addon loads, and under CI always: a missing addon then fails every test (native: 'on' throws)
 * instead of skipping them. Elsewhere, without a build, it is skipped with the reason in its title.
 */
const IMPLS: Array<{ native: 'off' | 'on'; skip: boolean; title: string }> = [
  { native: 'off', skip: false, title: 'TypeScript path (native: off)' },
  {
    native: 'on',
    skip: !nativeLoad.ok && !CI,
    title:
      nativeLoad.ok || CI
        ? 'native path (native: on)'
        : `native path (native: on) SKIPPED, addon not built: ${nativeLoad.reason}`,
  },
];
if (!nativeLoad.ok && !CI) console.warn(`process.test.ts: native variant skipped: ${nativeLoad.reason}`);

for (const { native, skip, title } of IMPLS) {
  describe.skipIf(skip)(title, () => {
    /** A processor of this variant; asserts the variant is the one running. */
    const mk = (opts: { maxDepth?: number } = {}): BatchProcessor => {
      const p = new BatchProcessor({ ...opts, native });
      expect(p.implementation).toBe(native === 'on' ? 'native' : 'js');
      return p;
    };

    describe('BatchProcessor: malformed corpus', () => {
      it(`has at least 50 distinct cases (${CORPUS.length})`, () => {
        expect(CORPUS.length).toBeGreaterThanOrEqual(50);
        expect(new Set(CORPUS.map((c) => c.name)).size).toBe(CORPUS.length);
        expect(new Set(CORPUS.map((c) => Buffer.from(c.line).toString('hex'))).size).toBe(CORPUS.length);
      });

      it.each(CORPUS)('$name -> $reason, neighbours emitted exactly', ({ line, reason }) => {
        const p = mk({ maxDepth: D });
        const batch = buildBatch(
          [
            encodePayload('10.0.0.7', VALID_AROUND[0]!),
            encodePayload('10.0.0.7', line),
            encodePayload('10.0.0.7', VALID_AROUND[1]!),
          ],
          0xff,
        );
        const r = p.process(batch, batch.length, NO_TAGS, 'talos', true);
        expect(lines(r.ndjson)).toEqual(VALID_AROUND);
        const expected = Object.fromEntries(MALFORMED_REASONS.map((k) => [k, k === reason ? 1 : 0]));
        expect(r.counts.malformed).toEqual(expected);
        expect(r.counts.records).toBe(3);
        expect(r.counts.accepted).toBe(2);
        expect(r.counts.kinds).toEqual({ service: 1, kernel: 1, other: 0 });
        const dl = lines(r.deadLetter!).map((l) => JSON.parse(l));
        expect(dl).toHaveLength(1);
        const raw = typeof line === 'string' ? Buffer.from(line) : Buffer.from(line);
        expect(dl[0].reason).toBe(reason);
        expect(dl[0].component_id).toBe('talos');
        expect(dl[0].peer).toBe('10.0.0.7');
        if (reason === 'invalid_utf8') {
          expect(dl[0].raw).toBeUndefined();
          expect(Buffer.from(dl[0].raw_base64, 'base64').equals(raw)).toBe(true);
        } else {
          expect(dl[0].raw_base64).toBeUndefined();
          expect(Buffer.from(dl[0].raw, 'utf8').equals(raw)).toBe(true);
        }
      });

      it('counts the whole corpus in one batch, every valid record in between emitted in order', () => {
        const p = mk({ maxDepth: D });
        const payloads: Uint8Array[] = [];
        const want: string[] = [];
        CORPUS.forEach((c, i) => {
          const ok = `{"i":${i},"msg":"ok"}`;
          payloads.push(encodePayload('', ok), encodePayload('', c.line));
          want.push(ok);
        });
        const batch = buildBatch(payloads);
        const r = p.process(batch, batch.length, NO_TAGS, 'talos', false);
        expect(r.deadLetter).toBeNull();
        expect(lines(r.ndjson)).toEqual(want);
        const byReason = Object.fromEntries(
          MALFORMED_REASONS.map((k) => [k, CORPUS.filter((c) => c.reason === k).length]),
        );
        expect(r.counts.malformed).toEqual(byReason);
        expect(r.counts.records).toBe(2 * CORPUS.length);
        expect(r.counts.accepted).toBe(CORPUS.length);
        expect(r.counts.kinds.other).toBe(CORPUS.length);
        expect(r.counts.outputBytes).toBe(r.ndjson.length);
      });
    });

    describe('BatchProcessor: valid edge cases', () => {
      const VALID: Array<[string, string | Uint8Array]> = [
        ['empty object', '{}'],
        ['empty object with inner space', '{ \t }'],
        ['whitespace around', ' \t{"a":1} \r\n'],
        ['huge integer', '{"n":123456789012345678901234567890}'],
        ['huge exponent', '{"n":1e400,"m":-1e-400}'],
        ['duplicate keys', '{"a":1,"a":2}'],
        ['raw U+2028 and U+2029', '{"a":"x\u2028y\u2029z"}'],
        ['escaped lone surrogate', '{"a":"\\ud800"}'],
        ['DEL character', '{"a":"\u007f"}'],
        ['literal U+FFFD', '{"a":"\uFFFD"}'],
        ['4-byte UTF-8', '{"a":"\u{1F600}","\u{1F511}":1}'],
        ['all escapes', '{"a":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041"}'],
        ['key __proto__', '{"__proto__":{"x":1}}'],
        ['braces in strings', '{"a":"{{{{{{{{{{[[[[[[[[[[[","b":"}}}"}'],
        [`nesting exactly ${DEFAULT_MAX_DEPTH}`, nest(DEFAULT_MAX_DEPTH - 1, '{"a":', '}', '{}')],
      ];
      it.each(VALID)('%s is accepted unchanged (modulo outer whitespace)', (_n, line) => {
        const p = mk({});
        const batch = buildBatch([encodePayload('', line)]);
        const r = p.process(batch, batch.length, NO_TAGS, 's', true);
        const text = typeof line === 'string' ? line : td.decode(line);
        expect(r.counts.accepted).toBe(1);
        expect(lines(r.ndjson)).toEqual([text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '')]);
        expect(r.deadLetter!.length).toBe(0);
      });

      it('strips a leading UTF-8 BOM', () => {
        const p = mk({});
        const batch = buildBatch([encodePayload('', b(0xef, 0xbb, 0xbf, '{"a":1}'))]);
        const r = p.process(batch, batch.length, compileTagPlan({ t: 'v' }, null), 's', false);
        expect(td.decode(r.ndjson)).toBe('{"a":1,"t":"v"}\n');
      });

      it('rejects nesting of DEFAULT_MAX_DEPTH + 1 by default, and maxDepth: Infinity accepts it', () => {
        const deep = nest(DEFAULT_MAX_DEPTH, '{"a":', '}', '{}');
        const batch = buildBatch([encodePayload('', deep)]);
        expect(mk().process(batch, batch.length, NO_TAGS, 's', false).counts.malformed.too_deep).toBe(1);
        const r = mk({ maxDepth: Infinity }).process(batch, batch.length, NO_TAGS, 's', false);
        expect(r.counts.accepted).toBe(1);
      });

      it('never throws on absurd nesting with maxDepth: Infinity, even when a tag collides', () => {
        const deep = `{"t":1,"a":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
        const batch = buildBatch([encodePayload('', deep), encodePayload('', '{"ok":1}')]);
        const r = mk({ maxDepth: Infinity }).process(batch, batch.length, compileTagPlan({ t: 'x' }, null), 's', false);
        expect(r.counts.accepted).toBe(2);
        expect(lines(r.ndjson)).toEqual([deep.replace('"t":1,', '').replace(/}$/, ',"t":"x"}'), '{"ok":1,"t":"x"}']);
      });
    });

    describe('BatchProcessor: invalid frames', () => {
      it('zero-length payload and peerLen beyond the payload', () => {
        const p = mk();
        const overflow = Uint8Array.from([20, 0x31, 0x32, 0x7b, 0x7d]);
        const batch = buildBatch([
          new Uint8Array(0),
          encodePayload('', '{"a":1}'),
          overflow,
          encodePayload('', '{"b":2}'),
        ]);
        const r = p.process(batch, batch.length, NO_TAGS, 'src', true);
        expect(lines(r.ndjson)).toEqual(['{"a":1}', '{"b":2}']);
        expect(r.counts.malformed.invalid_frame).toBe(2);
        expect(r.counts.records).toBe(4);
        const dl = lines(r.deadLetter!).map((l) => JSON.parse(l));
        expect(dl).toEqual([
          { reason: 'invalid_frame', component_id: 'src', peer: null, raw: '' },
          { reason: 'invalid_frame', component_id: 'src', peer: null, raw: '\u001412{}' },
        ]);
      });

      it('a length header past the span end, or a partial header, ends the batch', () => {
        const p = mk();
        const good = buildBatch([encodePayload('', '{"a":1}')]);
        const bad = new Uint8Array(good.length + 8);
        bad.set(good);
        new DataView(bad.buffer).setUint32(good.length, 1000, true);
        let r = p.process(bad, bad.length, NO_TAGS, 's', true);
        expect(lines(r.ndjson)).toEqual(['{"a":1}']);
        expect(r.counts.malformed.invalid_frame).toBe(1);
        expect(r.counts.records).toBe(2);
        r = p.process(bad, good.length + 2, NO_TAGS, 's', false);
        expect(lines(r.ndjson)).toEqual(['{"a":1}']);
        expect(r.counts.malformed.invalid_frame).toBe(1);
      });

      it('respects length: bytes past it are never read', () => {
        const p = mk();
        const batch = buildBatch([encodePayload('', '{"a":1}'), encodePayload('', '{"b":2}')]);
        const r = p.process(batch, recordSpan(1 + 7), NO_TAGS, 's', false);
        expect(lines(r.ndjson)).toEqual(['{"a":1}']);
        expect(r.counts.records).toBe(1);
      });
    });

    describe('BatchProcessor: tag splicing', () => {
      const TAG_CASES: Array<[string, string]> = [
        [
          'talos service',
          '{"msg":"hi","talos-level":"info","talos-service":"etcd","talos-time":"2024-04-22T12:34:56.1Z"}',
        ],
        ['empty object', '{}'],
        ['empty object with whitespace', '{  \t }'],
        ['whitespace before closing brace', '{"a":1 \t }'],
        ['whitespace everywhere', '  {  "a" : [ 1 , 2 ] ,  "b" : { }  }  '],
        ['unicode keys and values', '{"ключ":"значение","\u{1F600}":"\u00e9\u2028"}'],
        ['nested object last', '{"a":{"b":{}}}'],
        ['string ending in brace', '{"a":"}"}'],
        ['duplicate keys', '{"a":1,"a":2}'],
      ];
      const tags = { cluster: 'prod-eu', 'node.name': 'talos-cp-1', 'q"k\\': 'v"\\\n\t\u0001\u2028\u{1F600}', ü: 'ß' };

      it.each(TAG_CASES)('%s: output parses to record + tags + host', (_n, line) => {
        const p = mk();
        const plan = compileTagPlan(tags, 'host');
        const batch = buildBatch([encodePayload('fd00::1', line)]);
        const r = p.process(batch, batch.length, plan, 's', false);
        const out = lines(r.ndjson);
        expect(out).toHaveLength(1);
        expect(JSON.parse(out[0]!)).toEqual({ ...JSON.parse(line), ...tags, host: 'fd00::1' });
      });

      it('splices bytes without re-serializing (exact output)', () => {
        const p = mk();
        const plan = compileTagPlan({ cluster: 'prod' }, 'host');
        const batch = buildBatch([
          encodePayload('10.0.0.7', '{"n":1.0,"big":12345678901234567890, "s":"\\u0041" }'),
          encodePayload('10.0.0.7', '{}'),
          encodePayload('', '{ }'),
        ]);
        const r = p.process(batch, batch.length, plan, 's', false);
        expect(lines(r.ndjson)).toEqual([
          '{"n":1.0,"big":12345678901234567890, "s":"\\u0041" ,"cluster":"prod","host":"10.0.0.7"}',
          '{"cluster":"prod","host":"10.0.0.7"}',
          '{ "cluster":"prod"}', // no peer: host_key is not set
        ]);
      });

      it('only host_key, no extra tags', () => {
        const p = mk();
        const batch = buildBatch([encodePayload('10.0.0.7', '{"a":1}'), encodePayload('10.0.0.8', '{}')]);
        const r = p.process(batch, batch.length, compileTagPlan({}, 'peer_addr'), 's', false);
        expect(lines(r.ndjson)).toEqual(['{"a":1,"peer_addr":"10.0.0.7"}', '{"peer_addr":"10.0.0.8"}']);
      });

      it('tags overwrite colliding keys; host_key overwrites both the record and an extra tag', () => {
        const p = mk();
        const plan = compileTagPlan({ msg: 'tagged', cluster: 'prod', host: 'from-tags' }, 'host');
        const line = '{"big":12345678901234567890,"cluster":"old","f":1.0,"host":"sender","msg":"orig","n":[1e400,-0]}';
        const batch = buildBatch([encodePayload('10.0.0.7', line), encodePayload('10.0.0.8', '{"x":1}')]);
        const r = p.process(batch, batch.length, plan, 's', false);
        const [first, second] = lines(r.ndjson);
        // Colliding members are cut, tags appended: every kept byte and number text is the sender's.
        expect(first).toBe(
          '{"big":12345678901234567890,"f":1.0,"n":[1e400,-0],"msg":"tagged","cluster":"prod","host":"10.0.0.7"}',
        );
        expect(JSON.parse(second!)).toEqual({ x: 1, msg: 'tagged', cluster: 'prod', host: '10.0.0.8' });
        expect(r.counts.accepted).toBe(2);
      });

      it.each([
        ['first member', '{"cluster":"old","a":1}', '{"a":1,"cluster":"prod"}'],
        ['last member', '{"a":1,"cluster":"old"}', '{"a":1,"cluster":"prod"}'],
        ['only member', '{"cluster":"old"}', '{"cluster":"prod"}'],
        ['only member, spaced', '{ "cluster" : "old" }', '{"cluster":"prod"}'],
        ['duplicate colliding keys', '{"cluster":1,"a":2,"cluster":3}', '{"a":2,"cluster":"prod"}'],
        [
          'key spelled with an escape',
          '{"\\u0063luster":"old","b":"\\u0063luster"}',
          '{"b":"\\u0063luster","cluster":"prod"}',
        ],
        ['object value', '{"cluster":{"x":[1,{"y":"}]"}]},"a":[{}]}', '{"a":[{}],"cluster":"prod"}'],
        ['array value', '{"a":"x","cluster":[[],["]",","]],"b":null}', '{"a":"x","b":null,"cluster":"prod"}'],
        [
          'escaped quotes and backslashes',
          '{"s":"a\\\\","cluster":"q\\"\\\\","t":"\\""}',
          '{"s":"a\\\\","t":"\\"","cluster":"prod"}',
        ],
        [
          'lookalike text in a string',
          '{"m":"\\",\\"cluster\\":1","cluster":true}',
          '{"m":"\\",\\"cluster\\":1","cluster":"prod"}',
        ],
        [
          'nested key of the same name stays',
          '{"cluster":-1.5e+3,"n":{"cluster":"inner"}}',
          '{"n":{"cluster":"inner"},"cluster":"prod"}',
        ],
        [
          'numbers keep their text',
          '{"big":12345678901234567890,"f":1.0,"cluster":0,"e":1E+2}',
          '{"big":12345678901234567890,"f":1.0,"e":1E+2,"cluster":"prod"}',
        ],
        ['multi-line UDP record', '{\n "a" : [1,\r\n 2],\n "cluster": "old"\n}', '{"a" : [1,   2],"cluster":"prod"}'],
      ])('collision path cuts the member out of the original bytes: %s', (_n, line, want) => {
        const p = mk();
        const batch = buildBatch([encodePayload('', line)]);
        const r = p.process(batch, batch.length, compileTagPlan({ cluster: 'prod' }, null), 's', false);
        expect(lines(r.ndjson)).toEqual([want]);
        expect(JSON.parse(want)).toEqual({ ...JSON.parse(line), cluster: 'prod' });
      });

      it('collision path, randomized: output parses to record + tags', () => {
        const rand = mulberry32(7);
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
        const keys = ['cluster', 'host', 'msg', 'a', 'talos-time', 'node', 'x"y', 'ü'];
        const long = (n: number, tail: string) => JSON.stringify('y'.repeat(n) + tail);
        const scalars = [
          '1',
          '-0.5e-7',
          '12345678901234567890',
          'true',
          'null',
          '"s"',
          '"a\\\\"',
          '"}],{["',
          '"\\u00fc"',
          '""',
          // Long strings: past the 32-byte byte loop, escaped quotes and backslash runs around the boundary.
          long(29, '"x'),
          long(30, '\\"'),
          long(31, '\\'),
          long(32, '\\\\"'),
          long(33, '"'),
          long(80, '","cluster":"'),
          long(200, '\\"\\\\'),
        ];
        const ws = ['', ' ', '\t', '\n', '\r\n  '];
        const value = (d: number): string => {
          const r = rand();
          if (d > 2 || r < 0.6) return pick(scalars);
          if (r < 0.8)
            return `[${pick(ws)}${Array.from({ length: Math.floor(rand() * 3) }, () => value(d + 1)).join(`${pick(ws)},`)}]`;
          return `{${Array.from({ length: Math.floor(rand() * 3) }, () => `${JSON.stringify(pick(keys))}${pick(ws)}:${value(d + 1)}`).join(',')}}`;
        };
        const p = mk();
        const plan = compileTagPlan({ cluster: 'prod', msg: 'tagged', 'x"y': 'q' }, 'host');
        const payloads: Uint8Array[] = [];
        const want: unknown[] = [];
        for (let n = 0; n < 2000; n++) {
          const members = Array.from(
            { length: Math.floor(rand() * 6) },
            () => `${pick(ws)}${JSON.stringify(pick(keys))}${pick(ws)}:${pick(ws)}${value(0)}${pick(ws)}`,
          );
          const line = `${pick(ws)}{${members.join(',')}${pick(ws)}}${pick(ws)}`;
          const peer = rand() < 0.8 ? '10.1.2.3' : '';
          payloads.push(encodePayload(peer, line));
          want.push({
            ...JSON.parse(line),
            cluster: 'prod',
            msg: 'tagged',
            'x"y': 'q',
            ...(peer ? { host: peer } : {}),
          });
        }
        const batch = buildBatch(payloads);
        const r = p.process(batch, batch.length, plan, 's', false);
        expect(r.counts.accepted).toBe(2000);
        const out = lines(r.ndjson);
        expect(out).toHaveLength(2000);
        for (let i = 0; i < out.length; i++) expect(JSON.parse(out[i]!)).toEqual(want[i]);
      });

      it('a colliding host_key with no extra tags', () => {
        const p = mk();
        const batch = buildBatch([encodePayload('10.0.0.7', '{"host":"node-a","a":1}')]);
        const r = p.process(batch, batch.length, compileTagPlan({}, 'host'), 's', false);
        expect(JSON.parse(lines(r.ndjson)[0]!)).toEqual({ host: '10.0.0.7', a: 1 });
      });

      it('tag keys that name Object.prototype members, including __proto__', () => {
        const p = mk();
        // JSON.parse makes "__proto__" an own key, as a config loader would.
        const plan = compileTagPlan(JSON.parse('{"__proto__":"p","toString":"t"}'), null);
        expect(plan.keys).toEqual(['__proto__', 'toString']);
        const batch = buildBatch([
          encodePayload('', '{"a":1}'),
          encodePayload('', '{"__proto__":"orig","toString":"x"}'),
        ]);
        const r = p.process(batch, batch.length, plan, 's', false);
        const out = lines(r.ndjson).map((l) => JSON.parse(l));
        expect(out).toHaveLength(2);
        for (const o of out) {
          expect(Object.hasOwn(o, '__proto__')).toBe(true);
          // biome-ignore lint/suspicious/noProto: the test is that a `__proto__` key stays plain data.
          expect(o['__proto__']).toBe('p');
          expect(o.toString).toBe('t');
        }
        expect(out[0].a).toBe(1);
      });

      it('re-serializes nothing but still emits one line for a multi-line UDP record', () => {
        const p = mk();
        const line = '{\n  "msg": "a b",\r\n  "n": 1.50,\n  "o": {\n  }\n}\n';
        const batch = buildBatch([encodePayload('10.0.0.7', line), encodePayload('', '{\n}')]);
        const r = p.process(batch, batch.length, compileTagPlan({ t: 'v' }, 'host'), 's', false);
        const out = lines(r.ndjson);
        expect(out).toEqual(['{   "msg": "a b",    "n": 1.50,   "o": {   } ,"t":"v","host":"10.0.0.7"}', '{ "t":"v"}']);
        expect(JSON.parse(out[0]!)).toEqual({ msg: 'a b', n: 1.5, o: {}, t: 'v', host: '10.0.0.7' });
      });

      it('CR/LF search across a batch: only records holding them are rewritten, header bytes 0x0A/0x0D are ignored', () => {
        const p = mk();
        const payloads: Uint8Array[] = [];
        const want: string[] = [];
        for (let i = 0; i < 300; i++) {
          // Payload lengths 10, 13, 266, 269, ... put 0x0A / 0x0D bytes into length headers.
          const pad = 'x'.repeat([1, 4, 257, 260][i % 4]!);
          const multi = i % 5 === 0;
          const line = multi ? `{"p":"${pad.slice(0, -4)}",\r\n"i":${i % 10}}` : `{"p":"${pad}"}`;
          payloads.push(encodePayload('', line));
          want.push(multi ? line.replace('\r\n', '  ') : line);
        }
        expect(payloads.some((pl) => pl.length === 10 || pl.length === 13)).toBe(true);
        const batch = buildBatch(payloads, 0x0a);
        const r = p.process(batch, batch.length, NO_TAGS, 's', false);
        expect(lines(r.ndjson)).toEqual(want);
      });

      it('a peer that is not JSON-safe is escaped, never emitted raw', () => {
        const p = mk();
        const batch = buildBatch([encodePayload('a"b\\c', '{"x":1}')]);
        const r = p.process(batch, batch.length, compileTagPlan({}, 'host'), 's', false);
        expect(JSON.parse(lines(r.ndjson)[0]!)).toEqual({ x: 1, host: 'a"b\\c' });
      });
    });

    describe('BatchProcessor: batches', () => {
      it('realistic Talos batch larger than the initial buffer, processor reused, kinds counted', () => {
        const p = mk();
        const plan = compileTagPlan({ cluster: 'prod', region: 'eu-west-1' }, 'host');
        const gen = new TalosLineGenerator(42);
        for (const size of [1 << 20, 4096, 300_000]) {
          const { payloads, lines: src } = talosBatch(gen, '10.0.0.7', size);
          const batch = buildBatch(payloads);
          const r = p.process(batch, batch.length, plan, 'talos', true);
          const out = lines(r.ndjson);
          expect(out).toHaveLength(src.length);
          let kernel = 0;
          let service = 0;
          for (let i = 0; i < src.length; i++) {
            const want = JSON.parse(src[i]!);
            if ('talos-service' in want) service++;
            else kernel++;
            expect(JSON.parse(out[i]!)).toEqual({ ...want, cluster: 'prod', region: 'eu-west-1', host: '10.0.0.7' });
          }
          expect(r.counts).toMatchObject({
            records: src.length,
            accepted: src.length,
            kinds: { service, kernel, other: 0 },
          });
          expect(r.counts.inputBytes).toBe(src.reduce((n, l) => n + Buffer.byteLength(l), 0));
          expect(r.deadLetter!.length).toBe(0);
          expect(kernel).toBeGreaterThan(0);
        }
      });

      it('dead-letter envelopes escape the source id and peer, and accept plain Uint8Array input', () => {
        const p = mk();
        const batch = buildBatch([encodePayload('fd00::1', 'not json "quoted"'), encodePayload('', b(0xff, 0x00))]);
        const plain = new Uint8Array(batch.length + 16);
        plain.set(batch, 8);
        const r = p.process(plain.subarray(8), batch.length, NO_TAGS, 'tcp "talos"', true);
        expect(r.ndjson.length).toBe(0);
        expect(lines(r.deadLetter!)).toEqual([
          '{"reason":"invalid_json","component_id":"tcp \\"talos\\"","peer":"fd00::1","raw":"not json \\"quoted\\""}',
          '{"reason":"invalid_utf8","component_id":"tcp \\"talos\\"","peer":null,"raw_base64":"/wA="}',
        ]);
      });

      it('an empty span', () => {
        const r = mk().process(new Uint8Array(0), 0, NO_TAGS, 's', true);
        expect(r.ndjson.length).toBe(0);
        expect(r.deadLetter!.length).toBe(0);
        expect(r.counts.records).toBe(0);
      });
    });

    describe('BatchProcessor: block records (TCP)', () => {
      const hasLF = (l: Uint8Array | string): boolean => (typeof l === 'string' ? l.includes('\n') : l.includes(0x0a));
      const endsCR = (l: Uint8Array | string): boolean =>
        typeof l === 'string' ? l.endsWith('\r') : l.at(-1) === 0x0d;
      const plan = compileTagPlan({ cluster: 'c1', node: 'n"7' }, 'host');

      /** Everything a batch produces, for comparing two layouts of the same lines. */
      const outcome = (p: BatchProcessor, batch: Uint8Array) => {
        const r = p.process(batch, batch.length, plan, 'tcp-in', true);
        return { ndjson: td.decode(r.ndjson), deadLetter: td.decode(r.deadLetter!), counts: r.counts };
      };

      it.each(['\n', '\r\n'])(
        'the malformed corpus in one block (ending %j) comes out exactly as one record per line',
        (ending) => {
          // A block line never holds a '\n'; with '\n' endings a line's own trailing '\r' would be taken as the ending.
          const corpus = CORPUS.map((c) => c.line).filter((l) => !hasLF(l) && (ending === '\r\n' || !endsCR(l)));
          expect(corpus.length).toBeGreaterThan(60);
          const mixed: (Uint8Array | string)[] = [];
          corpus.forEach((l, i) => {
            mixed.push(`{"i":${i}}`, l);
          });
          const p = mk({ maxDepth: D });
          const single = outcome(p, buildBatch(mixed.map((l) => encodePayload('10.1.2.3', l))));
          const block = outcome(p, buildBatch([encodeBlock('10.1.2.3', mixed, ending)], 0xff));
          expect(block).toEqual(single);
          expect(block.counts.records).toBe(mixed.length);
          expect(block.counts.accepted).toBe(corpus.length); // the {"i":…} lines
          expect(Object.values(block.counts.malformed).reduce((a, n) => a + n, 0)).toBe(corpus.length);
        },
      );

      it('realistic Talos lines in blocks of random sizes among single records: same output, lines counted', () => {
        const rand = mulberry32(20261123);
        const gen = new TalosLineGenerator(99);
        const { payloads } = talosBatch(gen, 'fd00::7', 512 * 1024);
        const texts = payloads.map((pl) => pl.subarray(1 + pl[0]!));
        const blocks: Uint8Array[] = [];
        for (let i = 0; i < texts.length; ) {
          const n = rand() < 0.2 ? 0 : 1 + Math.floor(rand() * 300);
          if (n === 0) blocks.push(encodePayload('fd00::7', texts[i++]!));
          else {
            blocks.push(encodeBlock('fd00::7', texts.slice(i, i + n)));
            i += n;
          }
        }
        const p = mk();
        const single = outcome(p, buildBatch(texts.map((t) => encodePayload('fd00::7', t))));
        const mixed = outcome(p, buildBatch(blocks));
        expect(mixed).toEqual(single);
        expect(mixed.counts.records).toBe(texts.length);
        expect(mixed.counts.accepted).toBe(texts.length);
        expect(mixed.counts.kinds.service + mixed.counts.kinds.kernel).toBe(texts.length);
        expect(blocks.length).toBeLessThan(texts.length / 10);
      });

      it('countLines says what counts.records says, invalid frames and blocks included', () => {
        const payloads = [
          encodeBlock('10.0.0.1', ['{"a":1}', 'x', '{}']),
          new Uint8Array(0),
          encodePayload('', '{"b":2}'),
          Uint8Array.from([20, 0x31]),
          encodeBlock('', ['{"c":3}', '{"d":4}']).subarray(0, -1),
        ];
        const batch = buildBatch(payloads);
        const r = mk().process(batch, batch.length, NO_TAGS, 's', false);
        expect(r.counts.records).toBe(8);
        expect(countLines(batch, batch.length)).toBe(8);
        expect(countLines(batch, batch.length - 3)).toBe(
          mk().process(batch, batch.length - 3, NO_TAGS, 's', false).counts.records,
        );
      });

      it('a block without host tags, an empty line inside it, and a block missing its last newline', () => {
        const p = mk();
        const noHost = compileTagPlan({ t: 'x' }, null);
        const body = encodeBlock('', ['{"a":1}', '', '{"b":2}']);
        const cut = encodeBlock('', ['{"c":3}', '{"d":4}']).subarray(0, -1); // no final '\n'
        const batch = buildBatch([body, cut]);
        const r = p.process(batch, batch.length, noHost, 's', true);
        expect(lines(r.ndjson)).toEqual(['{"a":1,"t":"x"}', '{"b":2,"t":"x"}', '{"c":3,"t":"x"}', '{"d":4,"t":"x"}']);
        expect(r.counts.records).toBe(5);
        expect(r.counts.malformed.empty).toBe(1);
        expect(lines(r.deadLetter!).map((l) => JSON.parse(l))).toEqual([
          { reason: 'empty', component_id: 's', peer: null, raw: '' },
        ]);
      });
    });
  });
}
