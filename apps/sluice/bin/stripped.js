// The main thread's TypeScript, stripped once at install instead of at every start.
//
// Node runs .ts files by type stripping, which loads its stripper (amaro, a WebAssembly
// module) into the isolate on the first .ts import and keeps it: ~18 MiB of RSS for the
// daemon's main thread, a quarter of an idle daemon (docs/benchmarks.md, "Memory"). The worker
// threads already load a stripped build (packages/worker/src/entry.ts); this does the same for
// the main thread without moving a file: `npm ci` (scripts/build-worker.ts) writes the
// stripped text of every source file under apps/sluice/build/stripped/, and bin/sluice.js
// registers a load hook that hands Node that text for a .ts URL whose source still hashes as
// it did at build time. Same code, same URLs (import.meta.url and every relative path stay the
// .ts file's), same line and column numbers (stripping replaces types with whitespace); only
// the loader differs. A file edited since, or without a build, loads as before.
//
// Plain JavaScript: it runs before anything can load TypeScript.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const STRIPPED_DIR = fileURLToPath(new URL('../build/stripped/', import.meta.url));
const MANIFEST = 'manifest.json';
/** Source trees the main thread loads from (relative to the repository root). */
const SOURCE_DIRS = ['apps/sluice/src', 'packages'];

const hashOf = (text) => createHash('sha256').update(text).digest('hex');

/** Every non-test .ts file under SOURCE_DIRS' src folders, relative to the root. */
function sources() {
  const out = [];
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(join(ROOT, dir), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'build' && !e.name.startsWith('build-')) walk(rel);
      } else if (
        e.name.endsWith('.ts') &&
        !e.name.endsWith('.test.ts') &&
        !e.name.endsWith('.d.ts') &&
        (rel.startsWith('apps/') || rel.includes('/src/'))
      ) {
        out.push(rel);
      }
    }
  };
  for (const d of SOURCE_DIRS) walk(d);
  return out.sort();
}

/**
 * Strip every source into `outDir` (default apps/sluice/build/stripped/). Resolves the number
 * of files. The manifest is written last: until it exists, nothing is served from the build.
 */
export async function buildStripped(outDir = STRIPPED_DIR) {
  const { stripTypeScriptTypes } = await import('node:module');
  rmSync(join(outDir, MANIFEST), { force: true });
  const manifest = { node: process.version, sources: {} };
  for (const rel of sources()) {
    const text = readFileSync(join(ROOT, rel), 'utf8');
    const js = stripTypeScriptTypes(text, { mode: 'strip' });
    const dest = join(outDir, `${rel}.js`);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(`${dest}.tmp`, js);
    renameSync(`${dest}.tmp`, dest);
    manifest.sources[rel] = hashOf(text);
  }
  writeFileSync(join(outDir, `${MANIFEST}.tmp`), `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(join(outDir, `${MANIFEST}.tmp`), join(outDir, MANIFEST));
  return Object.keys(manifest.sources).length;
}

/**
 * Serve stripped sources to this thread's module loader. Returns whether a build for this Node
 * was found (without one, nothing is registered and .ts files load as usual).
 */
export async function useStripped(dir = STRIPPED_DIR) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8'));
  } catch {
    return false;
  }
  if (manifest.node !== process.version) return false;
  const { registerHooks } = await import('node:module');
  registerHooks({
    load(url, context, nextLoad) {
      if (url.startsWith('file:') && url.endsWith('.ts')) {
        const path = fileURLToPath(url);
        const rel = relative(ROOT, path);
        const hash = manifest.sources[rel];
        if (hash !== undefined) {
          try {
            if (hashOf(readFileSync(path, 'utf8')) === hash) {
              return { format: 'module', source: readFileSync(join(dir, `${rel}.js`), 'utf8'), shortCircuit: true };
            }
          } catch {
            // fall through: the .ts file loads as usual
          }
        }
      }
      return nextLoad(url, context);
    },
  });
  return true;
}
