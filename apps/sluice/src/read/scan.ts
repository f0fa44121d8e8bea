/**
 * The hot path of `sluice read`: an object's NDJSON bytes in, the matching records' bytes out.
 *
 * Bytes, not strings (an earlier prototype that split strings ran at 48-159 MB/s, 19 % of it
 * in GC): lines are found with Buffer.indexOf(0x0a), and when the filter has a literal every
 * matching line must contain (the anchor, see match.ts), whole stretches of lines without it
 * are skipped with one native Buffer.indexOf(anchor) call; only lines holding the anchor are
 * decoded and parsed. Matching lines are passed on as runs of bytes as stored (a run of
 * adjacent lines is one copy), never re-serialized.
 */
import { compareZBytes } from './time.ts';
import { literalOfClause, longestPlainRun, recordTime, requiredLiteralOfRegex, whereMatches, type WhereClause } from './match.ts';
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
    this.passAll = opts.where.length === 0 && opts.grep === null && opts.since === null && opts.until === null && opts.format === 'ndjson';
  }
}

/** A top-level string field a --where clause can be decided on from the bytes. */
export interface WhereProbe {
  /** `"key":"` */
  readonly pattern: Buffer;
  /** `"key"`: a second one in the line (a duplicate key, or the name as a value) = parse. */
  readonly name: Buffer;
  /** `VALUE"`: the value as JSON writes it when no \u escape is used. */
  readonly value: Buffer;
}

function plain(text: string): boolean {
  return text !== '' && longestPlainRun(text) === text;
}

/**
 * A clause on a top-level field whose name and value need no escape (`talos-service=etcd`):
 * then `"talos-service":"etcd"` at the top level of a line without \u escapes decides it, and
 * `"talos-service":"` followed by anything else rules it out. Numbers and literals are parsed.
 */
function whereProbe(clause: WhereClause): WhereProbe | null {
  if (clause.path.length !== 1) return null;
  const key = clause.path[0]!;
  if (!plain(key) || (clause.value !== '' && !plain(clause.value))) return null;
  return { pattern: Buffer.from(`"${key}":"`), name: Buffer.from(`"${key}"`), value: Buffer.from(`${clause.value}"`) };
}

