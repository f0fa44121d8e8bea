#!/usr/bin/env node
// sluice-loadgen runs on Node.js 24 (TypeScript by type stripping). When this
// launcher is started by an older Node (say the machine's /usr/bin/node), it re-executes
// itself with the Node 24 that `npm ci` installed from the registry into node_modules,
// forwarding signals (Ctrl-C stops a run).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const require = createRequire(import.meta.url);
  let nodeBin;
  try {
    nodeBin = require.resolve('node/bin/node');
  } catch {
    console.error(
      `sluice-loadgen needs Node.js 24; this is ${process.version} and no node@24 was found in node_modules (run npm ci)`,
    );
    process.exit(1);
  }
  const child = spawn(nodeBin, [process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await import('../src/cli.ts');
}
