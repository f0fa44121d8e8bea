import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import {
  MAX_SCAN_DEPTH,
  SCAN_CLOCK,
  SCAN_COLLIDES,
  SCAN_FACILITY,
  SCAN_OK,
  SCAN_PRIORITY,
  SCAN_REJECT,
  SCAN_SEQ,
  SCAN_TALOS_SERVICE,
} from './native-constants.ts';
import { scanRecord } from './json-scan.ts';
import { mulberry32, TalosLineGenerator } from '@sluice/testkit';

const KEYS = [Buffer.from('"cluster"'), Buffer.from('"__host"')];

/** What the exact path accepts: well-formed UTF-8, JSON.parse succeeds, an object, nesting <= maxDepth. */
function oracle(bytes: Buffer, maxDepth: number): Record<string, unknown> | null {
  if (!isUtf8(bytes)) return null;
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const depth = (x: unknown): number => {
    if (typeof x !== 'object' || x === null) return 0;
    let d = 0;
    for (const y of Object.values(x)) d = Math.max(d, depth(y));
    return 1 + d;
  };
  return depth(v) <= maxDepth ? (v as Record<string, unknown>) : null;
}

/** Trim as BatchProcessor does before scanning: JSON whitespace at both ends. */
function scan(bytes: Buffer, maxDepth = 128, keys = KEYS, nKeys = keys.length): number {
  let s = 0;
  let e = bytes.length;
  const ws = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  while (s < e && ws(bytes[s])) s++;
  while (e > s && ws(bytes[e - 1])) e--;
  if (s === e) return SCAN_REJECT;
  // Embed in a larger buffer: the scanner must never read past e.
  const host = Buffer.concat([Buffer.from('{"pre":1}'), bytes, Buffer.from('"}]0 , x')]);
  return scanRecord(host, s + 9, e + 9, maxDepth, keys, nKeys);
}

function expectedFlags(obj: Record<string, unknown>): number {
  let f = SCAN_OK;
  if (Object.hasOwn(obj, 'cluster') || Object.hasOwn(obj, '__host')) f |= SCAN_COLLIDES;
  if (Object.hasOwn(obj, 'talos-service')) f |= SCAN_TALOS_SERVICE;
  if (Object.hasOwn(obj, 'facility')) f |= SCAN_FACILITY;
  if (Object.hasOwn(obj, 'priority')) f |= SCAN_PRIORITY;
  if (Object.hasOwn(obj, 'clock')) f |= SCAN_CLOCK;
  if (Object.hasOwn(obj, 'seq')) f |= SCAN_SEQ;
  return f;
}

const SEEDS = [
  '{}',
  '{ }',
  '{"a":{}}',
  '{"a":[]}',
  '{"a":[{}]}',
  '{"a":[{},{"b":[1,[2,[]]]}],"c":null}',
  '{"n":-0.5e+10,"m":0,"o":1E-3,"p":123456789012345678901234567890,"t":true,"f":false}',
  '{"s":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\\ud800"}',
  '{"u":"déjà vu ключ 日志 😀 \u2028 \u007f"}',
  '{\n  "msg": "a b",\r\n  "n": 1.50,\n  "o": {\n  }\n}',
  '{"cluster":"x","k":1}',
  '{"k":{"cluster":"nested does not collide"}}',
  '{"__host":"1.2.3.4"}',
  '{"talos-service":"machined","facility":"kern","priority":"info","clock":1,"seq":2}',
  '{"facility":"kern","priority":"info","clock":1,"seq":2,"msg":"talos-service"}',
  '{"a":"cluster","b":"\\"cluster\\""}',
  '{"dup":1,"dup":2}',
  '{"__proto__":{"x":1}}',
];

