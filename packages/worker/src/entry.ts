/**
 * Which file a worker thread loads. Node runs TypeScript by type stripping, which loads its
 * stripper (amaro, a WebAssembly module) into every isolate that imports a `.ts` file: ~11 MiB
 * of RSS per worker thread (a daemon with two workers, idle: 170 vs 148 MiB). So the worker's
 * module graph is also stripped once, at install (`npm ci` runs scripts/build-worker.ts), into
 * `packages/worker/build/`, and threads load that when it is current: the build records a hash
 * of every source file it came from, and any difference (an edited source, a missing build)
 * falls back to the `.ts` entry. Same code either way; only the loader differs.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const SRC = new URL('./', import.meta.url);
const BUILD = new URL('../build/', import.meta.url);
const RING_SRC = new URL('../../ring/src/', import.meta.url);

/**
 * Sources of the worker threads' module graph: worker/src files and the ring they import
 * (`@sluice/ring` is its index.ts, built as ring-index.js).
 */
export const WORKER_SOURCES: readonly { from: URL; to: string }[] = [
  ...[
    'task',
    'hec-task',
    'codecs',
    'zstd-native',
    'process',
    'batch-native',
    'native-addon',
    'native-constants',
    'json-scan',
    'hec-decode',
    'types',
    'facts',
    'record-time',
    'zstd-frame',
  ].map((name) => ({ from: new URL(`${name}.ts`, SRC), to: `${name}.js` })),
  { from: new URL('index.ts', RING_SRC), to: 'ring-index.js' },
  { from: new URL('ring.ts', RING_SRC), to: 'ring.js' },
  { from: new URL('record-format.ts', RING_SRC), to: 'record-format.js' },
];

/** What the build writes next to the .js files. */
export interface BuildManifest {
  node: string;
  sources: Record<string, string>;
}

export const MANIFEST = 'manifest.json';

export function sourceHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** `build/<name>.js` when the build matches every source byte for byte, else `src/<name>.ts`. */
export function workerEntry(name: 'task' | 'hec-task', buildDir: URL = BUILD): { href: string; built: boolean } {
  const fallback = { href: new URL(`${name}.ts`, SRC).href, built: false };
  let manifest: BuildManifest;
  try {
    manifest = JSON.parse(readFileSync(new URL(MANIFEST, buildDir), 'utf8')) as BuildManifest;
  } catch {
    return fallback;
  }
  if (manifest.node !== process.version) return fallback;
  for (const { from, to } of WORKER_SOURCES) {
    let text: string;
    try {
      text = readFileSync(from, 'utf8');
    } catch {
      return fallback;
    }
    if (manifest.sources[to] !== sourceHash(text)) return fallback;
  }
  return { href: new URL(`${name}.js`, buildDir).href, built: true };
}
