/**
 * The gate's end-to-end stages: the real daemon of each tree (`sluice run`, started by the
 * tree's own launcher and Node.js), both running at once with the same configuration, fed the
 * same sample in alternating order (head, reference; reference, head; ...). Each round gives
 * one paired ratio: the head daemon's CPU per record (every thread, /proc) over the reference
 * daemon's, on the same records.
 *
 * Then the exact check, which is not statistics: every record the head daemon was sent is in
 * its output exactly once and tagged (the reference's output is not checked: it is the
 * yardstick, not the subject).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateLineSet, type LineKind, type LineSet } from '@sluice/loadgen/line-set';
import { sendHec, sendTcp, sendUdp, type SendReport } from '@sluice/loadgen/send';
import { udpKernelDrops } from '@sluice/sources/kernel-drops';
import { cpuPreciseUs, metricSum, scrape, splitAddress, startDaemon, type Daemon } from './daemon.ts';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { freshAddonCopies } from './gate-tasks.ts';
import { countFileOutput, countS3Output, OutputCounter } from './output.ts';
import type { Tree } from './reference-tree.ts';
import { BENCH_HEC_TOKEN, benchConfig, TAG_TEXT, type RgwHandle, type S3Target } from './scenario.ts';

export interface E2eStage {
  name: string;
  about: string;
  protocol: 'tcp' | 'udp' | 'splunk_hec';
  sink: 'file' | 's3';
  kind: LineKind;
  /** Records per sample. */
  sampleLines: number;
  /** Records per warm-up (ids outside the samples'). */
  warmLines: number;
  /** Paired rounds (fresh daemons each) unless the gate is given --rounds. */
  rounds: number;
  /** Pause before each measured sample, so the store's trailing work from the last one is over. */
  settleMs: number;
}

export const E2E_STAGES: readonly E2eStage[] = [
  {
    name: 'daemon tcp → file',
    about: 'sluice run, TCP json_lines (4 connections) → validate → tag → zstd → file sink: daemon CPU per line',
    protocol: 'tcp',
    sink: 'file',
    kind: 'service',
    sampleLines: 200_000,
    warmLines: 50_000,
    rounds: 7,
    settleMs: 0,
  },
  {
    name: 'daemon tcp → S3',
    about: 'the same into an aws_s3 sink on Ceph RGW; a sample ends when S3 has completed the objects holding it',
    protocol: 'tcp',
    sink: 's3',
    kind: 'service',
    sampleLines: 200_000,
    warmLines: 50_000,
    // Ceph RGW shares the two cores: its work on one sample slows whatever runs next, so the
    // per-record CPU spreads more (2.4-4.1 µs on one tree in one run) and needs more rounds.
    rounds: 9,
    settleMs: 500,
  },
  {
    name: 'daemon udp paced → file',
    about: 'UDP at 100,000 datagrams/s (Talos kernel lines) → file sink: daemon CPU per datagram; zero loss',
    protocol: 'udp',
    sink: 'file',
    kind: 'kernel',
    sampleLines: 100_000,
    warmLines: 30_000,
    rounds: 7,
    settleMs: 0,
  },
  {
    name: 'daemon splunk_hec → file',
    about: 'HEC event envelopes, 100 per request, 4 in flight → file sink: daemon CPU per event',
    protocol: 'splunk_hec',
    sink: 'file',
    kind: 'service',
    sampleLines: 100_000,
    warmLines: 30_000,
    rounds: 7,
    settleMs: 0,
  },
];

/** UDP samples are paced at this rate; the warm-up (both daemons at once) at half of it. */
const UDP_RATE = 100_000;
const UDP_WARM_RATE = 50_000;

/** Line sets by kind, size and round, generated once (~5 µs a line) and shared by the stages. */
const setCache = new Map<string, LineSet>();
function lineSet(kind: LineKind, count: number, seed: number, firstId: number): LineSet {
  const key = `${kind}/${count}/${seed}/${firstId}`;
  let set = setCache.get(key);
  if (set === undefined) {
    set = generateLineSet({ count, kind, seed, firstId });
    setCache.set(key, set);
  }
  return set;
}

export interface E2eResult {
  stage: E2eStage;
  /** Per round: head CPU µs per record / reference CPU µs per record. */
  ratios: number[];
  headUs: number[];
  referenceUs: number[];
  /** The exact check of the head's output: null when it passed, else what failed. */
  problem: string | null;
  /** What the exact check found, for the report. */
  output: string;
}

