/**
 * Per-record cost of validating and tagging a 245-byte Talos service line, the worker's fast path
 * (one byte scan to validate, json-scan.ts, + splice pre-serialized tag bytes) against the obvious
 * alternative (JSON.parse + assign + JSON.stringify), the decode + JSON.parse floor the previous
 * fast path paid, and the pieces (the scan alone, the UTF-8 check alone).
 *
 *   node_modules/.bin/node bench/parse-tag.bench.ts
 *
 * Each task processes one batch of ~1000 lines; ns/line = median batch latency / lines.
 * Outputs are checked before timing. Compare ratios from one run, not absolute times.
 *
 * The BatchProcessor tasks run twice, side by side: the native addon (packages/worker/native/
 * batch.cc, `native: 'on'`) and the TypeScript path (`native: 'off'`), whose outputs must be
 * byte-identical. Without the addon built the native tasks are left out, with the reason printed
 * (under CI=true that is an error). Besides the common case they time the collision path (a tag
 * key every record has) and a mixed batch where 3 lines in 10 leave the fast scan's common case
 * (malformed and dead-lettered, a top-level key spelled with an escape, a colliding key).
 */
import { isUtf8 } from 'node:buffer';
import { Bench } from 'tinybench';
import { BatchProcessor, compileTagPlan } from '@sluice/worker/process';
import { loadNativeBatch } from '@sluice/worker/batch-native';
import { scanRecord } from '@sluice/worker/json-scan';
import { SCAN_REJECT } from '@sluice/worker/native-constants';
import { mulberry32 } from '@sluice/testkit';
import { buildBatch, encodeBlock, encodePayload } from '@sluice/worker/fixture';
import { FactsScanner, indexFieldsFor, parsedRecordTime } from '@sluice/worker/facts';
import { compressFrame, DEFAULT_LEVELS } from '@sluice/worker/codecs';

const LINE_BYTES = 245;
const LINES = 1024;
const PEER = '10.0.0.7';
const TAGS = { cluster: 'prod-eu-1', region: 'eu-west-1' };
const HOST_KEY = 'host';

/** A Talos machined record of exactly LINE_BYTES bytes, keys sorted as Go emits them. */
function serviceLine(rand: () => number, i: number): string {
  const words = [
    'reconcile',
    'failed',
    'controller',
    'node',
    'lease',
    'acquired',
    'watch',
    'closed',
    'retrying',
    'address',
  ];
  const ctl = ['k8s.NodeApplyController', 'network.AddressSpecController', 'etcd.SpecController'][i % 3]!;
  const frac = String(Math.floor(rand() * 1e9)).padStart(9, '0');
  const head = `{"component":"controller-runtime","controller":"${ctl}","msg":"`;
  const tail = `","talos-level":"info","talos-service":"machined","talos-time":"2024-04-22T12:34:${String(i % 60).padStart(2, '0')}.${frac}Z"}`;
  let msg = '';
  while (head.length + msg.length + tail.length < LINE_BYTES)
    msg += (msg ? ' ' : '') + words[Math.floor(rand() * words.length)];
  msg = msg.slice(0, LINE_BYTES - head.length - tail.length);
  const line = head + msg + tail;
  if (Buffer.byteLength(line) !== LINE_BYTES) throw new Error(`line is ${Buffer.byteLength(line)} bytes`);
  return line;
}

const rand = mulberry32(1);
const lines = Array.from({ length: LINES }, (_, i) => serviceLine(rand, i));
const batch = Buffer.from(buildBatch(lines.map((l) => encodePayload(PEER, l))));
const plan = compileTagPlan(TAGS, HOST_KEY);
// Every record already has "component": a tag of that name forces the collision (slow) path.
const collidingPlan = compileTagPlan({ ...TAGS, component: 'sluice' }, HOST_KEY);

/** Line offsets in the batch, so the per-line micro tasks skip framing. */
const starts = new Int32Array(LINES);
const ends = new Int32Array(LINES);
{
  let o = 0;
  for (let i = 0; i < LINES; i++) {
    const len = batch.readUInt32LE(o);
    starts[i] = o + 4 + 1 + batch[o + 4]!;
    ends[i] = o + 4 + len;
    o += 4 + ((len + 3) & ~3);
  }
}

/** The alternative: same framing and output buffer, but JSON.parse + assign + JSON.stringify per record. */
const naiveOut = Buffer.allocUnsafeSlow(batch.length * 2);
function parseStringify(): number {
  let pos = 0;
  let o = 0;
  while (o < batch.length) {
    const len = batch.readUInt32LE(o);
    const ps = o + 4;
    const ls = ps + 1 + batch[ps]!;
    const pe = ps + len;
    o = ps + ((len + 3) & ~3);
    const obj = JSON.parse(batch.toString('utf8', ls, pe)) as Record<string, unknown>;
    obj.cluster = TAGS.cluster;
    obj.region = TAGS.region;
    obj[HOST_KEY] = batch.toString('latin1', ps + 1, ls);
    pos += naiveOut.write(JSON.stringify(obj), pos, 'utf8');
    naiveOut[pos++] = 0x0a;
  }
  return pos;
}

