/**
 * Summarize V8 .cpuprofile files (from `node --cpu-prof`): self time per function, top N.
 *
 *   node_modules/.bin/node bench/lib/profile-top.ts DIR_OR_FILES... [--top 25]
 *
 * One table per file (one file per thread: the main thread and each worker).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileEntry {
  name: string;
  selfMs: number;
  share: number;
}

/** Self time per function (name + file:line), descending. Idle and GC are kept as V8 names them. */
export function topEntries(
  profile: Profile,
  top: number,
): { totalMs: number; busyMs: number; entries: ProfileEntry[] } {
  const byId = new Map<number, Node>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the next delta to it.
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + dt);
  }
  const byName = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    const file = cf.url.replace(/^file:\/\/.*?\/(packages|apps|node_modules)\//, '$1/').replace(/^node:/, 'node:');
    const name = `${cf.functionName || '(anonymous)'} ${file ? `${file}:${cf.lineNumber + 1}` : ''}`.trim();
    byName.set(name, (byName.get(name) ?? 0) + us);
    total += us;
    if (cf.functionName === '(idle)') idle += us;
  }
  const busy = total - idle;
  const entries = [...byName.entries()]
    .filter(([name]) => !name.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: +(us / 1000).toFixed(1), share: +(us / Math.max(1, busy)).toFixed(3) }));
  return { totalMs: +(total / 1000).toFixed(1), busyMs: +(busy / 1000).toFixed(1), entries };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  let top = 25;
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--top') top = Number(args[++i]);
    else if (statSync(args[i]!).isDirectory()) {
      for (const f of readdirSync(args[i]!).sort()) if (f.endsWith('.cpuprofile')) files.push(join(args[i]!, f));
    } else files.push(args[i]!);
  }
  for (const f of files) {
    const { totalMs, busyMs, entries } = topEntries(JSON.parse(readFileSync(f, 'utf8')) as Profile, top);
    console.log(`\n${f}: ${busyMs} ms busy of ${totalMs} ms sampled`);
    for (const e of entries)
      console.log(`${(e.share * 100).toFixed(1).padStart(5)}%  ${String(e.selfMs).padStart(8)} ms  ${e.name}`);
  }
}
