/**
 * The real daemon as a child process for the end-to-end benchmark and the gate, and what the
 * benchmark reads about it from outside: CPU time per thread and memory from /proc, counters
 * from /metrics, kernel UDP drops from /proc/net/udp.
 *
 * CPU is read from /proc/<pid>/task/<tid>/stat (utime + stime, clock ticks), so the worker
 * threads, V8's GC helper threads and libuv's threadpool are all counted, and split by thread
 * name: `MainThread`, `WorkerThread` (piscina), `V8Worker` (GC, compiler), `libuv-worker`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
/**
 * The launcher users run (`sluice`, the image's entrypoint): `sluice run` restarts itself in
 * place with the runtime settings the daemon is measured with (apps/sluice/bin/sluice.js).
 */
const SLUICE_CLI = join(ROOT, 'apps/sluice/bin/sluice.js');

/** USER_HZ: /proc times are in these ticks. 100 on every Linux this runs on (getconf CLK_TCK). */
const TICKS_PER_SEC = 100;

export interface CpuSample {
  /** Microseconds of CPU (user + system) per thread group. */
  mainUs: number;
  workersUs: number;
  v8Us: number;
  libuvUs: number;
  otherUs: number;
  totalUs: number;
}

export interface MemSample {
  /** Peak resident set (VmHWM), KiB. */
  hwmKiB: number;
  /** Resident set now (VmRSS), KiB. */
  rssKiB: number;
}

function ticksOf(statLine: string): number {
  // Fields after the command name (which may contain spaces, in parentheses): utime is field 14, stime 15.
  const rest = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/** CPU time of every thread of `pid`, grouped. Threads that exited are lost: sample while it runs. */
export function cpuOf(pid: number): CpuSample {
  const s: CpuSample = { mainUs: 0, workersUs: 0, v8Us: 0, libuvUs: 0, otherUs: 0, totalUs: 0 };
  // The process-wide line includes threads that already exited; the per-thread split does not.
  s.totalUs = (ticksOf(readFileSync(`/proc/${pid}/stat`, 'utf8')) * 1e6) / TICKS_PER_SEC;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let comm: string;
    let stat: string;
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread exited meanwhile
    }
    const us = (ticksOf(stat) * 1e6) / TICKS_PER_SEC;
    if (Number(tid) === pid) s.mainUs += us;
    else if (comm.startsWith('WorkerThread')) s.workersUs += us;
    else if (comm.startsWith('V8Worker') || comm.startsWith('DelayedTaskSche')) s.v8Us += us;
    else if (comm.startsWith('libuv-worker')) s.libuvUs += us;
    else s.otherUs += us;
  }
  return s;
}

/**
 * CPU time of every live thread of `pid` in µs, from /proc/<pid>/task/<tid>/schedstat (the
 * scheduler's run time in ns): finer than /proc/<pid>/stat's 10 ms clock ticks, which are ±3 %
 * of a 300 ms sample. Threads that exited are not counted: compare readings of one set of
 * threads (the gate's daemons keep theirs for their life).
 */
export function cpuPreciseUs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // the thread exited meanwhile
    }
  }
  return ns / 1000;
}

export function cpuDelta(a: CpuSample, b: CpuSample): CpuSample {
  return {
    mainUs: b.mainUs - a.mainUs,
    workersUs: b.workersUs - a.workersUs,
    v8Us: b.v8Us - a.v8Us,
    libuvUs: b.libuvUs - a.libuvUs,
    otherUs: b.otherUs - a.otherUs,
    totalUs: b.totalUs - a.totalUs,
  };
}

export function memOf(pid: number): MemSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { hwmKiB: kib('VmHWM'), rssKiB: kib('VmRSS') };
}

export interface Daemon {
  proc: ChildProcess;
  pid: number;
  /** host:port per source id. */
  sources: Record<string, string[]>;
  apiPort: number;
  stderr(): string;
  /** Every log line after startup (JSON), for the report when something went wrong. */
  logs: string[];
  /** SIGTERM (drain) and the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartOptions {
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Default 30 s. */
  timeoutMs?: number;
  /** Every line the daemon prints on stdout is appended there too. */
  logFile?: string;
  /** The Node.js binary. Default: the one running this. */
  node?: string;
  /** The launcher. Default: this tree's {@link SLUICE_CLI}; the gate passes the reference tree's. */
  cli?: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
}

/** `node apps/sluice/bin/sluice.js run --config <dir>/sluice.yaml`, resolved once it logs "sluice is running". */
export async function startDaemon(dir: string, yaml: string, opts: StartOptions = {}): Promise<Daemon> {
  const { nodeArgs = [], timeoutMs = 30_000, logFile } = opts;
  const configPath = join(dir, 'sluice.yaml');
  writeFileSync(configPath, yaml);
  const proc = spawn(
    opts.node ?? process.execPath,
    [...nodeArgs, opts.cli ?? SLUICE_CLI, 'run', '--config', configPath],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } },
  );
  let err = '';
  let partial = '';
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const running = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sluice did not start within ${timeoutMs} ms\n${err}`)), timeoutMs);
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (logs.length < 1000) logs.push(line);
        if (logFile !== undefined) appendFileSync(logFile, `${line}\n`);
        if (line.includes('"sluice is running"')) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as Record<string, unknown>);
        }
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => (err += chunk));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`sluice exited with ${code} before it was running\n${err}\n${logs.join('\n')}`));
    });
  });
  const rec = await running;
  return {
    proc,
    pid: proc.pid!,
    sources: rec['sources'] as Record<string, string[]>,
    apiPort: rec['api_port'] as number,
    stderr: () => err,
    logs,
    exited,
    stop: async (signal = 'SIGTERM') => {
      proc.kill(signal);
      return exited;
    },
  };
}

// One reader of /metrics and of `host:port` for tests and benchmarks.
export { metricSum, scrape, splitAddress } from '@sluice/tests/helpers/daemon';

export { median } from './stats.ts';
