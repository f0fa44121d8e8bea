/**
 * The native fast path (native/batch.cc) against the TypeScript path (process.ts): same NDJSON
 * and dead-letter bytes, same counts, on seeded random batches full of malformed and odd input,
 * plus the driver's resume paths (output growth, lines and frames left to JS) checked directly.
 *
 * Under CI=true the addon must be there: these tests fail without it. Elsewhere they are
 * skipped, with the reason in the suite's title, when it is not built.
 */
import { describe, expect, it } from 'vitest';
import {
  NATIVE_BATCH_ADDON,
  STATE_SLOTS,
  ST_DONE,
  ST_EMIT,
  ST_FRAME,
  ST_FRAME_END,
  ST_GROW,
  ST_LINE,
  loadNativeBatch,
  packPlan,
  type NativeBatchAddon,
} from './batch-native.ts';
import { TalosLineGenerator, buildBatch, encodeBlock, encodePayload, mulberry32, recordSpan } from './fixture.ts';
import { BatchProcessor, DEFAULT_MAX_DEPTH, compileTagPlan, type BatchOutput, type TagPlan } from './process.ts';

const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const load = loadNativeBatch();
const SKIP = !load.ok && !CI;
const TITLE = SKIP ? `native batch addon SKIPPED, not built: ${(load as { reason: string }).reason}` : 'native batch addon';
if (SKIP) console.warn(`batch-native.test.ts: skipped: ${(load as { reason: string }).reason}`);

const enc = new TextEncoder();
const bytes = (x: Uint8Array | string): Uint8Array => (typeof x === 'string' ? enc.encode(x) : x);
const concat = (...xs: Array<Uint8Array | string>): Uint8Array => Buffer.concat(xs.map((x) => bytes(x)));

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
      expect.fail(`${what}: ${key} differs at line ${i}:\n native: ${JSON.stringify(la[i])}\n js:     ${JSON.stringify(lb[i])}`);
    }
  }
  expect(native.counts, `${what}: counts`).toEqual(js.counts);
}

/** Counts the statuses processRecords returns while `fn` runs (the processors look the function up per call). */
function tallyStatuses<T>(fn: () => T): { result: T; tally: Record<number, number>; calls: number } {
  const addon = (load as { addon: NativeBatchAddon }).addon;
  const real = addon.processRecords;
  const tally: Record<number, number> = { [ST_DONE]: 0, [ST_GROW]: 0, [ST_LINE]: 0, [ST_FRAME]: 0, [ST_FRAME_END]: 0, [ST_EMIT]: 0 };
  let calls = 0;
  addon.processRecords = (src, out, plan, state) => {
    calls++;
    const st = real(src, out, plan, state);
    tally[st]!++;
    return st;
  };
  try {
    return { result: fn(), tally, calls };
  } finally {
    addon.processRecords = real;
  }
}

// ---------------------------------------------------------------- the random corpus

