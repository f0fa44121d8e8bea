/**
 * The native path (native/batch.cc) against the TypeScript path (process.ts), its oracle: the
 * same NDJSON and dead-letter bytes and the same counts, on seeded random batches full of
 * malformed and odd input, and on every kind of line the addon used to hand back to JS one at
 * a time (malformed lines of each reason, escaped keys, tag collisions, peers to escape, deep
 * nesting, invalid frames), each now decided in C++ within one call per batch. The one thing
 * the addon still returns for, an output buffer to grow, is checked directly.
 *
 * Every case runs on each build of batch.cc (test-batch-builds.ts): the default one (SSE2 on
 * x86-64) and the portable one (-DBATCH_SCALAR, what aarch64 runs). Under CI=true both must be
 * there: these tests fail without them. Elsewhere a build that is not there is skipped, with the
 * reason in the suite's title.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_FLAG, encodePayload } from '@sluice/ring';
import { NATIVE_BATCH_ADDON, loadNativeBatch, packFields, packPlan, type NativeBatchAddon } from './batch-native.ts';
import {
  STATE_SLOTS,
  ST_DONE,
  ST_GROW,
  S_DL_POS,
  S_LENGTH,
  S_LINE,
  S_MAX_DEPTH,
  S_OFF,
  S_POS,
  S_F_UNCERTAIN,
  F_STRIDE,
  F_TIME_LEN,
} from './native-constants.ts';
import { type BatchFacts, FactsScanner, indexFieldsFor, parsedRecordTime } from './facts.ts';
import { mulberry32, TalosLineGenerator } from '@sluice/testkit';
import { buildBatch, encodeBlock, recordSpan, talosBatch } from './fixture.ts';
import { BATCH_BUILDS, useBatchBuild, type BatchBuild } from './test-batch-builds.ts';
import {
  BatchProcessor,
  DEFAULT_MAX_DEPTH,
  MALFORMED_REASONS,
  compileTagPlan,
  type BatchOutput,
  type MalformedReason,
  type TagPlan,
} from './process.ts';

const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
/** What BatchProcessor loads; useBatchBuild points its processRecords at each build in turn. */
const load = loadNativeBatch();
/** Each build's cases run when it loads, and under CI always (a build that does not load then fails them). */
const skipped = (b: BatchBuild): boolean => !b.load.ok && !CI;
const whyNot = (b: BatchBuild): string => (b.load.ok ? '' : b.load.reason);
const titleOf = (b: BatchBuild): string =>
  skipped(b) ? `native batch addon, ${b.name}, SKIPPED, not built: ${whyNot(b)}` : `native batch addon, ${b.name}`;
for (const b of BATCH_BUILDS) if (skipped(b)) console.warn(`batch-native.test.ts: ${b.name} skipped: ${whyNot(b)}`);

const enc = new TextEncoder();
const bytes = (x: Uint8Array | string): Uint8Array => (typeof x === 'string' ? enc.encode(x) : x);

/** A single-line payload whose peer is any bytes. */
function rawPeerPayload(peer: readonly number[], line: Uint8Array | string): Uint8Array {
  return encodePayload(Uint8Array.from(peer), line);
}

interface Outcome {
  ndjson: Buffer;
  deadLetter: Buffer | null;
  counts: BatchOutput['counts'];
}
const snapshot = (r: BatchOutput): Outcome => ({
  ndjson: Buffer.from(r.ndjson),
  deadLetter: r.deadLetter === null ? null : Buffer.from(r.deadLetter),
  counts: structuredClone(r.counts),
});

/** Equal outcomes, with the first differing line named when they are not. */
function expectSame(native: Outcome, js: Outcome, what: string): void {
  for (const key of ['ndjson', 'deadLetter'] as const) {
    const a = native[key];
    const b = js[key];
    if (a === null || b === null) {
      expect(a, `${what}: ${key}`).toBe(b);
      continue;
    }
    if (!a.equals(b)) {
      const la = a.toString('latin1').split('\n');
      const lb = b.toString('latin1').split('\n');
      let i = 0;
      while (i < la.length && la[i] === lb[i]) i++;
      expect.fail(
        `${what}: ${key} differs at line ${i}:\n native: ${JSON.stringify(la[i])}\n js:     ${JSON.stringify(lb[i])}`,
      );
    }
  }
  expect(native.counts, `${what}: counts`).toEqual(js.counts);
}

/** Counts the statuses processRecords returns while `fn` runs (the processors look the function up per call). */
const factsScanner = new FactsScanner(indexFieldsFor(['host', 'cluster']));

/**
 * The native scan's index facts of a batch against JSON.parse of its output: the same records,
 * untimed count and time range, and every top-level text of an indexed field in its set (or the
 * set is "many"): an index never hides a record.
 */
function expectFactsHold(facts: BatchFacts | undefined, ndjson: Buffer, what: string): void {
  expect(facts, what).toBeDefined();
  const lines = ndjson.toString('utf8').split('\n').slice(0, -1);
  let untimed = 0;
  const times: string[] = [];
  for (const line of lines) {
    const rec = JSON.parse(line) as Record<string, unknown>;
    const t = parsedRecordTime(rec);
    if (t === undefined) untimed++;
    else times.push(t);
    for (const f of factsScanner.fields) {
      const set = facts!.fields[f];
      if (set === null || !Object.hasOwn(rec, f)) continue;
      const v = rec[f];
      const text =
        typeof v === 'string'
          ? v
          : typeof v === 'number' || typeof v === 'boolean' || v === null
            ? JSON.stringify(v)
            : undefined;
      if (text !== undefined) expect(set, `${what}: ${f} holds ${text}`).toContain(text);
    }
  }
  times.sort();
  expect(
    { records: facts!.records, untimed: facts!.untimed, minTime: facts!.minTime, maxTime: facts!.maxTime },
    what,
  ).toEqual({ records: lines.length, untimed, minTime: times[0] ?? null, maxTime: times.at(-1) ?? null });
}