const processor = new BatchProcessor({ native: 'off' });
const nativeLoad = loadNativeBatch();
if (!nativeLoad.ok && (process.env['CI'] === 'true' || process.env['CI'] === '1'))
  throw new Error(`CI=true: the native batch addon is missing: ${nativeLoad.reason}`);
const native = nativeLoad.ok ? new BatchProcessor({ native: 'on' }) : null;
if (native === null) console.log(`native tasks left out: ${nativeLoad.ok ? '' : nativeLoad.reason}`);
/** The same lines with 3 in 10 replaced: malformed (dead-lettered), an escaped top-level key, a colliding key. */
const mixedBatch = Buffer.from(
  buildBatch(
    lines.map((l, i) =>
      encodePayload(
        PEER,
        i % 10 === 3
          ? l.slice(0, 120)
          : i % 10 === 5
            ? l.replace('{"component"', '{"\\u0063omponent"')
            : i % 10 === 7
              ? `{"cluster":"theirs",${l.slice(1)}`
              : l,
      ),
    ),
  ),
);
const MIXED_MALFORMED = lines.filter((_, i) => i % 10 === 3).length;
/** A blocks-of-lines layout of the same lines (TCP), 64 lines per block. */
const blockBatch = Buffer.from(
  buildBatch(Array.from({ length: LINES / 64 }, (_, i) => encodeBlock(PEER, lines.slice(i * 64, i * 64 + 64)))),
);

// ---- correctness before timing
{
  const expected = lines.map((l) => ({ ...JSON.parse(l), ...TAGS, [HOST_KEY]: PEER }));
  const check = (name: string, out: string) => {
    const got = out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    if (got.length !== LINES) throw new Error(`${name}: ${got.length} lines`);
    for (let i = 0; i < LINES; i++) {
      const a = JSON.stringify(Object.entries(got[i]).sort());
      const b = JSON.stringify(Object.entries(i < 0 ? {} : expected[i]).sort());
      if (a !== b) throw new Error(`${name}: line ${i} differs:\n${a}\n${b}`);
    }
  };
  for (let i = 0; i < LINES; i++)
    if (scanRecord(batch, starts[i]!, ends[i]!, 128, plan.injectKeyBytes, 2) === SCAN_REJECT)
      throw new Error(`scan rejects line ${i}`);
  const r = processor.process(batch, batch.length, plan, 'bench', false);
  if (r.counts.accepted !== LINES || r.counts.kinds.service !== LINES) throw new Error('splice: counts');
  check('splice', Buffer.from(r.ndjson).toString());
  check('parse+stringify', naiveOut.toString('utf8', 0, parseStringify()));
  const slow = processor.process(batch, batch.length, collidingPlan, 'bench', false);
  const slowLines = Buffer.from(slow.ndjson).toString().trimEnd().split('\n');
  if (slowLines.length !== LINES || JSON.parse(slowLines[0]!).component !== 'sluice')
    throw new Error('slow path output');
  // The native path: byte-identical output and equal counts, for every layout and plan timed.
  if (native !== null) {
    if (native.implementation !== 'native' || processor.implementation !== 'js') throw new Error('implementations');
    for (const [name, span, p] of [
      ['records', batch, plan],
      ['blocks', blockBatch, plan],
      ['collision', batch, collidingPlan],
      ['mixed', mixedBatch, plan],
    ] as const) {
      const a = processor.process(span, span.length, p, 'bench', true);
      const want = { ndjson: Buffer.from(a.ndjson), dl: Buffer.from(a.deadLetter!), counts: JSON.stringify(a.counts) };
      const b = native.process(span, span.length, p, 'bench', true);
      if (!want.ndjson.equals(b.ndjson) || !want.dl.equals(b.deadLetter!) || want.counts !== JSON.stringify(b.counts))
        throw new Error(`native ${name}: output differs from the TypeScript path`);
      if (b.counts.accepted !== (name === 'mixed' ? LINES - MIXED_MALFORMED : LINES))
        throw new Error(`native ${name}: counts`);
    }
  }
}

