/**
 * Every micro-benchmark, one after the other, each in its own process (so one's JIT state and
 * heap never colour the next). Each checks its output before it times and exits non-zero on a
 * mismatch; this exits non-zero if any did.
 *
 *   node bench/run-all.ts                    # framing, ring, parse-tag, compress, object-writer
 *   node bench/run-all.ts ring compress      # just these
 *   node bench/run-all.ts --e2e              # then the end-to-end benchmark (several minutes)
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MICRO = ['framing', 'ring', 'parse-tag', 'compress', 'object-writer', 'spool', 'msgpackr'] as const;
const args = process.argv.slice(2);
const withE2e = args.includes('--e2e');
const picked = args.filter((a) => !a.startsWith('--'));
for (const p of picked)
  if (!(MICRO as readonly string[]).includes(p)) throw new Error(`unknown benchmark ${p}: ${MICRO.join(', ')}`);
const names = [...(picked.length > 0 ? picked : MICRO), ...(withE2e ? ['e2e'] : [])];

const failed: string[] = [];
for (const name of names) {
  const file = fileURLToPath(new URL(`./${name}.bench.ts`, import.meta.url));
  console.log(`\n=== bench/${name}.bench.ts`);
  const started = performance.now();
  const r = spawnSync(process.execPath, [file], { stdio: 'inherit' });
  console.log(
    `=== ${name}: ${r.status === 0 ? 'ok' : `FAILED (${r.status ?? r.signal})`} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  if (r.status !== 0) failed.push(name);
}
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(', ')}`);
  process.exit(1);
}
