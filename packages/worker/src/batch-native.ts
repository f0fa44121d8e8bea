/**
 * The worker's native validate + tag path (packages/worker/native/batch.cc, built by
 * scripts/build-native.ts into packages/worker/build-native/batch.node). It is complete on its
 * own: it decides every line of a batch (accepted and tagged, or malformed with its reason and
 * dead-letter envelope) and writes the same bytes as the TypeScript path in process.ts, which
 * stays the fallback without the addon and the oracle of the differential tests.
 *
 * BatchProcessor (process.ts) calls it once per batch; the only other answer is "an output
 * buffer must grow", after which JS grows that buffer and calls again to resume at the same line.
 *
 * ```
 *  state: Float64Array(STATE_SLOTS)
 *  ┌──────────────────── in: set by JS once per batch ────────────────────┐
 *  │ 0 LENGTH   bytes of the batch     1 MAX_DEPTH  (Infinity allowed)    │
 *  │ 2 DEAD_LETTER  1: write envelopes to dl                              │
 *  ├──────────────────── cursor: JS zeroes it, the addon keeps it ────────┤
 *  │ 3 OFF      offset of the record being read (its length header)      │
 *  │ 4 LINE     next line of the block record at OFF, or -1: its start    │
 *  │ 5 POS      NDJSON bytes in out    6 DL_POS  envelope bytes in dl     │
 *  ├──────────────────── out: on ST_GROW ─────────────────────────────────┤
 *  │ 7 NEED     room out must have past POS (0: enough)                   │
 *  │ 8 DL_NEED  room dl must have past DL_POS (0: enough)                 │
 *  ├──────────────────── counts: JS zeroes them, the addon adds to them ──┤
 *  │ 9 RECORDS  10 ACCEPTED  11 INPUT_BYTES  12 SERVICE  13 KERNEL        │
 *  │ 14 OTHER   15..20 MALFORMED by reason, MALFORMED_REASONS order       │
 *  ├──────────────────── index facts: JS zeroes them, the addon keeps them ┤
 *  │ 21 F_RECORDS  lines decided   22 F_UNTIMED  of them without a time   │
 *  │ 23 F_UNCERTAIN  lines sent back   24 F_OVERFLOW  1: too many of them │
 *  │ 25 F_HAS_TIME  1: `times` holds the earliest and latest time         │
 *  └──────────────────────────────────────────────────────────────────────┘
 * ```
 *
 * With the index facts (three more arguments, facts.ts drives them), the scan also notes each
 * accepted line's indexed values and time as it goes (native/facts.h): a few instructions per
 * key instead of a second pass over the output.
 */
import { loadAddon, workerAddonPath, type AddonLoad } from './native-addon.ts';
import { KEY_INHERITED } from './native-constants.ts';

/** Path of the built addon (native-addon.ts: build-native/, or SLUICE_WORKER_ADDON_DIR for sanitizer builds). */
export const NATIVE_BATCH_ADDON = workerAddonPath('batch');

/** Indexed field names packed for the addon: u32 LE count, then per name u32 LE length and JSON.stringify(name) as UTF-8. */
export function packFields(names: readonly string[]): Uint8Array {
  const bytes = names.map((n) => Buffer.from(JSON.stringify(n), 'utf8'));
  const out = new Uint8Array(4 + bytes.reduce((a, b) => a + 4 + b.length, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, names.length, true);
  let o = 4;
  for (const b of bytes) {
    view.setUint32(o, b.length, true);
    out.set(b, o + 4);
    o += 4 + b.length;
  }
  return out;
}

export interface NativeBatchAddon {
  /**
   * Run the batch `src[0, state[S_LENGTH])` from the cursor in `state`: NDJSON into `out` at
   * state[S_POS], dead-letter envelopes into `dl` at state[S_DL_POS] when state[S_DEAD_LETTER]
   * is 1, counts added to the count slots. `plan` is {@link packPlan}'s, `source` the UTF-8 of
   * JSON.stringify(sourceId). Returns {@link ST_DONE} or {@link ST_GROW}.
   * @throws TypeError / RangeError on malformed arguments (a bug on the JS side, never input data).
   */
  processRecords(
    src: Uint8Array,
    out: Uint8Array,
    dl: Uint8Array,
    plan: Uint8Array,
    source: Uint8Array,
    state: Float64Array,
  ): number;
  /**
   * The same, gathering the index facts too (native/facts.h): `fields` is {@link packFields}'s,
   * `facts` holds per field {@link F_STRIDE} words (its distinct values as (offset, length) in
   * `out`), then (start, end) of each line sent back for JS to decide; `times` the time range.
   */
  processRecords(
    src: Uint8Array,
    out: Uint8Array,
    dl: Uint8Array,
    plan: Uint8Array,
    source: Uint8Array,
    state: Float64Array,
    fields: Uint8Array,
    facts: Uint32Array,
    times: Uint8Array,
  ): number;
}

/**
 * A TagPlan packed for the addon: u32 LE tagLen, tagHostLen, hasHostKey, nKeys, nInject; per
 * injected key its length and flags ({@link KEY_INHERITED}); then tagBytes, tagHostBytes and
 * every injectKeyBytes. Built once per plan.
 *
 * KEY_INHERITED carries a JavaScript fact into C++: process.ts's exact path asks
 * `obj[key] !== undefined` of the parsed record, which is true for a key that names an
 * Object.prototype member even when the record lacks it, so such a tag takes the collision path.
 */
export function packPlan(plan: {
  readonly keys: readonly string[];
  readonly tagBytes: Uint8Array;
  readonly hostKey: string | null;
  readonly tagHostBytes: Uint8Array;
  readonly injectKeyBytes: readonly Uint8Array[];
}): Uint8Array {
  const keys = plan.injectKeyBytes;
  const hasHost = plan.hostKey === null ? 0 : 1;
  if (plan.keys.length + hasHost !== keys.length)
    throw new RangeError('packPlan: injectKeyBytes must be the keys, then the host key');
  let total = 20 + 8 * keys.length + plan.tagBytes.length + plan.tagHostBytes.length;
  for (const k of keys) total += k.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, plan.tagBytes.length, true);
  view.setUint32(4, plan.tagHostBytes.length, true);
  view.setUint32(8, hasHost, true);
  view.setUint32(12, plan.keys.length, true);
  view.setUint32(16, keys.length, true);
  const empty: Record<string, unknown> = {};
  let o = 20;
  keys.forEach((k, i) => {
    const name = i < plan.keys.length ? plan.keys[i]! : plan.hostKey!;
    view.setUint32(o, k.length, true);
    view.setUint32(o + 4, empty[name] !== undefined ? KEY_INHERITED : 0, true);
    o += 8;
  });
  for (const part of [plan.tagBytes, plan.tagHostBytes, ...keys]) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}

export type NativeBatchLoad = AddonLoad<NativeBatchAddon>;

let loaded: NativeBatchLoad | undefined;

/** The addon, or why it cannot be used here. Loaded once per thread; never throws. */
export function loadNativeBatch(): NativeBatchLoad {
  loaded ??= loadAddon<NativeBatchAddon>(NATIVE_BATCH_ADDON, 'processRecords');
  return loaded;
}
