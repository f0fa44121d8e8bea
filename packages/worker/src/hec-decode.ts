/**
 * Splunk HEC request bodies to records, pure (no threads, no I/O): hec-task.ts runs it in a
 * worker for large bodies, the splunk_hec source inline for small ones (hec-decoder.ts).
 *
 * - gunzip, bounded by `maxDecodedBytes` (a gzip bomb is `body_too_large`, never an allocation);
 * - event endpoints: split stacked envelopes `{..} {..}` and arrays of them `[{..},{..}]` (both
 *   may be mixed in one body), validate each as the worker will (UTF-8, one JSON object, nesting
 *   at most `maxDepth`) plus HEC's rules (`event` present, not null or blank), and return each
 *   envelope's ORIGINAL bytes: the record is the envelope as sent;
 * - raw endpoint: one record per non-blank line, `{"event":"<line>"<rawFields>}`.
 *
 * All or nothing: the first bad envelope rejects the whole request with its zero-based index
 * (HEC's `invalid-event-number`), so a sender never has part of a batch stored and the rest
 * refused. Output: `data` plus `spans` ([start, end) pairs into data, one per record), ready
 * for `ring.tryWriteRange(data, start, end, peerHead)`; `data` may be a view of the body, which
 * hec-task.ts copies into a buffer of its own before transferring it.
 *
 * Event bodies are scanned by the native addon (native/hec_scan.cc) when it is built: it
 * accepts a body of plainly valid envelopes in one call and leaves everything else to the
 * TypeScript path here, which decides it exactly.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import { loadAddon, workerAddonPath, type AddonLoad } from './native-addon.ts';
import { MAX_SCAN_DEPTH } from './native-constants.ts';
import { FALSE, lastStringEscaped, NULL, scanLiteral, scanNumber, scanString, TRUE } from './json-scan.ts';

export type HecEndpoint = 'event' | 'raw';

export interface HecDecodeOptions {
  endpoint: HecEndpoint;
  /** The body is `Content-Encoding: gzip`. */
  gzip: boolean;
  /** Largest body after gunzip; more is `body_too_large`. */
  maxDecodedBytes: number;
  /** Largest record (envelope, or wrapped raw line) the ring can take with its peer head. */
  maxRecordBytes: number;
  /** The worker's nesting limit (BatchProcessor maxDepth): nothing accepted here fails there. */
  maxDepth: number;
  /** raw only: members appended after `event`, serialized once per request (`,"host":"a"`), or ''. */
  rawFields: string;
}

/**
 * Why a request was refused (the source maps each to an HTTP answer):
 * - `no_data`: no envelope or no non-blank line (HEC code 5);
 * - `invalid_event`: not UTF-8, not JSON, not an object, nested too deep (code 6);
 * - `event_missing` / `event_blank`: no `event`, or `event` null, "" or only whitespace (codes 12, 13);
 * - `oversize`: one record larger than the ring can ever hold (code 6);
 * - `invalid_encoding`: the gzip stream is broken (code 6, event number 0);
 * - `body_too_large`: gunzip would pass `maxDecodedBytes` (413);
 * - `internal_error`: a bug or a dead worker (500, code 8).
 */
export type HecRejection =
  | 'no_data'
  | 'invalid_event'
  | 'event_missing'
  | 'event_blank'
  | 'oversize'
  | 'invalid_encoding'
  | 'body_too_large'
  | 'internal_error';

export type HecDecodeResult =
  | {
      ok: true;
      /** Record bytes: the (decoded) body for event endpoints, built records for raw. */
      data: Uint8Array;
      /** [start, end) of record i at 2i, 2i+1. */
      spans: Uint32Array;
      records: number;
      /** raw: blank lines skipped. */
      emptyLines: number;
    }
  | {
      ok: false;
      rejection: HecRejection;
      /** Zero-based index of the offending envelope or line (0 when not about one). */
      index: number;
      /** Envelopes or lines looked at before stopping, the offending one included. */
      seen: number;
      /** For the engine's debug log; never contains body bytes. */
      detail: string;
    };

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_QUOTE = 0x22;
const CH_COMMA = 0x2c;
const CH_MINUS = 0x2d;
const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_COLON = 0x3a;
const CH_LBRACKET = 0x5b;
const CH_BACKSLASH = 0x5c;
const CH_RBRACKET = 0x5d;
const CH_LBRACE = 0x7b;
const CH_RBRACE = 0x7d;

