/**
 * `sluice read` scanning a file sink's archive, side by side with `zstd -dc | jq -c 'select(…)'`
 * on the same objects, and `zstd -dc > /dev/null` alone as the floor.
 *
 *   node_modules/.bin/node bench/read.bench.ts [--gb 1] [--rounds 5] [--keep DIR]
 *
 * `--scan where|since|none [--mb 50]` instead: the scan alone, in this thread, over --mb of the
 * same lines decompressed (written once to the temp directory), pushed in the archive's 256 KiB
 * frames, for a stable A/B under a loaded machine: instruction counts with
 * `valgrind --tool=callgrind --smc-check=all`, minus a `none` run (reading the file, no scan).
 *
 * The archive: seeded Talos service lines (apps/loadgen), tagged with a host and a cluster as a
 * source does, in zstd frames of one 256 KiB batch each (compressFrame, level 1: the daemon's
 * frames), 32 MiB of NDJSON per object, laid out as a file sink does (YYYY/MM/DD/HH:MM:SS-…).
 * It is written once per size into the temp directory and reused.
 *
 * Before timing, each scenario's output is checked against jq's: the same records, in the same
 * order. MB/s = NDJSON bytes of the archive over the wall time of the whole command, as a user
 * runs it (a child process, output to /dev/null). Scenarios run alternated, round by round.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32, serviceLine } from '@sluice/testkit';
import { compressFrame } from '@sluice/worker/codecs';
import { objectKey } from '@sluice/sinks/keys';
import { median } from './lib/stats.ts';
import type { RunSink } from 'sluice/read/output';
import { Filter, ObjectScanner } from 'sluice/read/scan';
import { parseRfc3339 } from 'sluice/read/time';

const { values } = parseArgs({
  options: {
    gb: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '5' },
    keep: { type: 'string' },
    only: { type: 'string' },
    scan: { type: 'string' },
    mb: { type: 'string', default: '50' },
  },
});
const TARGET_BYTES = Math.round(Number(values.gb) * 1e9);
const ROUNDS = Number(values.rounds);
const NODE = process.execPath;
const CLI = new URL('../apps/sluice/src/cli.ts', import.meta.url).pathname;
const BATCH_BYTES = 256 * 1024;
const OBJECT_BYTES = 32 * 1024 * 1024;
/** Records' talos-time: 1 ms apart from here (2025-11-22T08:26:40Z), so a 1 GB archive spans ~1 h. */
const BASE_MS = 1_763_800_000_000;
const HOSTS = ['10.5.0.2', '10.5.0.3', '10.5.0.4', '10.5.0.5'];

/** Writes the archive (once per size) and returns its directory and NDJSON bytes. */
function archive(): { dir: string; ndjsonBytes: number; files: string[] } {
  const dir = values.keep ?? join(tmpdir(), `sluice-read-bench-${TARGET_BYTES}`);
  const stamp = join(dir, '.complete');
  if (!existsSync(stamp)) {
    rmSync(dir, { recursive: true, force: true });
    const rand = mulberry32(20251122);
    let total = 0;
    let id = 0;
    let seq = 0;
    while (total < TARGET_BYTES) {
      const key = objectKey('talos/', BASE_MS + id, '0123456789abcdef', seq++, '.ndjson.zst');
      const frames: Uint8Array[] = [];
      let objectBytes = 0;
      while (objectBytes < OBJECT_BYTES && total < TARGET_BYTES) {
        const b = batchOf(rand, id);
        id = b.next;
        const bytes = Buffer.from(b.text);
        frames.push(compressFrame('zstd', bytes, 1));
        objectBytes += bytes.length;
        total += bytes.length;
      }
      mkdirSync(join(dir, key, '..'), { recursive: true });
      writeFileSync(join(dir, key), Buffer.concat(frames));
    }
    writeFileSync(stamp, String(total));
  }
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(dir);
  return { dir, ndjsonBytes: Number(execFileSync('cat', [stamp], { encoding: 'utf8' })), files };
}

