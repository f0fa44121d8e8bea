/**
 * The daemon's memory, as an operator sizes a pod by it: resident set size of the real daemon
 * started through the launcher users run (`apps/sluice/bin/sluice run --config FILE`, which
 * execs Node 24, so the pid started is the daemon's), read from /proc/<pid>/status.
 *
 *   idle-default  the embedded default (tcp + udp -> file; `sluice default-config`, ports 0), VmRSS 10 s after start
 *   idle-s3       the same plus an aws_s3 sink (Ceph RGW), VmRSS 10 s after start
 *   trickle-default  the embedded default receiving one TCP line a second (a quiet node's
 *                 logs: the worker thread that starts with the first line stays), VmRSS after 10 s
 *   burst-s3      1,000,000 TCP lines on 4 connections into an aws_s3 sink (sink options at their
 *                 defaults; bench/e2e.bench.ts's tcp-s3 config): peak RSS (VmHWM), every line
 *                 stored exactly once
 *
 * Each scenario runs --runs times (default 3); the figures are the median and [min-max].
 * --tree DIR (repeatable) measures another checkout's launcher in the same run, interleaved
 * run by run with this one, so a loaded machine colours both alike (e.g. the commit before a
 * change, in a worktree with `npm ci` done).
 *
 *   node bench/memory.bench.ts
 *   node bench/memory.bench.ts --scenarios idle-default --runs 5 --threads 1
 *   node bench/memory.bench.ts --tree /tmp/sluice-before --out /tmp/mem.json
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_CONFIG_YAML } from '@sluice/config';
import { generateLineSet, type LineSet } from '@sluice/loadgen/line-set';
import { splitAddress, startDaemon } from './lib/daemon.ts';
import { runScenario, startBenchRgw, type RgwHandle } from './lib/scenario.ts';
import { median } from './lib/stats.ts';

const ALL = ['idle-default', 'idle-s3', 'trickle-default', 'burst-s3'] as const;
type Name = (typeof ALL)[number];

const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: ALL.join(',') },
    runs: { type: 'string', default: '3' },
    lines: { type: 'string', default: '1000000' },
    'idle-secs': { type: 'string', default: '10' },
    /** workers.threads for every scenario; absent = the default. */
    threads: { type: 'string' },
    tree: { type: 'string', multiple: true, default: [] },
    out: { type: 'string' },
  },
});
const names = values.scenarios.split(',').map((s) => s.trim()) as Name[];
for (const n of names) if (!ALL.includes(n)) throw new Error(`unknown scenario ${n}: ${ALL.join(', ')}`);
const RUNS = Number(values.runs);
const IDLE_MS = Number(values['idle-secs']) * 1000;
const THIS_TREE = new URL('../', import.meta.url).pathname.replace(/\/$/, '');
const trees = [THIS_TREE, ...values.tree.map((t) => resolve(t))];
const started = Date.now();
const log = (msg: string): void =>
  void process.stderr.write(`[memory ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);

/** The launcher of a checkout, run by sh as a supervisor would run it. */
const launcherOf = (tree: string): { node: string; cli: string } => ({
  node: '/bin/sh',
  cli: join(tree, 'apps/sluice/bin/sluice'),
});

interface Mem {
  rssMiB: number;
  hwmMiB: number;
  /** Anonymous pages (heaps, buffers): what grows with load. */
  anonMiB: number;
  /** File-backed pages (node, addons, shared libraries). */
  fileMiB: number;
}

function memNow(pid: number): Mem {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mib = (key: string): number =>
    +(Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024).toFixed(1);
  return { rssMiB: mib('VmRSS'), hwmMiB: mib('VmHWM'), anonMiB: mib('RssAnon'), fileMiB: mib('RssFile') };
}

/** The embedded default on ports 0 (the daemon runs in `dir`, so ./data is there), optionally with an aws_s3 sink. */
function defaultYaml(opts: {
  s3?: { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string };
}): string {
  let yaml = DEFAULT_CONFIG_YAML.replaceAll(/127\.0\.0\.1:\d+/g, '127.0.0.1:0');
  if (values.threads !== undefined)
    yaml = yaml.replace('# workers:\n#   threads: 4', `workers:\n  threads: ${values.threads}`);
  if (opts.s3 !== undefined) {
    process.env['BENCH_S3_SECRET'] = opts.s3.secretAccessKey;
    yaml += [
      '  s3:',
      '    type: aws_s3',
      '    inputs: [talos_service, talos_kernel]',
      `    endpoint: ${opts.s3.endpoint}`,
      `    bucket: ${opts.s3.bucket}`,
      `    region: ${opts.s3.region}`,
      `    access_key_id: ${opts.s3.accessKeyId}`,
      '    secret_access_key: ${BENCH_S3_SECRET}',
      '    force_path_style: true',
      '',
    ].join('\n');
  }
  return yaml;
}

let rgw: RgwHandle | undefined;
let bucketSeq = 0;
async function newBucket(): Promise<string> {
  const bucket = `mem-${Date.now().toString(36)}-${bucketSeq++}`;
  const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
  await rgw!.client().send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}
const s3Of = async (): Promise<{
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}> => ({
  endpoint: rgw!.endpoint,
  region: rgw!.region,
  accessKeyId: rgw!.accessKeyId,
  secretAccessKey: rgw!.secretAccessKey,
  bucket: await newBucket(),
});

async function idle(tree: string, withS3: boolean, trickle = false): Promise<Mem> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mem-'));
  try {
    const yaml = defaultYaml(withS3 ? { s3: await s3Of() } : {});
    const d = await startDaemon(dir, yaml, launcherOf(tree));
    let mem: ReturnType<typeof memNow>;
    let code: Awaited<ReturnType<typeof d.stop>>;
    try {
      if (trickle) {
        const { host, port } = splitAddress(d.sources['talos_service']![0]!);
        const socket = connect({ host, port });
        await once(socket, 'connect');
        for (let s = 0; s < IDLE_MS / 1000; s++) {
          socket.write(
            `{"msg":"trickle ${s}","talos-service":"bench","talos-level":"info","talos-time":"${new Date().toISOString()}"}\n`,
          );
          await sleep(1000);
        }
        socket.end();
      } else {
        await sleep(IDLE_MS);
      }
      mem = memNow(d.pid);
    } finally {
      code = await d.stop();
    }
    if (code !== 0) throw new Error(`sluice exited with ${code}\n${d.stderr()}`);
    return mem;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let lines: LineSet | undefined;
async function burst(
  tree: string,
): Promise<Mem & { linesPerSec: number; usPerLine: number; stored: number; duplicates: number; missing: number }> {
  lines ??= generateLineSet({ count: Number(values.lines), kind: 'service', seed: 1 });
  const s3 = await s3Of();
  const r = await runScenario({
    name: 'burst-s3',
    protocol: 'tcp',
    sink: 's3',
    lines,
    connections: 4,
    s3: { ...s3, client: rgw!.client() },
    start: launcherOf(tree),
    ...(values.threads === undefined ? {} : { configExtra: `workers: { threads: ${values.threads} }` }),
  });
  const exactlyOnce = r.output.unique === lines.count && r.output.duplicates === 0 && r.output.missing === 0;
  if (!exactlyOnce) log(`NOT exactly once: ${JSON.stringify(r.output)}`);
  return {
    rssMiB: r.mem.rssEndMiB,
    hwmMiB: r.mem.hwmMiB,
    anonMiB: NaN,
    fileMiB: NaN,
    linesPerSec: r.linesPerSec,
    usPerLine: r.cpu.usPerLine,
    stored: r.output.unique,
    duplicates: r.output.duplicates,
    missing: r.output.missing,
  };
}

if (names.some((n) => n === 'idle-s3' || n === 'burst-s3')) {
  log('starting Ceph RGW (scripts/ensure-ceph.sh installs Ceph when missing)');
  rgw = await startBenchRgw();
}

type Sample = Mem &
  Partial<{ linesPerSec: number; usPerLine: number; stored: number; duplicates: number; missing: number }>;
const results = new Map<string, Sample[]>();
const key = (tree: string, name: Name): string => `${name} @ ${tree}`;
try {
  for (const name of names) {
    for (let r = 0; r < RUNS; r++) {
      for (const tree of trees) {
        const sample: Sample =
          name === 'burst-s3' ? await burst(tree) : await idle(tree, name === 'idle-s3', name === 'trickle-default');
        log(`${name} run ${r + 1}/${RUNS} ${tree}: ${JSON.stringify(sample)}`);
        const list = results.get(key(tree, name)) ?? [];
        list.push(sample);
        results.set(key(tree, name), list);
      }
    }
  }
} finally {
  await rgw?.stop();
}

const spread = (xs: number[]): string =>
  `${median(xs).toFixed(1)} [${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}]`;
console.log(
  `\nMiB, median [min-max] of ${RUNS} runs${values.threads === undefined ? '' : `, workers.threads ${values.threads}`}`,
);
for (const name of names) {
  for (const tree of trees) {
    const s = results.get(key(tree, name))!;
    const figure =
      name === 'burst-s3'
        ? `peak RSS (VmHWM) ${spread(s.map((x) => x.hwmMiB))}, lines/s ${median(s.map((x) => x.linesPerSec!)).toFixed(0)}, µs CPU/line ${median(s.map((x) => x.usPerLine!)).toFixed(3)}, stored exactly once: ${s.every((x) => x.stored === Number(values.lines) && x.duplicates === 0 && x.missing === 0) ? 'yes' : 'NO'}`
        : `VmRSS ${spread(s.map((x) => x.rssMiB))} (anon ${spread(s.map((x) => x.anonMiB))}, file ${spread(s.map((x) => x.fileMiB))}), VmHWM ${spread(s.map((x) => x.hwmMiB))}`;
    console.log(`${name.padEnd(13)} ${tree === THIS_TREE ? 'this tree' : tree}: ${figure}`);
  }
}
if (values.out !== undefined)
  writeFileSync(
    values.out,
    `${JSON.stringify({ date: new Date(started).toISOString(), runs: RUNS, results: Object.fromEntries(results) }, null, 2)}\n`,
  );