const UNTERMINATED = -1;
const TOO_DEEP = -2;

function isWs(b: number | undefined): boolean {
  return b === CH_SPACE || b === CH_LF || b === CH_CR || b === CH_TAB;
}

function skipWs(data: Uint8Array, i: number, n: number): number {
  while (i < n && isWs(data[i])) i++;
  return i;
}

function reject(rejection: HecRejection, index: number, seen: number, detail: string): HecDecodeResult {
  return { ok: false, rejection, index, seen, detail };
}

/**
 * Never throws: every failure is a rejection.
 *
 * `borrowSpans`: the result's `spans` may be a view of this thread's scratch array, valid only
 * until the next decode on this thread (the caller copies them to keep them). The splunk_hec
 * source stores most bodies in the turn they are decoded, and one ArrayBuffer less per request
 * is less for V8's collector to sweep (the body's is the other one).
 */
export function decodeHecBody(body: Uint8Array, opts: HecDecodeOptions, borrowSpans = false): HecDecodeResult {
  try {
    return decode(body, opts, borrowSpans);
  } catch (err) {
    return reject('internal_error', 0, 0, err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  }
}

/** Which fast paths run before the exact one: both (native scanner, then the TypeScript scanner), or fewer for the tests. */
let fastPaths: 'both' | 'scanner' | 'none' = 'both';

/**
 * decodeHecBody with only some of its paths: 'scanner' without the native scanner, 'exact'
 * with every envelope decided by utf8 decode + JSON.parse. hec-decode.test.ts checks that all
 * three give the same answers.
 */
export function decodeHecBodyUsing(
  path: 'scanner' | 'exact',
  body: Uint8Array,
  opts: HecDecodeOptions,
): HecDecodeResult {
  fastPaths = path === 'scanner' ? 'scanner' : 'none';
  try {
    return decodeHecBody(body, opts);
  } finally {
    fastPaths = 'both';
  }
}

function decode(body: Uint8Array, opts: HecDecodeOptions, borrowSpans: boolean): HecDecodeResult {
  let data: Buffer;
  if (opts.gzip) {
    try {
      data = gunzipSync(body, { maxOutputLength: opts.maxDecodedBytes });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
        return reject('body_too_large', 0, 0, `gzip body inflates past ${opts.maxDecodedBytes} bytes`);
      }
      return reject('invalid_encoding', 0, 0, `gzip: ${e.code ?? e.message}`);
    }
  } else {
    data = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }
  if (data.length > opts.maxDecodedBytes) return reject('body_too_large', 0, 0, `body of ${data.length} bytes`);
  return opts.endpoint === 'raw' ? splitRaw(data, opts) : splitEnvelopes(data, opts, borrowSpans);
}

/** Growable [start, end) pairs. */
class Spans {
  arr = new Uint32Array(256);
  count = 0;
  push(start: number, end: number): void {
    if (2 * this.count + 2 > this.arr.length) {
      const next = new Uint32Array(this.arr.length * 2);
      next.set(this.arr);
      this.arr = next;
    }
    this.arr[2 * this.count] = start;
    this.arr[2 * this.count + 1] = end;
    this.count++;
  }
  done(): Uint32Array {
    return this.arr.slice(0, 2 * this.count);
  }
}

/** Path of the built addon (native-addon.ts: build-native/, or SLUICE_WORKER_ADDON_DIR for sanitizer builds). */
const NATIVE_HEC_SCAN_ADDON = workerAddonPath('hec_scan');

export interface NativeHecScanAddon {
  /**
   * The envelopes of body[0, length): how many (> 0), with [start, end) of envelope i at
   * spans[2i], spans[2i + 1], when every one is a valid object with a plainly set `event`; -1
   * for anything else (then the TypeScript path decides the whole body).
   * @throws TypeError / RangeError on malformed arguments (a bug on this side, never input data).
   */
  scanEnvelopes(body: Uint8Array, length: number, maxDepth: number, spans: Uint32Array): number;
}

