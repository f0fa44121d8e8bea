/**
 * The worker's fast path validator: one pass over a line's bytes that accepts exactly the
 * lines that are well-formed UTF-8, one JSON text (RFC 8259, what JSON.parse accepts) whose
 * value is an object, nested at most `maxDepth` deep. On the way it notes which top-level keys
 * the record has, so the tagger knows about collisions and Talos kinds without a parsed object.
 *
 * It never builds a string or an object: 887 ns for a ~220-byte loadgen Talos line against
 * 1735 ns for utf8 decode + JSON.parse alone (tinybench, one run, this 2-core machine; the
 * numbers for 245-byte lines are in bench/parse-tag.bench.ts: 817 vs 1454 ns).
 *
 * It is deliberately one-sided: whatever it does not accept (malformed input, and the rare
 * valid line it does not bother with: a top-level key spelled with escapes, nesting beyond
 * maxDepth or {@link MAX_SCAN_DEPTH}) returns {@link SCAN_REJECT}, and the caller decides with
 * the exact path (decode + isUtf8 + JSON.parse). So a scanner bug can cost speed, but an
 * accepted line is always one JSON.parse accepts: json-scan.test.ts checks that differentially.
 *
 * Bounds: every read is below `end`; the bytes after it belong to the next record.
 */

// The result bits and the depth cap: native-constants.ts (batch.cc shares them).
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

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_QUOTE = 0x22;
const CH_COMMA = 0x2c;
const CH_MINUS = 0x2d;
const CH_DOT = 0x2e;
const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_COLON = 0x3a;
const CH_LBRACKET = 0x5b;
const CH_BACKSLASH = 0x5c;
const CH_RBRACKET = 0x5d;
const CH_LBRACE = 0x7b;
const CH_RBRACE = 0x7d;

/** 1 for a byte that may appear as is inside a JSON string: 0x20..0x7f except `"` and `\`. */
const PLAIN = new Uint8Array(256);
for (let c = 0x20; c < 0x80; c++) PLAIN[c] = c === CH_QUOTE || c === CH_BACKSLASH ? 0 : 1;
/** 1 for the bytes that may follow a backslash (u is handled apart). */
const ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') ESCAPE[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

const IN_OBJECT = 1;
const IN_ARRAY = 2;
const stack = new Uint8Array(MAX_SCAN_DEPTH + 2);

const KEY_TALOS_SERVICE = Buffer.from('"talos-service"');
const KEY_FACILITY = Buffer.from('"facility"');
const KEY_PRIORITY = Buffer.from('"priority"');
const KEY_CLOCK = Buffer.from('"clock"');
const KEY_SEQ = Buffer.from('"seq"');

/** A DataView over the last scanned array (one per batch buffer, not per string). */
let viewSrc: Uint8Array | null = null;
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
function viewOf(src: Uint8Array): DataView<ArrayBufferLike> {
  if (src !== viewSrc) {
    viewSrc = src;
    view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  }
  return view;
}

/** Set by scanString: the string held an escape (a key spelled with escapes goes to the exact path). */
let sawEscape = false;

/** Whether the string scanString last accepted held an escape (the HEC envelope scanner asks). */
export function lastStringEscaped(): boolean {
  return sawEscape;
}

function isWs(c: number): boolean {
  return c === CH_SPACE || c === CH_LF || c === CH_CR || c === CH_TAB;
}

function equalAt(src: Uint8Array, ks: number, ke: number, key: Uint8Array): boolean {
  const n = key.length;
  if (ke - ks !== n) return false;
  for (let j = 0; j < n; j++) if (src[ks + j] !== key[j]) return false;
  return true;
}

/**
 * Index just past the string opening at src[i] (a '"'), or -1 when it is not a valid JSON
 * string of well-formed UTF-8 ending before `end`. Sets sawEscape.
 */
