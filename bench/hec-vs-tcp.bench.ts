/**
 * splunk_hec against tcp on one daemon: CPU per record of each source, measured in the same run
 * on the same records, and the ratio per round.
 *
 *   node_modules/.bin/node bench/hec-vs-tcp.bench.ts                 # 3 rounds of 300,000 records per phase
 *   node_modules/.bin/node bench/hec-vs-tcp.bench.ts --rounds 5 --lines 200000 --cpu-prof /tmp/prof
 *   options: --batch N (events per HEC request, 100), --concurrency N (requests in flight, 4),
 *   --connections N (TCP, 4), --out FILE (JSON), --node-args "FLAGS" (extra flags for the daemon)
 *
 * One daemon (the real one, a child process) with two sources into one file sink (zstd, tags
 * and host_key on both): `tcp` (json_lines, the load generator's sendTcp) and `hec` (splunk_hec,
 * event envelopes `{"event":<line>}` from the load generator's sendHec). The same Talos service
 * lines go to both. Per round, after a warm-up of both: one phase per source, alternating which
 * goes first; a phase is timed from the first byte sent until the workers have taken every
 * record of it (/metrics), and its CPU is that of every daemon thread over the phase
 * (/proc/<pid>/task/<tid>/schedstat), so the shared workers, compressor and sink are counted for
 * both. Reported per phase: CPU µs per record, records/s (HEC: events acknowledged per second of
 * the sender), and the peak RSS of the daemon at the end of the run.
 *
 * Then the exact check: every record of every phase is in the output exactly once and tagged,
 * every HEC request was answered 2xx.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateLineSet } from '@sluice/loadgen/line-set';
import { sendHec, sendTcp, type SendReport } from '@sluice/loadgen/send';
import {
  cpuDelta,
  cpuOf,
  cpuPreciseUs,
  memOf,
  metricSum,
  scrape,
  splitAddress,
  startDaemon,
  type Daemon,
} from './lib/daemon.ts';
import { countFileOutput, OutputCounter } from './lib/output.ts';
import { BENCH_HEC_TOKEN, summariseProfiles, TAG_TEXT } from './lib/scenario.ts';
import { median } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    lines: { type: 'string', default: '300000' },
    batch: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '4' },
    connections: { type: 'string', default: '4' },
    'cpu-prof': { type: 'string' },
    'node-args': { type: 'string' },
    out: { type: 'string' },
  },
});
const ROUNDS = Number(values.rounds);
const LINES = Number(values.lines);
const BATCH = Number(values.batch);
const CONCURRENCY = Number(values.concurrency);
const CONNECTIONS = Number(values.connections);
const WARM = Math.min(50_000, LINES);
const t00 = performance.now();
const log = (msg: string): void =>
  void process.stderr.write(`[hec-vs-tcp ${((performance.now() - t00) / 1000).toFixed(1)}s] ${msg}\n`);

function config(dir: string): string {
  const common = 'address: 127.0.0.1:0\n    extra_tags: { cluster: bench }\n    host_key: __host';
  return [
    `data_dir: ${join(dir, 'data')}`,
    'api: { address: 127.0.0.1:0 }',
    'log: { level: info }',
    'sources:',
    '  tcp:',
    `    type: tcp\n    ${common}`,
    '  hec:',
    `    type: splunk_hec\n    ${common}\n    valid_tokens: [${BENCH_HEC_TOKEN}]`,
    'sinks:',
    '  out:',
    `    type: file\n    inputs: [tcp, hec]\n    path: ${join(dir, 'out')}`,
    '    compression: zstd',
    '    upload_period_secs: 1',
    '',
  ].join('\n');
}

type Kind = 'tcp' | 'hec';

/** Records the workers have taken (accepted + malformed) from one source. */
async function taken(d: Daemon, id: Kind): Promise<number> {
  const m = await scrape(d.apiPort);
  return (
    metricSum(m, 'sluice_source_records_by_kind_total', { component_id: id }) +
    metricSum(m, 'sluice_source_malformed_events_total', { component_id: id })
  );
}

interface Phase {
  kind: Kind;
  usPerRecord: number;
  /** The same split by thread group (/proc/<pid>/task/<tid>/stat, 10 ms ticks): main thread, worker threads, the rest. */
  mainUs: number;
  workersUs: number;
  otherUs: number;
  recordsPerSec: number;
  send: SendReport;
}

const dir = mkdtempSync(join(tmpdir(), 'sluice-hec-vs-tcp-'));
const nodeArgs = values['node-args']?.split(' ').filter((a) => a !== '') ?? [];
if (values['cpu-prof'] !== undefined) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`);
const daemon = await startDaemon(dir, config(dir), { nodeArgs });
const sent: Record<Kind, number> = { tcp: 0, hec: 0 };
let hecErrors = 0;

async function phase(kind: Kind, firstId: number, count: number, seed: number): Promise<Phase> {
  const set = generateLineSet({ count, kind: 'service', seed, firstId });
  const address = daemon.sources[kind]![0]!;
  const c0 = cpuPreciseUs(daemon.pid);
  const g0 = cpuOf(daemon.pid);
  const t0 = performance.now();
  const report =
    kind === 'tcp'
      ? await sendTcp(set, { ...splitAddress(address), connections: CONNECTIONS })
      : await sendHec(set, {
          url: `http://${address}/services/collector/event`,
          token: BENCH_HEC_TOKEN,
          batchLines: BATCH,
          concurrency: CONCURRENCY,
        });
  sent[kind] += count;
  if (kind === 'hec') hecErrors += report.errors;
  const deadline = performance.now() + 120_000;
  while ((await taken(daemon, kind)) < sent[kind]) {
    if (performance.now() > deadline)
      throw new Error(`${kind}: the workers took ${await taken(daemon, kind)} of ${sent[kind]} records in 2 minutes`);
    await sleep(20);
  }
  const seconds = (performance.now() - t0) / 1000;
  const usPerRecord = (cpuPreciseUs(daemon.pid) - c0) / count;
  const g = cpuDelta(g0, cpuOf(daemon.pid));
  return {
    kind,
    usPerRecord,
    mainUs: g.mainUs / count,
    workersUs: g.workersUs / count,
    otherUs: (g.v8Us + g.libuvUs + g.otherUs) / count,
    recordsPerSec: kind === 'hec' ? report.linesPerSec : count / seconds,
    send: report,
  };
}