let nativeScan: AddonLoad<NativeHecScanAddon> | undefined;

/** The addon, or why it cannot be used here. Loaded once per thread; never throws. */
export function loadNativeHecScan(): AddonLoad<NativeHecScanAddon> {
  nativeScan ??= loadAddon<NativeHecScanAddon>(NATIVE_HEC_SCAN_ADDON, 'scanEnvelopes');
  return nativeScan;
}

/** Where the native scanner writes its spans: room for the most envelopes a body can hold (`{"event":0}` is 11 bytes). */
let scratchSpans = new Uint32Array(2048);

/** The body's envelopes by the native scanner, or null when it leaves the body to the TypeScript path. */
function nativeEnvelopes(data: Buffer, opts: HecDecodeOptions, borrowSpans: boolean): HecDecodeResult | null {
  const addon = loadNativeHecScan();
  if (!addon.ok || data.length > 0xffffffff) return null;
  const room = 2 * (Math.floor(data.length / 11) + 1);
  if (scratchSpans.length < room) scratchSpans = new Uint32Array(room);
  const count = addon.addon.scanEnvelopes(data, data.length, opts.maxDepth, scratchSpans);
  if (count <= 0) return null;
  const spans = borrowSpans ? scratchSpans.subarray(0, 2 * count) : scratchSpans.slice(0, 2 * count);
  // An envelope too large for the ring: the TypeScript path names it.
  for (let k = 0; k < count; k++) if (spans[2 * k + 1]! - spans[2 * k]! > opts.maxRecordBytes) return null;
  return { ok: true, data, spans, records: count, emptyLines: 0 };
}

function splitEnvelopes(data: Buffer, opts: HecDecodeOptions, borrowSpans: boolean): HecDecodeResult {
  if (fastPaths === 'both') {
    const fast = nativeEnvelopes(data, opts, borrowSpans);
    if (fast !== null) return fast;
  }
  const n = data.length;
  const spans = new Spans();
  let i = 0;
  // A UTF-8 BOM may open the body (RFC 8259 8.1 lets a parser skip it).
  if (n >= 3 && data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) i = 3;
  i = skipWs(data, i, n);
  while (i < n) {
    const c = data[i];
    if (c === CH_LBRACE) {
      const end = envelope(data, i, n, spans, opts);
      if (end < 0) return failed(i, n, end, spans.count, opts);
      i = skipWs(data, end, n);
      continue;
    }
    if (c !== CH_LBRACKET) return reject('invalid_event', spans.count, spans.count + 1, 'not a JSON object');
    // An array of envelopes: `[`, envelopes separated by `,`, `]`.
    i = skipWs(data, i + 1, n);
    if (data[i] === CH_RBRACKET) {
      i = skipWs(data, i + 1, n);
      continue;
    }
    for (;;) {
      if (data[i] !== CH_LBRACE)
        return reject('invalid_event', spans.count, spans.count + 1, 'array element is not a JSON object');
      const end = envelope(data, i, n, spans, opts);
      if (end < 0) return failed(i, n, end, spans.count, opts);
      i = skipWs(data, end, n);
      if (data[i] === CH_COMMA) {
        i = skipWs(data, i + 1, n);
        continue;
      }
      if (data[i] === CH_RBRACKET) {
        i = skipWs(data, i + 1, n);
        break;
      }
      return reject('invalid_event', spans.count, spans.count + 1, 'expected , or ] after an array element');
    }
  }
  if (spans.count === 0) return reject('no_data', 0, 0, 'no envelope');
  return { ok: true, data, spans: spans.done(), records: spans.count, emptyLines: 0 };
}

/** Turns a negative envelope() result into the rejection for envelope number `index`. */
function failed(start: number, n: number, code: number, index: number, opts: HecDecodeOptions): HecDecodeResult {
  const seen = index + 1;
  if (code === TOO_DEEP) return reject('invalid_event', index, seen, `nested deeper than ${opts.maxDepth}`);
  if (code === UNTERMINATED)
    return reject('invalid_event', index, seen, `unterminated object at byte ${start} of ${n}`);
  return reject(REJECTIONS[-code - 10]!, index, seen, DETAILS[-code - 10]!);
}

