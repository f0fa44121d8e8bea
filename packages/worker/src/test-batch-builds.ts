/**
 * Test support: the builds of the native batch addon the native tests run their cases on.
 * scripts/build-native.ts makes two from batch.cc: batch.node (SSE2 on x86-64) and
 * batch-scalar.node (-DBATCH_SCALAR: the portable 8-byte loop that aarch64 runs, which x86-64
 * would otherwise never execute). Both sit in build-native/, or in SLUICE_WORKER_ADDON_DIR
 * (scripts/sanitize-native.sh's sanitizer builds). Not a worker module.
 *
 * BatchProcessor loads the addon once per thread and calls `addon.processRecords` on each batch,
 * so {@link useBatchBuild} points that one property at another build's function: every other
 * line of the JS side stays what production runs.
 */
import { dirname, join } from 'node:path';
import { NATIVE_BATCH_ADDON, loadNativeBatch, type NativeBatchAddon } from './batch-native.ts';
import { loadAddon, type AddonLoad } from './native-addon.ts';

export interface BatchBuild {
  /** For test titles. */
  name: string;
  path: string;
  load: AddonLoad<NativeBatchAddon>;
}

const SCALAR_PATH = join(dirname(NATIVE_BATCH_ADDON), 'batch-scalar.node');

/** The default build, then the portable one. Under CI=true both must load (the tests fail otherwise). */
export const BATCH_BUILDS: readonly BatchBuild[] = [
  { name: 'default build', path: NATIVE_BATCH_ADDON, load: loadNativeBatch() },
  {
    name: 'portable build (BATCH_SCALAR)',
    path: SCALAR_PATH,
    load: loadAddon<NativeBatchAddon>(SCALAR_PATH, 'processRecords'),
  },
];

/**
 * Make every BatchProcessor of this thread run `build`'s processRecords; returns the undo.
 * @throws Error when the default build or `build` does not load (nothing to point, or at).
 */
export function useBatchBuild(build: BatchBuild): () => void {
  const base = loadNativeBatch();
  if (!base.ok) throw new Error(`the native batch addon does not load: ${base.reason}`);
  if (!build.load.ok) throw new Error(`${build.name} does not load: ${build.load.reason}`);
  const real = base.addon.processRecords;
  base.addon.processRecords = build.load.addon.processRecords;
  return () => {
    base.addon.processRecords = real;
  };
}