/** The bench's lines, as one archive batch makes them. */
function batchOf(rand: () => number, first: number): { text: string; next: number } {
  let batch = '';
  let id = first;
  while (batch.length < BATCH_BYTES) {
    const line = serviceLine({ id, rand, baseTimeMs: BASE_MS });
    // Tags spliced at the end, as a source with host_key and extra_tags does.
    batch += `${line.slice(0, -1)},"cluster":"prod-eu-1","host":"${HOSTS[id % HOSTS.length]}"}\n`;
    id++;
  }
  return { text: batch, next: id };
}

/** --scan: one ObjectScanner over --mb of decompressed lines, in 256 KiB pieces. */
function scanOnly(mode: string): void {
  const bytes = Math.round(Number(values.mb) * 1e6);
  const file = join(tmpdir(), `sluice-read-scan-${bytes}.ndjson`);
  if (!existsSync(file)) {
    const rand = mulberry32(20251122);
    const parts: string[] = [];
    let total = 0;
    for (let id = 0; total < bytes; ) {
      const b = batchOf(rand, id);
      parts.push(b.text);
      total += b.text.length;
      id = b.next;
    }
    writeFileSync(`${file}.tmp`, parts.join(''));
    renameSync(`${file}.tmp`, file);
  }
  const data = readFileSync(file);
  const pieces: Buffer[] = [];
  for (let pos = 0; pos < data.length; pos += BATCH_BYTES) pieces.push(data.subarray(pos, pos + BATCH_BYTES));
  const where = mode === 'where' ? [{ path: ['talos-service'], value: 'etcd' }] : [];
  // The 50 MB span ~3.5 min from 08:26:40: about half the lines are after 08:28.
  const since = mode === 'since' ? parseRfc3339('2025-11-22T08:28:00Z')! : null;
  const filter = new Filter({ where, grep: null, since, until: null, format: 'ndjson', color: false });
  let out = 0;
  const sink: RunSink = {
    pushRun: (_b, start, end) => void (out += end - start),
    pushText: () => {},
    pieceDone: () => {},
    end: () => {},
  };
  const t0 = performance.now();
  let matched = 0;
  if (mode !== 'none') {
    const scanner = new ObjectScanner(filter, sink, undefined, false, false);
    for (const piece of pieces) scanner.push(piece);
    scanner.finish();
    matched = scanner.matched;
  }
  const s = (performance.now() - t0) / 1000;
  console.log(
    `scan ${mode}: ${(data.length / 1e6).toFixed(0)} MB, ${matched} records (${out} bytes) matched, ${(data.length / 1e6 / s).toFixed(0)} MB/s in this thread`,
  );
}

if (values.scan !== undefined) {
  scanOnly(values.scan);
  process.exit(0);
}

interface Scenario {
  name: string;
  sluice: string[];
  jq: string;
}

// The 5th of 9 services: ~11 % of the records. --since: the last ~40 % of the archive's hour.
const SCENARIOS: Scenario[] = [
  { name: 'where', sluice: ['--where', 'talos-service=etcd'], jq: 'select(."talos-service"=="etcd")' },
  {
    name: 'where+where',
    sluice: ['--where', 'talos-service=etcd', '--where', 'talos-level=error'],
    jq: 'select(."talos-service"=="etcd" and ."talos-level"=="error")',
  },
  { name: 'grep', sluice: ['--grep', 'certificate renewed'], jq: 'select(tostring|test("certificate renewed"))' },
  { name: 'since', sluice: ['--since', '2025-11-22T09:00:00Z'], jq: 'select(."talos-time" >= "2025-11-22T09:00:00")' },
];

