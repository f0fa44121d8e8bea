/**
 * The worker's zstd compressor (packages/worker/native/zstd.cc, built by scripts/build-native.ts
 * into packages/worker/build-native/zstd.node): one zstd context per thread, reused for every
 * frame, on the libzstd that Node itself bundles and exports. codecs.ts uses it when it loads
 * and falls back to node:zlib otherwise.
 */
import { loadAddon, workerAddonPath, type AddonLoad } from './native-addon.ts';

/** Path of the built addon (native-addon.ts: build-native/, or SLUICE_WORKER_ADDON_DIR for sanitizer builds). */
export const NATIVE_ZSTD_ADDON = workerAddonPath('zstd');

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

export type NativeZstdLoad = AddonLoad<NativeZstdAddon>;

let loaded: NativeZstdLoad | undefined;

/** The addon, or why it cannot be used here. Loaded once per thread; never throws. */
export function loadNativeZstd(): NativeZstdLoad {
  loaded ??= loadAddon<NativeZstdAddon>(NATIVE_ZSTD_ADDON, 'zstdCompress');
  return loaded;
}
