/**
 * One end-to-end scenario: start the real daemon (child process), warm it up, send a line set
 * with the load generator (in this process), follow /metrics until every line is accounted
 * for and stored, read CPU and memory from /proc, stop the daemon (SIGTERM drains and
 * completes objects), then read every object back and count the lines.
 *
 *   t0 ── send ──────────── sender done ── processed (all lines through the workers) ── stored (objects complete)
 *   CPU is (stored) - (t0): the idle tail while the last object's period runs out costs ~nothing.
 *   lines/s is lines / (processed - t0).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { waitUntil } from '@sluice/testkit';
import { generateLineSet, type LineSet } from '@sluice/loadgen/line-set';
import { sendTcp, sendUdp, type SendReport } from '@sluice/loadgen/send';
import { topEntries } from './profile-top.ts';
import { udpKernelDrops } from '@sluice/sources/kernel-drops';
import {
  cpuDelta,
  cpuOf,
  memOf,
  metricSum,
  scrape,
  splitAddress,
  startDaemon,
  type Daemon,
  type StartOptions,
} from './daemon.ts';
import { countFileOutput, countS3Output, type OutputCount } from './output.ts';

export const TAG_TEXT = '"cluster":"bench"';
/** The HEC token a benchmark's splunk_hec source accepts. */
export const BENCH_HEC_TOKEN = 'bench-hec-token';

/** The part of @sluice/tests' Rgw (test/s3/rgw.ts) the benchmarks use. */
export interface RgwHandle {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  client(): S3Client;
  stop(): Promise<void>;
}

/**
 * A throwaway Ceph RGW for a benchmark, stopped when the process exits. scripts/ensure-ceph.sh
 * installs Ceph first when missing (a no-op when present), as the tests' global setup does,
 * unless SLUICE_SKIP_CEPH_INSTALL=1.
 */
