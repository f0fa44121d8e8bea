/**
 * One replicate of the gate's micro stages, in a process of its own (bench/gate.ts starts one
 * per replicate): load both trees' modules, each with fresh copies of its worker addons, build
 * every stage's workloads, and measure each stage's pair in alternating rounds. Prints one JSON
 * object on stdout: per stage, the rounds' CPU µs per call of each tree.
 *
 * A fresh process per replicate matters as much as the fresh addon copies: where V8 puts each
 * tree's compiled code, and the type feedback each tree's functions collect, differ from one
 * process to the next and move a stage's ratio by several % for the process's whole life.
 *
 *   node bench/lib/gate-micro-run.ts '{"head":DIR,"reference":DIR,"first":"head","stages":[...],"rounds":5,"roundMs":60,"tmp":DIR}'
 */
import { freshAddonCopies, loadTree, microFixture, microWorkloads, type TreeModules } from './gate-tasks.ts';
import { measurePair } from './pair.ts';

export interface MicroRunArgs {
  head: string;
  reference: string;
  /** Which tree's modules are loaded first (the gate alternates it between replicates). */
  first: 'head' | 'reference';
  stages: string[];
  rounds: number;
  roundMs: number;
  /** Where the addon copies go. */
  tmp: string;
}

export interface MicroRunResult {
  stages: Record<string, { headUs: number[]; referenceUs: number[] }>;
}

const args = JSON.parse(process.argv[2]!) as MicroRunArgs;
const fx = microFixture();
const modules: Partial<Record<'head' | 'reference', TreeModules>> = {};
const order: ('head' | 'reference')[] = args.first === 'head' ? ['head', 'reference'] : ['reference', 'head'];
for (const name of order) modules[name] = await loadTree(args[name], freshAddonCopies(args[name], args.tmp));
// The head's processor output of one batch is the compress stage's input for both trees.
const headSet = microWorkloads(modules.head!, fx);
const refSet = microWorkloads(modules.reference!, fx, headSet.ndjson);
const out: MicroRunResult = { stages: {} };
for (const stage of args.stages) {
  const p = measurePair(headSet.workloads.get(stage)!, refSet.workloads.get(stage)!, {
    rounds: args.rounds,
    roundMs: args.roundMs,
  });
  out.stages[stage] = { headUs: p.headUs, referenceUs: p.referenceUs };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
