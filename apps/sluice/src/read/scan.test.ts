/**
 * The byte pre-filter and the fast paths never change the answer: a seeded differential of
 * ObjectScanner against an oracle that JSON.parses every line, over generated lines with
 * escapes (short and \u, for keys too), unicode, whitespace, nested objects and arrays,
 * duplicate keys, numbers in several spellings, Talos and HEC times; fed in pieces of random
 * sizes so lines straddle them.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '@sluice/testkit';
import { recordTime, requiredLiteralOfRegex, whereMatches, type WhereClause } from './match.ts';
import { ObjectOutput } from './output.ts';
import { Filter, ObjectScanner, type FilterOptions } from './scan.ts';
import { parseRfc3339 } from './time.ts';

const STRINGS = [
  'etcd',
  'kubelet',
  'a/b',
  'say "hi"',
  'back\\slash',
  'déjà vu',
  '日志',
  '🙂x',
  'x\ny',
  '',
  'UPDATE',
  '{[',
  'talos-service',
  'certificate renewed',
  'etcd member',
];
const KEYS = ['talos-service', 'talos-level', 'msg', 'event', 'action', 'n', 'ok', 'host', 'talos-time', 'time'];

type Rand = () => number;

function encString(s: string, rand: Rand): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    const u = (c: number): string => `\\u${c.toString(16).padStart(4, '0')}`;
    if (rand() < 0.04) {
      // Any character may be \u-escaped (astral ones as a surrogate pair).
      out += ch.length === 2 ? u(ch.charCodeAt(0)) + u(ch.charCodeAt(1)) : u(code);
    } else if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '/' && rand() < 0.5) out += '\\/';
    else if (code < 0x20) out += ch === '\n' ? '\\n' : u(code);
    else out += ch;
  }
  return `${out}"`;
}

function ws(rand: Rand): string {
  return rand() < 0.1 ? ' ' : '';
}

function encValue(v: unknown, rand: Rand): string {
  if (typeof v === 'string') return encString(v, rand);
  if (typeof v === 'number') return rand() < 0.3 && Number.isInteger(v) ? `${v / 100}e2` : String(v);
  if (Array.isArray(v)) return `[${v.map((x) => ws(rand) + encValue(x, rand)).join(',')}]`;
  if (v !== null && typeof v === 'object') return encObject(Object.entries(v), rand);
  return JSON.stringify(v);
}

function encObject(entries: [string, unknown][], rand: Rand): string {
  return `{${entries.map(([k, v]) => `${ws(rand)}${encString(k, rand)}${ws(rand)}:${ws(rand)}${encValue(v, rand)}`).join(',')}${ws(rand)}}`;
}

function talosTime(rand: Rand): string {
  const h = 10 + Math.floor(rand() * 4);
  const frac = rand() < 0.3 ? '' : `.${String(Math.floor(rand() * 1e9)).slice(0, 1 + Math.floor(rand() * 9))}`;
  const zone = rand() < 0.9 ? 'Z' : '+01:00';
  return `2024-05-01T${h}:${String(Math.floor(rand() * 60)).padStart(2, '0')}:00${frac}${zone}`;
}

function randomValue(rand: Rand, depth: number): unknown {
  const r = rand();
  if (r < 0.5) return STRINGS[Math.floor(rand() * STRINGS.length)];
  if (r < 0.65) return [200, 3, -1.5, 0][Math.floor(rand() * 4)];
  if (r < 0.72) return [true, false, null][Math.floor(rand() * 3)];
  if (r < 0.86 && depth < 3) return randomEntriesObject(rand, depth + 1);
  if (depth < 3) return [randomValue(rand, depth + 1), randomValue(rand, depth + 1)];
  return 'leaf';
}

function randomEntriesObject(rand: Rand, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const n = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) {
    const k = KEYS[Math.floor(rand() * KEYS.length)]!;
    o[k] = k === 'talos-time' && rand() < 0.7 ? talosTime(rand) : randomValue(rand, depth);
  }
  return o;
}

/** One line: a Talos-like record, a HEC envelope, or anything; sometimes with a duplicate key. */
function randomLine(rand: Rand): string {
  const entries: [string, unknown][] = [];
  const kind = rand();
  if (kind < 0.5) {
    if (rand() < 0.5) entries.push(['msg', `${STRINGS[Math.floor(rand() * STRINGS.length)]} [talos] {x}`]);
    entries.push(['talos-level', rand() < 0.5 ? 'info' : 'error']);
    entries.push(['talos-service', STRINGS[Math.floor(rand() * 4)]!]);
    entries.push(['talos-time', talosTime(rand)]);
  } else if (kind < 0.7) {
    entries.push(['event', randomValue(rand, 1)]);
    entries.push(['time', rand() < 0.8 ? 1714564800 + Math.floor(rand() * 4 * 3600) - 2 * 3600 + rand() : 'x']);
    entries.push(['host', 'n1']);
  }
  for (const [k, v] of Object.entries(randomEntriesObject(rand, 1))) entries.push([k, v]);
  return encObject(entries, rand);
}