// The index facts (what task.ts asks for when a sink indexes): gathered by the native scan as it
// goes (BatchProcessor.process with a FactsScanner), and by FactsScanner.scan alone (the
// TypeScript way, without the addon); both checked against JSON.parse of the output.
const factsScanner = new FactsScanner(indexFieldsFor([HOST_KEY]));
const factsInput = Buffer.from(processor.process(batch, batch.length, plan, 'bench', false).ndjson);
const FACTS_NAME = 'index facts, TypeScript (FactsScanner.scan of the output)';
const nativeFactsName = (impl: string): string => `BatchProcessor fast path + index facts, ${impl}`;
{
  const recs = factsInput
    .toString()
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const times = recs.map((r) => parsedRecordTime(r)!).sort();
  const gathered = [
    factsScanner.scan(factsInput),
    ...(native === null ? [] : [native.process(batch, batch.length, plan, 'bench', false, factsScanner).facts!]),
  ];
  for (const f of gathered) {
    if (f.records !== LINES || f.untimed !== 0 || f.minTime !== times[0] || f.maxTime !== times.at(-1))
      throw new Error(`facts: ${JSON.stringify(f)}`);
    if (
      JSON.stringify(f.fields) !==
      JSON.stringify({ 'talos-service': ['machined'], 'talos-level': ['info'], host: [PEER], source: [] })
    )
      throw new Error(`facts fields: ${JSON.stringify(f.fields)}`);
  }
}

let sink = 0;
const bench = new Bench({ time: 2000, warmupTime: 300 });
// The BatchProcessor cases, once per implementation side by side (native when its addon loads).
const fastName = (impl: string): string => `BatchProcessor fast path, ${impl} (scan + splice tags)`;
const blocksName = (impl: string): string => `splice, TCP blocks of 64 lines (${impl})`;
const mixedName = (impl: string): string => `mixed: 3 in 10 lines malformed/escaped/colliding, dead-letter (${impl})`;
const implementations: [string, BatchProcessor][] = [
  ['TypeScript', processor],
  ...(native === null ? [] : [['native', native] as [string, BatchProcessor]]),
];
for (const [impl, p] of implementations) {
  bench
    .add(fastName(impl), () => {
      sink += p.process(batch, batch.length, plan, 'bench', false).counts.accepted;
    })
    .add(blocksName(impl), () => {
      sink += p.process(blockBatch, blockBatch.length, plan, 'bench', false).counts.accepted;
    })
    .add(`BatchProcessor collision path, ${impl} (cut + splice)`, () => {
      sink += p.process(batch, batch.length, collidingPlan, 'bench', false).counts.accepted;
    })
    .add(mixedName(impl), () => {
      sink += p.process(mixedBatch, mixedBatch.length, plan, 'bench', true).counts.accepted;
    })
    .add(nativeFactsName(impl), () => {
      sink += p.process(batch, batch.length, plan, 'bench', false, factsScanner).facts!.records;
    });
}
bench
  .add('parse + assign + JSON.stringify (same framing)', () => {
    sink += parseStringify();
  })
  .add('decode + JSON.parse only (floor)', () => {
    for (let i = 0; i < LINES; i++) sink += JSON.parse(batch.toString('utf8', starts[i], ends[i])).msg.length;
  })
  .add('scanRecord alone (validate + find top-level keys)', () => {
    for (let i = 0; i < LINES; i++)
      sink += scanRecord(batch, starts[i]!, ends[i]!, 128, plan.injectKeyBytes, plan.injectKeyBytes.length);
  })
  .add('isUtf8(subarray) alone', () => {
    for (let i = 0; i < LINES; i++) if (isUtf8(batch.subarray(starts[i], ends[i]))) sink++;
  })
  .add(FACTS_NAME, () => {
    sink += factsScanner.scan(factsInput).records;
  })
  .add('zstd frame of the output (compressFrame, default level)', () => {
    sink += compressFrame('zstd', factsInput, DEFAULT_LEVELS.zstd).length;
  })
  .add('decode alone', () => {
    for (let i = 0; i < LINES; i++) sink += batch.toString('utf8', starts[i], ends[i]).length;
  })
  .add('decode + indexOf(U+FFFD) (the UTF-8 check used)', () => {
    for (let i = 0; i < LINES; i++) if (batch.toString('utf8', starts[i], ends[i]).indexOf('\uFFFD') === -1) sink++;
  });

