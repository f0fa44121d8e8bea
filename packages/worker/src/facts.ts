/**
 * Batch facts: what an object's index (docs/internals.md, "Object index") needs to know about
 * the records of one batch, gathered in the worker from the batch's output NDJSON:
 *
 * - the range of record times, as `sluice read` computes a record's time (`talos-time`, an RFC
 *   3339 string; else a HEC envelope's `time`, epoch seconds, when the record has an `event`),
 *   and how many records have no such time (the reader gives those the object's key time);
 * - per indexed field (top-level keys: `talos-service`, `talos-level`, `host`, `source` and the
 *   sources' host keys), the distinct texts a `--where FIELD=TEXT` can match: a string value as
 *   it is, a number, true, false or null as JSON writes it (`2e2` → `200`), as match.ts does.
 *   More than {@link MAX_FIELD_VALUES} distinct texts and the field is `null`: "many", no pruning.
 *
 * Two ways, one answer for what the reader can match:
 * - the C++ pass (packages/worker/native/facts.cc through facts-native.ts), when its addon loads:
 *   one pass per line over the top level, nothing decoded; the lines it cannot decide exactly
 *   (an escaped key, a value that is not a plain string, a time not in the plain Z form...) come
 *   back as "uncertain" and take the TypeScript way below;
 * - the TypeScript way, for those lines and for every line without the addon: a hop from colon
 *   to colon over the line as latin1 text, values of every depth taken (a superset of the top
 *   level's never hides a record); a line whose keys use an escape, or whose time is not plain,
 *   is parsed (JSON.parse), so its facts agree with the reader exactly.
 * Cost of each: docs/benchmarks.md, "Object index facts" (bench/parse-tag.bench.ts).
 */
import { packFields } from './batch-native.ts';
import {
  F_MANY,
  F_MAX_FIELDS,
  F_STRIDE,
  F_TIME_LEN,
  MAX_FIELD_VALUES,
  S_F_HAS_TIME,
  S_F_OVERFLOW,
  S_F_RECORDS,
  S_F_UNCERTAIN,
  S_F_UNTIMED,
} from './native-constants.ts';
import { fraction9, inRange, NANO_ZEROS, parseRfc3339, parsedRecordTime } from './record-time.ts';

export { parsedRecordTime };

/** The facts of a batch (and, merged, of an object). Plain data: crosses threads by structured clone. */
export interface BatchFacts {
  records: number;
  /** Records whose time the reader takes from the object's key. */
  untimed: number;
  /** Canonical times (`YYYY-MM-DDTHH:MM:SS.nnnnnnnnn`, UTC) of the earliest / latest timed record; null when none. */
  minTime: string | null;
  maxTime: string | null;
  /** Per indexed field, its distinct matchable texts in first-seen order, or null ("many"). */
  fields: Record<string, string[] | null>;
}

/**
 * A batch's facts as they cross to the main thread: the fields as one JSON text, each field's
 * values sorted. One string clones in a fraction of the nested object's time (~2.9 µs for a
 * 20-record batch, on the main thread's side half of it), and a frame whose fields are those
 * of the frame before (the common case: the same services, levels and hosts) is merged by a
 * string compare (object-index.ts mergeFrameFacts).
 */
export interface FrameFacts {
  records: number;
  untimed: number;
  minTime: string | null;
  maxTime: string | null;
  /** JSON of `BatchFacts.fields`, values sorted. */
  fields: string;
}

export function toFrameFacts(f: BatchFacts): FrameFacts {
  const fields: Record<string, string[] | null> = {};
  for (const [k, v] of Object.entries(f.fields)) fields[k] = v === null ? null : v.length < 2 ? v : [...v].sort();
  return {
    records: f.records,
    untimed: f.untimed,
    minTime: f.minTime,
    maxTime: f.maxTime,
    fields: JSON.stringify(fields),
  };
}

export { MAX_FIELD_VALUES };

/** Fields every index carries, besides the sources' host keys. */
export const INDEXED_FIELDS: readonly string[] = ['talos-service', 'talos-level', 'host', 'source'];

