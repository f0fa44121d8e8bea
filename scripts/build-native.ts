/**
 * Builds Sluice's native addons with g++ against Node's headers. Run by the root `postinstall`
 * (so `npm ci` builds them) and by hand: `node_modules/.bin/node scripts/build-native.ts [--force]`.
 *
 *   packages/sources/native/udp_recv.cc → packages/sources/build/udp_recv.node
 *     the udp source's reader (recvmmsg straight into the ring); without it: node:dgram
 *   packages/worker/native/batch.cc     → packages/worker/build-native/batch.node
 *     the worker's validate + tag fast path, and the object index's facts (facts.h) as it
 *     goes; without it: the TypeScript path (process.ts, facts.ts)
 *                                       → packages/worker/build-native/batch-scalar.node
 *     the same with -DBATCH_SCALAR (the portable loop aarch64 runs), for the tests only: not
 *     built where dev dependencies are not installed (the image)
 *   packages/worker/native/zstd.cc      → packages/worker/build-native/zstd.node
 *     one zstd context per worker thread, reused for every frame, on the libzstd that Node
 *     itself exports; without it: node:zlib's zstdCompressSync (codecs.ts)
 *   packages/worker/native/hec_scan.cc  → packages/worker/build-native/hec_scan.node
 *     the splunk_hec source's envelope scanner (main thread); without it: the TypeScript
 *     scanner (hec-decode.ts)
 *
 * No node-gyp: it would download Node's headers, and these machines reach only the npm
 * registry and Debian mirrors. The headers come with the Node that runs the repo: the root
 * devDependency `node` (its platform package ships include/node), or, where dev dependencies
 * are not installed (the image's `npm ci --omit=dev`), the include/node next to the running
 * node binary (the official node images have it). An addon resolves napi_*, uv_* and ZSTD_*
 * against the node binary at load time, so there is nothing to link; `-z now` makes a
 * missing symbol fail the load (checked here) instead of the first call.
 *
 * The addons include C++ headers generated from TypeScript constants (generated-constants.h,
 * scripts/gen-native-constants.ts); they are checked in, so this script only reads them.
 *
 * Up to date (same source and local headers, compiler command and Node headers as the last build, and the output
 * exists): skipped. A failed build exits 1 under CI=true (CI must not pass without the native
 * code it tests) and otherwise warns, removes that addon's old build and goes on: each has a
 * fallback. Not Linux: skipped with a message.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';

const ROOT = join(dirname(new URL(import.meta.url).pathname), '..');
const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const FORCE = process.argv.includes('--force');

interface Addon {
  /** What it is, for messages. */
  what: string;
  source: string;
  /** Local headers the source includes: part of the up-to-date check. */
  headers?: string[];
  /** Preprocessor symbols (-D) of this build. */
  defines?: string[];
  /**
   * Built only for the tests: skipped where vitest is not installed (the image's
   * `npm ci --omit=dev`), and its failure fails the install only under CI=true.
   */
  testOnly?: boolean;
  outDir: string;
  name: string;
  /** An export the loaded addon must have. */
  exportName: string;
  /** What happens without it. */
  fallback: string;
}

const ADDONS: Addon[] = [
  {
    what: 'the native UDP reader',
    source: 'packages/sources/native/udp_recv.cc',
    headers: ['packages/sources/native/generated-constants.h'],
    outDir: 'packages/sources/build',
    name: 'udp_recv',
    exportName: 'UdpReceiver',
    fallback: 'the udp source will use node:dgram (reader: auto)',
  },
  {
    what: 'the native batch processor',
    source: 'packages/worker/native/batch.cc',
    headers: ['packages/worker/native/facts.h', 'packages/worker/native/generated-constants.h'],
    outDir: 'packages/worker/build-native',
    name: 'batch',
    exportName: 'processRecords',
    fallback: 'the worker threads will validate and tag in TypeScript',
  },
  {
    what: 'the native batch processor, portable build (what aarch64 runs)',
    source: 'packages/worker/native/batch.cc',
    headers: ['packages/worker/native/facts.h', 'packages/worker/native/generated-constants.h'],
    // The 8-byte SWAR string scan instead of SSE2: x86-64 machines test the loop that
    // aarch64 runs (batch-native.test.ts and facts.test.ts run their cases on both builds).
    defines: ['BATCH_SCALAR'],
    testOnly: true,
    outDir: 'packages/worker/build-native',
    name: 'batch-scalar',
    exportName: 'processRecords',
    fallback: 'the tests of the portable build fail under CI=true and are skipped otherwise',
  },
  {
    what: 'the native zstd compressor',
    source: 'packages/worker/native/zstd.cc',
    outDir: 'packages/worker/build-native',
    name: 'zstd',
    exportName: 'zstdCompress',
    fallback: "the worker threads will compress with node:zlib's zstdCompressSync",
  },
  {
    what: 'the native HEC envelope scanner',
    source: 'packages/worker/native/hec_scan.cc',
    headers: ['packages/worker/native/generated-constants.h'],
    outDir: 'packages/worker/build-native',
    name: 'hec_scan',
    exportName: 'scanEnvelopes',
    fallback: 'the splunk_hec source will validate envelopes in TypeScript',
  },
];

