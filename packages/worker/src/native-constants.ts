/**
 * The numbers the worker's TypeScript and its C++ (native/batch.cc, facts.h, hec_scan.cc) must
 * agree on, defined once: the slots of the state array processRecords shares with
 * BatchProcessor (the diagram in batch-native.ts), its statuses, the scanner's result bits, the
 * index facts' buffer layout, and the malformed reasons' order. The C++ includes
 * native/generated-constants.h, which scripts/gen-native-constants.ts writes from this file
 * (`--check`, run by scripts/test.sh and a test, fails when the header is stale).
 *
 * Nothing here may import anything: the generator and the worker build load this file alone.
 */

// ---------------------------------------------------------------- processRecords' state slots

/** State slot (in): bytes of the batch. */
export const S_LENGTH = 0;
/** State slot (in): the nesting limit (Infinity allowed). */
export const S_MAX_DEPTH = 1;
/** State slot (in): 1 to write dead-letter envelopes. */
export const S_DEAD_LETTER = 2;
/** State slot (cursor): offset of the record being read (its length header). */
export const S_OFF = 3;
/** State slot (cursor): next line of the block record at S_OFF, or -1: its start. */
export const S_LINE = 4;
/** State slot (cursor): NDJSON bytes in out. */
export const S_POS = 5;
/** State slot (cursor): envelope bytes in dl. */
export const S_DL_POS = 6;
/** State slot (out, on ST_GROW): room out must have past S_POS (0: enough). */
export const S_NEED = 7;
/** State slot (out, on ST_GROW): room dl must have past S_DL_POS (0: enough). */
export const S_DL_NEED = 8;
/** State slot (count): lines. */
export const S_RECORDS = 9;
/** State slot (count): accepted lines. */
export const S_ACCEPTED = 10;
/** State slot (count): line bytes. */
export const S_INPUT_BYTES = 11;
/** State slot (count): accepted talos-service lines. */
export const S_SERVICE = 12;
/** State slot (count): accepted kernel lines. */
export const S_KERNEL = 13;
/** State slot (count): other accepted lines. */
export const S_OTHER = 14;
/** First of MALFORMED_REASONS.length state slots: malformed lines by reason, in MALFORMED_REASONS order. */
export const S_MALFORMED = 15;
/** State slot (index facts): lines decided. */
export const S_F_RECORDS = 21;
/** State slot (index facts): of them, lines without a time. */
export const S_F_UNTIMED = 22;
/** State slot (index facts): lines sent back for JS to decide. */
export const S_F_UNCERTAIN = 23;
/** State slot (index facts): 1 when more lines were sent back than the buffer holds. */
export const S_F_OVERFLOW = 24;
/** State slot (index facts): 1 when `times` holds the earliest and latest time. */
export const S_F_HAS_TIME = 25;
/** Length of the state array. */
export const STATE_SLOTS = 26;

// ---------------------------------------------------------------- processRecords' statuses

/** The batch is done: the counts and positions in the state are final. */
export const ST_DONE = 0;
/** out (state[S_NEED] > 0) or dl (state[S_DL_NEED] > 0) is too small for the next line: grow it, call again. */
export const ST_GROW = 1;

// ---------------------------------------------------------------- the fast scan (json-scan.ts)

/** Nothing accepted: decide with the exact path. */
export const SCAN_REJECT = -1;
/** Bits of an accepted scan's result. */
export const SCAN_OK = 1;
/** A top-level key equals one of the first nKeys injected keys (tags overwrite: cut it). */
export const SCAN_COLLIDES = 2;
/** Top-level keys Talos records are told apart by. */
export const SCAN_TALOS_SERVICE = 4;
export const SCAN_FACILITY = 8;
export const SCAN_PRIORITY = 16;
export const SCAN_CLOCK = 32;
export const SCAN_SEQ = 64;
export const SCAN_KERNEL = SCAN_FACILITY | SCAN_PRIORITY | SCAN_CLOCK | SCAN_SEQ;
/** Deeper lines go to the exact path (the fast scanners' preallocated stacks, no recursion). */
export const MAX_SCAN_DEPTH = 1024;

// ---------------------------------------------------------------- the packed tag plan (packPlan)

/** Per injected key in a packed plan: `({})[key] !== undefined` ("constructor", "__proto__", ...). */
export const KEY_INHERITED = 1;

// ---------------------------------------------------------------- the index facts (facts.ts, facts.h)

/** Beyond this many distinct texts a field is "many": an index stays small (S3 user metadata is 2 KB; sidecars too). */
export const MAX_FIELD_VALUES = 64;
/** Words per indexed field in the facts buffer: the count (or F_MANY), then MAX_FIELD_VALUES (offset, length) pairs. */
export const F_STRIDE = 1 + 2 * MAX_FIELD_VALUES;
/** A field's count when it has more than MAX_FIELD_VALUES distinct values. */
export const F_MANY = 0xffffffff;
/** At most this many indexed fields. */
export const F_MAX_FIELDS = 32;
/** Bytes of one canonical time in `times` (YYYY-MM-DDTHH:MM:SS.nnnnnnnnn: the earliest, then the latest). */
export const F_TIME_LEN = 29;

// ---------------------------------------------------------------- malformed reasons

/**
 * Every malformed reason (process.ts MalformedReason), in a stable order: metrics label values,
 * and the order of the S_MALFORMED slots.
 */
export const MALFORMED_REASONS = [
  'invalid_frame',
  'empty',
  'invalid_utf8',
  'invalid_json',
  'not_object',
  'too_deep',
] as const;