export function scanString(src: Uint8Array, i: number, end: number): number {
  sawEscape = false;
  i++;
  const view = viewOf(src);
  for (;;) {
    // The common case first: printable ASCII, 4 bytes per test (SWAR on one little-endian u32
    // load): no byte with the top bit set, none below 0x20, none equal to '"' or '\'.
    // Each test is exact about whether such a byte exists (not which one it is).
    while (i + 4 <= end) {
      const w = view.getUint32(i, true);
      const q = w ^ 0x22222222;
      const b = w ^ 0x5c5c5c5c;
      if (((w | ((w - 0x20202020) & ~w) | ((q - 0x01010101) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) !== 0) break;
      i += 4;
    }
    while (i < end && PLAIN[src[i]!] === 1) i++;
    if (i >= end) return -1;
    const c = src[i]!;
    if (c === CH_QUOTE) return i + 1;
    if (c === CH_BACKSLASH) {
      sawEscape = true;
      if (i + 1 >= end) return -1;
      const x = src[i + 1]!;
      if (ESCAPE[x] === 1) {
        i += 2;
      } else if (x === 0x75 /* u */) {
        if (
          i + 5 >= end ||
          HEX[src[i + 2]!] !== 1 ||
          HEX[src[i + 3]!] !== 1 ||
          HEX[src[i + 4]!] !== 1 ||
          HEX[src[i + 5]!] !== 1
        )
          return -1;
        i += 6;
      } else return -1;
      continue;
    }
    if (c < 0x80) return -1; // a control character
    // Well-formed UTF-8 (Unicode table 3-7): no overlongs, no surrogates, nothing above U+10FFFF.
    // A sequence must end before `end`: the string's closing quote is still to come.
    if (c < 0xc2) return -1;
    if (c < 0xe0) {
      if (i + 1 >= end || (src[i + 1]! & 0xc0) !== 0x80) return -1;
      i += 2;
    } else if (c < 0xf0) {
      if (i + 2 >= end) return -1;
      const c1 = src[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (src[i + 2]! & 0xc0) !== 0x80) return -1;
      if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 > 0x9f)) return -1;
      i += 3;
    } else if (c < 0xf5) {
      if (i + 3 >= end) return -1;
      const c1 = src[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (src[i + 2]! & 0xc0) !== 0x80 || (src[i + 3]! & 0xc0) !== 0x80) return -1;
      if ((c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 > 0x8f)) return -1;
      i += 4;
    } else return -1;
  }
}

/** Index just past the number starting at src[i], or -1 when it is not a JSON number. */
export function scanNumber(src: Uint8Array, i: number, end: number): number {
  if (src[i] === CH_MINUS) i++;
  if (i >= end) return -1;
  let c = src[i]!;
  if (c === CH_0) i++;
  else if (c > CH_0 && c <= CH_9) {
    i++;
    while (i < end && (c = src[i]!) >= CH_0 && c <= CH_9) i++;
  } else return -1;
  if (i < end && src[i] === CH_DOT) {
    i++;
    if (i >= end || (c = src[i]!) < CH_0 || c > CH_9) return -1;
    while (i < end && (c = src[i]!) >= CH_0 && c <= CH_9) i++;
  }
  if (i < end && (src[i] === 0x65 || src[i] === 0x45) /* e E */) {
    i++;
    if (i < end && (src[i] === 0x2b || src[i] === CH_MINUS)) i++;
    if (i >= end || (c = src[i]!) < CH_0 || c > CH_9) return -1;
    while (i < end && (c = src[i]!) >= CH_0 && c <= CH_9) i++;
  }
  return i;
}

/** Index just past the literal `word` at src[i], or -1. */
export function scanLiteral(src: Uint8Array, i: number, end: number, word: Uint8Array): number {
  const n = word.length;
  if (i + n > end) return -1;
  for (let j = 1; j < n; j++) if (src[i + j] !== word[j]) return -1;
  return i + n;
}
export const TRUE = Buffer.from('true');
export const FALSE = Buffer.from('false');
export const NULL = Buffer.from('null');

// Scanner states: what the next token may be.
const VALUE = 0; // a value (after ':' or ',' in an array)
const VALUE_OR_CLOSE = 1; // a value or ']' (after '[')
const KEY = 2; // a key (after ',' in an object)
const KEY_OR_CLOSE = 3; // a key or '}' (after '{')
const AFTER = 4; // ',' or the closing bracket of the container (after a value)