// Micro: the choices inside the fast path, per line, side by side.
const out = Buffer.allocUnsafeSlow(batch.length * 2);
const tagBytes = plan.tagHostBytes;
const micro = new Bench({ time: 900, warmupTime: 200 });
micro
  .add('line copy: src.copy(out, pos, s, e)', () => {
    let pos = 0;
    for (let i = 0; i < LINES; i++) pos += batch.copy(out, pos, starts[i], ends[i]! - 1);
    sink += pos;
  })
  .add('line copy: out.set(src.subarray(s, e), pos)', () => {
    let pos = 0;
    for (let i = 0; i < LINES; i++) {
      out.set(batch.subarray(starts[i], ends[i]! - 1), pos);
      pos += ends[i]! - 1 - starts[i]!;
    }
    sink += pos;
  })
  .add('tags copy: tags.copy(out, pos)', () => {
    let pos = 0;
    for (let i = 0; i < LINES; i++) pos += tagBytes.copy(out, pos);
    sink += pos;
  })
  .add('tags copy: byte loop', () => {
    let pos = 0;
    for (let i = 0; i < LINES; i++) for (let j = 0; j < tagBytes.length; j++) out[pos++] = tagBytes[j]!;
    sink += pos;
  })
  .add('peer copy: byte loop with JSON-safety check', () => {
    let pos = 0;
    for (let i = 0; i < LINES; i++) {
      for (let j = starts[i]! - PEER.length; j < starts[i]!; j++) {
        const b = batch[j]!;
        if (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c) break;
        out[pos++] = b;
      }
    }
    sink += pos;
  })
  .add('peer copy: src.copy(out, pos, ps, pe)', () => {
    let pos = 0;
    for (let i = 0; i < LINES; i++) pos += batch.copy(out, pos, starts[i]! - PEER.length, starts[i]);
    sink += pos;
  })
  .add("newline check: text.indexOf('\\n') + indexOf('\\r') (avoided)", () => {
    for (let i = 0; i < LINES; i++) {
      const t = batch.toString('utf8', starts[i], ends[i]);
      if (t.indexOf('\n') === -1 && t.indexOf('\r') === -1) sink++;
    }
  });

await bench.run();
await micro.run();

const perLine = new Map<string, number>();
console.log(
  `${LINES} Talos service lines of ${LINE_BYTES} bytes, tags ${JSON.stringify(TAGS)} + host_key (node ${process.version})`,
);
for (const task of [...bench.tasks, ...micro.tasks]) {
  if (task === micro.tasks[0]) console.log('-- micro: choices inside the fast path (decode is part of the last one)');
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state}`);
  const ns = (r.latency.p50 * 1e6) / LINES;
  perLine.set(task.name, ns);
  console.log(
    `${task.name.padEnd(66)} ${ns.toFixed(1).padStart(8)} ns/line  (median of ${r.latency.samplesCount ?? '?'} batches)`,
  );
}
const splice = perLine.get(fastName('TypeScript'))!;
const scan = perLine.get('scanRecord alone (validate + find top-level keys)')!;
const naive = perLine.get('parse + assign + JSON.stringify (same framing)')!;
const floor = perLine.get('decode + JSON.parse only (floor)')!;
console.log(`ratio parse+stringify / splice: ${(naive / splice).toFixed(2)}x`);
const nativeSplice = perLine.get(fastName('native'));
if (nativeSplice !== undefined) {
  console.log(
    `native vs TypeScript, records: ${nativeSplice.toFixed(1)} vs ${splice.toFixed(1)} ns/line (${(splice / nativeSplice).toFixed(2)}x)`,
  );
  const nb = perLine.get(blocksName('native'))!;
  const jb = perLine.get(blocksName('TypeScript'))!;
  console.log(`native vs TypeScript, blocks:  ${nb.toFixed(1)} vs ${jb.toFixed(1)} ns/line (${(jb / nb).toFixed(2)}x)`);
  const nm = perLine.get(mixedName('native'))!;
  const jm = perLine.get(mixedName('TypeScript'))!;
  console.log(`native vs TypeScript, mixed:   ${nm.toFixed(1)} vs ${jm.toFixed(1)} ns/line (${(jm / nm).toFixed(2)}x)`);
}
{
  const zstd = perLine.get('zstd frame of the output (compressFrame, default level)')!;
  const impl = nativeSplice !== undefined ? 'native' : 'TypeScript';
  const batch = (nativeSplice ?? splice) + zstd;
  const withFacts = perLine.get(nativeFactsName(impl))! - (nativeSplice ?? splice);
  console.log(
    `index facts as the ${impl} path goes: +${withFacts.toFixed(1)} ns/line on a worker batch of ${batch.toFixed(1)} (validate + tag, zstd): +${((withFacts / batch) * 100).toFixed(0)} %`,
  );
  const ts = perLine.get(FACTS_NAME)!;
  console.log(
    `index facts, TypeScript pass over the output: ${ts.toFixed(1)} ns/line: +${((ts / batch) * 100).toFixed(0)} %`,
  );
}
console.log(
  `splice path / decode+parse floor: ${(splice / floor).toFixed(2)}x; scan alone / floor: ${(scan / floor).toFixed(2)}x`,
);
if (sink === 0.5) console.log('');