/** The fields an index carries for sources with these host keys (null: none). */
export function indexFieldsFor(hostKeys: readonly (string | null)[]): string[] {
  const out = [...INDEXED_FIELDS];
  for (const k of hostKeys) if (k !== null && !out.includes(k)) out.push(k);
  return out;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;
const NL = 0x0a;
const D0 = 0x30;
const D9 = 0x39;

/** Running totals of a batch. */
interface Acc {
  records: number;
  untimed: number;
  minTime: string | null;
  maxTime: string | null;
}

/** A key the byte passes can find: printable ASCII that JSON writes without an escape. */
function plainKey(name: string): boolean {
  return /^[\x20-\x7e]+$/.test(name) && JSON.stringify(name) === `"${name}"`;
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === NL;
}

// Record time: one implementation, shared with `sluice read` (record-time.ts).

/** The text a `--where` can match for a top-level value, or undefined (objects and arrays never match). */
function matchableText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return JSON.stringify(v);
  return undefined;
}

/** Gathers the facts of batches; one per worker, reused. */
export class FactsScanner {
  readonly #fields: readonly string[];
  /** Keys looked for, and their slots: a field's index, then talos-time (fields.length) and time (fields.length + 1). */
  readonly #keyNames: string[] = [];
  readonly #keySlots: number[] = [];
  /** 1 at the char code every key of interest ends with. */
  readonly #lastChars = new Uint8Array(128);
  readonly #decoder = new TextDecoder();
  /** For the native scan (batch.cc + facts.h): the fields it looks for, packed, and the index in #fields of each; null: none. */
  readonly #native: { fields: Uint8Array; facts: Uint32Array; times: Uint8Array } | null = null;
  readonly #nativeSlots: number[] = [];
  /** Per field, the raw value text met last in this batch (most lines repeat their neighbour's). */
  readonly #last: string[];

