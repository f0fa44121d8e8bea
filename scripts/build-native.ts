/**
 * Builds the udp source's native receiver, packages/sources/native/udp_recv.cc, into
 * packages/sources/build/udp_recv.node. Run by the root `postinstall` (so `npm ci` builds it)
 * and by hand: `node_modules/.bin/node scripts/build-native.ts [--force]`.
 *
 * No node-gyp: it would download Node's headers, and these machines reach only the npm
 * registry and Debian mirrors. The headers come with the Node that runs the repo: the root
 * devDependency `node` (its platform package ships include/node), or, where dev dependencies
 * are not installed (the image's `npm ci --omit=dev`), the include/node next to the running
 * node binary (the official node images have it). An N-API addon resolves napi_* and uv_*
 * against the node binary at load time, so there is nothing to link.
 *
 * Up to date (same source, compiler command and headers as the last build, and the output
 * exists): exits at once. A failed build exits 1 under CI=true (CI must not pass without the
 * native reader it tests) and otherwise warns and exits 0: the udp source then falls back to
 * node:dgram (`reader: auto`). Not Linux: skipped with a message.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';

const ROOT = join(dirname(new URL(import.meta.url).pathname), '..');
const SOURCE = join(ROOT, 'packages/sources/native/udp_recv.cc');
const OUT_DIR = join(ROOT, 'packages/sources/build');
const OUT = join(OUT_DIR, 'udp_recv.node');
const STAMP = join(OUT_DIR, 'udp_recv.stamp');
const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const FORCE = process.argv.includes('--force');

const say = (msg: string): void => void process.stderr.write(`build-native: ${msg}\n`);

function fail(msg: string): never {
  // An older build would no longer match the JS side: without it, reader auto uses dgram.
  rmSync(OUT, { force: true });
  rmSync(STAMP, { force: true });
  if (CI) {
    say(`ERROR: ${msg}`);
    say('CI=true: failing, because the tests of the native UDP reader would not run.');
    process.exit(1);
  }
  say(`WARNING: ${msg}`);
  say('the udp source will use node:dgram (reader: auto); fix the above and run `node_modules/.bin/node scripts/build-native.ts`.');
  process.exit(0);
}

/** include/node of the `node` npm package whose package.json is `pkgJson`: its platform package ships it. */
function npmNodeHeaders(pkgJson: string): string | null {
  try {
    const nodePkg = dirname(createRequire(pkgJson).resolve('node/package.json'));
    const platform = createRequire(join(nodePkg, 'package.json')).resolve(`node-${process.platform}-${process.arch}/package.json`);
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

if (process.platform !== 'linux') {
  say(`skipped: the native UDP reader is Linux only (recvmmsg); this is ${process.platform}. The udp source uses node:dgram.`);
  process.exit(0);
}
if (!existsSync(SOURCE)) fail(`${relative(ROOT, SOURCE)} is missing`);

const include = headerCandidates().find((d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')));
if (include === undefined) fail(`no Node headers (node_api.h, uv.h) in ${headerCandidates().join(' or ')}`);

const cxx = process.env['CXX'] ?? 'g++';
// -fvisibility=hidden: only napi_register_module_v1 is exported. No -Werror: a newer
// compiler's new warning must not break an install.
const args = ['-O2', '-std=c++17', '-shared', '-fPIC', '-fvisibility=hidden', '-Wall', '-Wextra', '-I', include, SOURCE, '-o'];
const stamp = createHash('sha256')
  .update(readFileSync(SOURCE))
  .update(readFileSync(new URL(import.meta.url)))
  .update(JSON.stringify([cxx, args]))
  .update(readFileSync(join(include, 'node_version.h')))
  .digest('hex');
if (!FORCE && existsSync(OUT) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === stamp) process.exit(0);

mkdirSync(OUT_DIR, { recursive: true });
const tmp = join(OUT_DIR, `udp_recv.${process.pid}.tmp.node`);
const started = performance.now();
const r = spawnSync(cxx, [...args, tmp], { encoding: 'utf8' });
if (r.error !== undefined || r.status !== 0) {
  rmSync(tmp, { force: true });
  const why = r.error !== undefined ? `${cxx} did not run (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}: apt-get install g++)` : `${cxx} exited ${r.status}\n${r.stderr}`;
  fail(`could not compile the native UDP reader: ${why}`);
}
if (r.stderr.trim() !== '') process.stderr.write(r.stderr);
// An unresolved symbol shows only at load time: load it before it replaces a working build.
try {
  const addon = createRequire(import.meta.url)(tmp) as { UdpReceiver?: unknown };
  if (typeof addon.UdpReceiver !== 'function') throw new Error('it does not export UdpReceiver');
} catch (err) {
  rmSync(tmp, { force: true });
  fail(`the compiled native UDP reader does not load: ${(err as Error).message}`);
}
// rename: a running daemon keeps the file it mapped.
renameSync(tmp, OUT);
writeFileSync(STAMP, stamp);
say(`built ${relative(ROOT, OUT)} in ${((performance.now() - started) / 1000).toFixed(1)} s (headers ${include})`);
