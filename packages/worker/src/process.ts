/**
 * The record processor: validate each Talos json_lines record of a batch, inject the source's
 * tags, and emit NDJSON. Pure (no threads, no I/O): task.ts runs it inside a piscina worker.
 *
 * Input: a linear copy of a ring span (docs/internals.md), records laid out as
 *
 * ```
 *  u32 LE len | payload (len bytes) | pad to 4 bytes        payload = u8 head | peer | line
 *
 *  head = peerLen (bits 0-6) | 0x80 when the record is a block: one or more lines, each ending
 *         with '\n' (a '\r' before it is part of the line ending), as the TCP source writes them
 * ```
 *
 * Fast path per record (bench/parse-tag.bench.ts, 245-byte Talos lines, one run: 1264 ns per
 * line vs 3192 ns for JSON.parse + JSON.stringify, and vs 1454 ns for the decode + JSON.parse
 * floor alone, which the previous fast path paid on top of its splice, 2279 ns in all):
 *   validate the bytes in one pass without decoding them (json-scan.ts, 817 ns of the 1264; it
 *   also reports the top-level keys that matter), then copy the ORIGINAL bytes up to the
 *   closing `}` and splice in the tag bytes serialized once by compileTagPlan. The record is
 *   never re-serialized. When a tag key collides with one of the record's keys (Talos semantics:
 *   tags overwrite), the colliding members are cut out of the original bytes by a small scanner
 *   (the text is already known to be valid JSON) and the tags spliced in as usual, so even then
 *   every kept byte, every number's exact text included, is the sender's. Lines the scanner does
 *   not accept take the exact path (decode + isUtf8 + JSON.parse), which names the reason.
 *
 * Native path (packages/worker/native/batch.cc, loaded by batch-native.ts): the same framing,
 * scan and splice in C++, and every other decision of this file too (the exact verdict and its
 * reason, the collision path, escaped keys and peers, dead-letter envelopes), one call per batch
 * (bench/parse-tag: 102 ns per 245-byte line vs 508 ns for the TypeScript path). The only thing
 * it hands back is "an output buffer must grow" (#processNative). The TypeScript code here stays
 * complete on its own: the fallback where the addon is not built, and the oracle the
 * differential tests hold the addon to, byte for byte (batch-native.test.ts, process.test.ts).
 * `new BatchProcessor({ native: 'auto' | 'on' | 'off' })` chooses; `implementation` says which runs.
 *
 * Malformed records are data, not exceptions: counted by reason, optionally dead-lettered.
 */
import { isUtf8 } from 'node:buffer';
import { BLOCK_FLAG, PEER_LEN_MASK } from '@sluice/ring';
import { loadNativeBatch, packPlan, type NativeBatchAddon } from './batch-native.ts';
import {
  MALFORMED_REASONS as REASONS,
  STATE_SLOTS,
  ST_DONE,
  S_ACCEPTED,
  S_DEAD_LETTER,
  S_DL_NEED,
  S_DL_POS,
  S_INPUT_BYTES,
  S_KERNEL,
  S_LENGTH,
  S_LINE,
  S_MALFORMED,
  S_MAX_DEPTH,
  S_NEED,
  S_OTHER,
  S_POS,
  S_RECORDS,
  S_SERVICE,
  SCAN_COLLIDES,
  SCAN_KERNEL,
  SCAN_REJECT,
  SCAN_TALOS_SERVICE,
} from './native-constants.ts';
import type { BatchFacts, FactsScanner } from './facts.ts';
import { scanRecord } from './json-scan.ts';

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
export const MALFORMED_REASONS: readonly MalformedReason[] = REASONS;