export async function startBenchRgw(): Promise<RgwHandle> {
  if (process.env['SLUICE_SKIP_CEPH_INSTALL'] !== '1') {
    execFileSync('bash', [new URL('../../scripts/ensure-ceph.sh', import.meta.url).pathname], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const { startRgw } = await import('@sluice/tests/rgw');
  const rgw = await startRgw();
  process.on('exit', () => void rgw.stop());
  return rgw;
}

export interface S3Target {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  bucket: string;
  client: S3Client;
}

export interface ScenarioSpec {
  name: string;
  protocol: 'tcp' | 'udp';
  sink: 'file' | 's3';
  lines: LineSet;
  /** TCP connections. */
  connections?: number;
  /** UDP datagrams/s, 0 = full rate. */
  rate?: number;
  /** Warm-up lines sent (and processed) before the clock starts; ids far outside the measured range. */
  warmupLines?: number;
  s3?: S3Target;
  /** Write daemon CPU profiles (--cpu-prof) here and summarise them. */
  cpuProfDir?: string;
  /** Extra YAML under the source (e.g. `ring_bytes: 16777216`). */
  sourceExtra?: string;
  /** Extra top-level YAML (e.g. `workers: { threads: 1 }`). */
  configExtra?: string;
  /** Extra node flags for the daemon (e.g. --trace-gc). */
  nodeArgs?: string[];
  /** How the daemon is started (another launcher, another tree's); default: this tree's bin/sluice.js on this Node. */
  start?: Pick<StartOptions, 'node' | 'cli' | 'env'>;
  /** Append the daemon's stdout (its JSON logs, and what --trace-gc prints) to this file. */
  daemonLog?: string;
  /** Keep the temp dir. */
  keep?: boolean;
  /** How often /metrics is read while loaded (each read costs the daemon ~3 ms CPU, subtracted). Default 100. */
  pollMs?: number;
}

export interface ScenarioResult {
  name: string;
  sent: SendReport;
  /** Lines through the workers (accepted + malformed) / (processed - t0). */
  linesPerSec: number;
  /** Raw line bytes (without '\n') per second, 10^6. */
  mbPerSec: number;
  /** Over the sender's window (first to last datagram for UDP): what the daemon read from its sockets, and what it stored. */
  receivedPerSec: number;
  storedPerSec: number;
  seconds: { toProcessed: number; toStored: number };
  cpu: {
    usPerLine: number;
    mainUsPerLine: number;
    workersUsPerLine: number;
    v8UsPerLine: number;
    libuvUsPerLine: number;
    cores: number;
    scrapeUsSubtracted: number;
  };
  mem: { hwmMiB: number; rssMaxMiB: number; rssEndMiB: number };
  counts: {
    sent: number;
    received: number;
    kernelDrops: number;
    discarded: Record<string, number>;
    malformed: number;
    stored: number;
    /** sent - stored, over sent. */
    lossPct: number;
    /** received + kernel drops == sent (UDP): every drop counted. */
    everyDropCounted: boolean;
  };
  output: OutputCount;
  profile?: { thread: string; busyMs: number; top: { name: string; share: number }[] }[];
}

/**
 * The daemon's config for a benchmark: one source `src` (tagged `cluster: bench`, peer address
 * as `__host`; a splunk_hec source accepts {@link BENCH_HEC_TOKEN}) into one sink `out`, zstd,
 * 1 s objects. An aws_s3 sink reads its secret from BENCH_S3_SECRET, which this sets.
 */
export function benchConfig(
  dir: string,
  protocol: 'tcp' | 'udp' | 'splunk_hec',
  sink: 'file' | 's3',
  opts: { s3?: Omit<S3Target, 'client'>; sourceExtra?: string } = {},
): string {
  const extra = `${protocol === 'splunk_hec' ? `\n    valid_tokens: [${BENCH_HEC_TOKEN}]` : ''}${opts.sourceExtra === undefined ? '' : `\n    ${opts.sourceExtra}`}`;
  let sinkYaml = `    type: file\n    inputs: [src]\n    path: ${join(dir, 'out')}`;
  if (sink === 's3') {
    const s3 = opts.s3!;
    process.env['BENCH_S3_SECRET'] = s3.secretAccessKey;
    sinkYaml = [
      '    type: aws_s3',
      '    inputs: [src]',
      `    endpoint: ${s3.endpoint}`,
      `    bucket: ${s3.bucket}`,
      `    region: ${s3.region}`,
      `    access_key_id: ${s3.accessKeyId}`,
      `    secret_access_key: \${BENCH_S3_SECRET}`,
    ].join('\n');
  }
  return [
    `data_dir: ${join(dir, 'data')}`,
    'api: { address: 127.0.0.1:0 }',
    'log: { level: info }',
    'sources:',
    '  src:',
    `    type: ${protocol}\n    address: 127.0.0.1:0\n    extra_tags: { cluster: bench }\n    host_key: __host${extra}`,
    'sinks:',
    '  out:',
    sinkYaml,
    '    compression: zstd',
    '    upload_period_secs: 1',
    '',
  ].join('\n');
}

interface Tally {
  received: number;
  /** Lines through the workers: accepted + malformed. */
  processed: number;
  accepted: number;
  malformed: number;
  /** Every source discard (ring_full, oversize, malformed, worker_error...). */
  discarded: number;
  stored: number;
}

/** Scrapes of /metrics made by the benchmark: each costs the daemon ~3 ms of CPU, subtracted from its figures. */
let scrapes = 0;

async function tally(d: Daemon): Promise<Tally & { metrics: Map<string, number> }> {
  scrapes++;
  const m = await scrape(d.apiPort);
  const accepted = metricSum(m, 'sluice_source_records_by_kind_total');
  const malformed = metricSum(m, 'sluice_source_malformed_events_total');
  return {
    metrics: m,
    received: metricSum(m, 'sluice_source_received_events_total'),
    processed: accepted + malformed,
    accepted,
    malformed,
    discarded: metricSum(m, 'sluice_source_discarded_events_total'),
    stored: metricSum(m, 'sluice_sink_sent_events_total'),
  };
}

function send(spec: ScenarioSpec, d: Daemon, set: LineSet): Promise<SendReport> {
  const { host, port } = splitAddress(d.sources['src']![0]!);
  return spec.protocol === 'tcp'
    ? sendTcp(set, { host, port, connections: spec.connections ?? 4 })
    : sendUdp(set, { host, port, rate: spec.rate ?? 0 });
}

export async function runScenario(spec: ScenarioSpec): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), `sluice-e2e-${spec.name}-`));
  const yaml =
    benchConfig(dir, spec.protocol, spec.sink, {
      ...(spec.s3 === undefined ? {} : { s3: spec.s3 }),
      ...(spec.sourceExtra === undefined ? {} : { sourceExtra: spec.sourceExtra }),
    }) + (spec.configExtra === undefined ? '' : `${spec.configExtra}\n`);
  const nodeArgs = [
    ...(spec.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${spec.cpuProfDir}`]),
    ...(spec.nodeArgs ?? []),
  ];
  const d = await startDaemon(dir, yaml, {
    nodeArgs,
    ...spec.start,
    ...(spec.daemonLog === undefined ? {} : { logFile: spec.daemonLog }),
  });
  try {
    const set = spec.lines;
    const n = set.count;
    const port = splitAddress(d.sources['src']![0]!).port;

    // Warm-up: JIT and buffers, with ids outside the measured range (counted as foreign below).
    const warmupLines = spec.warmupLines ?? 50_000;
    if (warmupLines > 0) {
      const warm = generateLineSet({ count: warmupLines, kind: set.kind, seed: 99, firstId: 1_000_000_000 });
      await send({ ...spec, rate: spec.protocol === 'udp' ? 50_000 : 0 }, d, warm);
      await waitUntil(
        'the warm-up to be processed',
        async () => {
          const t = await tally(d);
          return t.accepted + t.discarded >= t.received && t.received > 0 && t.stored >= t.accepted;
        },
        60_000,
        200,
      );
    }
    // What one scrape of /metrics costs the daemon, so the benchmark's own polling can be taken out.
    const calib0 = cpuOf(d.pid).totalUs;
    for (let k = 0; k < 20; k++) await tally(d);
    const scrapeUs = (cpuOf(d.pid).totalUs - calib0) / 20;

    const before = await tally(d);
    const drops0 = spec.protocol === 'udp' ? udpKernelDrops(port, d.pid) : 0;
    const cpu0 = cpuOf(d.pid);
    const scrapes0 = scrapes;
    let rssMax = memOf(d.pid).rssKiB;

    const t0 = performance.now();
    let senderDone = false;
    const sending = send(spec, d, set).finally(() => {
      senderDone = true;
    });
    // Follow the daemon while it works: RSS, and the moment every line sent went through the workers.
    let last: Tally = before;
    let stableSince = performance.now();
    const tProcessed = await waitUntil(
      'every line to be processed',
      async () => {
        rssMax = Math.max(rssMax, memOf(d.pid).rssKiB);
        const t = await tally(d);
        if (t.received !== last.received || t.processed !== last.processed) stableSince = performance.now();
        last = t;
        const received = t.received - before.received;
        // Malformed lines are both processed and discarded: count them once.
        const settled = t.accepted - before.accepted + (t.discarded - before.discarded) >= received;
        if (spec.protocol === 'tcp') return senderDone && received >= n && settled;
        // UDP: nothing tells us about datagrams the kernel dropped; done once the sender is done,
        // every received datagram is accounted for, and nothing moved for 300 ms.
        return senderDone && settled && performance.now() - stableSince > 300;
      },
      300_000,
      spec.pollMs ?? 100,
    );
    const sent = await sending;
    const kernelDrops = spec.protocol === 'udp' ? udpKernelDrops(port, d.pid) - drops0 : 0;
    const atProcessed = await tally(d);
    const tStored = await waitUntil(
      'every accepted line to be stored',
      async () => {
        rssMax = Math.max(rssMax, memOf(d.pid).rssKiB);
        const t = await tally(d);
        return t.stored - before.stored >= atProcessed.accepted - before.accepted;
      },
      120_000,
      100,
    );
    const cpuRaw = cpuDelta(cpu0, cpuOf(d.pid));
    // The benchmark's scrapes ran on the daemon's main thread: take them out of main and total.
    const scrapeCost = (scrapes - scrapes0) * scrapeUs;
    const cpu = { ...cpuRaw, mainUs: cpuRaw.mainUs - scrapeCost, totalUs: cpuRaw.totalUs - scrapeCost };
    const mem = memOf(d.pid);
    const end = await tally(d);

    const discarded: Record<string, number> = {};
    for (const [key, value] of end.metrics) {
      if (
        !key.startsWith('sluice_source_discarded_events_total{') &&
        !key.startsWith('sluice_sink_discarded_events_total{')
      )
        continue;
      const reason = /reason="([^"]+)"/.exec(key)?.[1] ?? '?';
      const prior = before.metrics.get(key) ?? 0;
      if (value - prior > 0) discarded[reason] = (discarded[reason] ?? 0) + value - prior;
    }
    const received = end.received - before.received;
    const stored = end.stored - before.stored;
    const malformed = end.malformed - before.malformed;

    const code = await d.stop();
    if (code !== 0) throw new Error(`sluice exited with ${code}\n${d.stderr()}`);
    const output =
      spec.sink === 'file'
        ? await countFileOutput(join(dir, 'out'), set.firstId, n, TAG_TEXT)
        : await countS3Output(spec.s3!.client, spec.s3!.bucket, set.firstId, n, TAG_TEXT);

    const secProcessed = (tProcessed - t0) / 1000;
    const rawBytes = set.offsets[n]! - set.offsets[0]! - n;
    const per = (us: number): number => +(us / n).toFixed(3);
    const result: ScenarioResult = {
      name: spec.name,
      sent,
      linesPerSec: Math.round((atProcessed.processed - before.processed) / secProcessed),
      mbPerSec: +((rawBytes * ((atProcessed.processed - before.processed) / n)) / 1e6 / secProcessed).toFixed(1),
      receivedPerSec: Math.round(received / sent.seconds),
      storedPerSec: Math.round(stored / sent.seconds),
      seconds: { toProcessed: +secProcessed.toFixed(3), toStored: +((tStored - t0) / 1000).toFixed(3) },
      cpu: {
        usPerLine: per(cpu.totalUs),
        mainUsPerLine: per(cpu.mainUs),
        workersUsPerLine: per(cpu.workersUs),
        v8UsPerLine: per(cpu.v8Us),
        libuvUsPerLine: per(cpu.libuvUs),
        cores: +(cpu.totalUs / 1e6 / secProcessed).toFixed(2),
        scrapeUsSubtracted: Math.round(scrapeCost),
      },
      mem: {
        hwmMiB: +(mem.hwmKiB / 1024).toFixed(1),
        rssMaxMiB: +(rssMax / 1024).toFixed(1),
        rssEndMiB: +(mem.rssKiB / 1024).toFixed(1),
      },
      counts: {
        sent: n,
        received,
        kernelDrops,
        discarded,
        malformed,
        stored,
        lossPct: +(((n - output.unique) / n) * 100).toFixed(4),
        everyDropCounted: spec.protocol === 'tcp' ? received === n : received + kernelDrops + sent.errors === n,
      },
      output,
    };
    if (spec.cpuProfDir !== undefined) result.profile = summariseProfiles(spec.cpuProfDir, d.pid);
    return result;
  } finally {
    if (d.proc.exitCode === null) await d.stop('SIGKILL');
    if (spec.keep !== true) rmSync(dir, { recursive: true, force: true });
  }
}

/** Top self-time entries of each thread's profile written by the daemon `pid`. */
export function summariseProfiles(
  dir: string,
  pid: number,
): { thread: string; busyMs: number; top: { name: string; share: number }[] }[] {
  const out: { thread: string; busyMs: number; top: { name: string; share: number }[] }[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (!f.includes(`.${pid}.`) || !f.endsWith('.cpuprofile')) continue;
    const { busyMs, entries } = topEntries(JSON.parse(readFileSync(join(dir, f), 'utf8')), 12);
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread.
    const threadId = f.split('.')[4];
    out.push({
      thread: threadId === '0' ? 'main' : `worker ${threadId}`,
      busyMs,
      top: entries.map((e) => ({ name: e.name, share: e.share })),
    });
  }
  return out;
}