function tallyStatuses<T>(fn: () => T): { result: T; done: number; grow: number; other: number[] } {
  const addon = (load as { addon: NativeBatchAddon }).addon;
  const real = addon.processRecords;
  let done = 0;
  let grow = 0;
  const other: number[] = [];
  addon.processRecords = ((...args: unknown[]) => {
    const st = (real as (...a: unknown[]) => number)(...args);
    if (st === ST_DONE) done++;
    else if (st === ST_GROW) grow++;
    else other.push(st);
    return st;
  }) as NativeBatchAddon['processRecords'];
  try {
    return { result: fn(), done, grow, other };
  } finally {
    addon.processRecords = real;
  }
}

/** Both paths over one batch: asserts they agree, and that the native path took exactly one call (no growth: pre-grown processor). */
function both(
  batch: Uint8Array,
  plan: TagPlan,
  opts: { maxDepth?: number; length?: number; sourceId?: string; deadLetter?: boolean } = {},
): Outcome {
  const length = opts.length ?? batch.length;
  const sourceId = opts.sourceId ?? 'src';
  const deadLetter = opts.deadLetter ?? true;
  const nat = new BatchProcessor({ maxDepth: opts.maxDepth, native: 'on' });
  nat.process(batch, length, plan, sourceId, deadLetter); // grows the buffers once
  const { result, done, grow, other } = tallyStatuses(() =>
    snapshot(nat.process(batch, length, plan, sourceId, deadLetter)),
  );
  expect({ done, grow, other }).toEqual({ done: 1, grow: 0, other: [] });
  const want = snapshot(
    new BatchProcessor({ maxDepth: opts.maxDepth, native: 'off' }).process(batch, length, plan, sourceId, deadLetter),
  );
  expectSame(result, want, 'native vs TypeScript');
  return result;
}

const reasonsOf = (o: Outcome): MalformedReason[] =>
  o
    .deadLetter!.toString('utf8')
    .trimEnd()
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { reason: MalformedReason }).reason);

// ---------------------------------------------------------------- the random corpus

const nest = (n: number, inner = '{}'): string => '{"a":'.repeat(n) + inner + '}'.repeat(n);
const arrays = (n: number): string => '['.repeat(n) + ']'.repeat(n);
const INTERESTING = [
  0x00, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x2c, 0x3a, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xe0,
  0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x75, 0x30, 0x2d, 0x65,
];
/** Top-level keys that meet the plans' tag keys: plain, spelled with escapes, named like Object.prototype members. */
const KEYS = [
  'cluster',
  'host',
  'peer_addr',
  'msg',
  'node.name',
  'q"k\\',
  'ü',
  'talos-service',
  '__proto__',
  'constructor',
  'toString',
  'a\nb',
  '\ud800',
  'facility',
  'seq',
];

class Corpus {
  readonly rand: () => number;
  readonly gen: TalosLineGenerator;
  constructor(seed: number) {
    this.rand = mulberry32(seed);
    this.gen = new TalosLineGenerator(seed + 1);
  }
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  ws(): string {
    return this.pick(['', '', '', ' ', '\t', '  ', '\r\n', '\n', ' \r ']);
  }

  /** A key as a JSON string, sometimes with its characters spelled as \u escapes. */
  key(k: string): string {
    const plain = JSON.stringify(k);
    if (this.rand() < 0.6) return plain;
    let out = '"';
    for (const ch of k) {
      const c = ch.charCodeAt(0);
      if (ch.length === 1 && this.rand() < 0.5) out += `\\u${c.toString(16).padStart(4, '0')}`;
      else out += JSON.stringify(ch).slice(1, -1);
    }
    return `${out}"`;
  }