function randomClause(rand: Rand): WhereClause {
  const paths = [['talos-service'], ['talos-level'], ['event', 'action'], ['msg'], ['n'], ['ok'], ['event'], ['host']];
  const values = [...STRINGS, '200', '2e2', '3', 'true', 'null', '-1.5'];
  return { path: paths[Math.floor(rand() * paths.length)]!, value: values[Math.floor(rand() * values.length)]! };
}

const KEY_TIME = '2024-05-01T12:00:00.000000000';

function oracle(line: string, opts: FilterOptions): boolean {
  const rec = JSON.parse(line) as unknown;
  if (opts.grep !== null && !opts.grep.test(line)) return false;
  for (const c of opts.where) if (!whereMatches(rec, c)) return false;
  if (opts.since !== null || opts.until !== null) {
    const t = recordTime(rec, KEY_TIME);
    if (t === undefined) return false;
    if (opts.since !== null && t < opts.since) return false;
    if (opts.until !== null && t >= opts.until) return false;
  }
  return true;
}

function scan(ndjson: Buffer, filter: Filter, rand: Rand): { out: string; matched: number; scanned: number } {
  const output = new ObjectOutput(1 << 30);
  const scanner = new ObjectScanner(filter, output, KEY_TIME, true, true);
  let pos = 0;
  while (pos < ndjson.length) {
    const n = rand() < 0.3 ? 1 + Math.floor(rand() * 40) : 1 + Math.floor(rand() * 4000);
    scanner.push(ndjson.subarray(pos, pos + n));
    pos += n;
  }
  scanner.finish();
  const parts: Buffer[] = [];
  let records = 0;
  for (let c = output.take(); c !== undefined; c = output.take()) {
    parts.push(Buffer.from(c.bytes));
    records += c.records;
  }
  expect(records).toBe(scanner.matched);
  return { out: Buffer.concat(parts).toString('utf8'), matched: scanner.matched, scanned: scanner.scanned };
}

