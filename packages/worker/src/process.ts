/**
 * The record processor: validate each Talos json_lines record of a batch, inject the source's
 * tags, and emit NDJSON. Pure (no threads, no I/O): task.ts runs it inside a piscina worker.
 *
 * Input: a linear copy of a ring span (docs/internals.md), records laid out as
 *
 * ```
 *  u32 LE len | payload (len bytes) | pad to 4 bytes        payload = u8 peerLen | peer | line
 * ```
 *
 * Fast path per record (bench/parse-tag.bench.ts has the numbers quoted below):
 *   decode the line once, JSON.parse it to validate, then copy the ORIGINAL bytes up to the
 *   closing `}` and splice in the tag bytes serialized once by compileTagPlan. The record is
 *   never re-serialized. When a tag key collides with one of the record's keys (Talos semantics:
 *   tags overwrite), the colliding members are cut out of the original bytes by a small scanner
 *   (the text is already known to be valid JSON) and the tags spliced in as usual, so even then
 *   every kept byte, every number's exact text included, is the sender's.
 *
 * Malformed records are data, not exceptions: counted by reason, optionally dead-lettered.
 */
import { isUtf8 } from 'node:buffer';

/**
 * Why a record was rejected.
 * - `invalid_frame`: the ring framing is broken: zero-length payload, peerLen beyond the payload,
 *   or a length header past the end of the span (the rest of the span is then skipped).
 * - `empty`: the line is empty or only JSON whitespace (space, tab, CR, LF).
 * - `invalid_utf8`: the line is not well-formed UTF-8 (overlongs, encoded surrogates, stray
 *   continuation bytes, truncated sequences, code points above U+10FFFF, 0xC0/0xC1/0xF5..0xFF).
 * - `invalid_json`: not exactly one JSON text (truncated, trailing garbage, bad escapes, raw
 *   control characters or NUL in strings, a BOM anywhere but the very start, ...).
 * - `not_object`: one valid JSON value that is not an object (array, string, number, literal).
 * - `too_deep`: objects/arrays nested deeper than `maxDepth` (the top-level object is depth 1).
 *
 * A UTF-8 BOM (EF BB BF) as the very first bytes of a line is stripped, as RFC 8259 section 8.1
 * allows a parser to do; the output record starts after it.
 */
export type MalformedReason = 'invalid_frame' | 'empty' | 'invalid_utf8' | 'invalid_json' | 'not_object' | 'too_deep';

/** Every {@link MalformedReason}, in a stable order (metrics label values). */
export const MALFORMED_REASONS: readonly MalformedReason[] = [
  'invalid_frame',
  'empty',
  'invalid_utf8',
  'invalid_json',
  'not_object',
  'too_deep',
];

/** The tags of one source, serialized once. Build it with {@link compileTagPlan}. */
export interface TagPlan {
  /** Extra tag keys, minus the host key (host_key is applied last and wins). */
  readonly keys: readonly string[];
  readonly values: readonly string[];
  /** UTF-8 of `"k1":"v1","k2":"v2"` (no leading comma); empty when there are no extra tags. */
  readonly tagBytes: Buffer;
  /** The key that receives the peer address, or null. */
  readonly hostKey: string | null;
  /**
   * UTF-8 of `"k1":"v1",…,"<hostKey>":"` (the peer and a closing quote follow), or of `"<hostKey>":"`
   * alone: one copy instead of two (a Buffer.copy is ~40 ns without offsets). Empty when hostKey is null.
   */
  readonly tagHostBytes: Buffer;
  /** `JSON.stringify(key)` bytes of every injected key, the host key last: what the collision path cuts out. */
  readonly injectKeyBytes: readonly Buffer[];
}