// envelope() failure codes beyond UNTERMINATED and TOO_DEEP: -(10 + i) for REJECTIONS[i].
const REJECTIONS: HecRejection[] = ['invalid_event', 'invalid_event', 'event_missing', 'event_blank', 'oversize'];
const DETAILS = [
  'not valid UTF-8',
  'not valid JSON',
  'no event field',
  'event is null or blank',
  'larger than the ring can hold',
];
const BAD_UTF8 = -10;
const BAD_JSON = -11;
const NO_EVENT = -12;
const BLANK_EVENT = -13;
const OVERSIZE = -14;

/**
 * Validates the envelope starting at `{` data[s] and pushes its span. Returns the index after
 * its closing `}`, or a negative failure code.
 *
 * The byte scanner below decides nearly every envelope without building a string or an object:
 * 1.1 µs for a ~300-byte envelope against 4.5 µs for utf8 decode + JSON.parse. What it does
 * not accept (anything malformed, a top-level key spelled with escapes, nesting beyond
 * MAX_SCAN_DEPTH) is decided by the exact path, so its answer is always the exact path's.
 */
function envelope(data: Buffer, s: number, n: number, spans: Spans, opts: HecDecodeOptions): number {
  const e = fastPaths !== 'none' ? scanEnvelope(data, s, n, opts.maxDepth) : SCAN_FAIL;
  if (e > 0) {
    let ev = eventState;
    if (ev === EVENT_CHECK) ev = blankString(data, eventStart, eventEnd) ? EVENT_BLANK : EVENT_SET;
    if (ev === EVENT_NONE) return NO_EVENT;
    if (ev === EVENT_BLANK) return BLANK_EVENT;
    if (e - s > opts.maxRecordBytes) return OVERSIZE;
    spans.push(s, e);
    return e;
  }
  return envelopeExact(data, s, n, spans, opts);
}

/** The exact path: bracket depth for the end, then utf8 decode, isUtf8 and JSON.parse. */
function envelopeExact(data: Buffer, s: number, n: number, spans: Spans, opts: HecDecodeOptions): number {
  const e = objectEnd(data, s, n, opts.maxDepth);
  if (e < 0) return e;
  const text = data.toString('utf8', s, e);
  // The decoder turns ill-formed UTF-8 into U+FFFD: only then is the exact check needed.
  if (text.indexOf('\uFFFD') !== -1 && !isUtf8(data.subarray(s, e))) return BAD_UTF8;
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return BAD_JSON;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return BAD_JSON;
  const event = obj['event'];
  if (event === undefined) return NO_EVENT;
  if (event === null || (typeof event === 'string' && event.trim() === '')) return BLANK_EVENT;
  if (e - s > opts.maxRecordBytes) return OVERSIZE;
  spans.push(s, e);
  return e;
}

// What scanEnvelope found about the top-level `event` (the last one, as JSON.parse keeps).
const EVENT_NONE = 0;
/** null, "" or a string of spaces. */
const EVENT_BLANK = 1;
const EVENT_SET = 2;
/** A string with escapes or non-ASCII text at its start: blank only if trim() says so. */
const EVENT_CHECK = 3;
let eventState = EVENT_NONE;
/** The string value of `event` when EVENT_CHECK: [eventStart, eventEnd), quotes included. */
let eventStart = 0;
let eventEnd = 0;

/** Whether the JSON string data[s, e) (quotes included) is blank to HEC: empty or only whitespace. */
function blankString(data: Buffer, s: number, e: number): boolean {
  return (JSON.parse(data.toString('utf8', s, e)) as string).trim() === '';
}

const SCAN_FAIL = -1;
const IN_OBJECT = 1;
const IN_ARRAY = 2;
const scanStack = new Uint8Array(MAX_SCAN_DEPTH + 2);
// Scanner states: what the next token may be (as json-scan.ts's scanRecord).
const VALUE = 0;
const VALUE_OR_CLOSE = 1;
const KEY = 2;
const KEY_OR_CLOSE = 3;
const AFTER = 4;

