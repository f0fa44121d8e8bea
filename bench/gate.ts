/**
 * The benchmark gate (`npm run bench:gate`, run by .ci/run after the tests): the tree under
 * test against the reference commit named in bench/reference, both measured in this run, on
 * this machine, interleaved. A stage fails only when the head is slower than the reference by
 * more than the stage's tolerance with 95 % confidence.
 *
 *   node bench/gate.ts                       # every stage; exit 1 on a regression or a failed exact check
 *   node bench/gate.ts --only micro          # or e2e, or stage names (comma-separated), see --list
 *   node bench/gate.ts --rounds 9            # paired rounds per e2e stage (default 7, into S3 9; at least 7)
 *   node bench/gate.ts --out FILE            # also write every sample as JSON
 *
 * How (docs/benchmarks.md, "The gate"):
 * - the reference commit is checked out into a git worktree and installed (`npm ci`, native
 *   addons built) by bench/lib/reference-tree.ts; a reference that is missing or does not build
 *   is one line and a failure, never a pass;
 * - micro stages (bench/lib/gate-tasks.ts): replicates, each a fresh process with both trees'
 *   modules (bench/lib/gate-micro-run.ts), the same work on the same input, alternating rounds
 *   of thread CPU time (bench/lib/pair.ts);
 * - e2e stages (bench/lib/gate-e2e.ts): per round a fresh daemon of each tree, the same sample
 *   to both in alternating order, CPU of every daemon thread per record; then the exact checks
 *   (every record the head was sent stored exactly once, tagged);
 * - per stage, the paired ratios head / reference: median and a bootstrap 95 % interval of the
 *   median (bench/lib/stats.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { E2E_STAGES, measureDaemons, type E2eResult } from './lib/gate-e2e.ts';
import type { MicroRunArgs, MicroRunResult } from './lib/gate-micro-run.ts';
import { MICRO_STAGES } from './lib/gate-tasks.ts';
import { GateSetupError, headTree, referenceTree, type Tree } from './lib/reference-tree.ts';
import { startBenchRgw, type RgwHandle } from './lib/scenario.ts';
import { bootstrapMedian, median, verdict, type Interval, type Verdict } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    rounds: { type: 'string' },
    out: { type: 'string' },
    list: { type: 'boolean', default: false },
  },
});

/**
 * Tolerances: how much slower than the reference a stage may be before it fails, once the
 * whole 95 % interval is above 1 + tolerance. Micro stages measure thread CPU time of the same
 * work in one process (intervals of a few %); the daemons share two cores with the load
 * generator (and Ceph), so their intervals are wider.
 */
const MICRO_TOLERANCE = 0.05;
const E2E_TOLERANCE = 0.1;
/**
 * Micro stages: replicates, each a fresh process (bench/lib/gate-micro-run.ts) running
 * MICRO_ROUNDS alternating rounds of MICRO_ROUND_MS per tree; a replicate's ratio is the head's
 * fastest round over the reference's. The replicates are the samples the interval is taken over.
 */
const MICRO_REPLICATES = 10;
const MICRO_ROUNDS = 5;
const MICRO_ROUND_MS = 50;
/** --rounds: every e2e stage's rounds; by default each stage's own (7, or 9 into S3). */
const E2E_ROUNDS = values.rounds === undefined ? undefined : Number(values.rounds);
if (E2E_ROUNDS !== undefined && (!Number.isInteger(E2E_ROUNDS) || E2E_ROUNDS < 7)) {
  console.error('gate: --rounds must be an integer of at least 7');
  process.exit(1);
}

const ALL = [...MICRO_STAGES.map((s) => s.name), ...E2E_STAGES.map((s) => s.name)];
if (values.list) {
  console.log(
    ['micro', ...MICRO_STAGES.map((s) => `  ${s.name}`), 'e2e', ...E2E_STAGES.map((s) => `  ${s.name}`)].join('\n'),
  );
  process.exit(0);
}
const wanted = new Set<string>();
for (const part of (values.only ?? 'micro,e2e').split(',').map((s) => s.trim())) {
  if (part === 'micro') for (const s of MICRO_STAGES) wanted.add(s.name);
  else if (part === 'e2e') for (const s of E2E_STAGES) wanted.add(s.name);
  else if (ALL.includes(part)) wanted.add(part);
  else {
    console.error(`gate: --only: unknown stage ${JSON.stringify(part)}; stages: micro, e2e, ${ALL.join(', ')}`);
    process.exit(1);
  }
}

