/**
 * Where msgpackr could sit in Sluice, measured against what the code does instead.
 *
 *   node_modules/.bin/node bench/msgpackr.bench.ts
 *
 * 1. The worker → main-thread result: per-batch counts (a small object) go by structured
 *    clone with the task's result; msgpackr would pack them into bytes and unpack them.
 * 2. A spool record header (length, records, raw bytes, crc32): fixed binary written into one
 *    reused buffer vs msgpackr.pack of the same four numbers.
 * 3. A record itself: the output format is NDJSON, so a msgpack step would be
 *    JSON.parse + pack + unpack + JSON.stringify on top of what the worker does.
 * Each variant's output is checked before timing.
 */
import { deepStrictEqual } from 'node:assert';
import { Bench } from 'tinybench';
import { Packr } from 'msgpackr';
import { mulberry32, serviceLine } from '@sluice/testkit';

const packr = new Packr({ useRecords: false });
const counts = {
  records: 1070,
  accepted: 1068,
  inputBytes: 262_100,
  outputBytes: 290_400,
  malformed: { invalid_frame: 0, empty: 1, invalid_utf8: 0, invalid_json: 1, not_object: 0, too_deep: 0 },
  kinds: { service: 1068, kernel: 0, other: 0 },
};
deepStrictEqual(structuredClone(counts), counts);
deepStrictEqual(packr.unpack(packr.pack(counts)), counts);

const header = Buffer.alloc(20);
const writeHeader = (len: number, records: number, raw: number, crc: number): Buffer => {
  header.writeUInt32LE(0x43524c53, 0);
  header.writeUInt32LE(len, 4);
  header.writeUInt32LE(records, 8);
  header.writeUInt32LE(raw, 12);
  header.writeUInt32LE(crc, 16);
  return header;
};
deepStrictEqual(writeHeader(65_536, 220, 72_000, 0xdeadbeef).readUInt32LE(16), 0xdeadbeef);
deepStrictEqual(packr.unpack(packr.pack([65_536, 220, 72_000, 0xdeadbeef])), [65_536, 220, 72_000, 0xdeadbeef]);

const line = serviceLine({ id: 1, rand: mulberry32(1) });
const lineBytes = Buffer.from(line);
deepStrictEqual(JSON.stringify(packr.unpack(packr.pack(JSON.parse(line)))), line);

const bench = new Bench({ time: 1500 });
bench
  .add('counts: structuredClone', () => structuredClone(counts))
  .add('counts: msgpackr pack+unpack', () => packr.unpack(packr.pack(counts)))
  .add('spool header: fixed binary', () => writeHeader(65_536, 220, 72_000, 0xdeadbeef))
  .add('spool header: msgpackr pack', () => packr.pack([65_536, 220, 72_000, 0xdeadbeef]))
  .add('record: as JSON bytes (what Sluice keeps)', () => lineBytes.subarray(0))
  .add('record: JSON -> msgpack -> JSON', () => JSON.stringify(packr.unpack(packr.pack(JSON.parse(line)))));
await bench.run();
const rows = bench.tasks.map((t) => {
  const r = t.result as unknown as { latency?: { p50?: number }; period?: number };
  const ns = (r.latency?.p50 ?? r.period ?? Number.NaN) * 1e6;
  return { task: t.name, 'median ns': Math.round(ns) };
});
console.table(rows);