export interface BatchCounts {
  /** Records in the span, malformed included. */
  records: number;
  /** Records emitted to the NDJSON output. */
  accepted: number;
  /** Line bytes of every record (peer prefix and ring framing excluded). */
  inputBytes: number;
  /** NDJSON bytes emitted. */
  outputBytes: number;
  /** Rejected records by reason; every reason is present (0 when none). */
  malformed: Record<MalformedReason, number>;
  /** Accepted records by Talos kind: kernel (facility, priority, clock, seq), service (talos-service), other. */
  kinds: { service: number; kernel: number; other: number };
}

export interface BatchOutput {
  /** One JSON object + '\n' per accepted record. A view of the processor's buffer: valid until the next process() call. */
  ndjson: Uint8Array;
  /** One envelope + '\n' per malformed record when dead-lettering is on (else null). Same lifetime as ndjson. */
  deadLetter: Uint8Array | null;
  counts: BatchCounts;
}

/** Nesting limit by default: serde_json's recursion limit, so a Rust reader (Vector) can read every record we emit. */
export const DEFAULT_MAX_DEPTH = 128;

/**
 * Compile a source's tags once. Extra tags are flat string key/values that overwrite existing
 * keys; `hostKey` (when non-null) receives the peer address and is applied last, so it also
 * wins over an extra tag of the same name.
 * @throws TypeError when a tag value is not a string (config validation should have caught it).
 */
export function compileTagPlan(extraTags: Record<string, string>, hostKey: string | null): TagPlan {
  const keys: string[] = [];
  const values: string[] = [];
  const parts: string[] = [];
  for (const key of Object.keys(extraTags)) {
    const value: unknown = extraTags[key];
    if (typeof value !== 'string') {
      throw new TypeError(`extra tag ${JSON.stringify(key)} must be a string, got ${typeof value}`);
    }
    if (key === hostKey) continue;
    keys.push(key);
    values.push(value);
    // JSON.stringify gives correct escaping (quotes, backslashes, control characters, lone surrogates).
    parts.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
  }
  const injectKeyBytes = keys.map((k) => Buffer.from(JSON.stringify(k), 'utf8'));
  if (hostKey !== null) {
    parts.push(`${JSON.stringify(hostKey)}:"`);
    injectKeyBytes.push(Buffer.from(JSON.stringify(hostKey), 'utf8'));
  }
  return {
    keys,
    values,
    tagBytes: Buffer.from(parts.slice(0, keys.length).join(','), 'utf8'),
    hostKey,
    tagHostBytes: Buffer.from(hostKey === null ? '' : parts.join(','), 'utf8'),
    injectKeyBytes,
  };
}

// Status codes of #record (indices into MALFORMED_REASONS, ACCEPTED = -1): no per-record strings.
const ACCEPTED = -1;
const INVALID_FRAME = 0;
const EMPTY = 1;
const INVALID_UTF8 = 2;
const INVALID_JSON = 3;
const NOT_OBJECT = 4;
const TOO_DEEP = 5;

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_QUOTE = 0x22;
const CH_COMMA = 0x2c;
const CH_BACKSLASH = 0x5c;
const CH_LBRACE = 0x7b;
const CH_RBRACE = 0x7d;

const PARSE_FAILED: unknown = Symbol('parse failed');

/** try/catch isolated in a tiny function so the caller stays optimizable. */
function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return PARSE_FAILED;
  }
}

function isJsonWs(b: number | undefined): boolean {
  return b === CH_SPACE || b === CH_LF || b === CH_CR || b === CH_TAB;
}

/** Precise nesting check on the parsed value; recursion is bounded by maxDepth + 1. */
function deeperThan(value: object, depth: number, maxDepth: number): boolean {
  if (depth > maxDepth) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v === 'object' && v !== null && deeperThan(v, depth + 1, maxDepth)) return true;
    }
    return false;
  }
  const rec = value as Record<string, unknown>;
  for (const k in rec) {
    const v = rec[k];
    if (typeof v === 'object' && v !== null && deeperThan(v, depth + 1, maxDepth)) return true;
  }
  return false;
}

