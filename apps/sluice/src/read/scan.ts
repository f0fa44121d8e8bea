/**
 * The hot path of `sluice read`: an object's NDJSON bytes in, the matching records' bytes out.
 *
 * Bytes, not strings (an earlier prototype that split strings ran at 48-159 MB/s, 19 % of it
 * in GC): lines are found with Buffer.indexOf(0x0a), or, when --where/--since decide on a
 * top-level key, by the one JS walk over the line that finds that key (#walk). When the filter
 * has a literal every matching line must contain (the anchor, see match.ts), whole stretches
 * of lines without it are skipped with one native Buffer.indexOf(anchor) call; only lines
 * holding the anchor are looked at, and parsed when the bytes cannot decide. Matching lines are passed on as runs of bytes as stored (a run of
 * adjacent lines is one copy), never re-serialized.
 */
import { compareZBytes } from './time.ts';
import {
  literalOfClause,
  longestPlainRun,
  recordTime,
  requiredLiteralOfRegex,
  whereMatches,
  type WhereClause,
} from './match.ts';
import type { RunSink } from './output.ts';
import { formatPretty } from './pretty.ts';

export interface FilterOptions {
  readonly where: readonly WhereClause[];
  readonly grep: RegExp | null;
  /** Canonical time texts (time.ts), inclusive / exclusive. */
  readonly since: string | null;
  readonly until: string | null;
  readonly format: 'ndjson' | 'pretty';
  readonly color: boolean;
}

/** A filter compiled once per read: the anchor literal and the time bounds as bytes. */
export class Filter {
  readonly opts: FilterOptions;
  /** Bytes every matching line contains (or, if `anchorOrEscape`, a `\u` escape); null = none. */
  readonly anchor: Buffer | null;
  /** The anchor comes from a --where value, which a line may hold \u-escaped. */
  readonly anchorOrEscape: boolean;
  readonly sinceBytes: Buffer | null;
  readonly untilBytes: Buffer | null;
  /** Nothing to check: every line is printed as stored. */
  readonly passAll: boolean;
  /** Per --where clause, what to look for in the bytes to decide it without parsing, or null. */
  readonly probes: readonly (WhereProbe | null)[];

  constructor(opts: FilterOptions) {
    this.opts = opts;
    let anchor = '';
    let fromWhere = false;
    for (const clause of opts.where) {
      const lit = literalOfClause(clause);
      if (Buffer.byteLength(lit) > Buffer.byteLength(anchor)) {
        anchor = lit;
        fromWhere = true;
      }
    }
    // A --grep literal is matched against the line as stored: no escape can hide it, so it is
    // the better anchor unless much shorter.
    const grepLit = opts.grep !== null ? requiredLiteralOfRegex(opts.grep.source) : '';
    if (grepLit !== '' && Buffer.byteLength(grepLit) * 2 >= Buffer.byteLength(anchor)) {
      anchor = grepLit;
      fromWhere = false;
    }
    this.anchor = anchor === '' ? null : Buffer.from(anchor);
    this.anchorOrEscape = fromWhere;
    this.sinceBytes = opts.since === null ? null : Buffer.from(opts.since, 'latin1');
    this.untilBytes = opts.until === null ? null : Buffer.from(opts.until, 'latin1');
    this.probes = opts.where.map(whereProbe);
    this.passAll =
      opts.where.length === 0 &&
      opts.grep === null &&
      opts.since === null &&
      opts.until === null &&
      opts.format === 'ndjson';
  }
}

/** A top-level string field a --where clause can be decided on from the bytes. */
export interface WhereProbe {
  /** The key's bytes, as JSON writes them (no escape is needed). */
  readonly key: Buffer;
  /** The value's bytes, as JSON writes them when no escape is used. */
  readonly value: Buffer;
}

function plain(text: string): boolean {
  return text !== '' && longestPlainRun(text) === text;
}