/** The tags of one source, serialized once. Build it with {@link compileTagPlan}. */
export interface TagPlan {
  /** Extra tag keys, minus the host key (host_key is applied last and wins). */
  readonly keys: readonly string[];
  /** Those tags' values by key (an index counts them among a record's fields). */
  readonly tags: Readonly<Record<string, string>>;
  /** UTF-8 of `"k1":"v1","k2":"v2"` (no leading comma); empty when there are no extra tags. */
  readonly tagBytes: Buffer;
  /** The key that receives the peer address, or null. */
  readonly hostKey: string | null;
  /**
   * UTF-8 of `"k1":"v1",…,"<hostKey>":"` (the peer and a closing quote follow), or of `"<hostKey>":"`
   * alone: one copy instead of two (tags.copy(out, pos) is 32 ns/line on bench/parse-tag). Empty when hostKey is null.
   */
  readonly tagHostBytes: Buffer;
  /** `JSON.stringify(key)` bytes of every injected key, the host key last: what the collision path cuts out. */
  readonly injectKeyBytes: readonly Buffer[];
}

export interface BatchCounts {
  /** Lines in the span (a block record counts each of its lines), malformed included. */
  records: number;
  /** Records emitted to the NDJSON output. */
  accepted: number;
  /** Line bytes of every record (peer prefix and ring framing excluded). */
  inputBytes: number;
  /** NDJSON bytes emitted. */
  outputBytes: number;
  /** Rejected records by reason: every {@link MalformedReason} is a key (0 when none), no other key is. */
  malformed: Record<string, number>;
  /** Accepted records by Talos kind: kernel (facility, priority, clock, seq), service (talos-service), other. */
  kinds: { service: number; kernel: number; other: number };
}

export interface BatchOutput {
  /** One JSON object + '\n' per accepted record. A view of the processor's buffer: valid until the next process() call. */
  ndjson: Uint8Array;
  /** One envelope + '\n' per malformed record when dead-lettering is on (else null). Same lifetime as ndjson. */
  deadLetter: Uint8Array | null;
  counts: BatchCounts;
  /** The batch's index facts, when process() was given a FactsScanner. */
  facts?: BatchFacts;
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
  const tags: Record<string, string> = Object.create(null) as Record<string, string>;
  const parts: string[] = [];
  for (const key of Object.keys(extraTags)) {
    const value: unknown = extraTags[key];
    if (typeof value !== 'string') {
      throw new TypeError(`extra tag ${JSON.stringify(key)} must be a string, got ${typeof value}`);
    }
    if (key === hostKey) continue;
    keys.push(key);
    tags[key] = value;
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
    tags,
    tagBytes: Buffer.from(parts.slice(0, keys.length).join(','), 'utf8'),
    hostKey,
    tagHostBytes: Buffer.from(hostKey === null ? '' : parts.join(','), 'utf8'),
    injectKeyBytes,
  };
}

// Status codes of #record: indices into MALFORMED_REASONS (0 is invalid_frame, counted by the
// framing loop itself), or ACCEPTED. No per-record strings.
const ACCEPTED = -1;
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
const CH_COLON = 0x3a;
const CH_BACKSLASH = 0x5c;
const CH_LBRACKET = 0x5b;
const CH_RBRACKET = 0x5d;
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

/** Count of `ch` in text from `from`, stopping once it exceeds `limit`. */
function countUpTo(text: string, ch: string, from: number, limit: number): number {
  let n = 0;
  let i = text.indexOf(ch, from);
  while (i !== -1 && n <= limit) {
    n++;
    i = text.indexOf(ch, i + 1);
  }
  return n;
}

/**
 * Index just past the string starting at src[i] (a '"'), or `end`. A byte loop for the first 32
 * bytes (keys, short values), then native memchr for the closing quote of a long value.
 */
function skipString(src: Buffer, i: number, end: number): number {
  i++;
  const stop = Math.min(i + 32, end);
  while (i < stop) {
    const b = src[i];
    if (b === CH_QUOTE) return i + 1;
    i += b === CH_BACKSLASH ? 2 : 1;
  }
  while (i < end) {
    const q = src.indexOf(CH_QUOTE, i);
    if (q === -1 || q >= end) return end;
    // Escaped when preceded by an odd run of backslashes (the opening quote ends any run).
    let k = q - 1;
    while (src[k] === CH_BACKSLASH) k--;
    if (((q - 1 - k) & 1) === 0) return q + 1;
    i = q + 1;
  }
  return end;
}