/**
 * Scan the line src[s, e) (BOM and surrounding whitespace already trimmed, so src[s] is its
 * first token). Returns {@link SCAN_REJECT}, or SCAN_OK | flags: SCAN_COLLIDES when a top-level
 * key equals one of `injectKeys[0, nKeys)` (JSON-quoted bytes, as TagPlan.injectKeyBytes), and
 * the SCAN_* bit of each Talos key present at the top level.
 */
export function scanRecord(
  src: Uint8Array,
  s: number,
  e: number,
  maxDepth: number,
  injectKeys: readonly Uint8Array[],
  nKeys: number,
): number {
  if (src[s] !== CH_LBRACE) return SCAN_REJECT; // not an object, or not JSON: the exact path names which
  const limit = Math.min(maxDepth, MAX_SCAN_DEPTH);
  let flags = SCAN_OK;
  let depth = 1;
  stack[1] = IN_OBJECT;
  let state = KEY_OR_CLOSE;
  let i = s + 1;
  let c = 0;
  for (;;) {
    while (i < e && isWs((c = src[i]!))) i++;
    if (i >= e) return depth === 0 ? flags : SCAN_REJECT;
    if (depth === 0) return SCAN_REJECT; // bytes after the record's closing brace
    if (state === AFTER) {
      const inObject = stack[depth] === IN_OBJECT;
      if (c === CH_COMMA) {
        i++;
        state = inObject ? KEY : VALUE;
      } else if (c === (inObject ? CH_RBRACE : CH_RBRACKET)) {
        i++;
        depth--;
      } else return SCAN_REJECT;
    } else if (state >= KEY) {
      if (c === CH_RBRACE && state === KEY_OR_CLOSE) {
        i++;
        depth--;
        state = AFTER;
        continue;
      }
      if (c !== CH_QUOTE) return SCAN_REJECT;
      const ks = i;
      i = scanString(src, i, e);
      if (i < 0) return SCAN_REJECT;
      if (depth === 1) {
        if (sawEscape) return SCAN_REJECT; // "\u0063luster" is "cluster": the exact path compares decoded keys
        for (let k = 0; k < nKeys; k++) if (equalAt(src, ks, i, injectKeys[k]!)) flags |= SCAN_COLLIDES;
        const n = i - ks;
        if (n === 15) {
          if (equalAt(src, ks, i, KEY_TALOS_SERVICE)) flags |= SCAN_TALOS_SERVICE;
        } else if (n === 10) {
          if (equalAt(src, ks, i, KEY_FACILITY)) flags |= SCAN_FACILITY;
          else if (equalAt(src, ks, i, KEY_PRIORITY)) flags |= SCAN_PRIORITY;
        } else if (n === 7) {
          if (equalAt(src, ks, i, KEY_CLOCK)) flags |= SCAN_CLOCK;
        } else if (n === 5 && equalAt(src, ks, i, KEY_SEQ)) flags |= SCAN_SEQ;
      }
      while (i < e && isWs((c = src[i]!))) i++;
      if (i >= e || c !== CH_COLON) return SCAN_REJECT;
      i++;
      state = VALUE;
    } else {
      // VALUE or VALUE_OR_CLOSE
      if (c === CH_QUOTE) {
        i = scanString(src, i, e);
        state = AFTER;
      } else if (c === CH_LBRACE) {
        if (++depth > limit) return SCAN_REJECT;
        stack[depth] = IN_OBJECT;
        i++;
        state = KEY_OR_CLOSE;
      } else if (c === CH_LBRACKET) {
        if (++depth > limit) return SCAN_REJECT;
        stack[depth] = IN_ARRAY;
        i++;
        state = VALUE_OR_CLOSE;
      } else if (c === CH_RBRACKET && state === VALUE_OR_CLOSE) {
        i++;
        depth--;
        state = AFTER;
      } else {
        if (c === CH_MINUS || (c >= CH_0 && c <= CH_9)) i = scanNumber(src, i, e);
        else if (c === 0x74 /* t */) i = scanLiteral(src, i, e, TRUE);
        else if (c === 0x66 /* f */) i = scanLiteral(src, i, e, FALSE);
        else if (c === 0x6e /* n */) i = scanLiteral(src, i, e, NULL);
        else return SCAN_REJECT;
        state = AFTER;
      }
      if (i < 0) return SCAN_REJECT;
    }
  }
}