  /** A valid (or nearly valid) line of one of many shapes. */
  validish(): Uint8Array | string {
    const r = this.rand();
    if (r < 0.4) return this.gen.next();
    if (r < 0.45)
      return this.pick([
        '{}',
        '{ }',
        '{\t}',
        '{"a":1}',
        '{"":""}',
        '{"a":[]}',
        '{"a":{}}',
        ' {} ',
        '{"a" : [ 1 , { } ] }',
        '{ "a":1 }',
      ]);
    if (r < 0.5) {
      // Pretty-printed: raw CR/LF between tokens (multi-line UDP datagrams; split in blocks).
      const obj = JSON.parse(this.gen.next()) as Record<string, unknown>;
      return JSON.stringify(obj, null, this.pick([1, 2, '\t'])).replace(/\n/g, this.pick(['\n', '\r\n', '\r']));
    }
    if (r < 0.58) {
      // A key that may collide (plain or escaped, top level or nested), or two, or duplicates.
      const line = this.gen.next();
      const members = Array.from({ length: 1 + this.int(3) }, () => {
        const v = this.pick(['"old"', '1', '{"x":[1,"]"]}', 'null', '[]', '"a,\\"}"', '-0.5e+3']);
        return `${this.key(this.pick(KEYS))}${this.ws()}:${this.ws()}${v}`;
      });
      const where = this.rand();
      if (where < 0.4) return `{${members.join(',')},${line.slice(1)}`;
      if (where < 0.7) return `${line.slice(0, -1)},${this.ws()}${members.join(`${this.ws()},`)}${this.ws()}}`;
      if (where < 0.85) return `{${this.ws()}${members.join(',')}${this.ws()}}`;
      return `{"n":{${members.join(',')}},${line.slice(1)}`;
    }
    if (r < 0.62) {
      return this.pick([
        '{"\\u0063luster":"old","b":1}',
        '{"a\\n":1}',
        '{"\\"":2,"x":"y"}',
        '{"k":"\\u00fc\\ud83d\\ude00\\n\\t\\"\\\\\\/"}',
        '{"k":"\\ud800"}',
        '{"n":{"\\u0063luster":1}}',
        '{"h\\u006fst":"x"}',
        '{"\\u0074alos-service":"svc","msg":"m"}',
        '{"\\u0066acility":"kern","priority":"info","clock":1,"s\\u0065q":2}',
        '{"\\ud83d\\ude00":1,"\\u00fc":2}',
      ]);
    }
    if (r < 0.68) {
      // Nesting around the limits used: 3, 128, 1024, 1500.
      const d = this.pick([
        1,
        2,
        3,
        4,
        5,
        DEFAULT_MAX_DEPTH - 2,
        DEFAULT_MAX_DEPTH - 1,
        DEFAULT_MAX_DEPTH,
        1022,
        1023,
        1024,
        1025,
        1400,
        1600,
      ]);
      return this.rand() < 0.5 ? nest(d) : `{"a":${arrays(d)}}`;
    }
    if (r < 0.72) {
      // Too deep only until a later duplicate key replaces the deep member (JSON.parse keeps the last).
      const d = this.pick([3, 4, DEFAULT_MAX_DEPTH, DEFAULT_MAX_DEPTH + 1, 1030, 1600]);
      const k = this.pick(['"a"', '"\\u0061"', '"b"']);
      return this.pick([
        `{"a":${arrays(d)},${k}:1}`,
        `{${k}:1,"a":${arrays(d)}}`,
        `{"x":{"a":${nest(d)},${k}:[]},"y":2}`,
        `[{"a":${arrays(d)},${k}:0}]`,
        `{"a":${arrays(d)},${k}:${arrays(2)}${this.pick(['', ',"a":3'])}}`,
      ]);
    }
    if (r < 0.76) {
      // Non-ASCII: 2-, 3- and 4-byte sequences, U+2028, U+FFFD, in keys and values.
      const s = Array.from({ length: 1 + this.int(40) }, () =>
        this.pick(['a', 'é', 'ж', '€', '\u2028', '\uFFFD', '😀', ' ', '"', '\\', '\n', '\u0001', '\u007f']),
      ).join('');
      return JSON.stringify({ [s.slice(0, 5)]: s, msg: s });
    }
    if (r < 0.78) {
      // Huge: past the 16-byte SIMD loop many times, sometimes past the output buffer.
      const n = this.pick([100, 1000, 10_000, 70_000, 300_000]);
      return `{"msg":"${'x'.repeat(n)}${this.pick(['', '\\"', 'é', '\\u0041'])}","n":${n}}`;
    }
    if (r < 0.82) return `\ufeff${this.ws()}${this.gen.next()}${this.ws()}`; // BOM
    if (r < 0.86)
      return this.pick([
        '',
        ' ',
        '\t \t',
        '\r',
        '\ufeff',
        '\ufeff ',
        '[]',
        '"s"',
        '1',
        'null',
        '[{"a":1}]',
        '{"a":1}{"b":2}',
        '{"a":1} x',
        '\ufeff\ufeff{}',
        ' \ufeff{}',
        `[${arrays(2000)}]`,
      ]);
    if (r < 0.9) {
      // Numbers and literals at their edges.
      const v = this.pick([
        '0',
        '-0',
        '1.5e+10',
        '1E-2',
        '-12.50',
        '123456789012345678901234567890',
        'true',
        'false',
        'null',
        '01',
        '1.',
        '-',
        '.5',
        '1e',
        'tru',
        'nul',
        '+1',
        '-01',
        '1e+',
        '0x1',
      ]);
      return `{"v":${v}${this.ws()}}`;
    }
    if (r < 0.93) {
      // Control characters and escapes in values (dead-letter envelopes escape them as JSON.stringify does).
      const s = Buffer.from(Array.from({ length: 1 + this.int(12) }, () => this.int(0x80)));
      return Buffer.concat([Buffer.from('{"m":"'), s, Buffer.from('"}')]);
    }
    return this.gen.next();
  }

  /** Damage a line: flips, truncations, insertions, deletions (most become malformed). */
  mutate(line: Uint8Array): Uint8Array {
    const b = Buffer.from(line);
    const n = 1 + this.int(3);
    let out: Buffer = b;
    for (let k = 0; k < n; k++) {
      const op = this.int(5);
      const at = this.int(out.length + 1);
      const byte = this.rand() < 0.7 ? this.pick(INTERESTING) : this.int(256);
      if (op === 0 && out.length > 0) {
        out = Buffer.from(out);
        out[Math.min(at, out.length - 1)] = byte;
      } else if (op === 1) {
        out = out.subarray(0, at);
      } else if (op === 2) {
        out = Buffer.concat([out.subarray(0, at), Uint8Array.of(byte), out.subarray(at)]);
      } else if (op === 3 && out.length > 0) {
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
      } else {
        // An invalid or odd UTF-8 sequence.
        const seq = this.pick([
          [0xc0, 0xaf],
          [0xed, 0xa0, 0x80],
          [0xf4, 0x90, 0x80, 0x80],
          [0xe2, 0x82],
          [0xef, 0xbb, 0xbf],
          [0xc3, 0xa9],
          [0xf0, 0x9f, 0x98, 0x80],
        ]);
        out = Buffer.concat([out.subarray(0, at), Uint8Array.from(seq), out.subarray(at)]);
      }
    }
    return out;
  }

  line(): Uint8Array {
    const l = bytes(this.validish());
    return this.rand() < 0.3 ? this.mutate(l) : l;
  }