/**
 * One pass over the envelope opening at `{` data[s], bounded by the body's end `n`: the index
 * just past its closing `}` when it is one JSON object (RFC 8259, well-formed UTF-8, nesting at
 * most maxDepth), with eventState (and eventStart/End) set; else SCAN_FAIL, and the exact path
 * decides. It accepts only what JSON.parse accepts (json-scan.ts's string, number and literal
 * scanners; hec-decode.test.ts checks it differentially).
 */
function scanEnvelope(src: Uint8Array, s: number, n: number, maxDepth: number): number {
  const limit = Math.min(maxDepth, MAX_SCAN_DEPTH);
  if (limit < 1) return SCAN_FAIL;
  eventState = EVENT_NONE;
  let depth = 1;
  scanStack[1] = IN_OBJECT;
  let state = KEY_OR_CLOSE;
  /** The top-level key just read is `event`. */
  let eventKey = false;
  let i = s + 1;
  let c = 0;
  for (;;) {
    while (i < n && isWs((c = src[i]!))) i++;
    if (i >= n) return SCAN_FAIL;
    if (state === AFTER) {
      const inObject = scanStack[depth] === IN_OBJECT;
      if (c === CH_COMMA) {
        i++;
        state = inObject ? KEY : VALUE;
      } else if (c === (inObject ? CH_RBRACE : CH_RBRACKET)) {
        i++;
        if (--depth === 0) return i;
      } else return SCAN_FAIL;
    } else if (state >= KEY) {
      if (c === CH_RBRACE && state === KEY_OR_CLOSE) {
        i++;
        if (--depth === 0) return i;
        state = AFTER;
        continue;
      }
      if (c !== CH_QUOTE) return SCAN_FAIL;
      const ks = i;
      i = scanString(src, i, n);
      if (i < 0) return SCAN_FAIL;
      if (depth === 1) {
        if (lastStringEscaped()) return SCAN_FAIL; // "\u0065vent" is "event": the exact path decides
        eventKey =
          i - ks === 7 &&
          src[ks + 1] === 0x65 &&
          src[ks + 2] === 0x76 &&
          src[ks + 3] === 0x65 &&
          src[ks + 4] === 0x6e &&
          src[ks + 5] === 0x74;
      }
      while (i < n && isWs((c = src[i]!))) i++;
      if (i >= n || c !== CH_COLON) return SCAN_FAIL;
      i++;
      state = VALUE;
    } else {
      // VALUE or VALUE_OR_CLOSE
      const isEvent = depth === 1 && eventKey;
      if (c === CH_QUOTE) {
        const vs = i;
        i = scanString(src, i, n);
        if (i < 0) return SCAN_FAIL;
        if (isEvent) {
          // Blank is "" or only whitespace; raw whitespace in a JSON string can only be spaces.
          let k = vs + 1;
          while (k < i - 1 && src[k] === CH_SPACE) k++;
          if (k === i - 1) eventState = EVENT_BLANK;
          else if (src[k]! < 0x80 && src[k] !== CH_BACKSLASH) eventState = EVENT_SET;
          else {
            eventState = EVENT_CHECK;
            eventStart = vs;
            eventEnd = i;
          }
        }
        state = AFTER;
      } else if (c === CH_LBRACE) {
        if (++depth > limit) return SCAN_FAIL;
        if (isEvent) eventState = EVENT_SET;
        scanStack[depth] = IN_OBJECT;
        i++;
        state = KEY_OR_CLOSE;
      } else if (c === CH_LBRACKET) {
        if (++depth > limit) return SCAN_FAIL;
        if (isEvent) eventState = EVENT_SET;
        scanStack[depth] = IN_ARRAY;
        i++;
        state = VALUE_OR_CLOSE;
      } else if (c === CH_RBRACKET && state === VALUE_OR_CLOSE) {
        i++;
        depth--;
        state = AFTER;
      } else {
        if (c === CH_MINUS || (c >= CH_0 && c <= CH_9)) i = scanNumber(src, i, n);
        else if (c === 0x74 /* t */) i = scanLiteral(src, i, n, TRUE);
        else if (c === 0x66 /* f */) i = scanLiteral(src, i, n, FALSE);
        else if (c === 0x6e /* n */) i = scanLiteral(src, i, n, NULL);
        else return SCAN_FAIL;
        if (i < 0) return SCAN_FAIL;
        if (isEvent) eventState = c === 0x6e ? EVENT_BLANK : EVENT_SET;
        state = AFTER;
      }
    }
  }
}