describe('scanRecord', () => {
  it('accepts valid objects with exactly the top-level key flags', () => {
    const gen = new TalosLineGenerator(7);
    const lines = [...SEEDS];
    for (let id = 0; id < 300; id++) lines.push(id % 3 === 0 ? gen.kernel() : gen.service());
    for (const line of lines) {
      const bytes = Buffer.from(line);
      const obj = oracle(bytes, 128);
      expect(obj, line).not.toBeNull();
      expect(scan(bytes), line).toBe(expectedFlags(obj!));
    }
  });

  it('rejects what the exact path must decide: non-objects, escaped top-level keys, nesting over the limit', () => {
    for (const line of ['[]', '"s"', '1', 'null', '{"\\u0063luster":1}', '{"a":1}x', '{"a":1,}'])
      expect(scan(Buffer.from(line)), line).toBe(SCAN_REJECT);
    // Escapes in nested keys are fine: only top-level keys matter for tags and kinds.
    expect(scan(Buffer.from('{"a":{"\\u0063":1}}'))).toBe(SCAN_OK);
    const deep = (n: number) => Buffer.from(`${'{"a":'.repeat(n - 1)}{}${'}'.repeat(n - 1)}`);
    expect(scan(deep(8), 8)).toBe(SCAN_OK);
    expect(scan(deep(9), 8)).toBe(SCAN_REJECT);
    expect(scan(deep(MAX_SCAN_DEPTH + 1), Infinity)).toBe(SCAN_REJECT);
    expect(scan(deep(MAX_SCAN_DEPTH), Infinity)).toBe(SCAN_OK);
  });

  it('only counts the first nKeys inject keys as collisions', () => {
    expect(scan(Buffer.from('{"__host":"x"}'), 128, KEYS, 1)).toBe(SCAN_OK);
    expect(scan(Buffer.from('{"__host":"x"}'), 128, KEYS, 2)).toBe(SCAN_OK | SCAN_COLLIDES);
  });

  it('never accepts a line the exact path rejects: 60,000 random mutations, differential against isUtf8 + JSON.parse', () => {
    const rand = mulberry32(20261122);
    const gen = new TalosLineGenerator(3);
    const pool = [...SEEDS.map((s) => Buffer.from(s))];
    for (let id = 0; id < 50; id++) pool.push(Buffer.from(id % 2 === 0 ? gen.kernel() : gen.service()));
    // Bytes that matter to the grammar or to UTF-8, more often than uniform noise would pick them.
    const INTERESTING = [
      ...Buffer.from('{}[]",:\\/ \t\r\n-+.0123456789eEtrufalsn'),
      0x00,
      0x1f,
      0x7f,
      0x80,
      0xbf,
      0xc0,
      0xc2,
      0xdf,
      0xe0,
      0xed,
      0xef,
      0xf0,
      0xf4,
      0xf5,
      0xff,
      0xa0,
      0x9f,
      0x90,
      0x8f,
    ];
    const pick = () =>
      rand() < 0.7 ? INTERESTING[Math.floor(rand() * INTERESTING.length)]! : Math.floor(rand() * 256);
    let accepted = 0;
    let exactOnly = 0;
    for (let n = 0; n < 60_000; n++) {
      const base = pool[Math.floor(rand() * pool.length)]!;
      const b = [...base];
      const edits = 1 + Math.floor(rand() * 3);
      for (let k = 0; k < edits && b.length > 0; k++) {
        const at = Math.floor(rand() * (b.length + 1));
        const op = rand();
        if (op < 0.35) b.splice(at, 0, pick());
        else if (op < 0.65) b.splice(Math.min(at, b.length - 1), 1);
        else if (op < 0.95) b[Math.min(at, b.length - 1)] = pick();
        else b.length = at;
      }
      const bytes = Buffer.from(b);
      const maxDepth = rand() < 0.2 ? 2 : 128;
      const got = scan(bytes, maxDepth);
      const obj = oracle(bytes, maxDepth);
      if (got !== SCAN_REJECT) {
        accepted++;
        if (obj === null)
          throw new Error(
            `scanner accepted a line the exact path rejects: ${JSON.stringify(bytes.toString('latin1'))}`,
          );
        expect(got, bytes.toString('latin1')).toBe(expectedFlags(obj));
      } else if (obj !== null) {
        exactOnly++;
        // Only escaped top-level keys (any backslash before the first value is a fair proxy) may go to the exact path.
        if (!bytes.includes(0x5c))
          throw new Error(`scanner rejected a valid line without escapes: ${JSON.stringify(bytes.toString('latin1'))}`);
      }
    }
    expect(accepted).toBeGreaterThan(1000);
    expect(exactOnly).toBeLessThan(accepted);
  });
});
