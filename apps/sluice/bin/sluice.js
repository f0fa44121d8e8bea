#!/usr/bin/env node
// Sluice on Node.js 24 (TypeScript by type stripping, zstd in node:zlib). The supported entry
// is the sh launcher beside this file, bin/sluice (package.json "bin", node_modules/.bin/sluice):
// it finds a Node 24 and execs it on this file with the runtime settings below, so the pid
// that was started is the daemon. `node bin/sluice.js …` under Node 24 works as well (tests,
// benchmarks and the container image run it that way).
//
// `sluice run` gets the runtime settings the daemon is measured with (docs/benchmarks.md),
// which V8 and glibc only read at process start:
// - --max-semi-space-size=4: the main thread's young generation stops growing at 3 x 4 MiB.
//   Under load V8 grows it to its default cap (16 MiB semi-spaces) and keeps it: peak RSS of
//   1,000,000 TCP lines 258 -> 207 MiB for ~7% more main-thread GC work.
// - MALLOC_ARENA_MAX=2: the worker threads' malloc arenas (zstd contexts, frames) were ~48 MiB at
//   peak RSS; fewer arenas reuse freed memory instead of spreading it.
// - MALLOC_MMAP_THRESHOLD_=262144: blocks of 256 KiB and more (the aws_s3 sink's 5 MiB part
//   buffers) always get a mapping of their own, returned to the OS when freed. Left dynamic,
//   glibc raises the threshold to the first such block freed (and keeps twice that free at an
//   arena's top), so later parts came from the arenas and stayed resident: peak RSS of a
//   1,000,000-line burst into S3 131 -> 122 MiB.
// Any one already set (NODE_OPTIONS, the command line, the environment) is left alone. When
// they are missing (started here rather than through bin/sluice), this process restarts itself
// in place with them: process.execve, same pid.
//
// Started by an older Node (`/usr/bin/node bin/sluice.js`), it cannot become Node 24 in place
// (execve appeared in Node 23.11), so it runs the registry's Node 24 from node_modules as a
// child tethered by an IPC channel: signals are forwarded, and when this parent disappears
// (even by SIGKILL, which it cannot forward) the channel closes and the child drains and exits
// as on SIGTERM, so no daemon is left holding the ports and the spool. The pid is still not
// the daemon's: supervisors should start bin/sluice.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const SEMI_SPACE_FLAG = '--max-semi-space-size=4';
/** Set by an older-Node parent for its Node 24 child: drain when the parent's channel closes. */
const TETHER_ENV = 'SLUICE_LAUNCHER_TETHER';
const args = process.argv.slice(2);
const isRun = args[0] === 'run';
const nodeOptions = process.env.NODE_OPTIONS ?? '';
const hasSemiSpace = (list) => list.some((a) => a.startsWith('--max-semi-space-size'));
const needsFlag = isRun && !hasSemiSpace(process.execArgv) && !nodeOptions.includes('--max-semi-space-size');
/** glibc settings `run` gets unless the environment has them (even empty). */
const MALLOC_DEFAULTS = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '262144' };
const missing = isRun ? Object.entries(MALLOC_DEFAULTS).filter(([k]) => process.env[k] === undefined) : [];
const env = missing.length > 0 ? { ...process.env, ...Object.fromEntries(missing) } : process.env;
const tuned = !needsFlag && env === process.env;

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const require = createRequire(import.meta.url);
  let nodeBin;
  try {
    nodeBin = require.resolve('node/bin/node');
  } catch {
    console.error(
      `sluice needs Node.js 24; this is ${process.version} and no node@24 was found in node_modules (run npm ci, or start bin/sluice with SLUICE_NODE set to a Node 24)`,
    );
    process.exit(1);
  }
  const flags = needsFlag ? [...process.execArgv, SEMI_SPACE_FLAG] : process.execArgv;
  const child = spawn(nodeBin, [...flags, process.argv[1], ...args], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...env, [TETHER_ENV]: String(process.pid) },
  });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else if (!tuned && typeof process.execve === 'function') {
  // The same process (same pid, for signals and supervisors) restarted with the settings.
  const flags = needsFlag ? [...process.execArgv, SEMI_SPACE_FLAG] : process.execArgv;
  process.execve(process.execPath, [process.execPath, ...flags, process.argv[1], ...args], env);
} else {
  const tether = process.env[TETHER_ENV];
  if (tether !== undefined && process.channel !== undefined) {
    delete process.env[TETHER_ENV]; // not inherited by anything this process starts
    // The channel must not keep `--version` and friends alive; 'disconnect' still arrives.
    process.channel.unref();
    process.once('disconnect', () => {
      process.stderr.write(`sluice: the launching process (pid ${tether}) is gone; draining\n`);
      process.kill(process.pid, 'SIGTERM');
    });
  }
  // The install's stripped build of the TypeScript sources, when current (stripped.js says why).
  const { useStripped } = await import('./stripped.js');
  await useStripped();
  await import('../src/cli.ts');
}