function sh(cmd: string): { seconds: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd}\nexit ${r.status}: ${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

function quote(a: string): string {
  return `'${a.replaceAll("'", "'\\''")}'`;
}

function digest(lines: string): { n: number; sha: string } {
  // jq re-serializes (key order kept): compare records as parsed and re-stringified.
  const h = createHash('sha256');
  let n = 0;
  for (const line of lines.split('\n')) {
    if (line === '') continue;
    h.update(`${JSON.stringify(JSON.parse(line))}\n`);
    n++;
  }
  return { n, sha: h.digest('hex') };
}

const { dir, ndjsonBytes, files } = archive();
const fileList = files.map(quote).join(' ');
const sluiceCmd = (s: Scenario, out: string): string =>
  `${quote(NODE)} ${quote(CLI)} read --path ${quote(dir)} ${s.sluice.map(quote).join(' ')} > ${out}`;
const jqCmd = (s: Scenario, out: string): string => `zstd -dcq ${fileList} | jq -c ${quote(s.jq)} > ${out}`;
const scenarios = SCENARIOS.filter((s) => values.only === undefined || values.only.split(',').includes(s.name));
console.log(
  `archive ${dir}: ${files.length} objects, ${(ndjsonBytes / 1e6).toFixed(0)} MB NDJSON, ${(files.reduce((a, f) => a + statSync(f).size, 0) / 1e6).toFixed(0)} MB stored`,
);

// Correctness first: sluice and jq print the same records in the same order.
const tmp = join(tmpdir(), `sluice-read-bench-out-${process.pid}`);
for (const s of scenarios) {
  sh(sluiceCmd(s, `${tmp}.a`));
  sh(jqCmd(s, `${tmp}.b`));
  const a = digest(execFileSync('cat', [`${tmp}.a`], { encoding: 'utf8', maxBuffer: 1 << 30 }));
  const b = digest(execFileSync('cat', [`${tmp}.b`], { encoding: 'utf8', maxBuffer: 1 << 30 }));
  if (a.n !== b.n || a.sha !== b.sha)
    throw new Error(`${s.name}: sluice printed ${a.n} records, jq ${b.n} (or other ones)`);
  console.log(`${s.name}: ${a.n} records, same as jq`);
}
rmSync(`${tmp}.a`, { force: true });
rmSync(`${tmp}.b`, { force: true });

const times = new Map<string, number[]>();
const add = (name: string, s: number): void => void times.set(name, [...(times.get(name) ?? []), s]);
for (let r = 0; r < ROUNDS; r++) {
  add('zstd -dc > /dev/null', sh(`zstd -dcq ${fileList} > /dev/null`).seconds);
  for (const s of scenarios) {
    add(`sluice ${s.name}`, sh(sluiceCmd(s, '/dev/null')).seconds);
    add(`jq ${s.name}`, sh(jqCmd(s, '/dev/null')).seconds);
  }
  process.stdout.write(`round ${r + 1}/${ROUNDS} done\n`);
}
const fmt = (xs: number[]): string => {
  const mbs = xs.map((x) => ndjsonBytes / 1e6 / x).sort((a, b) => a - b);
  return `${median(mbs).toFixed(0)} MB/s (${mbs[0]!.toFixed(0)}-${mbs[mbs.length - 1]!.toFixed(0)}), ${median(xs).toFixed(2)} s`;
};
console.log(`\n${ROUNDS} rounds, ${(ndjsonBytes / 1e6).toFixed(0)} MB NDJSON; median (min-max)`);
for (const [name, xs] of times) console.log(`${name.padEnd(26)} ${fmt(xs)}`);
for (const s of scenarios) {
  const a = times.get(`sluice ${s.name}`)!;
  const b = times.get(`jq ${s.name}`)!;
  const ratios = a.map((x, i) => b[i]! / x).sort((x, y) => x - y);
  console.log(
    `${s.name}: sluice ${median(ratios).toFixed(1)}x faster than zstd | jq (${ratios[0]!.toFixed(1)}-${ratios[ratios.length - 1]!.toFixed(1)})`,
  );
}