/** Count of `ch` in text, stopping once it exceeds `limit`. indexOf is native: ~20 ns per 245-byte line. */
function countUpTo(text: string, ch: string, limit: number): number {
  let n = 0;
  let i = text.indexOf(ch);
  while (i !== -1 && n <= limit) {
    n++;
    i = text.indexOf(ch, i + 1);
  }
  return n;
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

const INITIAL_BYTES = 256 * 1024;

/**
 * Turns batches of ring records into NDJSON. One per worker thread, reused across tasks: it owns
 * growable output buffers (never shrunk: their high-water mark is bounded by the largest batch).
 */
export class BatchProcessor {
  readonly maxDepth: number;
  #out: Buffer = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  #pos = 0;
  #dl: Buffer = Buffer.allocUnsafeSlow(4096);
  #dlPos = 0;

  /** @param opts.maxDepth nesting limit (default {@link DEFAULT_MAX_DEPTH}); Infinity disables the check. */
  constructor(opts: { maxDepth?: number } = {}) {
    const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
    if (!(maxDepth >= 1)) throw new RangeError(`maxDepth must be >= 1, got ${maxDepth}`);
    this.maxDepth = maxDepth;
  }

  /**
   * Validate each record of `buf[0, length)`, inject tags, append one JSON object + '\n' per
   * accepted record. Malformed records are counted by reason and, when `deadLetter` is true,
   * appended to the dead-letter output as
   * `{"reason":…,"component_id":<sourceId>,"peer":<peer or null>,"raw":<line as a JSON string>}`
   * (`"raw_base64"` instead of `"raw"` when the bytes are not valid UTF-8). For `invalid_frame`
   * the raw bytes are the whole payload, peerLen byte included, and peer is null.
   * Never throws on bad input. The returned buffers are views valid until the next call.
   */
  process(buf: Uint8Array, length: number, plan: TagPlan, sourceId: string, deadLetter: boolean): BatchOutput {
    if (length > buf.length) throw new RangeError(`process: length ${length} > buffer ${buf.length}`);
    const src = asBuffer(buf);
    const counts: BatchCounts = {
      records: 0,
      accepted: 0,
      inputBytes: 0,
      outputBytes: 0,
      malformed: { invalid_frame: 0, empty: 0, invalid_utf8: 0, invalid_json: 0, not_object: 0, too_deep: 0 },
      kinds: { service: 0, kernel: 0, other: 0 },
    };
    const malformed = counts.malformed;
    const sourceJson = JSON.stringify(sourceId);
    this.#pos = 0;
    this.#dlPos = 0;
    let off = 0;
    while (off < length) {
      counts.records++;
      if (off + 4 > length) {
        // A partial length header: the span is not record-aligned. Skip the rest.
        malformed.invalid_frame++;
        if (deadLetter) this.#deadLetter('invalid_frame', sourceJson, src, -1, -1, off, length);
        break;
      }
      const len = (src[off]! | (src[off + 1]! << 8) | (src[off + 2]! << 16) | (src[off + 3]! << 24)) >>> 0;
      const ps = off + 4;
      if (len > length - ps) {
        malformed.invalid_frame++;
        if (deadLetter) this.#deadLetter('invalid_frame', sourceJson, src, -1, -1, ps, length);
        break;
      }
      const pe = ps + len;
      off = ps + ((len + 3) & ~3);
      const ls = ps + 1 + (len === 0 ? 0 : src[ps]!);
      if (len === 0 || ls > pe) {
        malformed.invalid_frame++;
        if (deadLetter) this.#deadLetter('invalid_frame', sourceJson, src, -1, -1, ps, pe);
        continue;
      }
      counts.inputBytes += pe - ls;
      const status = this.#record(src, ps + 1, ls, pe, plan, counts);
      if (status === ACCEPTED) {
        counts.accepted++;
      } else {
        const reason = MALFORMED_REASONS[status]!;
        malformed[reason]++;
        if (deadLetter) this.#deadLetter(reason, sourceJson, src, ps + 1, ls, ls, pe);
      }
    }
    counts.outputBytes = this.#pos;
    return {
      ndjson: this.#out.subarray(0, this.#pos),
      deadLetter: deadLetter ? this.#dl.subarray(0, this.#dlPos) : null,
      counts,
    };
  }

  /** One record: peer is src[peerStart, ls), line is src[ls, pe). Returns ACCEPTED or a status. */
  #record(src: Buffer, peerStart: number, ls: number, pe: number, plan: TagPlan, counts: BatchCounts): number {
    let s = ls;
    if (pe - s >= 3 && src[s] === 0xef && src[s + 1] === 0xbb && src[s + 2] === 0xbf) s += 3;
    while (s < pe && isJsonWs(src[s])) s++;
    if (s === pe) return EMPTY;
    let e = pe;
    while (isJsonWs(src[e - 1])) e--;

    const text = src.toString('utf8', s, e);
    // The decoder turns every ill-formed sequence into U+FFFD, so only a line containing U+FFFD
    // needs the exact check: 14 ns per line vs 141 ns for isUtf8(subarray) on every line.
    if (text.indexOf('\uFFFD') !== -1 && !isUtf8(src.subarray(s, e))) return INVALID_UTF8;

    const parsed = tryParse(text);
    if (parsed === PARSE_FAILED) return INVALID_JSON;
    // One valid JSON text that starts with '{' is an object (and so ends with '}').
    if (src[s] !== CH_LBRACE) return NOT_OBJECT;
    const obj = parsed as Record<string, unknown>;

    const maxDepth = this.maxDepth;
    // Nesting deeper than maxDepth needs more than 2 * maxDepth bytes and maxDepth + 1 brackets:
    // two native indexOf scans clear a normal line (~40 ns); only then walk the parsed value.
    if (
      e - s > 2 * maxDepth &&
      countUpTo(text, '{', maxDepth) + countUpTo(text, '[', maxDepth) > maxDepth &&
      deeperThan(obj, 1, maxDepth)
    ) {
      return TOO_DEEP;
    }

    const peerLen = ls - peerStart;
    const hostKey = peerLen === 0 ? null : plan.hostKey;
    let slow = false;
    const keys = plan.keys;
    for (let i = 0; i < keys.length; i++) {
      if (obj[keys[i]!] !== undefined) {
        slow = true;
        break;
      }
    }
    if (hostKey !== null && !slow) {
      if (obj[hostKey] !== undefined) slow = true;
      else {
        // The peer comes from our own source (an IP address), but never emit invalid JSON if it is not JSON-safe.
        for (let i = peerStart; i < ls; i++) {
          const b = src[i]!;
          if (b < 0x20 || b > 0x7e || b === CH_QUOTE || b === CH_BACKSLASH) {
            slow = true;
            break;
          }
        }
      }
    }

    if (slow) {
      const status = this.#reserialize(text, src, peerStart, ls, hostKey, plan);
      if (status !== ACCEPTED) return status;
    } else {
      this.#splice(src, s, e, peerStart, ls, hostKey, plan, text.indexOf('\n') !== -1 || text.indexOf('\r') !== -1);
    }

    if (obj['talos-service'] !== undefined) counts.kinds.service++;
    else if (obj.facility !== undefined && obj.priority !== undefined && obj.clock !== undefined && obj.seq !== undefined) {
      counts.kinds.kernel++;
    } else counts.kinds.other++;
    return ACCEPTED;
  }

  /** Fast path: original bytes up to the closing brace, then the pre-serialized tags, then `}\n`. */
  #splice(src: Buffer, s: number, e: number, peerStart: number, ls: number, hostKey: string | null, plan: TagPlan, hasNewline: boolean): void {
    const tagBytes = plan.tagBytes;
    const hostPrefix = plan.hostPrefix;
    const need = e - s + tagBytes.length + hostPrefix.length + (ls - peerStart) + 5;
    if (this.#pos + need > this.#out.length) this.#grow(need);
    const out = this.#out;
    let pos = this.#pos;
    const start = pos;
    const close = e - 1; // src[close] is '}'
    pos += src.copy(out, pos, s, close);
    if (tagBytes.length !== 0 || hostKey !== null) {
      let j = close - 1;
      while (isJsonWs(src[j])) j--;
      let comma = src[j] !== CH_LBRACE; // `{}` or `{ }` takes no comma
      if (tagBytes.length !== 0) {
        if (comma) out[pos++] = CH_COMMA;
        pos += tagBytes.copy(out, pos);
        comma = true;
      }
      if (hostKey !== null) {
        if (comma) out[pos++] = CH_COMMA;
        pos += hostPrefix.copy(out, pos);
        pos += src.copy(out, pos, peerStart, ls);
        out[pos++] = CH_QUOTE;
      }
    }
    out[pos++] = CH_RBRACE;
    if (hasNewline) {
      // A raw CR/LF in valid JSON can only be whitespace between tokens (never inside a string,
      // never inside a multi-byte sequence): a space keeps the record byte-exact on one line.
      for (let i = start; i < pos; i++) {
        const b = out[i];
        if (b === CH_LF || b === CH_CR) out[i] = CH_SPACE;
      }
    }
    out[pos++] = CH_LF;
    this.#pos = pos;
  }

  /** Slow path (a tag key collides): parse keeping exact number text, assign tags, stringify. */
  #reserialize(text: string, src: Buffer, peerStart: number, ls: number, hostKey: string | null, plan: TagPlan): number {
    const obj = tryParseExact(text);
    if (obj === PARSE_FAILED) return TOO_DEEP; // text already parsed once: only the stack can fail here
    const rec = obj as Record<string, unknown>;
    const keys = plan.keys;
    const values = plan.values;
    for (let i = 0; i < keys.length; i++) setOwn(rec, keys[i]!, values[i]!);
    if (hostKey !== null) setOwn(rec, hostKey, src.toString('latin1', peerStart, ls));
    const json = tryStringify(rec);
    if (json === null) return TOO_DEEP;
    const need = json.length * 3 + 1;
    if (this.#pos + need > this.#out.length) this.#grow(need);
    this.#pos += this.#out.write(json, this.#pos, 'utf8');
    this.#out[this.#pos++] = CH_LF;
    return ACCEPTED;
  }

  #grow(need: number): void {
    const old = this.#out;
    const next = Buffer.allocUnsafeSlow(Math.max(old.length * 2, this.#pos + need));
    old.copy(next, 0, 0, this.#pos);
    this.#out = next;
  }

  /** Off the fast path: malformed records are rare, so plain string building is fine here. */
  #deadLetter(reason: MalformedReason, sourceJson: string, src: Buffer, peerStart: number, peerEnd: number, rs: number, re: number): void {
    const peer = peerStart < peerEnd ? JSON.stringify(src.toString('latin1', peerStart, peerEnd)) : 'null';
    const raw = src.subarray(rs, re);
    const body = isUtf8(raw)
      ? `,"raw":${JSON.stringify(raw.toString('utf8'))}`
      : `,"raw_base64":"${raw.toString('base64')}"`;
    const line = `{"reason":"${reason}","component_id":${sourceJson},"peer":${peer}${body}}\n`;
    const need = line.length * 3;
    if (this.#dlPos + need > this.#dl.length) {
      const next = Buffer.allocUnsafeSlow(Math.max(this.#dl.length * 2, this.#dlPos + need));
      this.#dl.copy(next, 0, 0, this.#dlPos);
      this.#dl = next;
    }
    this.#dlPos += this.#dl.write(line, this.#dlPos, 'utf8');
  }
}
