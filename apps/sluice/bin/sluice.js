#!/usr/bin/env node
// Sluice runs on Node.js 24 (TypeScript by type stripping, zstd in node:zlib). When this
// launcher is started by an older Node (say the machine's /usr/bin/node), it re-executes
// itself with the Node 24 that `npm ci` installed from the registry into node_modules,
// forwarding signals so SIGTERM still drains.
//
// `sluice run` also gets the runtime settings the daemon is measured with (docs/benchmarks.md),
// which V8 and glibc only read at process start:
// - --max-semi-space-size=4: the main thread's young generation stops growing at 3 x 4 MiB.
//   Under load V8 grows it to its default cap (16 MiB semi-spaces) and keeps it: peak RSS of
//   1,000,000 TCP lines 258 -> 207 MiB for ~7% more main-thread GC work.
// - MALLOC_ARENA_MAX=2: the worker threads' malloc arenas (zstd contexts, frames) were ~48 MiB at
//   peak RSS; fewer arenas reuse freed memory instead of spreading it.
// Either one already set (NODE_OPTIONS, the command line, the environment) is left alone.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const SEMI_SPACE_FLAG = '--max-semi-space-size=4';
const args = process.argv.slice(2);
const isRun = args[0] === 'run';
const nodeOptions = process.env.NODE_OPTIONS ?? '';
const hasSemiSpace = (list) => list.some((a) => a.startsWith('--max-semi-space-size'));
const needsFlag = isRun && !hasSemiSpace(process.execArgv) && !nodeOptions.includes('--max-semi-space-size');
const env = isRun && process.env.MALLOC_ARENA_MAX === undefined ? { ...process.env, MALLOC_ARENA_MAX: '2' } : process.env;
const tuned = !needsFlag && env === process.env;

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const require = createRequire(import.meta.url);
  let nodeBin;
  try {
    nodeBin = require.resolve('node/bin/node');
  } catch {
    console.error(`sluice needs Node.js 24; this is ${process.version} and no node@24 was found in node_modules (run npm ci)`);
    process.exit(1);
  }
  const flags = needsFlag ? [...process.execArgv, SEMI_SPACE_FLAG] : process.execArgv;
  const child = spawn(nodeBin, [...flags, process.argv[1], ...args], { stdio: 'inherit', env });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else if (!tuned && typeof process.execve === 'function') {
  // The same process (same pid, for signals and supervisors) restarted with the settings.
  const flags = needsFlag ? [...process.execArgv, SEMI_SPACE_FLAG] : process.execArgv;
  process.execve(process.execPath, [process.execPath, ...flags, process.argv[1], ...args], env);
} else {
  await import('../src/cli.ts');
}