interface Running {
  tree: Tree;
  daemon: Daemon;
  dir: string;
  bucket?: string;
  /** Records sent so far (warm-up included). */
  sent: number;
  /** Send errors (HEC non-2xx answers, UDP send errors). */
  sendErrors: number;
  udpDrops0: number;
}

const WARM_FIRST_ID = 900_000_000;

/** Lines the workers have taken (accepted + malformed) or, into S3, lines in completed objects. */
async function doneCount(r: Running, sink: 'file' | 's3'): Promise<number> {
  const m = await scrape(r.daemon.apiPort);
  return sink === 'file'
    ? metricSum(m, 'sluice_source_records_by_kind_total') + metricSum(m, 'sluice_source_malformed_events_total')
    : metricSum(m, 'sluice_sink_sent_events_total');
}

/**
 * Until the daemon has done `target` records. UDP may lose datagrams, so there it also stops
 * once nothing has moved for a second (the exact check then reports the loss).
 */
async function waitDone(r: Running, stage: E2eStage, target: number): Promise<void> {
  const deadline = performance.now() + 120_000;
  let last = -1;
  let stableSince = performance.now();
  for (;;) {
    const n = await doneCount(r, stage.sink);
    if (n >= target) return;
    if (n !== last) {
      last = n;
      stableSince = performance.now();
    } else if (stage.protocol === 'udp' && performance.now() - stableSince > 1000) return;
    if (performance.now() > deadline)
      throw new Error(`${stage.name}: the ${r.tree.name} daemon did ${n} of ${target} records in 2 minutes`);
    await sleep(100);
  }
}

/** Datagrams the kernel dropped on the daemon's UDP source sockets so far. */
function kernelDropsOf(r: Running): number {
  return udpKernelDrops(splitAddress(r.daemon.sources['src']![0]!).port, r.daemon.pid);
}

async function send(r: Running, stage: E2eStage, set: LineSet, udpRate: number): Promise<SendReport> {
  const address = r.daemon.sources['src']![0]!;
  const { host, port } = splitAddress(address);
  if (stage.protocol === 'tcp') return sendTcp(set, { host, port, connections: 4 });
  if (stage.protocol === 'udp') return sendUdp(set, { host, port, rate: udpRate });
  return sendHec(set, {
    url: `http://${address}/services/collector/event`,
    token: BENCH_HEC_TOKEN,
    batchLines: 100,
    concurrency: 4,
  });
}

/** Send one set to one daemon and wait until it is done; the daemon's CPU µs per record. */
async function sample(r: Running, stage: E2eStage, set: LineSet, udpRate = UDP_RATE): Promise<number> {
  if (stage.settleMs > 0) await sleep(stage.settleMs);
  const c0 = cpuPreciseUs(r.daemon.pid);
  const report = await send(r, stage, set, udpRate);
  r.sent += set.count;
  r.sendErrors += report.errors;
  await waitDone(r, stage, r.sent);
  return (cpuPreciseUs(r.daemon.pid) - c0) / set.count;
}

/** Both trees' daemons for one round, each with fresh copies of its worker addons (bench/lib/gate-tasks.ts). */
async function startBoth(
  stage: E2eStage,
  trees: readonly [Tree, Tree],
  round: number,
  parent: string,
  rgw: RgwHandle | undefined,
): Promise<Running[]> {
  return Promise.all(
    trees.map(async (tree) => {
      const dir = join(parent, `${tree.name}-${round}`);
      mkdirSync(dir);
      let s3: Omit<S3Target, 'client'> | undefined;
      if (stage.sink === 's3') {
        if (rgw === undefined) throw new Error(`${stage.name} needs the Ceph RGW`);
        s3 = {
          endpoint: rgw.endpoint,
          accessKeyId: rgw.accessKeyId,
          secretAccessKey: rgw.secretAccessKey,
          region: rgw.region,
          bucket: `gate-${tree.name}-${round}-${Date.now().toString(36)}`,
        };
        const client = rgw.client();
        await client.send(new CreateBucketCommand({ Bucket: s3.bucket }));
        client.destroy();
      }
      const yaml = benchConfig(dir, stage.protocol, stage.sink, s3 === undefined ? {} : { s3 });
      const env = { SLUICE_WORKER_ADDON_DIR: freshAddonCopies(tree.root, dir) };
      const daemon = await startDaemon(dir, yaml, {
        node: tree.node,
        cli: join(tree.root, 'apps/sluice/bin/sluice.js'),
        env,
      });
      const r: Running = { tree, daemon, dir, sent: 0, sendErrors: 0, udpDrops0: 0 };
      if (s3 !== undefined) r.bucket = s3.bucket;
      return r;
    }),
  );
}