// Ids: round k's tcp phase [2kN, 2kN + N), its hec phase [2kN + N, 2(k+1)N); warm-ups far beyond.
const WARM_ID = 900_000_000;
log(`daemon pid ${daemon.pid}; warm-up ${WARM} records per source`);
await phase('tcp', WARM_ID, WARM, 9);
await phase('hec', WARM_ID + WARM, WARM, 9);
const rounds: { tcp: Phase; hec: Phase }[] = [];
for (let k = 0; k < ROUNDS; k++) {
  const base = 2 * k * LINES;
  const order: Kind[] = k % 2 === 0 ? ['tcp', 'hec'] : ['hec', 'tcp'];
  const r: Partial<Record<Kind, Phase>> = {};
  for (const kind of order) r[kind] = await phase(kind, kind === 'tcp' ? base : base + LINES, LINES, 10 + k);
  const { tcp, hec } = r as { tcp: Phase; hec: Phase };
  rounds.push({ tcp, hec });
  const split = (p: Phase): string =>
    `main ${p.mainUs.toFixed(2)} + workers ${p.workersUs.toFixed(2)} + other ${p.otherUs.toFixed(2)}`;
  log(
    `round ${k + 1}/${ROUNDS}: tcp ${tcp.usPerRecord.toFixed(2)} µs/line (${split(tcp)}; ${Math.round(tcp.recordsPerSec)}/s), ` +
      `splunk_hec ${hec.usPerRecord.toFixed(2)} µs/event (${split(hec)}; ${hec.recordsPerSec}/s), ratio ${(hec.usPerRecord / tcp.usPerRecord).toFixed(2)}`,
  );
}
const mem = memOf(daemon.pid);
const code = await daemon.stop();
if (code !== 0) throw new Error(`the daemon exited with ${code}: ${daemon.stderr()}`);

const counter = new OutputCounter(0, 2 * ROUNDS * LINES, TAG_TEXT);
await countFileOutput(join(dir, 'out'), 0, 2 * ROUNDS * LINES, TAG_TEXT, counter);
const c = counter.count;
const problems: string[] = [];
if (c.missing !== 0) problems.push(`${c.missing} records missing`);
if (c.duplicates !== 0) problems.push(`${c.duplicates} stored twice`);
if (c.untagged !== 0) problems.push(`${c.untagged} untagged`);
if (c.foreign !== 2 * WARM) problems.push(`${c.foreign} warm-up records stored, expected ${2 * WARM}`);
if (hecErrors !== 0) problems.push(`${hecErrors} HEC events refused or failed on the wire`);

const spread = (xs: number[], digits: number): string =>
  `median ${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
const tcpUs = rounds.map((r) => r.tcp.usPerRecord);
const hecUs = rounds.map((r) => r.hec.usPerRecord);
const ratios = rounds.map((r) => r.hec.usPerRecord / r.tcp.usPerRecord);
const hecRate = rounds.map((r) => r.hec.recordsPerSec);
const summary = {
  rounds: ROUNDS,
  linesPerPhase: LINES,
  hecBatch: BATCH,
  hecConcurrency: CONCURRENCY,
  tcpUsPerLine: tcpUs,
  hecUsPerEvent: hecUs,
  ratio: ratios,
  hecEventsPerSec: hecRate,
  tcpLinesPerSec: rounds.map((r) => Math.round(r.tcp.recordsPerSec)),
  peakRssMiB: +(mem.hwmKiB / 1024).toFixed(1),
  output: c,
  problems,
};
console.log(`tcp          ${spread(tcpUs, 2)} µs/line`);
console.log(`splunk_hec   ${spread(hecUs, 2)} µs/event`);
console.log(`ratio        ${spread(ratios, 2)} (target ≤ 2)`);
console.log(`hec events/s ${spread(hecRate, 0)}`);
console.log(`peak RSS     ${summary.peakRssMiB} MiB`);
console.log(
  `output       ${c.unique} of ${2 * ROUNDS * LINES} records once, ${c.duplicates} twice, ${c.objects} objects${problems.length === 0 ? '' : `; PROBLEMS: ${problems.join(', ')}`}`,
);
if (values['cpu-prof'] !== undefined) {
  for (const t of summariseProfiles(values['cpu-prof'], daemon.pid))
    console.log(
      `profile ${t.thread}: ${t.busyMs} ms busy\n${t.top.map((e) => `  ${(e.share * 100).toFixed(1)}% ${e.name}`).join('\n')}`,
    );
}
if (values.out !== undefined) writeFileSync(values.out, JSON.stringify(summary, null, 2));
rmSync(dir, { recursive: true, force: true });
if (problems.length > 0) process.exitCode = 1;