const NL = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const TALOS_TIME = Buffer.from('"talos-time":"');
const TALOS_TIME_NAME = Buffer.from('"talos-time"');
const ESCAPE_U = Buffer.from('\\u');
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;

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
  // Cursors of the time fast path into the current buffer (positions of the next occurrence).
  #ttCur = -1;
  /** The next `"talos-time"` after the last line's: where the next line's time usually is. */
  #ttNameCur = -1;
  #braceCur = -1;
  #bracketCur = -1;
  #escCur = -1;
  /** Per where probe: next `"key":"`. */
  readonly #probeCur: number[];
  // The run of adjacent matching lines not yet handed to the output.
  #runBuf: Buffer | null = null;
  #runStart = 0;
  #runEnd = 0;
  #runRecords = 0;
  /** The parsed record of the line accept() just accepted (pretty only). */
  #rec: unknown = undefined;
  /** End of the whole lines of the buffer being scanned: the cursors search up to it. */
  #end = 0;

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
    this.#probeCur = filter.probes.map(() => -1);
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
    this.#ttCur = this.#ttNameCur = this.#braceCur = this.#bracketCur = this.#escCur = -1;
    this.#probeCur.fill(-1);
    this.#end = end;
    if (f.passAll) {
      const n = this.#countScanned || this.#countRecords ? countLines(buf, start, end) : 0;
      this.scanned += n;
      this.matched += n;
      this.#out.pushRun(buf, start, end, n);
    } else if (f.anchor !== null) {
      if (this.#countScanned) this.scanned += countLines(buf, start, end);
      this.#scanAnchored(buf, start, end, f.anchor);
    } else {
      let s = start;
      while (s < end) {
        const e = buf.indexOf(NL, s);
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
    let nextA = -1;
    let nextU = orEscape ? -1 : end;
    let pos = start;
    for (;;) {
      if (nextA < pos) nextA = find(buf, anchor, pos, end);
      if (nextU < pos) nextU = find(buf, ESCAPE_U, pos, end);
      const hit = nextA < nextU ? nextA : nextU;
      if (hit >= end) break;
      let s = buf.lastIndexOf(NL, hit) + 1;
      if (s < start) s = start;
      const e = buf.indexOf(NL, hit);
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
      const verdict = this.#probeWhere(buf, s, e, probe, i);
      if (verdict === OUT) return false;
      if (verdict === UNKNOWN) undecided = true;
    }
    let timeDone = !this.#hasTime;
    if (!timeDone) {
      const verdict = this.#fastTime(buf, s, e);
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
   * Where `pattern` (a `"key":"` found at p) is a key of the line's top-level object, sure:
   * the line has `"key"` once, no \u escape (which could spell the key a second time), and
   * nothing opens between the line's first byte and p, or a scan of the bytes up to p (strings
   * skipped) finds depth 1 there. Inside a string, `"key":"` cannot occur: its quotes would
   * be escaped. `nextName`: the first `"key"` after the one at p.
   */
  #topLevel(buf: Buffer, s: number, e: number, p: number, nextName: number): boolean {
    const end = this.#end;
    if (nextName < e) return false;
    if (this.#escCur < s) this.#escCur = find(buf, ESCAPE_U, s, end);
    if (this.#escCur < e) return false;
    if (this.#braceCur <= s) this.#braceCur = find(buf, OPEN_BRACE, s + 1, end);
    if (this.#bracketCur <= s) this.#bracketCur = find(buf, OPEN_BRACKET, s + 1, end);
    if (this.#braceCur > p && this.#bracketCur > p) return buf[s] === OPEN_BRACE;
    // Something opens before p, often a `[` or `{` in a message: walk the bytes. ~1 ns a
    // byte, only for such lines.
    let depth = 0;
    for (let i = s; i < p; i++) {
      const c = buf[i]!;
      if (c === QUOTE) {
        for (i++; i < p; i++) {
          const d = buf[i]!;
          if (d === BACKSLASH) i++;
          else if (d === QUOTE) break;
        }
        if (i >= p) return false;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        depth++;
      } else if (c === 0x7d || c === 0x5d) {
        depth--;
      }
    }
    return depth === 1 && buf[s] === OPEN_BRACE;
  }

  /** IN / OUT / UNKNOWN for a --where probe on line buf[s, e). */
  #probeWhere(buf: Buffer, s: number, e: number, probe: WhereProbe, i: number): number {
    const cur = this.#probeCur;
    if (cur[i]! < s) cur[i] = find(buf, probe.pattern, s, this.#end);
    const p = cur[i]!;
    if (p >= e) return UNKNOWN; // not as a plain string here: absent, spaced, or not a string
    if (!this.#topLevel(buf, s, e, p, find(buf, probe.name, p + probe.name.length, e))) return UNKNOWN;
    const v = p + probe.pattern.length;
    const value = probe.value;
    if (v + value.length > e) return OUT;
    return buf.compare(value, 0, value.length, v, v + value.length) === 0 ? IN : OUT;
  }

  /**
   * The line's `talos-time` compared as stored, without parsing: IN, OUT, or UNKNOWN when it
   * cannot be sure from the bytes (then the line is parsed). Sure means: a top-level key
   * (#topLevel) with a plain Z time (compareZBytes).
   */
  #fastTime(buf: Buffer, s: number, e: number): number {
    // Each cursor is the next occurrence at or after where it was last searched from, up to
    // the end of the buffer's lines, so a buffer is searched once per pattern, not per line.
    if (this.#ttCur < s) {
      // The first `"talos-time":"` from s starts at the first `"talos-time"` from s, which the
      // last line's name check found: one Buffer.indexOf a line fewer (indexOf was 25 % of a
      // scan worker's --since profile; --since 173 -> 249 MB/s median of 3 on
      // bench/read.bench.ts's archive, load 4-5).
      const q = this.#ttNameCur;
      this.#ttCur = q >= s && buf[q + TALOS_TIME_NAME.length] === 0x3a && buf[q + TALOS_TIME_NAME.length + 1] === QUOTE ? q : find(buf, TALOS_TIME, s, this.#end);
    }
    const p = this.#ttCur;
    if (p >= e) return UNKNOWN;
    this.#ttNameCur = find(buf, TALOS_TIME_NAME, p + TALOS_TIME_NAME.length, this.#end);
    if (!this.#topLevel(buf, s, e, p, this.#ttNameCur)) return UNKNOWN;
    const v = p + TALOS_TIME.length;
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