const say = (msg: string): void => void process.stderr.write(`build-native: ${msg}\n`);

let failed = false;
function fail(addon: Addon, msg: string): void {
  // An older build would no longer match the JS side: without it, the fallback is used.
  rmSync(join(ROOT, addon.outDir, `${addon.name}.node`), { force: true });
  rmSync(join(ROOT, addon.outDir, `${addon.name}.stamp`), { force: true });
  failed = true;
  if (CI) {
    say(`ERROR: ${msg}`);
    say(`CI=true: failing, because the tests of ${addon.what} would not run.`);
    return;
  }
  say(`WARNING: ${msg}`);
  say(`${addon.fallback}; fix the above and run \`node_modules/.bin/node scripts/build-native.ts\`.`);
}

/** include/node of the `node` npm package whose package.json is `pkgJson`: its platform package ships it. */
function npmNodeHeaders(pkgJson: string): string | null {
  try {
    const nodePkg = dirname(createRequire(pkgJson).resolve('node/package.json'));
    const platform = createRequire(join(nodePkg, 'package.json')).resolve(
      `node-${process.platform}-${process.arch}/package.json`,
    );
    return join(dirname(platform), 'include/node');
  } catch {
    return null;
  }
}

/** Directories that may hold node_api.h, best first. */
function headerCandidates(): string[] {
  const dirs = [
    // The root devDependency `node`.
    npmNodeHeaders(join(ROOT, 'package.json')),
    // An official Node build (the image's /usr/local/bin/node: /usr/local/include/node).
    join(dirname(process.execPath), '../include/node'),
    // The running node is another checkout's `node` package (node_modules/node/bin/node, a
    // hard link): its platform package, next to it.
    npmNodeHeaders(join(dirname(process.execPath), '../../package.json')),
  ];
  return dirs.filter((d): d is string => d !== null);
}

function build(addon: Addon, include: string): void {
  const source = join(ROOT, addon.source);
  const outDir = join(ROOT, addon.outDir);
  const out = join(outDir, `${addon.name}.node`);
  const stampFile = join(outDir, `${addon.name}.stamp`);
  if (!existsSync(source)) {
    fail(addon, `${addon.source} is missing`);
    return;
  }
  const cxx = process.env['CXX'] ?? 'g++';
  // -fvisibility=hidden: only napi_register_module_v1 is exported. No -Werror: a newer
  // compiler's new warning must not break an install. No -march: the image runs on other CPUs.
  const args = ['-O2', '-std=c++17', '-shared', '-fPIC', '-fvisibility=hidden', '-Wall', '-Wextra', '-Wl,-z,now'];
  args.push('-I', include);
  for (const d of addon.defines ?? []) args.push(`-D${d}`);
  args.push(source, '-o');
  const hash = createHash('sha256').update(readFileSync(source));
  for (const h of addon.headers ?? []) hash.update(readFileSync(join(ROOT, h)));
  const stamp = hash
    .update(readFileSync(new URL(import.meta.url)))
    .update(JSON.stringify([cxx, args]))
    .update(readFileSync(join(include, 'node_version.h')))
    .digest('hex');
  if (!FORCE && existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return;

  mkdirSync(outDir, { recursive: true });
  const tmp = join(outDir, `${addon.name}.${process.pid}.tmp.node`);
  const started = performance.now();
  const r = spawnSync(cxx, [...args, tmp], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    rmSync(tmp, { force: true });
    const why =
      r.error !== undefined
        ? `${cxx} did not run (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}: apt-get install g++)`
        : `${cxx} exited ${r.status}\n${r.stderr}`;
    fail(addon, `could not compile ${addon.what}: ${why}`);
    return;
  }
  if (r.stderr.trim() !== '') process.stderr.write(r.stderr);
  // An unresolved symbol shows only at load time: load it before it replaces a working build.
  try {
    const loaded = createRequire(import.meta.url)(tmp) as Record<string, unknown>;
    if (typeof loaded[addon.exportName] !== 'function') throw new Error(`it does not export ${addon.exportName}`);
  } catch (err) {
    rmSync(tmp, { force: true });
    fail(addon, `the compiled ${addon.what} does not load: ${(err as Error).message}`);
    return;
  }
  // rename: a running daemon keeps the file it mapped.
  renameSync(tmp, out);
  writeFileSync(stampFile, stamp);
  say(`built ${relative(ROOT, out)} in ${((performance.now() - started) / 1000).toFixed(1)} s (headers ${include})`);
}

if (process.platform !== 'linux') {
  say(
    `skipped: the native addons are built for Linux only; this is ${process.platform}. Sluice uses node:dgram, and TypeScript and node:zlib in the workers.`,
  );
  process.exit(0);
}
const include = headerCandidates().find((d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')));
if (include === undefined) {
  for (const addon of ADDONS) fail(addon, `no Node headers (node_api.h, uv.h) in ${headerCandidates().join(' or ')}`);
} else {
  // Test-only builds where the tests can run: not in the image (npm ci --omit=dev).
  const tests = existsSync(join(ROOT, 'node_modules/vitest/package.json'));
  for (const addon of ADDONS) if (tests || addon.testOnly !== true) build(addon, include);
}
process.exit(failed && CI ? 1 : 0);