describe('ObjectScanner against a JSON.parse oracle', () => {
  it('800 seeded filters over 300 generated lines each: the same records, as stored, in order', () => {
    const rand = mulberry32(0x5ca1ab1e);
    let matchedTotal = 0;
    for (let round = 0; round < 800; round++) {
      const lines = Array.from({ length: 300 }, () => randomLine(rand));
      const ndjson = Buffer.from(`${lines.join('\n')}\n`);
      const nWhere = Math.floor(rand() * 3);
      const time = (): string | null => (rand() < 0.4 ? parseRfc3339(talosTime(rand))! : null);
      let since = time();
      let until = time();
      if (since !== null && until !== null && since > until) [since, until] = [until, since];
      const grepSource =
        rand() < 0.15
          ? ['etcd', 'say \\"hi', 'renew(ed)?', '\\[talos\\]', 'k.belet|UPDATE', '日志'][Math.floor(rand() * 6)]!
          : null;
      const opts: FilterOptions = {
        where: Array.from({ length: nWhere }, () => randomClause(rand)),
        grep: grepSource === null ? null : new RegExp(grepSource),
        since,
        until,
        format: 'ndjson',
        color: false,
      };
      const expected = lines.filter((l) => oracle(l, opts));
      const got = scan(ndjson, new Filter(opts), rand);
      expect(got.out, JSON.stringify({ ...opts, grep: grepSource })).toBe(expected.map((l) => `${l}\n`).join(''));
      expect(got.scanned).toBe(lines.length);
      matchedTotal += expected.length;
    }
    // The generator must make matches common enough to mean something.
    expect(matchedTotal).toBeGreaterThan(8_000);
  });

  it('the top-level walk: keys nested, duplicated, spaced, escaped, in values, or with CR; lines that are not one object', () => {
    const lines = [
      '{"msg":"[talos] {x} \\"talos-time\\":\\"2024-05-01T13:00:00Z\\"","talos-service":"etcd","talos-time":"2024-05-01T12:30:00Z"}',
      '{"a":{"talos-time":"2024-05-01T13:00:00Z","talos-service":"etcd"},"talos-time":"2024-05-01T11:00:00Z"}',
      '{"a":[{"talos-service":"etcd"}],"talos-service":"kubelet","talos-time":"2024-05-01T13:00:00Z"}',
      '{"talos-time":"2024-05-01T11:00:00Z","talos-time" :"2024-05-01T13:00:00Z","talos-service":"etcd"}',
      '{"talos-time":"2024-05-01T13:00:00Z","talos-service":"etcd","talos-time":"2024-05-01T11:00:00Z","talos-service":"x"}',
      '{"talos-time":"2024-05-01T11:00:00Z","talos-service":"x","talos-time":"2024-05-01T13:00:00Z","talos-service":"etcd"}',
      '{"talos-service":"kubelet","talos\\u002dservice":"etcd","talos-time":"2024-05-01T13:00:00Z"}',
      '{"talos-service":"et\\u0063d","talos-time":"2024-05-01T13:00:00\\u005a"}',
      '{"talos-service" : "etcd", "talos-time": "2024-05-01T13:00:00Z"}\r',
      '{"talos-service":"etcd","talos-time":"2024-05-01T13:00:00Z"} ',
      '{"talos-service":"etcd","talos-time":"2024-05-01T13:00:00Z","n":[1,{"b":"}"}],"x":"]"}',
      '{"talos-service":"etcdx","talos-time":"2024-05-01T13:00:00Z"}',
      '{"talos-service":"","talos-time":"2024-05-01T13:00:00Z"}',
      '{"talos-service":null,"talos-time":2024}',
      '["talos-service","etcd"]',
      '"talos-time"',
    ];
    const ndjson = Buffer.from(`${lines.join('\n')}\n`);
    for (const where of [[], [{ path: ['talos-service'], value: 'etcd' }], [{ path: ['talos-service'], value: '' }]]) {
      for (const since of [null, '2024-05-01T12:00:00.000000000']) {
        const opts: FilterOptions = { where, grep: null, since, until: null, format: 'ndjson', color: false };
        const expected = lines
          .filter((l) => oracle(l, opts))
          .map((l) => `${l}\n`)
          .join('');
        expect(scan(ndjson, new Filter(opts), mulberry32(7)).out, JSON.stringify(opts)).toBe(expected);
      }
    }
  });

  it('a last line without a newline is a record too', () => {
    const f = new Filter({ where: [], grep: null, since: null, until: null, format: 'ndjson', color: false });
    const got = scan(Buffer.from('{"a":1}\n{"a":2}'), f, mulberry32(1));
    expect(got.out).toBe('{"a":1}\n{"a":2}\n');
  });
});

describe('requiredLiteralOfRegex', () => {
  it('finds a literal every match contains, or none', () => {
    expect(requiredLiteralOfRegex('certificate renewed')).toBe('certificate renewed');
    expect(requiredLiteralOfRegex('renew(ed)?')).toBe('renew');
    expect(requiredLiteralOfRegex('^etcd.*member$')).toBe('member');
    expect(requiredLiteralOfRegex('ab*c')).toBe('a'); // or 'c': either is in every match
    expect(requiredLiteralOfRegex('ab+c')).toBe('ab');
    expect(requiredLiteralOfRegex('\\[talos\\] x')).toBe('[talos] x');
    expect(requiredLiteralOfRegex('a|b')).toBe('');
    expect(requiredLiteralOfRegex('\\d+ms')).toBe('ms');
    expect(requiredLiteralOfRegex('[abc]def')).toBe('def');
  });
});
