/**
 * Loading Sluice's native addons (built by scripts/build-native.ts): the UDP reader
 * (packages/sources), the worker's batch processor and zstd compressor, the HEC envelope
 * scanner. Each caller caches
 * the result once per thread; a load never throws, it says why the addon cannot be used.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export type AddonLoad<T> = { ok: true; addon: T } | { ok: false; reason: string };

/** The addon at `path` when it is built, loads, and exports the function `exportName`; else why not. */
export function loadAddon<T>(path: string, exportName: string): AddonLoad<T> {
  if (!existsSync(path)) {
    return {
      ok: false,
      reason: `${path} is not built (npm ci builds it; by hand: node_modules/.bin/node scripts/build-native.ts)`,
    };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as Record<string, unknown>;
    if (typeof addon[exportName] !== 'function') return { ok: false, reason: `${path} does not export ${exportName}` };
    return { ok: true, addon: addon as T };
  } catch (err) {
    return { ok: false, reason: `${path} does not load: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * Path of a worker addon: packages/worker/build-native/<name>.node (the same relative path from
 * src/ and from the stripped build/), or <name>.node in SLUICE_WORKER_ADDON_DIR, which only
 * scripts/sanitize-native.sh sets (sanitizer builds).
 */
export function workerAddonPath(name: 'batch' | 'zstd' | 'hec_scan'): string {
  const dir = process.env['SLUICE_WORKER_ADDON_DIR'];
  return dir
    ? `${dir.replace(/\/$/, '')}/${name}.node`
    : new URL(`../build-native/${name}.node`, import.meta.url).pathname;
}
