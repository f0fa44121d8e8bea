/**
 * The worker's native validate + tag fast path (packages/worker/native/batch.cc, built by
 * scripts/build-native.ts into packages/worker/build-native/batch.node). BatchProcessor
 * (process.ts) drives it: one call per batch in the common case, and the TypeScript code for
 * every line or frame the addon leaves to it. Without the addon, process.ts's TypeScript path
 * does everything, with the same output byte for byte.
 */
import { loadAddon, workerAddonPath, type AddonLoad } from './native-addon.ts';

/** Path of the built addon (native-addon.ts: build-native/, or SLUICE_WORKER_ADDON_DIR for sanitizer builds). */
export const NATIVE_BATCH_ADDON = workerAddonPath('batch');

/** Slots of the state Float64Array (batch.cc `enum Slot`): cursor in and out, counts added to. */
export const S_LENGTH = 0;
export const S_DEPTH = 1;
export const S_OFF = 2;
export const S_BLK_NEXT = 3;
export const S_BLK_END = 4;
export const S_BLK_PS = 5;
export const S_POS = 6;
export const S_RECORDS = 7;
export const S_ACCEPTED = 8;
export const S_INPUT_BYTES = 9;
export const S_SERVICE = 10;
export const S_KERNEL = 11;
export const S_OTHER = 12;
export const S_PEER_S = 13;
export const S_PEER_E = 14;
export const S_LS = 15;
export const S_LE = 16;
export const S_NL = 17;
export const S_NEED = 18;
export const S_S = 19;
export const S_E = 20;
export const S_FLAGS = 21;
export const S_HAS_NL = 22;
/** Length of the state array. */
export const STATE_SLOTS = 23;

// processRecords' statuses (batch.cc `enum Status`).
/** The batch is done. */
export const ST_DONE = 0;
/** The output buffer is too small for the next line: grow it to state[S_POS] + state[S_NEED] and call again. */
export const ST_GROW = 1;
/** JS handles the line state[S_LS, S_LE) (peer state[S_PEER_S, S_PEER_E), block '\n' at state[S_NL] or -1), then calls again. */
export const ST_LINE = 2;
/** An invalid frame, raw bytes state[S_LS, S_LE): JS counts and dead-letters it, then calls again. */
export const ST_FRAME = 3;
/** An invalid frame that ends the batch (partial length header, or a length beyond the span). */
export const ST_FRAME_END = 4;
/**
 * A line the scan accepted that JS emits itself, given the scan: a top-level key collides with
 * an injected key (the collision path), or the peer is not JSON-safe (escaped). The line as for
 * ST_LINE, trimmed to state[S_S, S_E), scan result state[S_FLAGS], raw CR/LF state[S_HAS_NL].
 */
export const ST_EMIT = 5;

export interface NativeBatchAddon {
  /**
   * Run the fast path over the batch `src[0, state[S_LENGTH])` from the cursor in `state`,
   * appending NDJSON to `out` at state[S_POS], until a status says why it stopped. `plan` is
   * {@link packPlan}'s. Counts are added to the state's count slots.
   * @throws TypeError / RangeError on malformed arguments (a bug on the JS side, never input data).
   */
  processRecords(src: Uint8Array, out: Uint8Array, plan: Uint8Array, state: Float64Array): number;
}

/**
 * A TagPlan packed for the addon: u32 LE tagLen, tagHostLen, hasHostKey, nKeys, nInject, the
 * nInject key lengths, then tagBytes, tagHostBytes and every injectKeyBytes. Built once per plan.
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
  if (plan.keys.length > keys.length) throw new RangeError('packPlan: fewer injectKeyBytes than keys');
  let total = 20 + 4 * keys.length + plan.tagBytes.length + plan.tagHostBytes.length;
  for (const k of keys) total += k.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, plan.tagBytes.length, true);
  view.setUint32(4, plan.tagHostBytes.length, true);
  view.setUint32(8, hasHost, true);
  view.setUint32(12, plan.keys.length, true);
  view.setUint32(16, keys.length, true);
  let o = 20;
  for (const k of keys) {
    view.setUint32(o, k.length, true);
    o += 4;
  }
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