/** Index just past the JSON value starting at src[i], or `end`. Iterative: no stack depth. */
function skipValue(src: Buffer, i: number, end: number): number {
  const first = src[i];
  if (first === CH_QUOTE) return skipString(src, i, end);
  if (first === CH_LBRACE || first === CH_LBRACKET) {
    let depth = 0;
    while (i < end) {
      const b = src[i];
      if (b === CH_QUOTE) {
        i = skipString(src, i, end);
        continue;
      }
      if (b === CH_LBRACE || b === CH_LBRACKET) depth++;
      else if (b === CH_RBRACE || b === CH_RBRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return end;
  }
  // number, true, false, null
  while (i < end) {
    const b = src[i];
    if (b === CH_COMMA || b === CH_RBRACE || b === CH_RBRACKET || isJsonWs(b)) return i;
    i++;
  }
  return end;
}

/** Whether the key string src[ks, ke) (quotes included) is one of the first nKeys injected keys. */
function keyMatches(src: Buffer, ks: number, ke: number, plan: TagPlan, nKeys: number): boolean {
  const keyBytes = plan.injectKeyBytes;
  const n = ke - ks;
  for (let k = 0; k < nKeys; k++) {
    const kb = keyBytes[k]!;
    if (kb.length !== n) continue;
    let j = 0;
    while (j < n && kb[j] === src[ks + j]) j++;
    if (j === n) return true;
  }
  // A key spelled with escapes ("\u0063luster") equals a tag key only once decoded: rare, decode it.
  let escaped = false;
  for (let j = ks + 1; j < ke - 1 && !escaped; j++) escaped = src[j] === CH_BACKSLASH;
  if (!escaped) return false;
  const key = tryParse(src.toString('utf8', ks, ke));
  for (let k = 0; k < nKeys; k++) {
    if (key === (k < plan.keys.length ? plan.keys[k] : plan.hostKey)) return true;
  }
  return false;
}

/** Index of the next `byte` at or after `from` (native memchr), or MAX_SAFE_INTEGER when none. */
function nextByte(buf: Buffer, byte: number, from: number): number {
  const i = buf.indexOf(byte, from);
  return i === -1 ? Number.MAX_SAFE_INTEGER : i;
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Lines in a span laid out as {@link BatchProcessor.process} reads it: one per record, each line
 * of a block record, one per invalid frame, as `counts.records` would say. For counting what a
 * failed batch held (off the hot path).
 */
export function countLines(buf: Uint8Array, length: number): number {
  const src = asBuffer(buf);
  let lines = 0;
  let off = 0;
  while (off < length) {
    lines++;
    if (off + 4 > length) break;
    const len = (src[off]! | (src[off + 1]! << 8) | (src[off + 2]! << 16) | (src[off + 3]! << 24)) >>> 0;
    const ps = off + 4;
    if (len > length - ps) break;
    const pe = ps + len;
    off = ps + ((len + 3) & ~3);
    const head = len === 0 ? 0 : src[ps]!;
    const ls = ps + 1 + (head & PEER_LEN_MASK);
    if (len === 0 || ls > pe || (head & BLOCK_FLAG) === 0) continue;
    lines--;
    for (let s = ls; s < pe; lines++) {
      const nl = src.indexOf(CH_LF, s);
      s = nl === -1 || nl >= pe ? pe : nl + 1;
    }
  }
  return lines;
}

const INITIAL_BYTES = 256 * 1024;

/** Which implementation of the fast path a {@link BatchProcessor} uses. */
export type NativeMode = 'auto' | 'on' | 'off';

export interface BatchProcessorOptions {
  /** Nesting limit (default {@link DEFAULT_MAX_DEPTH}); Infinity disables the check. */
  maxDepth?: number;
  /**
   * The native fast path (batch-native.ts): 'auto' (default) uses it when the addon loads, 'on'
   * throws when it cannot, 'off' uses the TypeScript path. Output is the same byte for byte.
   */
  native?: NativeMode;
}

/** Packed plans for the addon, built once per TagPlan. */
const packedPlans = new WeakMap<TagPlan, Uint8Array>();

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
  /** Out-parameter of #copyMembersExcept (avoids a per-record result object). */
  #keptMember = false;
  /** This batch's bytes, [0, length): bounds the CR/LF searches. */
  #scan: Buffer = Buffer.alloc(0);
  /** Position of the next LF / CR at or after the last searched offset (MAX_SAFE_INTEGER: none). */
  #nextLF = -1;
  #nextCR = -1;
  /** Which fast path runs: the native addon, or the TypeScript code alone. */
  readonly implementation: 'native' | 'js';
  #addon: NativeBatchAddon | null = null;
  /** The addon's cursor and counts (batch-native.ts S_* slots), reused for every batch. */
  readonly #state = new Float64Array(STATE_SLOTS);
  #lastPlan: TagPlan | null = null;
  #lastPacked: Uint8Array = new Uint8Array(0);
  /** UTF-8 of JSON.stringify(sourceId) for the addon's envelopes, kept for the last sourceId. */
  #lastSourceId: string | null = null;
  #lastSourceJson: Uint8Array = new Uint8Array(0);

  /**
   * @param opts.maxDepth nesting limit (default {@link DEFAULT_MAX_DEPTH}); Infinity disables the check.
   * @param opts.native 'auto' (default), 'on' or 'off': see {@link BatchProcessorOptions.native}.
   * @throws RangeError on a bad option; Error with the reason when native is 'on' and the addon cannot be used.
   */
  constructor(opts: BatchProcessorOptions = {}) {
    const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
    if (!(maxDepth >= 1)) throw new RangeError(`maxDepth must be >= 1, got ${maxDepth}`);
    this.maxDepth = maxDepth;
    const mode = opts.native ?? 'auto';
    if (mode !== 'auto' && mode !== 'on' && mode !== 'off')
      throw new RangeError(`native must be 'auto', 'on' or 'off', got ${String(mode)}`);
    if (mode !== 'off') {
      const load = loadNativeBatch();
      if (load.ok) this.#addon = load.addon;
      else if (mode === 'on')
        throw new Error(`BatchProcessor: native: 'on', but the native batch addon cannot be used: ${load.reason}`);
    }
    this.implementation = this.#addon === null ? 'js' : 'native';
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
  process(
    buf: Uint8Array,
    length: number,
    plan: TagPlan,
    sourceId: string,
    deadLetter: boolean,
    facts?: FactsScanner,
  ): BatchOutput {
    if (length > buf.length) throw new RangeError(`process: length ${length} > buffer ${buf.length}`);
    const src = asBuffer(buf);
    const malformed: Record<MalformedReason, number> = {
      invalid_frame: 0,
      empty: 0,
      invalid_utf8: 0,
      invalid_json: 0,
      not_object: 0,
      too_deep: 0,
    };
    const counts: BatchCounts = {
      records: 0,
      accepted: 0,
      inputBytes: 0,
      outputBytes: 0,
      malformed,
      kinds: { service: 0, kernel: 0, other: 0 },
    };
    this.#pos = 0;
    this.#dlPos = 0;
    // A length that is not a non-negative integer is a caller's bug: the TypeScript loop copes with it.
    let batchFacts: BatchFacts | undefined;
    if (this.#addon !== null && Number.isInteger(length) && length >= 0) {
      const buffers = facts?.nativeBuffers() ?? null;
      this.#processNative(this.#addon, src, length, plan, sourceId, counts, deadLetter, buffers);
      if (facts !== undefined && buffers !== null)
        batchFacts =
          facts.finishNative(this.#out.subarray(0, this.#pos), this.#state, plan.tags, counts.accepted) ?? undefined;
    } else {
      this.#scan = src.subarray(0, length);
      this.#nextLF = -1;
      this.#nextCR = -1;
      this.#processJs(src, length, plan, counts, JSON.stringify(sourceId), deadLetter);
    }
    counts.outputBytes = this.#pos;
    const ndjson = this.#out.subarray(0, this.#pos);
    // Without the native scan's facts (no addon, fields it does not take, a batch of unusual lines): facts.ts's own way.
    if (facts !== undefined && batchFacts === undefined) batchFacts = facts.scan(ndjson);
    return {
      ndjson,
      deadLetter: deadLetter ? this.#dl.subarray(0, this.#dlPos) : null,
      counts,
      ...(batchFacts === undefined ? {} : { facts: batchFacts }),
    };
  }

  /**
   * The native driver: the addon decides and writes every line of the batch itself; the one
   * thing it comes back for is an output buffer (NDJSON or dead-letter) to grow, after which it
   * resumes at the line that did not fit. Allocation-free: the state array, the packed plan and
   * the source id's bytes are reused.
   */
  #processNative(
    addon: NativeBatchAddon,
    src: Buffer,
    length: number,
    plan: TagPlan,
    sourceId: string,
    counts: BatchCounts,
    deadLetter: boolean,
    facts: { fields: Uint8Array; facts: Uint32Array; times: Uint8Array } | null,
  ): void {
    let packed = this.#lastPacked;
    if (plan !== this.#lastPlan) {
      let p = packedPlans.get(plan);
      if (p === undefined) {
        p = packPlan(plan);
        packedPlans.set(plan, p);
      }
      this.#lastPlan = plan;
      this.#lastPacked = packed = p;
    }
    if (sourceId !== this.#lastSourceId) {
      this.#lastSourceId = sourceId;
      this.#lastSourceJson = Buffer.from(JSON.stringify(sourceId), 'utf8');
    }
    const st = this.#state;
    st.fill(0);
    st[S_LENGTH] = length;
    st[S_MAX_DEPTH] = this.maxDepth;
    st[S_DEAD_LETTER] = deadLetter ? 1 : 0;
    st[S_LINE] = -1;
    const run = (): number =>
      facts === null
        ? addon.processRecords(src, this.#out, this.#dl, packed, this.#lastSourceJson, st)
        : addon.processRecords(
            src,
            this.#out,
            this.#dl,
            packed,
            this.#lastSourceJson,
            st,
            facts.fields,
            facts.facts,
            facts.times,
          );
    while (run() !== ST_DONE) {
      // ST_GROW: the positions so far are kept, then the buffer that is short grows.
      this.#pos = st[S_POS]!;
      this.#dlPos = st[S_DL_POS]!;
      if (st[S_NEED]! > 0) this.#grow(st[S_NEED]!);
      if (st[S_DL_NEED]! > 0) this.#growDeadLetter(st[S_DL_NEED]!);
    }
    this.#pos = st[S_POS]!;
    this.#dlPos = st[S_DL_POS]!;
    counts.records = st[S_RECORDS]!;
    counts.accepted = st[S_ACCEPTED]!;
    counts.inputBytes = st[S_INPUT_BYTES]!;
    counts.kinds.service = st[S_SERVICE]!;
    counts.kinds.kernel = st[S_KERNEL]!;
    counts.kinds.other = st[S_OTHER]!;
    const malformed = counts.malformed;
    for (let i = 0; i < MALFORMED_REASONS.length; i++) malformed[MALFORMED_REASONS[i]!] = st[S_MALFORMED + i]!;
  }

  /** The TypeScript path: every record of the batch. */
  #processJs(
    src: Buffer,
    length: number,
    plan: TagPlan,
    counts: BatchCounts,
    sourceJson: string,
    deadLetter: boolean,
  ): void {
    const malformed = counts.malformed as Record<MalformedReason, number>;
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
      const head = len === 0 ? 0 : src[ps]!;
      const ls = ps + 1 + (head & PEER_LEN_MASK);
      if (len === 0 || ls > pe) {
        malformed.invalid_frame++;
        if (deadLetter) this.#deadLetter('invalid_frame', sourceJson, src, -1, -1, ps, pe);
        continue;
      }
      if ((head & BLOCK_FLAG) === 0) {
        this.#line(src, ps + 1, ls, ls, pe, plan, counts, sourceJson, deadLetter);
        continue;
      }
      // A block of '\n'-terminated lines (TCP): one memchr per line, a '\r' before the '\n'
      // is the line ending's. The framer never puts empty or oversize lines in a block.
      counts.records--;
      for (let s = ls; s < pe; ) {
        let nl = src.indexOf(CH_LF, s);
        if (nl === -1 || nl >= pe) nl = pe; // a block missing its last '\n': its end ends the line
        const e = nl > s && src[nl - 1] === CH_CR ? nl - 1 : nl;
        this.#nextLF = nl; // the line holds no '\n': #hasNewline need not search for one
        counts.records++;
        this.#line(src, ps + 1, ls, s, e, plan, counts, sourceJson, deadLetter);
        s = nl + 1;
      }
    }
  }

  /** One line: peer is src[peerStart, peerEnd), the line src[ls, pe). Counts it, dead-letters it if malformed. */
  #line(
    src: Buffer,
    peerStart: number,
    peerEnd: number,
    ls: number,
    pe: number,
    plan: TagPlan,
    counts: BatchCounts,
    sourceJson: string,
    deadLetter: boolean,
  ): void {
    counts.inputBytes += pe - ls;
    const status = this.#record(src, peerStart, peerEnd, ls, pe, plan, counts);
    if (status === ACCEPTED) {
      counts.accepted++;
    } else {
      const reason = MALFORMED_REASONS[status]!;
      counts.malformed[reason]!++;
      if (deadLetter) this.#deadLetter(reason, sourceJson, src, peerStart, peerEnd, ls, pe);
    }
  }

  /** One record: peer is src[peerStart, peerEnd), line is src[ls, pe). Returns ACCEPTED or a status. */
  #record(
    src: Buffer,
    peerStart: number,
    peerEnd: number,
    ls: number,
    pe: number,
    plan: TagPlan,
    counts: BatchCounts,
  ): number {
    let s = ls;
    if (pe - s >= 3 && src[s] === 0xef && src[s + 1] === 0xbb && src[s + 2] === 0xbf) s += 3;
    while (s < pe && isJsonWs(src[s])) s++;
    if (s === pe) return EMPTY;
    let e = pe;
    while (isJsonWs(src[e - 1])) e--;

    const withHost = peerEnd !== peerStart && plan.hostKey !== null;
    // Fast path: one pass over the bytes validates UTF-8 + JSON and finds the top-level keys
    // (json-scan.ts). bench/parse-tag: 817 ns/line vs 1454 for decode + JSON.parse alone.
    const scan = scanRecord(
      src,
      s,
      e,
      this.maxDepth,
      plan.injectKeyBytes,
      withHost ? plan.injectKeyBytes.length : plan.keys.length,
    );
    if (scan !== SCAN_REJECT) {
      this.#emit(src, s, e, peerStart, peerEnd, withHost, (scan & SCAN_COLLIDES) !== 0, this.#hasNewline(s, e), plan);
      if ((scan & SCAN_TALOS_SERVICE) !== 0) counts.kinds.service++;
      else if ((scan & SCAN_KERNEL) === SCAN_KERNEL) counts.kinds.kernel++;
      else counts.kinds.other++;
      return ACCEPTED;
    }

    // Exact path: whatever the scanner did not accept (malformed lines, keys spelled with
    // escapes, nesting beyond the scanner's stack) is decided here, with the reason named.
    const text = src.toString('utf8', s, e);
    // The decoder turns every ill-formed sequence into U+FFFD, so only a line containing U+FFFD
    // needs the exact check. bench/parse-tag: +38 ns/line over the decode vs 122 ns for isUtf8(subarray).
    if (text.indexOf('\uFFFD') !== -1 && !isUtf8(src.subarray(s, e))) return INVALID_UTF8;

    const parsed = tryParse(text);
    if (parsed === PARSE_FAILED) return INVALID_JSON;
    // One valid JSON text that starts with '{' is an object (and so ends with '}').
    if (src[s] !== CH_LBRACE) return NOT_OBJECT;
    const obj = parsed as Record<string, unknown>;

    const maxDepth = this.maxDepth;
    // Nesting deeper than maxDepth needs more than 2 * maxDepth bytes (256 by default: most Talos
    // lines skip this) and more than maxDepth brackets: two native indexOf scans (~30 ns each, like
    // the newline scans on bench/parse-tag) clear a normal line; only then walk the parsed value.
    if (
      e - s > 2 * maxDepth &&
      1 + countUpTo(text, '{', 1, maxDepth) + countUpTo(text, '[', 1, maxDepth) > maxDepth &&
      deeperThan(obj, 1, maxDepth)
    ) {
      return TOO_DEEP;
    }

    // Tags overwrite (Talos semantics): a record that already has an injected key takes the
    // collision path (bench/parse-tag: 3307 ns/line, lossless, vs 3408 for parse + JSON.stringify).
    const keys = plan.keys;
    let collides = withHost && obj[plan.hostKey!] !== undefined;
    for (let i = 0; i < keys.length && !collides; i++) collides = obj[keys[i]!] !== undefined;
    this.#emit(src, s, e, peerStart, peerEnd, withHost, collides, this.#hasNewline(s, e), plan);

    if (obj['talos-service'] !== undefined) counts.kinds.service++;
    else if (
      obj.facility !== undefined &&
      obj.priority !== undefined &&
      obj.clock !== undefined &&
      obj.seq !== undefined
    ) {
      counts.kinds.kernel++;
    } else counts.kinds.other++;
    return ACCEPTED;
  }

  /**
   * Whether the line [s, e) holds a raw CR or LF (only multi-line UDP datagrams do). One memchr
   * per occurrence over the whole batch, cached: ~0 ns per line vs 65 ns/line for
   * text.indexOf('\n') + ('\r') (bench/parse-tag). Lines are visited in increasing order.
   */
  #hasNewline(s: number, e: number): boolean {
    let lf = this.#nextLF;
    if (lf < s) this.#nextLF = lf = nextByte(this.#scan, CH_LF, s);
    let cr = this.#nextCR;
    if (cr < s) this.#nextCR = cr = nextByte(this.#scan, CH_CR, s);
    return lf < e || cr < e;
  }

  /**
   * Append one record: the original bytes up to the closing brace (minus colliding members),
   * the pre-serialized tags, the peer, `}` and `\n`.
   */
  #emit(
    src: Buffer,
    s: number,
    e: number,
    peerStart: number,
    peerEnd: number,
    withHost: boolean,
    collides: boolean,
    hasNewline: boolean,
    plan: TagPlan,
  ): void {
    const tags = withHost ? plan.tagHostBytes : plan.tagBytes;
    // Worst case: the line, the tags, a peer escaped at 6 bytes per byte, `,"}\n`.
    const need = e - s + tags.length + 6 * (peerEnd - peerStart) + 8;
    if (this.#pos + need > this.#out.length) this.#grow(need);
    const out = this.#out;
    const start = this.#pos;
    let pos: number;
    let hasMember: boolean;
    if (collides) {
      pos = this.#copyMembersExcept(src, s, e, plan, withHost ? plan.injectKeyBytes.length : plan.keys.length, start);
      hasMember = this.#keptMember;
    } else {
      // bench/parse-tag: 92 ns per 245-byte line vs 101 ns for out.set(src.subarray()) (no view allocated).
      pos = start + src.copy(out, start, s, e - 1);
      let j = e - 2;
      while (isJsonWs(src[j])) j--;
      hasMember = src[j] !== CH_LBRACE; // `{}` and `{ }` take no comma
    }
    if (tags.length !== 0) {
      if (hasMember) out[pos++] = CH_COMMA;
      pos += tags.copy(out, pos);
      if (withHost) {
        // Byte loop: 24 ns/line for an 8-byte peer vs 76 ns for src.copy (bench/parse-tag). The peer comes
        // from our own source (an IP address); still, never emit invalid JSON if it is not JSON-safe.
        const peerPos = pos;
        for (let i = peerStart; i < peerEnd; i++) {
          const b = src[i]!;
          if (b < 0x20 || b > 0x7e || b === CH_QUOTE || b === CH_BACKSLASH) {
            const escaped = JSON.stringify(src.toString('latin1', peerStart, peerEnd));
            pos = peerPos + out.write(escaped.slice(1, -1), peerPos, 'utf8');
            break;
          }
          out[pos++] = b;
        }
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

  /**
   * Collision path: write `{` and the members of the object src[s, e) whose key is not among the
   * first `nKeys` injected keys, comma-separated, each member's bytes exactly as sent. The text
   * has passed JSON.parse, so finding member boundaries only needs strings and brackets.
   * Sets #keptMember. Returns the new output position.
   */
  #copyMembersExcept(src: Buffer, s: number, e: number, plan: TagPlan, nKeys: number, pos: number): number {
    const out = this.#out;
    out[pos++] = CH_LBRACE;
    let kept = false;
    // Kept members are copied in runs (commas and spacing between them included): one copy
    // before and one after a cut member instead of one per member.
    let runStart = -1;
    let runEnd = -1;
    const close = e - 1;
    let i = s + 1;
    for (;;) {
      while (i < close && isJsonWs(src[i])) i++;
      if (i >= close) break; // an empty object
      const ks = i;
      i = skipString(src, i, close);
      const ke = i;
      while (i < close && src[i] !== CH_COLON) i++;
      i++;
      while (i < close && isJsonWs(src[i])) i++;
      i = skipValue(src, i, close);
      if (keyMatches(src, ks, ke, plan, nKeys)) {
        if (runStart !== -1) {
          if (kept) out[pos++] = CH_COMMA;
          pos += src.copy(out, pos, runStart, runEnd);
          kept = true;
          runStart = -1;
        }
      } else {
        if (runStart === -1) runStart = ks;
        runEnd = i;
      }
      while (i < close && isJsonWs(src[i])) i++;
      if (src[i] !== CH_COMMA || i >= close) break;
      i++;
    }
    if (runStart !== -1) {
      if (kept) out[pos++] = CH_COMMA;
      pos += src.copy(out, pos, runStart, runEnd);
      kept = true;
    }
    this.#keptMember = kept;
    return pos;
  }

  #grow(need: number): void {
    const old = this.#out;
    const next = Buffer.allocUnsafeSlow(Math.max(old.length * 2, this.#pos + need));
    old.copy(next, 0, 0, this.#pos);
    this.#out = next;
  }

  #growDeadLetter(need: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(this.#dl.length * 2, this.#dlPos + need));
    this.#dl.copy(next, 0, 0, this.#dlPos);
    this.#dl = next;
  }

  /** Off the fast path: malformed records are rare, so plain string building is fine here. */
  #deadLetter(
    reason: MalformedReason,
    sourceJson: string,
    src: Buffer,
    peerStart: number,
    peerEnd: number,
    rs: number,
    re: number,
  ): void {
    const peer = peerStart < peerEnd ? JSON.stringify(src.toString('latin1', peerStart, peerEnd)) : 'null';
    const raw = src.subarray(rs, re);
    const body = isUtf8(raw)
      ? `,"raw":${JSON.stringify(raw.toString('utf8'))}`
      : `,"raw_base64":"${raw.toString('base64')}"`;
    const line = `{"reason":"${reason}","component_id":${sourceJson},"peer":${peer}${body}}\n`;
    const need = line.length * 3;
    if (this.#dlPos + need > this.#dl.length) this.#growDeadLetter(need);
    this.#dlPos += this.#dl.write(line, this.#dlPos, 'utf8');
  }
}