  /** Peer bytes: mostly addresses, 1 in 8 not JSON-safe (every byte class JSON.stringify escapes or re-encodes). */
  peer(): number[] {
    if (this.rand() < 0.125) {
      return this.pick([
        [...Buffer.from('a"b')],
        [...Buffer.from('a\\b')],
        [0x01, 0x78],
        [0x0a, 0x09, 0x0d, 0x08, 0x0c, 0x1f],
        [0xc3, 0xa9],
        [0x7f],
        [0xff, 0x80, 0x00],
        Array.from({ length: 127 }, (_, i) => i * 2),
      ]);
    }
    return [
      ...Buffer.from(this.pick(['10.0.0.7', '10.0.0.7', 'fd00::1', '', '', '192.168.100.200:51234', 'p'.repeat(127)])),
    ];
  }

  /** Payloads of one batch: single records, blocks, invalid frames. */
  payloads(records: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (out.length < records) {
      const r = this.rand();
      if (r < 0.65) {
        out.push(rawPeerPayload(this.peer(), this.line()));
      } else if (r < 0.95) {
        const lines = Array.from({ length: this.int(12) }, () => this.line());
        const peer = this.peer();
        const body = encodeBlock('', lines, this.pick(['\n', '\r\n'])).subarray(1);
        let block = encodePayload(Uint8Array.from(peer), body, true);
        if (this.rand() < 0.25 && block.length > 1 + peer.length) block = block.subarray(0, block.length - 1); // no final '\n'
        out.push(block);
      } else {
        // Invalid frames: zero-length payload, peerLen beyond the payload (single and block).
        out.push(
          this.pick([
            new Uint8Array(0),
            Uint8Array.of(20, 0x31, 0x32, 0x7b, 0x7d),
            Uint8Array.of(BLOCK_FLAG | 9, 0x31),
            Uint8Array.of(5),
            Uint8Array.of(3, 0xff, 0x0a),
          ]),
        );
      }
    }
    return out;
  }
}

const PLANS: Array<[string, TagPlan]> = [
  ['no tags', compileTagPlan({}, null)],
  ['tags', compileTagPlan({ cluster: 'prod-eu', 'node.name': 'talos-cp-1' }, null)],
  ['tags + host', compileTagPlan({ cluster: 'prod-eu', region: 'eu-west-1' }, 'host')],
  ['host only', compileTagPlan({}, 'peer_addr')],
  [
    'odd tags + host',
    compileTagPlan(
      {
        'q"k\\': 'v"\\\n\t\u0001\u2028\u{1F600}',
        ü: 'ß',
        msg: 'tagged',
        host: 'shadowed',
        'a\nb': 'nl',
        '\ud800': 'lone',
      },
      'host',
    ),
  ],
  ['proto keys', compileTagPlan(JSON.parse('{"__proto__":"p","talos-service":"svc"}') as Record<string, string>, null)],
  ['inherited names + host', compileTagPlan({ constructor: 'c', toString: 't', seq: 's' }, '__proto__')],
];
/** A longer run: BATCH_NATIVE_FUZZ_BATCHES=5000 BATCH_NATIVE_FUZZ_SEED=7 npx vitest run packages/worker/src/batch-native.test.ts */
const BATCHES = Number(process.env['BATCH_NATIVE_FUZZ_BATCHES'] ?? 120);
const SEED = Number(process.env['BATCH_NATIVE_FUZZ_SEED'] ?? 20261123);
const DEPTHS = [3, DEFAULT_MAX_DEPTH, Infinity, 1500, 2.5, 1024, 1];

