/**
 * The worker's zstd compressor (packages/worker/native/zstd.cc, built by scripts/build-native.ts
 * into packages/worker/build-native/zstd.node): one zstd context per thread, reused for every
 * frame, on the libzstd that Node itself bundles and exports. codecs.ts uses it when it loads
 * and falls back to node:zlib otherwise.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';

/**
 * Path of the built addon: packages/worker/build-native/zstd.node, or the same name in
 * SLUICE_WORKER_ADDON_DIR, which only scripts/sanitize-native.sh sets (sanitizer builds).
 */
export const NATIVE_ZSTD_ADDON = process.env['SLUICE_WORKER_ADDON_DIR']
  ? `${process.env['SLUICE_WORKER_ADDON_DIR'].replace(/\/$/, '')}/zstd.node`
  : new URL('../build-native/zstd.node', import.meta.url).pathname;

export interface NativeZstdAddon {
  /**
   * One whole zstd frame of `data` at `level`, with the content size in its header and, when
   * `checksum`, an XXH64 checksum. The ArrayBuffer is exactly the frame (transferable).
   * @throws Error naming zstd's error (a level libzstd refuses, out of memory).
   */
  zstdCompress(data: Uint8Array, level: number, checksum: boolean): ArrayBuffer;
  /** ZSTD_versionNumber() of the libzstd in use, e.g. 10507 for 1.5.7. */
  zstdVersion: number;
}

export type NativeZstdLoad = { ok: true; addon: NativeZstdAddon } | { ok: false; reason: string };

let loaded: NativeZstdLoad | undefined;

/** The addon, or why it cannot be used here. Loaded once per thread; never throws. */
export function loadNativeZstd(): NativeZstdLoad {
  if (loaded !== undefined) return loaded;
  if (!existsSync(NATIVE_ZSTD_ADDON)) {
    loaded = { ok: false, reason: `${NATIVE_ZSTD_ADDON} is not built (scripts/build-native.ts)` };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(NATIVE_ZSTD_ADDON) as NativeZstdAddon;
    if (typeof addon.zstdCompress !== 'function') throw new Error('it does not export zstdCompress');
    loaded = { ok: true, addon };
  } catch (err) {
    loaded = { ok: false, reason: `${NATIVE_ZSTD_ADDON} does not load: ${err instanceof Error ? err.message : String(err)}` };
  }
  return loaded;
}