/**
 * A clause on a top-level field whose name and value need no escape (`talos-service=etcd`):
 * then the key once at the top level with a string value without escapes decides it
 * (ObjectScanner's #walk). Numbers, literals and escaped strings are parsed.
 */
function whereProbe(clause: WhereClause): WhereProbe | null {
  if (clause.path.length !== 1) return null;
  const key = clause.path[0]!;
  if (!plain(key) || (clause.value !== '' && !plain(clause.value))) return null;
  return { key: Buffer.from(key), value: Buffer.from(clause.value) };
}

const NL = 0x0a;
const TAB = 0x09;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const COLON = 0x3a;
const BACKSLASH = 0x5c;
const ESCAPE_U = Buffer.from('\\u');
const TALOS_TIME_KEY = Buffer.from('talos-time');
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
/** #walk's marks for a wanted key: not (yet) at the top level; there, but not a plain string. */
const ABSENT = -1;

const NOT_PLAIN = -2;

/** Fast-path verdicts on a line's time. */
const OUT = 0;
const IN = 1;
const UNKNOWN = 2;

function parseLine(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** First `pat` in buf[pos, end), or `end`. */
function find(buf: Buffer, pat: Buffer | number, pos: number, end: number): number {
  const i = buf.indexOf(pat, pos);
  return i < 0 || i > end ? end : i;
}

/** Number of newlines in buf[start, end). */
export function countLines(buf: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = buf.indexOf(NL, start); i >= 0 && i < end; i = buf.indexOf(NL, i + 1)) n++;
  return n;
}

/**
 * Scans one object: push() its NDJSON bytes in pieces of any size, then finish(). Matching
 * records go to `out` in order. One scanner per object; not reentrant.
 */
export class ObjectScanner {
  readonly #f: Filter;
  readonly #out: RunSink;
  readonly #keyTime: string | undefined;
  readonly #countScanned: boolean;
  readonly #countRecords: boolean;
  readonly #hasTime: boolean;
  readonly #needParse: boolean;
  /** Lines seen (when counting), records matched. */
  scanned = 0;
  matched = 0;
  /** A line cut by the end of a piece, copied. */
  #carry: Buffer | null = null;
  /**
   * The top-level keys the byte fast paths decide on: each where probe's (at its index), then
   * `talos-time` if a time bound is set. Empty = no walk, lines are found with indexOf.
   */
  readonly #wanted: Buffer[];
  /** Index of `talos-time` in #wanted, or -1. */
  readonly #timeIdx: number;
  // The last #walk's findings: per wanted key, its string value's first byte (or ABSENT,
  // NOT_PLAIN) and the value's closing quote; and whether the line's structure was as expected.
  readonly #valAt: Int32Array;
  readonly #valEnd: Int32Array;
  #sure = false;
  /** Over the buffer being scanned, for #walk's four-byte steps. */
  #view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  // The run of adjacent matching lines not yet handed to the output.
  #runBuf: Buffer | null = null;
  #runStart = 0;
  #runEnd = 0;
  #runRecords = 0;
  /** The parsed record of the line accept() just accepted (pretty only). */
  #rec: unknown = undefined;