for (const build of BATCH_BUILDS)
  describe.skipIf(skipped(build))(titleOf(build), () => {
    let undo = (): void => {};
    beforeAll(() => {
      undo = useBatchBuild(build);
    });
    afterAll(() => undo());

    it('loads from build-native/, exports processRecords, and BatchProcessor reports which path runs', () => {
      const dir = (process.env['SLUICE_WORKER_ADDON_DIR'] ?? 'packages/worker/build-native').replace(/\/$/, '');
      expect(NATIVE_BATCH_ADDON.endsWith(`${dir}/batch.node`)).toBe(true);
      expect(build.path.endsWith(`${dir}/${build === BATCH_BUILDS[0] ? 'batch' : 'batch-scalar'}.node`)).toBe(true);
      expect(load.ok, load.ok ? '' : load.reason).toBe(true);
      expect(build.load.ok, whyNot(build)).toBe(true);
      // What every BatchProcessor of this thread calls now.
      const addonOf = (l: typeof load): NativeBatchAddon => (l as { addon: NativeBatchAddon }).addon;
      expect(addonOf(load).processRecords).toBe(addonOf(build.load).processRecords);
      expect(loadNativeBatch()).toBe(load); // once per thread
      expect(new BatchProcessor({ native: 'on' }).implementation).toBe('native');
      expect(new BatchProcessor().implementation).toBe('native'); // auto
      expect(new BatchProcessor({ native: 'auto' }).implementation).toBe('native');
      expect(new BatchProcessor({ native: 'off' }).implementation).toBe('js');
      expect(() => new BatchProcessor({ native: 'yes' as never })).toThrow(RangeError);
    });

    it('processRecords rejects malformed arguments with an exception, never a crash', () => {
      const { addon } = load as { addon: NativeBatchAddon };
      const plan = packPlan(compileTagPlan({ x: 'b' }, 'host'));
      const source = bytes('"s"');
      const block = encodeBlock('p', ['{"a":1}', '{"b":2}']);
      const src = buildBatch([encodePayload('', '{"a":1}'), block]);
      const out = new Uint8Array(256);
      const dl = new Uint8Array(256);
      const state = (over: Record<number, number>): Float64Array => {
        const st = new Float64Array(STATE_SLOTS);
        st[S_LENGTH] = src.length;
        st[S_MAX_DEPTH] = 128;
        st[S_LINE] = -1;
        for (const [k, v] of Object.entries(over)) st[Number(k)] = v;
        return st;
      };
      const call = (st: Float64Array, p = plan): number => addon.processRecords(src, out, dl, p, source, st);
      expect(call(state({}))).toBe(ST_DONE);
      const blockLine = recordSpan(encodePayload('', '{"a":1}').length) + 4 + 2; // the block's first line
      expect(call(state({ [S_OFF]: recordSpan(encodePayload('', '{"a":1}').length), [S_LINE]: blockLine }))).toBe(
        ST_DONE,
      ); // a resume
      expect(() => addon.processRecords(src, out, dl, plan, source, new Float64Array(3))).toThrow(TypeError);
      expect(() => addon.processRecords([] as never, out, dl, plan, source, state({}))).toThrow(TypeError);
      expect(() => addon.processRecords(src, out, 'x' as never, plan, source, state({}))).toThrow(TypeError);
      expect(() => (addon.processRecords as (...a: unknown[]) => number)(src, out, dl, plan, state({}))).toThrow(
        TypeError,
      );
      expect(() => call(state({}), plan.subarray(1))).toThrow(RangeError);
      expect(() => call(state({ [S_LENGTH]: src.length + 1 }))).toThrow(RangeError); // length past src
      expect(() => call(state({ [S_POS]: 257 }))).toThrow(RangeError); // pos past out
      expect(() => call(state({ [S_DL_POS]: 257 }))).toThrow(RangeError); // dl pos past dl
      expect(() => call(state({ [S_MAX_DEPTH]: 0 }))).toThrow(RangeError);
      expect(() => call(state({ [S_MAX_DEPTH]: NaN }))).toThrow(RangeError);
      expect(() => call(state({ [S_OFF]: NaN }))).toThrow(RangeError);
      expect(() => call(state({ [S_OFF]: src.length + 4 }))).toThrow(RangeError);
      expect(() => call(state({ [S_LINE]: 3 }))).toThrow(RangeError); // the record at OFF 0 is no block
      expect(() =>
        call(state({ [S_OFF]: recordSpan(encodePayload('', '{"a":1}').length), [S_LINE]: src.length + 8 })),
      ).toThrow(RangeError);
      // A plan whose parts do not add up, or whose key is not a JSON string.
      const bad = Uint8Array.from(plan);
      bad[plan.length - '"x""host"'.length] = 0x41; // the first key's opening quote
      expect(() => call(state({}), bad)).toThrow(RangeError);
      // The index facts' buffers: wrong types, a field list that does not add up, too small a buffer.
      const fields = packFields(['host', 'talos-service']);
      const facts = new Uint32Array(2 * F_STRIDE + 16);
      const times = new Uint8Array(2 * F_TIME_LEN);
      const withFacts = (st: Float64Array, f: unknown = fields, x: unknown = facts, t: unknown = times): number =>
        (addon.processRecords as (...a: unknown[]) => number)(src, out, dl, plan, source, st, f, x, t);
      expect(withFacts(state({}))).toBe(ST_DONE);
      expect(() => withFacts(state({}), 'x')).toThrow(TypeError);
      expect(() => withFacts(state({}), fields, new Uint8Array(8))).toThrow(TypeError);
      expect(() => withFacts(state({}), fields, facts, new Uint32Array(58))).toThrow(TypeError);
      expect(() => withFacts(state({}), fields.subarray(0, fields.length - 1))).toThrow(RangeError);
      expect(() => withFacts(state({}), Uint8Array.of(99, 0, 0, 0))).toThrow(RangeError); // 99 fields
      expect(() => withFacts(state({}), fields, new Uint32Array(F_STRIDE))).toThrow(RangeError);
      expect(() => withFacts(state({}), fields, facts, new Uint8Array(10))).toThrow(RangeError);
      expect(() => withFacts(state({ [S_F_UNCERTAIN]: 1e9 }))).toThrow(RangeError);
      const many = new Uint32Array(facts);
      many[0] = 65; // more values than a set holds, not "many"
      expect(() => withFacts(state({}), fields, many)).toThrow(RangeError);
    });

    it('differential: thousands of random, mutated and garbled lines give identical bytes and counts', () => {
      const corpus = new Corpus(SEED);
      let lines = 0;
      let grows = 0;
      let calls = 0;
      const seen: Record<string, number> = { accepted: 0, malformed: 0, deadLettered: 0 };
      for (const k of MALFORMED_REASONS) seen[k] = 0;
      // Reused processors (plans and depths switch between batches), and fresh ones (output growth mid-batch).
      const pairs = new Map<number, [BatchProcessor, BatchProcessor]>();
      for (let b = 0; b < BATCHES; b++) {
        const maxDepth = DEPTHS[b % DEPTHS.length]!;
        const [planName, plan] = PLANS[corpus.int(PLANS.length)]!;
        const deadLetter = corpus.rand() < 0.6;
        const sourceId = corpus.pick(['talos', 'tcp "in"', 'ü\\', 'c\u0001\u2028']);
        let pair = pairs.get(maxDepth);
        if (pair === undefined || corpus.rand() < 0.3) {
          pair = [new BatchProcessor({ maxDepth, native: 'on' }), new BatchProcessor({ maxDepth, native: 'off' })];
          pairs.set(maxDepth, pair);
        }
        const [nat, js] = pair;
        const batch = buildBatch(corpus.payloads(20 + corpus.int(150)), corpus.pick([0, 0xff, 0x0a, 0x0d]));
        // Sometimes a span cut anywhere: a partial length header, or a length past the end.
        const length = corpus.rand() < 0.15 ? corpus.int(batch.length + 1) : batch.length;
        // Half the batches gather the index facts as they go (growth and resumes included).
        const scanner = corpus.rand() < 0.5 ? factsScanner : undefined;
        let facts: BatchFacts | undefined;
        const { result, done, grow, other } = tallyStatuses(() => {
          const r = nat.process(batch, length, plan, sourceId, deadLetter, scanner);
          facts = r.facts;
          return snapshot(r);
        });
        const want = snapshot(js.process(batch, length, plan, sourceId, deadLetter));
        const what = `batch ${b} (plan ${planName}, maxDepth ${maxDepth}, deadLetter ${deadLetter}, length ${length}/${batch.length})`;
        expectSame(result, want, what);
        if (scanner !== undefined) expectFactsHold(facts, want.ndjson, what);
        expect({ done, other }).toEqual({ done: 1, other: [] });
        lines += want.counts.records;
        grows += grow;
        calls += done + grow;
        seen['accepted']! += want.counts.accepted;
        seen['malformed']! += want.counts.records - want.counts.accepted;
        if (deadLetter) seen['deadLettered']! += want.counts.records - want.counts.accepted;
        for (const k of MALFORMED_REASONS) seen[k]! += want.counts.malformed[k]!;
      }
      // The corpus covers what it means to: every reason, growth.
      expect(lines).toBeGreaterThan(10_000);
      expect(seen['accepted']).toBeGreaterThan(5000);
      expect(seen['malformed']).toBeGreaterThan(1000);
      expect(seen['deadLettered']).toBeGreaterThan(500);
      for (const k of MALFORMED_REASONS) expect(seen[k], k).toBeGreaterThan(10);
      expect(grows).toBeGreaterThan(0);
      expect(calls).toBe(BATCHES + grows);
      if (process.env['BATCH_NATIVE_FUZZ_BATCHES'] !== undefined) console.log({ lines, grows, ...seen });
    });

    it('decides every line the addon used to hand back, in one call: each reason, with its envelope', () => {
      const plan = compileTagPlan({ cluster: 'prod' }, 'host');
      const cases: Array<[string, MalformedReason | 'accepted']> = [
        ['', 'empty'],
        [' \t\r', 'empty'],
        ['\ufeff', 'empty'],
        ['{"bad":', 'invalid_json'],
        ['{"a":1}x', 'invalid_json'],
        ['{"a":"\u0001"}', 'invalid_json'],
        ['{"a":"\\x"}', 'invalid_json'],
        ['\ufeff\ufeff{}', 'invalid_json'],
        ['[1]', 'not_object'],
        ['"\\u0041"', 'not_object'],
        ['  -1.5e3 ', 'not_object'],
        [nest(4), 'too_deep'],
        [`{"a":${arrays(4)}}`, 'too_deep'],
        [`{"a":${arrays(4)},"a":1}`, 'accepted'], // JSON.parse keeps the last "a": 1 deep
        [`{"a":${arrays(4)},"\\u0061":[]}`, 'accepted'], // the same key, spelled with an escape
        [`{"a":1,"a":${arrays(4)}}`, 'too_deep'],
        [`{"a":${arrays(4)},"b":1}`, 'too_deep'],
        ['{"\\u0063luster":"old","a":1}', 'accepted'], // collides once decoded: cut
        ['{"h\\u006fst":"x","n":{"cluster":1}}', 'accepted'],
        ['{"\\u0074alos-service":"svc"}', 'accepted'], // a service record, counted as one
        ['{"cluster":"old","a":1,"cluster":"again"}', 'accepted'],
        ['{ "cluster" : 1 , "host":2 }', 'accepted'], // every member cut: `{` + tags
      ];
      const payloads = cases.map(([line]) => encodePayload('10.0.0.7', line));
      const batch = buildBatch(payloads, 0xff);
      const r = both(batch, plan, { maxDepth: 3 });
      const malformed = cases.filter(([, v]) => v !== 'accepted');
      expect(reasonsOf(r)).toEqual(malformed.map(([, v]) => v));
      const env = r
        .deadLetter!.toString()
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      for (const [i, e] of env.entries()) {
        expect(e).toEqual({ reason: malformed[i]![1], component_id: 'src', peer: '10.0.0.7', raw: malformed[i]![0] });
      }
      const out = r.ndjson.toString().trimEnd().split('\n');
      expect(out).toEqual([
        '{"a":[[[[]]]],"a":1,"cluster":"prod","host":"10.0.0.7"}',
        '{"a":[[[[]]]],"\\u0061":[],"cluster":"prod","host":"10.0.0.7"}',
        '{"a":1,"cluster":"prod","host":"10.0.0.7"}',
        '{"n":{"cluster":1},"cluster":"prod","host":"10.0.0.7"}',
        '{"\\u0074alos-service":"svc","cluster":"prod","host":"10.0.0.7"}',
        '{"a":1,"cluster":"prod","host":"10.0.0.7"}',
        '{"cluster":"prod","host":"10.0.0.7"}',
      ]);
      expect(r.counts.kinds).toEqual({ service: 1, kernel: 0, other: 6 });
    });

    it('invalid_utf8 comes first, then invalid_json; envelopes keep the bytes (base64) or escape them as JSON.stringify does', () => {
      const lines = [
        Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0xc0, 0xaf, 0x7d]), // invalid UTF-8 where a value should be
        Buffer.concat([Buffer.from('{"a":'), Buffer.from([0xff])]), // truncated and invalid: invalid_utf8 wins
        Buffer.concat([Buffer.from('{"a":"x"'), Buffer.from([0xed, 0xa0, 0x80])]),
        Buffer.from('{"a":"\u0001\u001f\b\f\n\r\t\\"\u007f\u2028"'), // unterminated, control characters to escape
        Buffer.from([0x7b, 0x00, 0x7d]),
      ];
      const batch = buildBatch([...lines.map((l) => encodePayload('', l)), encodePayload('', '{"ok":1}')]);
      const r = both(batch, compileTagPlan({}, null), { sourceId: 'ü"\u0001' });
      expect(reasonsOf(r)).toEqual(['invalid_utf8', 'invalid_utf8', 'invalid_utf8', 'invalid_json', 'invalid_json']);
      const env = r
        .deadLetter!.toString()
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, string | null>);
      expect(env.slice(0, 3).map((e) => Buffer.from(e['raw_base64']!, 'base64'))).toEqual(lines.slice(0, 3));
      expect(env[3]!['raw']).toBe(lines[3]!.toString());
      expect(env.every((e) => e['component_id'] === 'ü"\u0001' && e['peer'] === null)).toBe(true);
    });

    it('peers that are not JSON-safe are escaped in the host tag and the envelope, byte for byte as the TypeScript path does', () => {
      const plan = compileTagPlan({ t: 'v' }, 'host');
      const peers = [
        [0x22],
        [0x5c],
        [0x00, 0x01, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f],
        [0x7f],
        [0x80, 0xc3, 0xa9, 0xff],
        Array.from({ length: 127 }, (_, i) => 127 - i),
      ];
      const payloads = peers.flatMap((p) => [
        rawPeerPayload(p, '{"m":1}'),
        rawPeerPayload(p, '{"cluster":1,"host":"x"}'),
        rawPeerPayload(p, '{bad'),
      ]);
      payloads.push(encodePayload(Uint8Array.of(0x22, 0x0a, 0xe9), '{"a":1}\n{"b":\n', true));
      const r = both(buildBatch(payloads), plan);
      const hosts = r.ndjson
        .toString()
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { host: string }).host);
      const latin1 = (p: number[]): string => Buffer.from(p).toString('latin1');
      expect(hosts).toEqual([...peers.flatMap((p) => [latin1(p), latin1(p)]), '"\n\u00e9']);
      const envPeers = r
        .deadLetter!.toString()
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { peer: string }).peer);
      expect(envPeers).toEqual([...peers.map(latin1), '"\n\u00e9']);
    });

    it('keys named like Object.prototype members collide as the parsed object says when a line takes the exact verdict', () => {
      // `obj["constructor"] !== undefined` holds for every parsed object: on the exact verdict (a key
      // with an escape, or nesting past the fast scan) such a tag takes the collision path.
      const plan = compileTagPlan({ constructor: 'c', toString: 't' }, '__proto__');
      const lines = [
        '{ "a":1 }',
        '{ "\\u0061":1 }',
        `{ "a":${arrays(1100)} }`,
        '{"constructor":0,"x":1}',
        '{"__proto__":{"y":1},"\\u0078":1}',
        '{}',
        '{"\\u0061":1,"constructor":2}',
      ];
      const r = both(buildBatch(lines.map((l) => encodePayload('p', l))), plan, { maxDepth: 2000 });
      expect(r.ndjson.toString().trimEnd().split('\n')).toEqual([
        '{ "a":1 ,"constructor":"c","toString":"t","__proto__":"p"}', // fast scan: nothing collides, bytes kept as sent
        '{"\\u0061":1,"constructor":"c","toString":"t","__proto__":"p"}', // exact verdict: the collision path rebuilds `{…}`
        `{"a":${arrays(1100)},"constructor":"c","toString":"t","__proto__":"p"}`,
        '{"x":1,"constructor":"c","toString":"t","__proto__":"p"}',
        '{"\\u0078":1,"constructor":"c","toString":"t","__proto__":"p"}',
        '{"constructor":"c","toString":"t","__proto__":"p"}',
        '{"\\u0061":1,"constructor":"c","toString":"t","__proto__":"p"}',
      ]);
    });

    it('nesting past the fast scan (1024) with a larger maxDepth, and absurd nesting with maxDepth: Infinity', () => {
      const plan = compileTagPlan({ t: 'x' }, null);
      const lines = [
        `{"a":${arrays(1500)}}`,
        `{"a":${arrays(1600)}}`,
        `{"t":1,"a":${arrays(200_000)}}`,
        nest(1100),
        `{"a":${arrays(1700)},"a":0}`,
      ];
      for (const maxDepth of [1550, Infinity]) {
        const r = both(buildBatch(lines.map((l) => encodePayload('', l))), plan, { maxDepth });
        expect(r.counts.malformed.too_deep, String(maxDepth)).toBe(maxDepth === Infinity ? 0 : 2);
      }
    });

    it('invalid frames: counted, dead-lettered with their raw payload, the batch goes on or ends as the TypeScript path does', () => {
      const plan = compileTagPlan({}, 'host');
      const ok = encodePayload('h', '{"i":1}');
      const badBlock = Uint8Array.of(BLOCK_FLAG | 9, 0x31);
      const payloads = [ok, new Uint8Array(0), Uint8Array.of(20, 0x31, 0x32, 0x7b, 0x7d), ok, badBlock, ok];
      const batch = buildBatch(payloads);
      const r = both(batch, plan);
      expect(reasonsOf(r)).toEqual(['invalid_frame', 'invalid_frame', 'invalid_frame']);
      expect(r.counts).toMatchObject({ records: 6, accepted: 3 });
      for (const cut of [batch.length - 2, batch.length - recordSpan(ok.length) + 2, 1]) {
        const c = both(batch, plan, { length: cut });
        expect(reasonsOf(c).at(-1)).toBe('invalid_frame');
      }
    });

    it('one native call per batch in the common case (realistic Talos batch, blocks included)', () => {
      const gen = new TalosLineGenerator(5);
      const { payloads, lines } = talosBatch(gen, '10.0.0.7', 200 * 1024);
      const half = lines.length >> 1;
      const batch = buildBatch([...payloads.slice(0, half), encodeBlock('10.0.0.7', lines.slice(half), '\r\n')]);
      const plan = compileTagPlan({ cluster: 'prod' }, 'host');
      const nat = new BatchProcessor({ native: 'on' });
      const { result, done, grow } = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 's', true)));
      expect({ done, grow }).toEqual({ done: 1, grow: 0 });
      expect(result.counts.accepted).toBe(lines.length);
      expectSame(
        result,
        snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', true)),
        'talos',
      );
    });

    it('output growth: the addon stops before a line that does not fit, JS grows the buffer, it resumes at that line', () => {
      const gen = new TalosLineGenerator(8);
      const plan = compileTagPlan({ cluster: 'prod', region: 'eu' }, 'host');
      // 1.2 MiB of output from a fresh processor (256 KiB buffer): grows mid-batch, mid-block too,
      // and one line bigger than the doubled buffer.
      const { payloads, lines } = talosBatch(gen, '10.0.0.7', 600 * 1024);
      const huge = `{"msg":"${'z'.repeat(1_200_000)}"}`;
      const batch = buildBatch([
        ...payloads.slice(0, 1000),
        encodeBlock('10.0.0.7', lines.slice(1000, 2000)),
        encodePayload('10.0.0.7', huge),
        encodeBlock('fd00::1', lines.slice(2000)),
      ]);
      const nat = new BatchProcessor({ native: 'on' });
      const { result, grow } = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 's', false)));
      expect(grow).toBeGreaterThanOrEqual(2);
      expect(result.counts.accepted).toBe(lines.length + 1);
      expect(result.counts.outputBytes).toBe(result.ndjson.length);
      expect(result.ndjson.length).toBeGreaterThan(1.5 * 1024 * 1024);
      expectSame(
        result,
        snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', false)),
        'growth',
      );
      // Reused: the grown buffer is kept, no more growth.
      const again = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 's', false)));
      expect(again.grow).toBe(0);
      expect(again.result.ndjson.equals(result.ndjson)).toBe(true);
    });

    it('dead-letter growth: malformed lines in blocks and records past the 4 KiB envelope buffer, resumed at the line that did not fit', () => {
      const plan = compileTagPlan({ cluster: 'prod' }, 'host');
      const bad = (i: number): string => `{"i":${i},"msg":"${'\u0001'.repeat(200 + i)}"}`; // 6 bytes per byte in an envelope
      const payloads = [
        encodeBlock(
          '10.0.0.7',
          Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? `{"ok":${i}}` : bad(i))),
        ),
        ...Array.from({ length: 20 }, (_, i) =>
          encodePayload('10.0.0.8', i % 2 === 0 ? bad(i) : Buffer.from([0xff, i])),
        ),
        encodePayload('', `{"big":"${'\u0002'.repeat(100_000)}`),
        encodePayload('10.0.0.9', '{"last":1}'),
      ];
      const batch = buildBatch(payloads);
      const nat = new BatchProcessor({ native: 'on' });
      const { result, grow } = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 's', true)));
      expect(grow).toBeGreaterThanOrEqual(3);
      expect(result.counts.malformed.invalid_json).toBe(26 + 10 + 1);
      expect(result.counts.malformed.invalid_utf8).toBe(10);
      expectSame(
        result,
        snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', true)),
        'dead-letter growth',
      );
    });

    it('reads only [0, length) of any Uint8Array view: offset views, SharedArrayBuffer, padding bytes', () => {
      const gen = new TalosLineGenerator(3);
      const plan = compileTagPlan({ t: 'v' }, 'host');
      const { payloads } = talosBatch(gen, '10.0.0.1', 16 * 1024);
      const batch = buildBatch([...payloads, encodePayload('', '{"last":"x"}')], 0xff);
      const shared = new Uint8Array(new SharedArrayBuffer(batch.length + 64));
      shared.fill(0x7b);
      shared.set(batch, 32);
      const view = shared.subarray(32, 32 + batch.length);
      const want = snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', true));
      expectSame(
        snapshot(new BatchProcessor({ native: 'on' }).process(view, batch.length, plan, 's', true)),
        want,
        'shared',
      );
      // Cut right after the last line's closing brace: its padding (0xff) and what follows ('{') are not read.
      const short = batch.length - 3;
      expectSame(
        snapshot(new BatchProcessor({ native: 'on' }).process(shared.subarray(32), short, plan, 's', true)),
        snapshot(new BatchProcessor({ native: 'off' }).process(shared.subarray(32), short, plan, 's', true)),
        'short',
      );
    });

    it('plans whose keys meet the records keys: a tag key, the host key, an empty plan, keys with escapes', () => {
      const lines = ['{"a":1,"zz":2}', '{"a\\nb":1,"\\ud800":2,"c":3}', '{"a\\u000ab":1}', '{"\\u00fc":1,"ü":2}'];
      const batch = buildBatch([...lines.map((l) => encodePayload('p', l)), encodePayload('', '{}')]);
      for (const plan of [
        compileTagPlan({ zz: 'y' }, null),
        compileTagPlan({}, null),
        compileTagPlan({ a: 'b', c: 'd' }, 'zz'),
        compileTagPlan({ 'a\nb': 'x', '\ud800': 'y' }, 'ü'),
      ]) {
        both(batch, plan);
      }
    });

    it('packs every injected key with whether a plain object already answers to it', () => {
      const packed = packPlan(compileTagPlan({ constructor: 'c', msg: 'm' }, '__proto__'));
      const view = new DataView(packed.buffer);
      expect([view.getUint32(12, true), view.getUint32(16, true)]).toEqual([2, 3]);
      expect([0, 1, 2].map((k) => view.getUint32(20 + 8 * k + 4, true))).toEqual([1, 0, 1]);
    });
  });