const nest = (n: number, inner = '{}'): string => '{"a":'.repeat(n) + inner + '}'.repeat(n);
const INTERESTING = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x2c, 0x3a, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x75, 0x30, 0x2d, 0x65];

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

  /** A valid (or nearly valid) line of one of many shapes. */
  validish(): Uint8Array | string {
    const r = this.rand();
    if (r < 0.45) return this.gen.next();
    if (r < 0.5) return this.pick(['{}', '{ }', '{\t}', '{"a":1}', '{"":""}', '{"a":[]}', '{"a":{}}', ' {} ', '{"a" : [ 1 , { } ] }']);
    if (r < 0.55) {
      // Pretty-printed: raw CR/LF between tokens (multi-line UDP datagrams; split in blocks).
      const obj = JSON.parse(this.gen.next()) as Record<string, unknown>;
      return JSON.stringify(obj, null, this.pick([1, 2, '\t'])).replace(/\n/g, this.pick(['\n', '\r\n', '\r']));
    }
    if (r < 0.6) {
      // A colliding key (tag keys of the plans below, the host keys), maybe nested (no collision).
      const key = this.pick(['cluster', 'host', 'peer_addr', 'msg', 'node.name', 'q"k\\', 'ü', 'talos-service', '__proto__']);
      const line = this.gen.next();
      const member = `${JSON.stringify(key)}${this.ws()}:${this.ws()}${this.pick(['"old"', '1', '{"x":[1,"]"]}', 'null', '[]'])}`;
      return this.rand() < 0.7 ? `{${member},${line.slice(1)}` : `{"n":{${member}},${line.slice(1)}`;
    }
    if (r < 0.64) {
      // A top-level key spelled with escapes (native leaves it to JS), or escapes in values.
      return this.pick([
        '{"\\u0063luster":"old","b":1}',
        '{"a\\n":1}',
        '{"\\"":2,"x":"y"}',
        '{"k":"\\u00fc\\ud83d\\ude00\\n\\t\\"\\\\\\/"}',
        '{"k":"\\ud800"}',
        '{"n":{"\\u0063luster":1}}',
        '{"h\\u006fst":"x"}',
      ]);
    }
    if (r < 0.7) {
      // Nesting around the limits used: 3, 128, 1024.
      const d = this.pick([1, 2, 3, 4, 5, DEFAULT_MAX_DEPTH - 2, DEFAULT_MAX_DEPTH - 1, DEFAULT_MAX_DEPTH, 1022, 1023, 1024, 1025, 1400]);
      return this.rand() < 0.5 ? nest(d) : `{"a":${'['.repeat(d)}${']'.repeat(d)}}`;
    }
    if (r < 0.74) {
      // Non-ASCII: 2-, 3- and 4-byte sequences, U+2028, U+FFFD, in keys and values.
      const s = Array.from({ length: 1 + this.int(40) }, () => this.pick(['a', 'é', 'ж', '€', '\u2028', '\uFFFD', '😀', ' ', '"', '\\', '\n'])).join('');
      return JSON.stringify({ [s.slice(0, 5)]: s, msg: s });
    }
    if (r < 0.76) {
      // Huge: past the 16-byte SIMD loop many times, sometimes past the output buffer.
      const n = this.pick([100, 1000, 10_000, 70_000, 300_000]);
      return `{"msg":"${'x'.repeat(n)}${this.pick(['', '\\"', 'é', '\\u0041'])}","n":${n}}`;
    }
    if (r < 0.8) return `\ufeff${this.ws()}${this.gen.next()}${this.ws()}`; // BOM
    if (r < 0.83) return this.pick(['', ' ', '\t \t', '\r', '\ufeff', '\ufeff ', '[]', '"s"', '1', 'null', '[{"a":1}]', '{"a":1}{"b":2}', '{"a":1} x']);
    if (r < 0.86) {
      // Numbers and literals at their edges.
      const v = this.pick(['0', '-0', '1.5e+10', '1E-2', '-12.50', '123456789012345678901234567890', 'true', 'false', 'null', '01', '1.', '-', '.5', '1e', 'tru', 'nul', '+1']);
      return `{"v":${v}${this.ws()}}`;
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
        const seq = this.pick([[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xef, 0xbb, 0xbf], [0xc3, 0xa9], [0xf0, 0x9f, 0x98, 0x80]]);
        out = Buffer.concat([out.subarray(0, at), Uint8Array.from(seq), out.subarray(at)]);
      }
    }
    return out;
  }

  line(): Uint8Array {
    const l = bytes(this.validish());
    return this.rand() < 0.3 ? this.mutate(l) : l;
  }

  peer(): string {
    // Mostly JSON-safe peers (the addon's); 1 in 10 is not (left to JS, which escapes it).
    if (this.rand() < 0.1) return this.pick(['a"b', 'a\\b', '\u0001x', 'é', '\u007f']);
    return this.pick(['10.0.0.7', '10.0.0.7', 'fd00::1', '', '', '192.168.100.200:51234', 'p'.repeat(127)]);
  }

  /** Payloads of one batch: single records, blocks, invalid frames. */
  payloads(records: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (out.length < records) {
      const r = this.rand();
      if (r < 0.65) {
        out.push(encodePayload(this.peer(), this.line()));
      } else if (r < 0.95) {
        const lines = Array.from({ length: this.int(12) }, () => this.line());
        let block = encodeBlock(this.peer(), lines, this.pick(['\n', '\r\n']));
        const peerLen = block[0]! & 0x7f;
        if (this.rand() < 0.25 && block.length > 1 + peerLen) block = block.subarray(0, block.length - 1); // no final '\n'
        out.push(block);
      } else {
        // Invalid frames: zero-length payload, peerLen beyond the payload (single and block).
        out.push(this.pick([new Uint8Array(0), Uint8Array.of(20, 0x31, 0x32, 0x7b, 0x7d), Uint8Array.of(0x80 | 9, 0x31), Uint8Array.of(5)]));
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
  ['odd tags + host', compileTagPlan({ 'q"k\\': 'v"\\\n\t\u0001\u2028\u{1F600}', ü: 'ß', msg: 'tagged', host: 'shadowed' }, 'host')],
  ['proto keys', compileTagPlan(JSON.parse('{"__proto__":"p","talos-service":"svc"}') as Record<string, string>, null)],
];
/** A longer run: BATCH_NATIVE_FUZZ_BATCHES=5000 BATCH_NATIVE_FUZZ_SEED=7 npx vitest run packages/worker/src/batch-native.test.ts */
const BATCHES = Number(process.env['BATCH_NATIVE_FUZZ_BATCHES'] ?? 120);
const SEED = Number(process.env['BATCH_NATIVE_FUZZ_SEED'] ?? 20261123);
const DEPTHS = [3, DEFAULT_MAX_DEPTH, Infinity, 1500, 2.5, 1024, 1];

describe.skipIf(SKIP)(TITLE, () => {
  it('loads from build-native/batch.node, exports processRecords, and BatchProcessor reports which path runs', () => {
    const dir = process.env['SLUICE_WORKER_ADDON_DIR'] ?? 'packages/worker/build-native';
    expect(NATIVE_BATCH_ADDON.endsWith(`${dir.replace(/\/$/, '')}/batch.node`)).toBe(true);
    expect(load.ok, load.ok ? '' : load.reason).toBe(true);
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
    const src = buildBatch([encodePayload('', '{"a":1}')]);
    const out = new Uint8Array(64);
    const state = (over: Record<number, number>): Float64Array => {
      const st = new Float64Array(STATE_SLOTS);
      st[0] = src.length;
      st[1] = 128;
      st[3] = -1;
      for (const [k, v] of Object.entries(over)) st[Number(k)] = v;
      return st;
    };
    expect(addon.processRecords(src, out, plan, state({}))).toBe(ST_DONE);
    expect(() => addon.processRecords(src, out, plan, new Float64Array(3))).toThrow(TypeError);
    expect(() => addon.processRecords([] as never, out, plan, state({}))).toThrow(TypeError);
    expect(() => addon.processRecords(src, out, plan.subarray(1), state({}))).toThrow(RangeError);
    expect(() => addon.processRecords(src, out, plan, state({ 0: src.length + 1 }))).toThrow(RangeError); // length past src
    expect(() => addon.processRecords(src, out, plan, state({ 6: 65 }))).toThrow(RangeError); // pos past out
    expect(() => addon.processRecords(src, out, plan, state({ 1: 0 }))).toThrow(RangeError); // depth
    expect(() => addon.processRecords(src, out, plan, state({ 3: 2, 4: 1 }))).toThrow(RangeError); // block cursor
    expect(() => addon.processRecords(src, out, plan, state({ 2: NaN }))).toThrow(RangeError);
  });

  it('differential: thousands of random, mutated and garbled lines give identical bytes and counts', () => {
    const corpus = new Corpus(SEED);
    let lines = 0;
    let handedOff = 0;
    let emitted = 0;
    let grows = 0;
    let frames = 0;
    const seen = { accepted: 0, malformed: 0, leftAccepted: 0, empty: 0, too_deep: 0, invalid_utf8: 0, not_object: 0, invalid_frame: 0 };
    // Reused processors (plans and depths switch between batches), and fresh ones (output growth mid-batch).
    const pairs = new Map<number, [BatchProcessor, BatchProcessor]>();
    for (let b = 0; b < BATCHES; b++) {
      const maxDepth = DEPTHS[b % DEPTHS.length]!;
      const [planName, plan] = PLANS[corpus.int(PLANS.length)]!;
      const deadLetter = corpus.rand() < 0.6;
      const sourceId = corpus.pick(['talos', 'tcp "in"', 'ü\\']);
      let pair = pairs.get(maxDepth);
      if (pair === undefined || corpus.rand() < 0.3) {
        pair = [new BatchProcessor({ maxDepth, native: 'on' }), new BatchProcessor({ maxDepth, native: 'off' })];
        pairs.set(maxDepth, pair);
      }
      const [nat, js] = pair;
      const batch = buildBatch(corpus.payloads(20 + corpus.int(150)), corpus.pick([0, 0xff, 0x0a, 0x0d]));
      // Sometimes a span cut anywhere: a partial length header, or a length past the end.
      const length = corpus.rand() < 0.15 ? corpus.int(batch.length + 1) : batch.length;
      const { result, tally } = tallyStatuses(() => snapshot(nat.process(batch, length, plan, sourceId, deadLetter)));
      const want = snapshot(js.process(batch, length, plan, sourceId, deadLetter));
      expectSame(result, want, `batch ${b} (plan ${planName}, maxDepth ${maxDepth}, deadLetter ${deadLetter}, length ${length}/${batch.length})`);
      lines += want.counts.records;
      handedOff += tally[ST_LINE]!;
      emitted += tally[ST_EMIT]!;
      grows += tally[ST_GROW]!;
      frames += tally[ST_FRAME]! + tally[ST_FRAME_END]!;
      seen.accepted += want.counts.accepted;
      seen.malformed += want.counts.records - want.counts.accepted;
      for (const k of ['empty', 'too_deep', 'invalid_utf8', 'not_object', 'invalid_frame'] as const) seen[k] += want.counts.malformed[k]!;
      // Lines left whole to JS that it accepts: top-level keys with escapes, nesting past 1024.
      seen.leftAccepted += tally[ST_LINE]! - (want.counts.records - want.counts.accepted - want.counts.malformed.invalid_frame!);
    }
    // The corpus covers what it means to: every reason, lines left to JS that JS accepts, growth, frames.
    expect(lines).toBeGreaterThan(10_000);
    expect(seen.accepted).toBeGreaterThan(5000);
    expect(seen.malformed).toBeGreaterThan(1000);
    for (const k of ['empty', 'too_deep', 'invalid_utf8', 'not_object', 'invalid_frame'] as const) expect(seen[k], k).toBeGreaterThan(10);
    expect(seen.leftAccepted).toBeGreaterThan(100);
    expect(emitted).toBeGreaterThan(1000); // collisions and peers to escape: emitted by JS from the native scan
    expect(handedOff).toBeGreaterThan(seen.malformed - seen.invalid_frame - 1);
    expect(frames).toBe(seen.invalid_frame);
    expect(grows).toBeGreaterThan(0);
    if (process.env['BATCH_NATIVE_FUZZ_BATCHES'] !== undefined) console.log({ lines, handedOff, emitted, grows, frames, ...seen });
  });

  it('one native call per batch in the common case (realistic Talos batch, blocks included)', () => {
    const gen = new TalosLineGenerator(5);
    const { payloads, lines } = gen.batch('10.0.0.7', 200 * 1024);
    const half = lines.length >> 1;
    const batch = buildBatch([...payloads.slice(0, half), encodeBlock('10.0.0.7', lines.slice(half), '\r\n')]);
    const plan = compileTagPlan({ cluster: 'prod' }, 'host');
    const nat = new BatchProcessor({ native: 'on' });
    const { result, tally, calls } = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 's', true)));
    expect(calls).toBe(1);
    expect(tally[ST_DONE]).toBe(1);
    expect(result.counts.accepted).toBe(lines.length);
    expectSame(result, snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', true)), 'talos');
  });

  it('output growth: the addon stops before a line that does not fit, JS grows the buffer, it resumes at that line', () => {
    const gen = new TalosLineGenerator(8);
    const plan = compileTagPlan({ cluster: 'prod', region: 'eu' }, 'host');
    // 1.2 MiB of output from a fresh processor (256 KiB buffer): grows mid-batch, mid-block too,
    // and one line bigger than the doubled buffer.
    const { payloads, lines } = gen.batch('10.0.0.7', 600 * 1024);
    const huge = `{"msg":"${'z'.repeat(1_200_000)}"}`;
    const batch = buildBatch([
      ...payloads.slice(0, 1000),
      encodeBlock('10.0.0.7', lines.slice(1000, 2000)),
      encodePayload('10.0.0.7', huge),
      encodeBlock('fd00::1', lines.slice(2000)),
    ]);
    const nat = new BatchProcessor({ native: 'on' });
    const { result, tally } = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 's', false)));
    expect(tally[ST_GROW]).toBeGreaterThanOrEqual(2);
    expect(tally[ST_LINE]).toBe(0);
    expect(result.counts.accepted).toBe(lines.length + 1);
    expect(result.counts.outputBytes).toBe(result.ndjson.length);
    expect(result.ndjson.length).toBeGreaterThan(1.5 * 1024 * 1024);
    expectSame(result, snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', false)), 'growth');
    // Reused: the grown buffer is kept, no more growth.
    const again = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 's', false)));
    expect(again.tally[ST_GROW]).toBe(0);
    expect(again.result.ndjson.equals(result.ndjson)).toBe(true);
  });

  it('resume after a line or frame left to JS: single records, inside a block, at block ends, and a growth after it', () => {
    const plan = compileTagPlan({ cluster: 'prod' }, 'host');
    const ok = (i: number): string => `{"i":${i},"msg":"ok"}`;
    const payloads = [
      encodePayload('10.0.0.7', ok(0)),
      encodePayload('10.0.0.7', '{"bad":'), // invalid_json
      encodePayload('10.0.0.7', '{"cluster":"old","a":1}'), // collision: JS emits it (ST_EMIT)
      encodePayload('a"b', ok(1)), // peer not JSON-safe: JS emits it, escaped (ST_EMIT)
      new Uint8Array(0), // invalid frame
      encodeBlock('10.0.0.8', ['{"x":', ok(2), '', '{"\\u0063luster":1}', ok(3), '\ufeff']), // JS lines inside, the last at the end
      encodeBlock('', [ok(4), 'nope']).subarray(0, -1), // the last line left to JS has no '\n'
      encodeBlock('10.0.0.9', ['[1]']), // a block of one line left to JS
      encodePayload('', `{"big":"${'y'.repeat(400_000)}"}`), // growth right after
      encodePayload('10.0.0.7', ok(5)),
    ];
    const batch = buildBatch(payloads, 0x0a);
    const nat = new BatchProcessor({ native: 'on' });
    const { result, tally } = tallyStatuses(() => snapshot(nat.process(batch, batch.length, plan, 'src', true)));
    expect(tally[ST_LINE]).toBe(7);
    expect(tally[ST_EMIT]).toBe(2); // the collision, the peer to escape
    expect(tally[ST_FRAME]).toBe(1);
    expect(tally[ST_GROW]).toBe(1);
    expect(result.counts).toMatchObject({ records: 16, accepted: 9 });
    expect(result.counts.malformed).toEqual({ invalid_frame: 1, empty: 2, invalid_utf8: 0, invalid_json: 3, not_object: 1, too_deep: 0 });
    const out = result.ndjson.toString().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(out.map((o) => o['i'] ?? (o['a'] !== undefined ? 'a' : o['big'] !== undefined ? 'big' : o['cluster']))).toEqual([0, 'a', 1, 2, 'prod', 3, 4, 'big', 5]);
    expect(out[2]!['host']).toBe('a"b');
    expectSame(result, snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 'src', true)), 'resume');
    // Spans cut inside the last record (a length past the end) and inside its length header:
    // the batch ends on an invalid frame, after lines left to JS.
    const last = batch.length - recordSpan(payloads.at(-1)!.length);
    for (const cut of [batch.length - 2, last + 2]) {
      const r2 = tallyStatuses(() => snapshot(nat.process(batch, cut, plan, 'src', true)));
      expect(r2.tally[ST_FRAME_END]).toBe(1);
      expect(r2.result.counts.malformed.invalid_frame).toBe(2);
      expectSame(r2.result, snapshot(new BatchProcessor({ native: 'off' }).process(batch, cut, plan, 'src', true)), `cut at ${cut}`);
    }
  });

  it('reads only [0, length) of any Uint8Array view: offset views, SharedArrayBuffer, padding bytes', () => {
    const gen = new TalosLineGenerator(3);
    const plan = compileTagPlan({ t: 'v' }, 'host');
    const { payloads } = gen.batch('10.0.0.1', 16 * 1024);
    const batch = buildBatch([...payloads, encodePayload('', '{"last":"x"}')], 0xff);
    const shared = new Uint8Array(new SharedArrayBuffer(batch.length + 64));
    shared.fill(0x7b);
    shared.set(batch, 32);
    const view = shared.subarray(32, 32 + batch.length);
    const want = snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', true));
    expectSame(snapshot(new BatchProcessor({ native: 'on' }).process(view, batch.length, plan, 's', true)), want, 'shared');
    // Cut right after the last line's closing brace: its padding (0xff) and what follows ('{') are not read.
    const short = batch.length - 3;
    expectSame(
      snapshot(new BatchProcessor({ native: 'on' }).process(shared.subarray(32), short, plan, 's', true)),
      snapshot(new BatchProcessor({ native: 'off' }).process(shared.subarray(32), short, plan, 's', true)),
      'short',
    );
  });

  it('plans whose keys meet the records keys: a tag key, the host key, an empty plan', () => {
    const line = concat('{"a":1,"zz":2}');
    const batch = buildBatch([encodePayload('p', line), encodePayload('', '{}')]);
    for (const plan of [compileTagPlan({ zz: 'y' }, null), compileTagPlan({}, null), compileTagPlan({ a: 'b', c: 'd' }, 'zz')]) {
      const nat = snapshot(new BatchProcessor({ native: 'on' }).process(batch, batch.length, plan, 's', true));
      expectSame(nat, snapshot(new BatchProcessor({ native: 'off' }).process(batch, batch.length, plan, 's', true)), JSON.stringify(plan.keys));
    }
  });
});