const started = performance.now();
const log = (msg: string): void =>
  void process.stderr.write(`[gate ${((performance.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);

let trees: [Tree, Tree];
try {
  trees = [headTree(), referenceTree(log)];
} catch (err) {
  if (!(err instanceof GateSetupError)) throw err;
  console.log(`gate FAILED: ${err.message}`);
  process.exit(1);
}
const [head, reference] = trees;
log(`head ${head.label} (${head.root}) against reference ${reference.label} (${reference.root})`);

interface StageResult {
  name: string;
  about: string;
  kind: 'micro' | 'e2e';
  tolerance: number;
  unit: string;
  ratios: number[];
  headUs: number[];
  referenceUs: number[];
  interval: Interval;
  verdict: Verdict;
  /** An exact check that failed (e2e), or null. */
  problem: string | null;
  output?: string;
}
const results: StageResult[] = [];

const summarise = (r: Omit<StageResult, 'interval' | 'verdict'>): StageResult => {
  const interval = bootstrapMedian(r.ratios);
  return { ...r, interval, verdict: verdict(interval, r.tolerance) };
};

// ---------------------------------------------------------------- micro stages
const microWanted = MICRO_STAGES.filter((st) => wanted.has(st.name));
if (microWanted.length > 0) {
  const tmp = mkdtempSync(join(tmpdir(), 'sluice-gate-micro-'));
  const per = new Map<string, { ratios: number[]; headUs: number[]; referenceUs: number[] }>(
    microWanted.map((st) => [st.name, { ratios: [], headUs: [], referenceUs: [] }]),
  );
  try {
    for (let k = 0; k < MICRO_REPLICATES; k++) {
      const args: MicroRunArgs = {
        head: head.root,
        reference: reference.root,
        first: k % 2 === 0 ? 'head' : 'reference',
        stages: microWanted.map((st) => st.name),
        rounds: MICRO_ROUNDS,
        roundMs: MICRO_ROUND_MS,
        tmp,
      };
      const run = spawnSync(
        process.execPath,
        [join(import.meta.dirname, 'lib/gate-micro-run.ts'), JSON.stringify(args)],
        { encoding: 'utf8' },
      );
      if (run.status !== 0) {
        const why = `${run.stderr}`.split('\n').find((l) => /Error/.test(l)) ?? `exit ${run.status ?? run.signal}`;
        console.log(`gate FAILED: the micro stages could not be measured for both trees: ${why.trim()}`);
        process.exit(1);
      }
      const out = JSON.parse(run.stdout) as MicroRunResult;
      for (const [name, m] of Object.entries(out.stages)) {
        const p = per.get(name)!;
        // Each side's fastest round: interference (preemption, a neighbour's cache traffic) only adds time.
        const h = Math.min(...m.headUs);
        const r = Math.min(...m.referenceUs);
        p.ratios.push(h / r);
        p.headUs.push(h);
        p.referenceUs.push(r);
      }
      log(
        `micro replicate ${k + 1}/${MICRO_REPLICATES}: ${microWanted.map((st) => `${st.name} ${per.get(st.name)!.ratios.at(-1)!.toFixed(3)}`).join(', ')}`,
      );
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  for (const stage of microWanted) {
    const r = summarise({
      name: stage.name,
      about: stage.about,
      kind: 'micro',
      tolerance: MICRO_TOLERANCE,
      unit: 'µs/call',
      ...per.get(stage.name)!,
      problem: null,
    });
    results.push(r);
    log(`${stage.name}: ${r.interval.median.toFixed(3)} [${r.interval.low.toFixed(3)}, ${r.interval.high.toFixed(3)}]`);
  }
}

// ---------------------------------------------------------------- e2e stages
const e2eWanted = E2E_STAGES.filter((s) => wanted.has(s.name));
let rgw: RgwHandle | undefined;
if (e2eWanted.some((s) => s.sink === 's3')) {
  rgw = await startBenchRgw();
  log(`Ceph RGW at ${rgw.endpoint}`);
}
for (const stage of e2eWanted) {
  let e: E2eResult;
  try {
    e = await measureDaemons(stage, trees, E2E_ROUNDS ?? stage.rounds, rgw, log);
  } catch (err) {
    console.log(`gate FAILED: ${stage.name} could not be measured: ${(err as Error).message.split('\n')[0]}`);
    process.exit(1);
  }
  const r = summarise({
    name: stage.name,
    about: stage.about,
    kind: 'e2e',
    tolerance: E2E_TOLERANCE,
    unit: 'µs/record',
    ratios: e.ratios,
    headUs: e.headUs,
    referenceUs: e.referenceUs,
    problem: e.problem,
    output: e.output,
  });
  results.push(r);
  log(
    `${stage.name}: ${r.interval.median.toFixed(3)} [${r.interval.low.toFixed(3)}, ${r.interval.high.toFixed(3)}]; ${e.output}`,
  );
}

// ---------------------------------------------------------------- report
const seconds = ((performance.now() - started) / 1000).toFixed(0);
const rows = results.map((r) => {
  const mark = r.verdict === 'slower' ? 'FAIL ' : r.verdict === 'faster' ? 'faster' : 'ok   ';
  const i = r.interval;
  const lines = [
    `${mark} ${r.name}: head/reference ${i.median.toFixed(3)}, 95% interval [${i.low.toFixed(3)}, ${i.high.toFixed(3)}], fails above ${(1 + r.tolerance).toFixed(2)}; ` +
      `${i.samples} rounds, median ${median(r.headUs).toFixed(3)} vs ${median(r.referenceUs).toFixed(3)} ${r.unit}`,
    `        rounds: ${r.ratios.map((x) => x.toFixed(3)).join(' ')}`,
  ];
  if (r.output !== undefined)
    lines.push(
      `${r.problem === null ? '        exact: ' : 'FAIL    exact: '}${r.output}${r.problem === null ? '' : ` — ${r.problem}`}`,
    );
  return lines.join('\n');
});
console.log(
  `bench gate: head ${head.label} against reference ${reference.label}, node ${process.version}, ${seconds} s\n${rows.join('\n')}`,
);
if (values.out !== undefined) {
  writeFileSync(
    values.out,
    `${JSON.stringify({ date: new Date().toISOString(), head: head.label, reference: reference.label, node: process.version, seconds: Number(seconds), results }, null, 2)}\n`,
  );
}
const slower = results.filter((r) => r.verdict === 'slower');
const broken = results.filter((r) => r.problem !== null);
if (slower.length > 0 || broken.length > 0) {
  const what = [...slower.map((r) => `${r.name} slower`), ...broken.map((r) => `${r.name}: ${r.problem}`)];
  console.log(`\ngate FAILED: ${what.join('; ')}.`);
  if (slower.length > 0) {
    console.log(
      'A stage fails when the head is slower than the reference by more than its tolerance, with 95 % confidence. If the cost is intended, move the reference forward in a commit of its own that says why (docs/benchmarks.md, "Moving the reference").',
    );
  }
  process.exit(1);
}
console.log('gate passed');
process.exit(0);