  /**
   * @param fields top-level keys to index, e.g. {@link indexFieldsFor}'s.
   */
  constructor(fields: readonly string[]) {
    this.#fields = [...new Set(fields)];
    this.#last = this.#fields.map(() => '\u0000');
    [...this.#fields, 'talos-time', 'time'].forEach((name, i) => {
      // Lines are searched as latin1 text, so only printable-ASCII keys without an escape are
      // found by the byte pass; any other indexed field is "many" (scan()), never a wrong set.
      if (!plainKey(name)) return;
      this.#keyNames.push(name);
      this.#keySlots.push(i);
      this.#lastChars[name.charCodeAt(name.length - 1)] = 1;
    });
    // The native scan knows talos-time, time and event by name: an indexed field so named is
    // left to this file's way, as is a list longer than it takes.
    const eligible = this.#fields.map((f, i) => ({ f, i })).filter(({ f }) => plainKey(f));
    const clash = this.#fields.some((f) => f === 'talos-time' || f === 'time' || f === 'event');
    if (!clash && eligible.length <= F_MAX_FIELDS) {
      this.#nativeSlots = eligible.map(({ i }) => i);
      // Room for 1024 uncertain lines per batch; more and the batch is gathered here.
      this.#native = {
        fields: packFields(eligible.map(({ f }) => f)),
        facts: new Uint32Array(eligible.length * F_STRIDE + 2048),
        times: new Uint8Array(2 * F_TIME_LEN),
      };
    }
  }

  get fields(): readonly string[] {
    return this.#fields;
  }

  /**
   * The buffers the native scan gathers into (BatchProcessor passes them to processRecords), with
   * the count of every field zeroed for a new batch; null when the fields are not for it.
   */
  nativeBuffers(): { fields: Uint8Array; facts: Uint32Array; times: Uint8Array } | null {
    const n = this.#native;
    if (n === null) return null;
    for (let i = 0; i < this.#nativeSlots.length; i++) n.facts[i * F_STRIDE] = 0;
    return n;
  }

  /** The facts of `ndjson` (one JSON object + '\n' per record), every line gathered here. */
  scan(ndjson: Uint8Array): BatchFacts {
    const buf = Buffer.from(ndjson.buffer, ndjson.byteOffset, ndjson.byteLength);
    this.#last.fill('\u0000');
    const sets: (Set<string> | null)[] = this.#fields.map(() => new Set<string>());
    const acc: Acc = { records: 0, untimed: 0, minTime: null, maxTime: null };
    const len = buf.length;
    let s = 0;
    while (s < len) {
      const e = at(buf.indexOf(NL, s), len);
      if (e > s) this.#count(acc, buf, s, e, sets);
      s = e + 1;
    }
    return this.#result(acc, sets);
  }

  /**
   * The facts of a batch the native scan gathered into {@link nativeBuffers} (its counts in the
   * state's S_F_* slots): its sets and range, then this file's way for the lines it sent back,
   * and the extra tags' values (on every accepted record; the scan sees the input's keys only).
   * Null when it sent back more lines than its buffer holds: call {@link scan}.
   */
  finishNative(
    ndjson: Uint8Array,
    st: Float64Array,
    tags: Readonly<Record<string, string>>,
    accepted: number,
  ): BatchFacts | null {
    const n = this.#native;
    if (n === null || st[S_F_OVERFLOW] === 1) return null;
    const buf = Buffer.from(ndjson.buffer, ndjson.byteOffset, ndjson.byteLength);
    this.#last.fill('\u0000');
    const facts = n.facts;
    const sets: (Set<string> | null)[] = this.#fields.map(() => new Set<string>());
    this.#nativeSlots.forEach((f, i) => {
      const w = i * F_STRIDE;
      const count = facts[w]!;
      if (count === F_MANY) {
        sets[f] = null;
        return;
      }
      const set = sets[f]!;
      // Each value is a string's text without an escape: its UTF-8 bytes are the text.
      for (let k = 0; k < count; k++) {
        const off = facts[w + 1 + 2 * k]!;
        set.add(buf.toString('utf8', off, off + facts[w + 2 + 2 * k]!));
      }
    });
    if (accepted > 0) {
      for (let f = 0; f < this.#fields.length; f++) {
        const tag = tags[this.#fields[f]!];
        if (tag !== undefined && Object.hasOwn(tags, this.#fields[f]!)) addText(sets, f, tag);
      }
    }
    const hasTime = st[S_F_HAS_TIME] === 1;
    const acc: Acc = {
      records: st[S_F_RECORDS]!,
      untimed: st[S_F_UNTIMED]!,
      minTime: hasTime ? Buffer.from(n.times.buffer, 0, F_TIME_LEN).toString('latin1') : null,
      maxTime: hasTime ? Buffer.from(n.times.buffer, F_TIME_LEN, F_TIME_LEN).toString('latin1') : null,
    };
    const lines = this.#nativeSlots.length * F_STRIDE;
    for (let k = 0, u = st[S_F_UNCERTAIN]!; k < u; k++)
      this.#count(acc, buf, facts[lines + 2 * k]!, facts[lines + 2 * k + 1]!, sets);
    return this.#result(acc, sets);
  }

  /** Line [s, e) counted into `acc`, its field texts into `sets`. */
  #count(acc: Acc, buf: Buffer, s: number, e: number, sets: (Set<string> | null)[]): void {
    acc.records++;
    const time = this.#line(buf, s, e, sets, this.#last);
    if (time === undefined) acc.untimed++;
    else {
      if (acc.minTime === null || time < acc.minTime) acc.minTime = time;
      if (acc.maxTime === null || time > acc.maxTime) acc.maxTime = time;
    }
  }

  #result(acc: Acc, sets: (Set<string> | null)[]): BatchFacts {
    const fields: Record<string, string[] | null> = {};
    for (let i = 0; i < this.#fields.length; i++) {
      const set = sets[i]!;
      fields[this.#fields[i]!] = set === null || !this.#keySlots.includes(i) ? null : [...set];
    }
    return { records: acc.records, untimed: acc.untimed, minTime: acc.minTime, maxTime: acc.maxTime, fields };
  }

  /** One line's facts: its field texts into `sets`, its time returned (undefined: none of its own). */
  #line(buf: Buffer, s: number, e: number, sets: (Set<string> | null)[], last: string[]): string | undefined {
    const nf = this.#fields.length;
    const names = this.#keyNames;
    const slots = this.#keySlots;
    // The line as latin1 (one byte = one char, so positions are byte offsets; values that
    // are not ASCII are decoded as UTF-8): one small flat string per line, where V8's own
    // indexOf and charCodeAt are cheap (a latin1 string of the whole batch cost 0.7 ns a byte).
    const text = buf.toString('latin1', s, e);
    const n = text.length;
    let time: string | undefined;
    let uncertain = false;
    if (text.indexOf('\\u') >= 0) {
      // A `\u` escape may spell a key: parse the line, exactly as the reader does.
      time = this.#parsed(buf, s, e, sets);
    } else {
      // Hop from colon to colon: a colon right after an unescaped quote ends a key.
      let tp = -1;
      let tpCount = 0;
      let timeKey = false;
      for (let c = text.indexOf(':'); c >= 0; c = text.indexOf(':', c + 1)) {
        let q = c - 1;
        while (q > 0 && isWs(text.charCodeAt(q))) q--;
        if (text.charCodeAt(q) !== QUOTE || text.charCodeAt(q - 1) === BACKSLASH) continue;
        let k = -1;
        // Keys of interest by their last char: most keys (msg, component, cluster...) end here.
        const last1 = text.charCodeAt(q - 1);
        if (last1 >= 128 || (this.#lastChars[last1]! & 1) === 0) continue;
        for (let m = 0; m < names.length; m++) {
          const name = names[m]!;
          const ks = q - name.length;
          if (text.charCodeAt(ks - 1) !== QUOTE || !sameAt(text, ks, name)) continue;
          if (text.charCodeAt(ks - 2) === BACKSLASH)
            uncertain = true; // maybe an escaped quote inside a longer key
          else k = slots[m]!;
          break;
        }
        if (k < 0) continue;
        if (k === nf) {
          tp = q + 1;
          tpCount++;
          continue;
        }
        if (k === nf + 1) {
          timeKey = true;
          continue;
        }
        const v = valueAfter(text, q + 1, n);
        if (v < 0) continue;
        const raw = text.slice(v, valueEnd);
        if (raw === last[k]) continue;
        last[k] = raw;
        const t = this.#matchable(buf, raw, s + v);
        if (t !== undefined) addText(sets, k, t);
      }
      // talos-time: the fast case is one, a key at the top level (no `{` or `[` before it), in Z form.
      if (tpCount === 1 && !uncertain) {
        const v = valueAfter(text, tp, n);
        const open = text.indexOf('{');
        const nested = text.indexOf('{', open + 1);
        const bracket = text.indexOf('[');
        const flat = v >= 0 && (nested < 0 || nested > tp) && (bracket < 0 || bracket > tp);
        if (flat && text.charCodeAt(v) === QUOTE)
          time =
            zCanonical(text, v + 1, valueEnd - 1) ??
            (text.slice(v, valueEnd).includes('\\') ? undefined : parseRfc3339(text.slice(v + 1, valueEnd - 1)));
      }
      // Anything else (nested, repeated, not a time, escaped, a "time" key for HEC's rule): the reader's own way.
      if (time === undefined && (tpCount > 0 || timeKey || uncertain))
        time = this.#parsed(buf, s, e, uncertain ? sets : null);
    }
    return time;
  }

  /** The --where text of the value `raw` found at `v` (latin1 text of the bytes). */
  #matchable(buf: Buffer, raw: string, v: number): string | undefined {
    const c = raw.charCodeAt(0);
    if (c === LBRACE || c === LBRACKET) return undefined;
    let ascii = true;
    for (let i = 0; i < raw.length; i++) {
      const x = raw.charCodeAt(i);
      if (x >= 0x80 || x === BACKSLASH) {
        ascii = false;
        break;
      }
    }
    if (c === QUOTE && ascii) return raw.slice(1, -1);
    const exact = ascii ? raw : this.#decoder.decode(buf.subarray(v, v + raw.length));
    try {
      return matchableText(JSON.parse(exact));
    } catch {
      return undefined;
    }
  }

  /** The exact path: parse the line as the reader does; adds its fields when `sets` is given. */
  #parsed(buf: Buffer, s: number, e: number, sets: (Set<string> | null)[] | null): string | undefined {
    let rec: unknown;
    try {
      rec = JSON.parse(this.#decoder.decode(buf.subarray(s, e)));
    } catch {
      return undefined; // not JSON: the reader cannot parse it either, and gives it the key's time
    }
    if (sets !== null && typeof rec === 'object' && rec !== null && !Array.isArray(rec)) {
      const r = rec as Record<string, unknown>;
      for (let f = 0; f < this.#fields.length; f++) {
        const name = this.#fields[f]!;
        if (!Object.hasOwn(r, name)) continue;
        const text = matchableText(r[name]);
        if (text !== undefined) addText(sets, f, text);
      }
    }
    return parsedRecordTime(rec);
  }
}