  /**
   * @param keyTime canonical time of the object's key: the time of records without their own.
   * @param countScanned count every line (--stats), which costs a pass over skipped stretches.
   * @param countRecords count the records of each output run (--limit needs them).
   */
  constructor(filter: Filter, out: RunSink, keyTime: string | undefined, countScanned: boolean, countRecords: boolean) {
    this.#f = filter;
    this.#out = out;
    this.#keyTime = keyTime;
    this.#countScanned = countScanned;
    this.#countRecords = countRecords;
    this.#hasTime = filter.sinceBytes !== null || filter.untilBytes !== null;
    this.#needParse = filter.opts.format === 'pretty' || filter.probes.some((p) => p === null);
    this.#wanted = filter.probes.map((p) => p?.key ?? Buffer.alloc(0));
    this.#timeIdx = this.#hasTime ? this.#wanted.push(TALOS_TIME_KEY) - 1 : -1;
    if (!this.#hasTime && filter.probes.every((p) => p === null)) this.#wanted = [];
    this.#valAt = new Int32Array(this.#wanted.length);
    this.#valEnd = new Int32Array(this.#wanted.length);
  }

  push(piece: Uint8Array): void {
    const buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    let start = 0;
    if (this.#carry !== null) {
      const nl = buf.indexOf(NL);
      if (nl < 0) {
        this.#carry = Buffer.concat([this.#carry, buf]);
        return;
      }
      const line = Buffer.concat([this.#carry, buf.subarray(0, nl + 1)]);
      this.#carry = null;
      this.#scan(line, 0, line.length);
      start = nl + 1;
    }
    const last = buf.lastIndexOf(NL);
    if (last >= start) this.#scan(buf, start, last + 1);
    const tail = last >= start ? last + 1 : start;
    if (tail < buf.length) this.#carry = Buffer.from(buf.subarray(tail));
  }

  /** The object's end: a last line without a newline is a record too (printed with one). */
  finish(): void {
    if (this.#carry !== null) {
      const line = Buffer.concat([this.#carry, Buffer.from([NL])]);
      this.#carry = null;
      this.#scan(line, 0, line.length);
    }
    this.#out.end();
  }

  /** buf[start, end) is whole lines. */
  #scan(buf: Buffer, start: number, end: number): void {
    const f = this.#f;
    if (this.#wanted.length > 0) this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (f.passAll) {
      const n = this.#countScanned || this.#countRecords ? countLines(buf, start, end) : 0;
      this.scanned += n;
      this.matched += n;
      this.#out.pushRun(buf, start, end, n);
    } else if (f.anchor !== null) {
      if (this.#countScanned) this.scanned += countLines(buf, start, end);
      this.#scanAnchored(buf, start, end, f.anchor);
    } else {
      // With keys to look at, the walk that finds them finds the line's end too: one pass over
      // the bytes in JS instead of a few native indexOf calls a line (see #walk).
      const walk = this.#wanted.length > 0;
      let s = start;
      while (s < end) {
        const e = walk ? this.#walk(buf, s) : buf.indexOf(NL, s);
        if (this.#countScanned) this.scanned++;
        if (this.#accept(buf, s, e)) this.#emit(buf, s, e);
        s = e + 1;
      }
    }
    this.#flushRun();
    this.#out.pieceDone();
  }

  #scanAnchored(buf: Buffer, start: number, end: number, anchor: Buffer): void {
    const orEscape = this.#f.anchorOrEscape;
    const walk = this.#wanted.length > 0;
    let nextA = -1;
    let nextU = orEscape ? -1 : end;
    let pos = start;
    for (;;) {
      if (nextA < pos) nextA = find(buf, anchor, pos, end);
      if (nextU < pos) nextU = find(buf, ESCAPE_U, pos, end);
      const hit = Math.min(nextA, nextU);
      if (hit >= end) break;
      let s = buf.lastIndexOf(NL, hit) + 1;
      if (s < start) s = start;
      const e = walk ? this.#walk(buf, s) : buf.indexOf(NL, hit);
      if (this.#accept(buf, s, e)) this.#emit(buf, s, e);
      pos = e + 1;
    }
  }

  /** Does the record of line buf[s, e) match? */
  #accept(buf: Buffer, s: number, e: number): boolean {
    const f = this.#f;
    let text: string | null = null;
    if (f.opts.grep !== null) {
      text = buf.toString('utf8', s, e);
      if (!f.opts.grep.test(text)) return false;
    }
    // Decide from the bytes what can be decided; parse only for the rest.
    let undecided = this.#needParse;
    const probes = f.probes;
    for (let i = 0; i < probes.length; i++) {
      const probe = probes[i]!;
      if (probe === null) continue;
      const verdict = this.#probeWhere(buf, probe, i);
      if (verdict === OUT) return false;
      if (verdict === UNKNOWN) undecided = true;
    }
    let timeDone = !this.#hasTime;
    if (!timeDone) {
      const verdict = this.#fastTime(buf, e);
      if (verdict === OUT) return false;
      timeDone = verdict === IN;
    }
    if (timeDone && !undecided) return true;
    text ??= buf.toString('utf8', s, e);
    const rec = parseLine(text);
    if (rec === undefined) {
      // Not JSON (a foreign object): only a filter on the text alone lets it through.
      if (!timeDone || f.opts.where.length > 0) return false;
      this.#rec = text;
      return true;
    }
    for (const clause of f.opts.where) if (!whereMatches(rec, clause)) return false;
    if (!timeDone) {
      const t = recordTime(rec, this.#keyTime);
      if (t === undefined) return false;
      if (f.opts.since !== null && t < f.opts.since) return false;
      if (f.opts.until !== null && t >= f.opts.until) return false;
    }
    this.#rec = rec;
    return true;
  }

  /**
   * Walks line buf[s, …) once, in JS, and returns its end (the newline's position). On the way
   * it notes where each wanted key's value is, if the key is in the line's top-level object
   * (depth 1, strings skipped; a string there followed by `:` is a key). #sure is false when
   * the bytes do not say it for certain, and then the line is parsed: the line does not start
   * with `{`, does not end where its object does, has a string or key with a newline, a
   * top-level key with an escape (which could spell a wanted one). A wanted key's value is
   * NOT_PLAIN unless it is `"…"` right after `:` with no escape in it; a key seen twice keeps
   * the last value, as JSON.parse does. It replaced four Buffer.indexOf calls a line and a walk
   * of the bytes before the key: --since 2,024M -> 1,584M instructions over 51 MB (callgrind,
   * bench/read.bench.ts --scan; docs/benchmarks.md "Reading").
   */
  #walk(buf: Buffer, s: number): number {
    const wanted = this.#wanted;
    const valAt = this.#valAt;
    const valEnd = this.#valEnd;
    const nWanted = wanted.length;
    const view = this.#view;
    const len = buf.length;
    for (let k = 0; k < nWanted; k++) valAt[k] = ABSENT;
    let sure = buf[s] === OPEN_BRACE;
    let depth = 0;
    /** The wanted key whose value starts at the next byte after its `:`, or -1. */
    let pending = -1;
    let i = s;
    let c = buf[i]!;
    for (;;) {
      if (c === QUOTE) {
        const q = i;
        let esc = false;
        i++;
        for (;;) {
          // Four bytes a step while none is a quote, a backslash or below 0x20 (each test is
          // exact about whether such a byte exists): --since 414 -> 495 MB/s in one thread
          // (bench/read.bench.ts --scan, median of 10 alternated, load 3), as many instructions.
          while (i + 4 <= len) {
            const w = view.getUint32(i, true);
            const x = w ^ 0x22222222;
            const y = w ^ 0x5c5c5c5c;
            if (((((w - 0x20202020) & ~w) | ((x - 0x01010101) & ~x) | ((y - 0x01010101) & ~y)) & 0x80808080) !== 0)
              break;
            i += 4;
          }
          c = buf[i]!;
          if (c === QUOTE || c === NL) break;
          if (c === BACKSLASH) {
            esc = true;
            if (buf[++i] === NL) {
              c = NL;
              break;
            }
          }
          i++;
        }
        if (c === NL) {
          sure = false;
          break;
        }
        // i: the closing quote.
        if (depth === 1) {
          if (pending >= 0) {
            // The value of the wanted key just before.
            if (q === valAt[pending]! - 1 && !esc) valEnd[pending] = i;
            else valAt[pending] = NOT_PLAIN;
            pending = -1;
          } else {
            let j = i + 1;
            let d = buf[j]!;
            while (d === SPACE || d === TAB || d === CR) d = buf[++j]!;
            if (d === COLON) {
              if (esc) sure = false;
              const keyLen = i - q - 1;
              for (let k = 0; k < nWanted; k++) {
                const key = wanted[k]!;
                if (key.length !== keyLen) continue;
                let m = 0;
                while (m < keyLen && buf[q + 1 + m] === key[m]) m++;
                if (m !== keyLen) continue;
                if (j === i + 1 && buf[j + 1] === QUOTE) {
                  valAt[k] = j + 2;
                  pending = k;
                } else {
                  valAt[k] = NOT_PLAIN;
                }
                break;
              }
              i = j;
            }
          }
        } else if (depth === 0) {
          sure = false;
        }
        c = buf[++i]!;
      } else if (c === NL) {
        break;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (depth === 0 && i !== s) sure = false;
        depth++;
        c = buf[++i]!;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--;
        if (depth < 0) sure = false;
        c = buf[++i]!;
      } else {
        // `pending` is only set with a quote next, so these bytes are never its value.
        if (depth === 0 && c !== SPACE && c !== TAB && c !== CR) sure = false;
        c = buf[++i]!;
      }
    }
    this.#sure = sure && depth === 0;
    return i;
  }

  /** IN / OUT / UNKNOWN for a --where probe on the line #walk just walked. */
  #probeWhere(buf: Buffer, probe: WhereProbe, i: number): number {
    if (!this.#sure) return UNKNOWN;
    const v = this.#valAt[i]!;
    if (v < 0) return UNKNOWN; // absent, not a string, or escaped: parsed
    const value = probe.value;
    const len = value.length;
    if (this.#valEnd[i]! - v !== len) return OUT;
    for (let m = 0; m < len; m++) if (buf[v + m] !== value[m]) return OUT;
    return IN;
  }

  /**
   * The line's `talos-time` compared as stored, without parsing: IN, OUT, or UNKNOWN when it
   * cannot be sure from the bytes (then the line is parsed). Sure means: a top-level key with
   * a plain Z time (#walk, compareZBytes).
   */
  #fastTime(buf: Buffer, e: number): number {
    if (!this.#sure) return UNKNOWN;
    const v = this.#valAt[this.#timeIdx]!;
    if (v < 0) return UNKNOWN;
    const since = this.#f.sinceBytes;
    if (since !== null) {
      const c = compareZBytes(buf, v, e, since);
      if (c === UNKNOWN) return UNKNOWN;
      if (c < 0) return OUT;
    }
    const until = this.#f.untilBytes;
    if (until !== null) {
      const c = compareZBytes(buf, v, e, until);
      if (c === UNKNOWN) return UNKNOWN;
      if (c >= 0) return OUT;
    }
    return IN;
  }

  #emit(buf: Buffer, s: number, e: number): void {
    this.matched++;
    if (this.#f.opts.format === 'pretty') {
      let rec = this.#rec;
      if (rec === undefined) {
        const text = buf.toString('utf8', s, e);
        rec = parseLine(text) ?? text;
      }
      this.#rec = undefined;
      this.#out.pushText(formatPretty(rec, this.#keyTime, this.#f.opts.color));
      return;
    }
    this.#rec = undefined;
    if (this.#runBuf === buf && this.#runEnd === s) {
      this.#runEnd = e + 1;
      this.#runRecords++;
      return;
    }
    this.#flushRun();
    this.#runBuf = buf;
    this.#runStart = s;
    this.#runEnd = e + 1;
    this.#runRecords = 1;
  }

  #flushRun(): void {
    if (this.#runBuf === null) return;
    this.#out.pushRun(this.#runBuf, this.#runStart, this.#runEnd, this.#runRecords);
    this.#runBuf = null;
  }
}