/**
 * One e2e stage: `rounds` rounds, each with a fresh pair of daemons (a daemon's speed also
 * depends on where its code landed in memory, luck that lasts for its life: fresh processes
 * make it noise between rounds rather than a bias of one tree). Per round: start both, warm
 * both up, send the round's sample to both in alternating order, stop both (SIGTERM drains).
 */
export async function measureDaemons(
  stage: E2eStage,
  trees: readonly [Tree, Tree],
  rounds: number,
  rgw: RgwHandle | undefined,
  log: (msg: string) => void,
): Promise<E2eResult> {
  const sets = Array.from({ length: rounds }, (_, k) =>
    lineSet(stage.kind, stage.sampleLines, 10 + k, k * stage.sampleLines),
  );
  const warm = lineSet(stage.kind, stage.warmLines, 9, WARM_FIRST_ID);
  const expected = rounds * stage.sampleLines;
  const counter = new OutputCounter(0, expected, TAG_TEXT);
  const parent = mkdtempSync(join(tmpdir(), 'sluice-gate-'));
  const headUs: number[] = [];
  const referenceUs: number[] = [];
  let kernelDrops = 0;
  let sendErrors = 0;
  let running: Running[] = [];
  try {
    for (let k = 0; k < rounds; k++) {
      running = await startBoth(stage, trees, k, parent, rgw);
      const [head, reference] = running as [Running, Running];
      // Both warmed up at once (nothing is measured yet).
      await Promise.all(running.map((r) => sample(r, stage, warm, UDP_WARM_RATE)));
      for (const r of running) if (stage.protocol === 'udp') r.udpDrops0 = kernelDropsOf(r);
      const set = sets[k]!;
      let h: number;
      let ref: number;
      if (k % 2 === 0) {
        h = await sample(head, stage, set);
        ref = await sample(reference, stage, set);
      } else {
        ref = await sample(reference, stage, set);
        h = await sample(head, stage, set);
      }
      headUs.push(h);
      referenceUs.push(ref);
      if (stage.protocol === 'udp') kernelDrops += kernelDropsOf(head) - head.udpDrops0;
      sendErrors += head.sendErrors;
      const codes = await Promise.all(running.map((r) => r.daemon.stop()));
      if (codes[0] !== 0)
        throw new Error(`${stage.name}: the head daemon exited with ${codes[0]}: ${head.daemon.stderr()}`);
      // The head's output of this round (the warm-up's records are foreign ids).
      if (stage.sink === 'file') await countFileOutput(join(head.dir, 'out'), 0, expected, TAG_TEXT, counter);
      else {
        const client = rgw!.client();
        await countS3Output(client, head.bucket!, 0, expected, TAG_TEXT, counter);
        client.destroy();
      }
      for (const r of running) rmSync(r.dir, { recursive: true, force: true });
      running = [];
      log(
        `${stage.name}: round ${k + 1}/${rounds}: head ${h.toFixed(3)} µs, reference ${ref.toFixed(3)} µs per record (${(h / ref).toFixed(3)})`,
      );
    }
    const count = counter.count;
    const problems: string[] = [];
    if (count.missing !== 0)
      problems.push(
        `${count.missing} of ${expected} records missing${stage.protocol === 'udp' ? ` (kernel drops ${kernelDrops})` : ''}`,
      );
    if (count.duplicates !== 0) problems.push(`${count.duplicates} stored twice`);
    if (count.untagged !== 0) problems.push(`${count.untagged} untagged`);
    // The warm-up is not measured, and a fresh daemon may lose some of a UDP warm-up (kernel drops before it is warm).
    const warmStored =
      stage.protocol === 'udp' ? count.foreign <= rounds * warm.count : count.foreign === rounds * warm.count;
    if (!warmStored) problems.push(`${count.foreign} warm-up records stored, expected ${rounds * warm.count}`);
    if (sendErrors !== 0) problems.push(`${sendErrors} records refused or failed on the wire`);
    return {
      stage,
      ratios: headUs.map((h, k) => h / referenceUs[k]!),
      headUs,
      referenceUs,
      problem: problems.length === 0 ? null : problems.join(', '),
      output: `${count.unique} of ${expected} records once, ${count.duplicates} twice, ${count.objects} objects${stage.protocol === 'udp' ? `, ${kernelDrops} kernel drops` : ''}`,
    };
  } finally {
    for (const r of running) {
      if (r.daemon.proc.exitCode === null && r.daemon.proc.signalCode === null) await r.daemon.stop('SIGKILL');
    }
    rmSync(parent, { recursive: true, force: true });
  }
}