/** text.startsWith(name, at), without the builtin call (3x the cost on bench/parse-tag, short names). */
function sameAt(text: string, at: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) if (text.charCodeAt(at + i) !== name.charCodeAt(i)) return false;
  return true;
}

function at(i: number, len: number): number {
  return i < 0 ? len : i;
}

/** Set by valueAfter: the end of the value found. */
let valueEnd = 0;

/**
 * When the `"name"` ending at `i` is a key (`:` follows), the start of its value (its end in
 * {@link valueEnd}); -1 when it is not a key, or its value does not end in the line. Values of
 * every depth are taken: a nested key's value only adds to a set, never hides a record.
 */
function valueAfter(text: string, i: number, e: number): number {
  while (i < e && isWs(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== COLON) return -1;
  i++;
  while (i < e && isWs(text.charCodeAt(i))) i++;
  if (i >= e) return -1;
  const c = text.charCodeAt(i);
  if (c === QUOTE) {
    let q = i;
    for (;;) {
      q = text.indexOf('"', q + 1);
      if (q < 0 || q >= e) return -1;
      let n = 0;
      while (text.charCodeAt(q - 1 - n) === BACKSLASH) n++;
      if ((n & 1) === 0) break;
    }
    valueEnd = q + 1;
    return i;
  }
  if (c === LBRACE || c === LBRACKET) {
    valueEnd = i + 1; // not a --where value: the caller ignores it
    return i;
  }
  let j = i;
  while (j < e) {
    const x = text.charCodeAt(j);
    if (x === COMMA || x === RBRACE || x === RBRACKET || isWs(x)) break;
    j++;
  }
  valueEnd = j;
  return i;
}

/** A plain `YYYY-MM-DDTHH:MM:SS[.digits]Z` in text[a, b) as canonical text, else undefined. */
function zCanonical(text: string, a: number, b: number): string | undefined {
  const n = b - a;
  if (n < 20 || text.charCodeAt(b - 1) !== 0x5a) return undefined;
  for (let i = 0; i < 19; i++) {
    const c = text.charCodeAt(a + i);
    if (i === 4 || i === 7) {
      if (c !== 0x2d) return undefined;
    } else if (i === 10) {
      if (c !== 0x54) return undefined;
    } else if (i === 13 || i === 16) {
      if (c !== COLON) return undefined;
    } else if (c < D0 || c > D9) return undefined;
  }
  const num = (k: number): number => (text.charCodeAt(a + k) - D0) * 10 + text.charCodeAt(a + k + 1) - D0;
  if (!inRange(num(5), num(8), num(11), num(14), num(17))) return undefined;
  if (n === 20) return `${text.slice(a, a + 19)}.${NANO_ZEROS}`;
  if (text.charCodeAt(a + 19) !== 0x2e || n < 22) return undefined;
  for (let k = a + 20; k < b - 1; k++) {
    const c = text.charCodeAt(k);
    if (c < D0 || c > D9) return undefined;
  }
  return `${text.slice(a, a + 19)}.${fraction9(text.slice(a + 20, b - 1))}`;
}

function addText(sets: (Set<string> | null)[], f: number, text: string): void {
  const set = sets[f];
  if (set === null || set === undefined || set.has(text)) return;
  if (set.size >= MAX_FIELD_VALUES) sets[f] = null;
  else set.add(text);
}