/**
 * The end (exclusive) of the JSON object or array opening at data[s], found by bracket depth
 * outside strings; UNTERMINATED or TOO_DEEP. Brackets are not matched by kind: JSON.parse
 * rejects `{]` afterwards.
 */
function objectEnd(data: Buffer, s: number, n: number, maxDepth: number): number {
  let depth = 0;
  for (let j = s; j < n; j++) {
    const c = data[j];
    if (c === CH_QUOTE) {
      // A byte loop: strings in envelopes are short, and Buffer#indexOf per quote cost ~8x more.
      let q = j + 1;
      for (; q < n; q++) {
        const d = data[q];
        if (d === CH_QUOTE) break;
        if (d === CH_BACKSLASH) q++;
      }
      if (q >= n) return UNTERMINATED;
      j = q;
    } else if (c === CH_LBRACE || c === CH_LBRACKET) {
      if (++depth > maxDepth) return TOO_DEEP;
    } else if (c === CH_RBRACE || c === CH_RBRACKET) {
      if (--depth === 0) return j + 1;
    }
  }
  return UNTERMINATED;
}

function splitRaw(data: Buffer, opts: HecDecodeOptions): HecDecodeResult {
  const n = data.length;
  const spans = new Spans();
  const prefix = '{"event":';
  const suffix = `${opts.rawFields}}`;
  const overhead = prefix.length + Buffer.byteLength(suffix);
  // Every line grows by its JSON escaping at most 6x (a control byte becomes \u00XX).
  let out = Buffer.allocUnsafeSlow(Math.min(Math.max(1024, n + (n >> 3) + 64 * overhead), 0x7fffffff));
  let pos = 0;
  let emptyLines = 0;
  let index = 0;
  let ls = 0;
  while (ls < n) {
    let le = data.indexOf(CH_LF, ls);
    if (le === -1) le = n;
    let e = le;
    if (e > ls && data[e - 1] === CH_CR) e--;
    let k = ls;
    while (k < e && (data[k] === CH_SPACE || data[k] === CH_TAB)) k++;
    if (k === e) {
      emptyLines++;
    } else {
      // Ill-formed UTF-8 becomes U+FFFD: raw text is kept as text, not rejected (as Splunk does).
      const line = JSON.stringify(data.toString('utf8', ls, e));
      const need = prefix.length + 3 * line.length + overhead;
      if (pos + need > out.length) {
        const next = Buffer.allocUnsafeSlow(Math.max(out.length * 2, pos + need));
        out.copy(next, 0, 0, pos);
        out = next;
      }
      const start = pos;
      pos += out.write(prefix, pos, 'latin1');
      pos += out.write(line, pos, 'utf8');
      pos += out.write(suffix, pos, 'utf8');
      if (pos - start > opts.maxRecordBytes)
        return reject('oversize', index, index + 1, 'line larger than the ring can hold');
      spans.push(start, pos);
      index++;
    }
    ls = le + 1;
  }
  if (spans.count === 0) return reject('no_data', 0, emptyLines, 'no non-blank line');
  return { ok: true, data: ownBytes(out.subarray(0, pos)), spans: spans.done(), records: spans.count, emptyLines };
}

/**
 * `bytes` as a Uint8Array that owns its whole ArrayBuffer, so it can be transferred: a small
 * Buffer may be a slice of Node's shared 8 KiB pool, and transferring that would detach the pool.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  if (
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    !(bytes.buffer instanceof SharedArrayBuffer)
  ) {
    return bytes;
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}
