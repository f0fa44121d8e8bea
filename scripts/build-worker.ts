/**
 * Strip the types of the worker threads' module graph into packages/worker/build/ (see
 * packages/worker/src/entry.ts for why). Run by `npm ci` (postinstall); safe to run again.
 *
 *   node scripts/build-worker.ts [outDir]
 *
 * Relative `.ts` imports become `.js`, `@sluice/ring` becomes `./ring-index.js`; everything else
 * (node: modules, piscina) resolves as before from inside the repository.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MANIFEST, WORKER_SOURCES, sourceHash, type BuildManifest } from '@sluice/worker/entry';

export function buildWorker(outDir: URL): BuildManifest {
  mkdirSync(outDir, { recursive: true });
  const built = new Set(WORKER_SOURCES.map((s) => s.to));
  const manifest: BuildManifest = { node: process.version, sources: {} };
  for (const { from, to } of WORKER_SOURCES) {
    const text = readFileSync(from, 'utf8');
    const js = stripTypeScriptTypes(text, { mode: 'strip' })
      .replace(/(from\s+['"])\.\/([\w.-]+)\.ts(['"])/g, '$1./$2.js$3')
      .replace(/(from\s+['"])@sluice\/ring(['"])/g, '$1./ring-index.js$2');
    if (/from\s+['"][^'"]+\.ts['"]/.test(js)) throw new Error(`${to}: a .ts import is left after rewriting`);
    // A relative import of a file outside the build would fail only when a thread loads it.
    for (const m of js.matchAll(/from\s+['"]\.\/([\w.-]+)['"]/g)) {
      if (!built.has(m[1]!))
        throw new Error(`${to} imports ./${m[1]}, which is not in WORKER_SOURCES (packages/worker/src/entry.ts)`);
    }
    // Write then rename: a thread never loads a half-written file.
    const dest = new URL(to, outDir);
    writeFileSync(new URL(`${to}.tmp`, outDir), js);
    renameSync(new URL(`${to}.tmp`, outDir), dest);
    manifest.sources[to] = sourceHash(text);
  }
  // The manifest last: until it is written, workerEntry() uses the .ts sources.
  writeFileSync(new URL(`${MANIFEST}.tmp`, outDir), `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(new URL(`${MANIFEST}.tmp`, outDir), new URL(MANIFEST, outDir));
  return manifest;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (!existsSync(WORKER_SOURCES[0]!.from)) {
    // The image's deps stage installs from manifests alone; its runtime stage runs this again.
    console.log('sluice: no worker sources here; worker threads will load them from wherever they are installed');
    process.exit(0);
  }
  const out =
    process.argv[2] === undefined
      ? new URL('../packages/worker/build/', import.meta.url)
      : pathToFileURL(process.argv[2].replace(/\/?$/, '/'));
  // stripTypeScriptTypes is marked experimental in Node 24: its one-line warning is noise here.
  process.removeAllListeners('warning');
  const m = buildWorker(out);
  console.log(`sluice: worker threads' modules stripped into ${out.pathname} (${Object.keys(m.sources).length} files)`);
  // The main thread's sources as well (apps/sluice/bin/stripped.js), unless only a worker build
  // was asked for (an outDir given).
  if (process.argv[2] === undefined) {
    const { buildStripped, STRIPPED_DIR } = await import('sluice/stripped');
    const n = await buildStripped();
    console.log(`sluice: the main thread's modules stripped into ${STRIPPED_DIR} (${n} files)`);
  }
}
