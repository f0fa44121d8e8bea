import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from '@mongodb-js/zstd';
import { isIndexKey } from '@sluice/sinks/registry';

const ROOT = new URL('../../', import.meta.url).pathname;
const CLI = join(ROOT, 'apps/sluice/src/cli.ts');
/** The launcher users run: `sluice run` restarts itself in place with its runtime settings. */
const LAUNCHER = join(ROOT, 'apps/sluice/bin/sluice.js');

export interface RunningDaemon {
  proc: ChildProcess;
  /** Bound addresses per source id, `host:port`. */
  sources: Record<string, string[]>;
  apiPort: number;
  /** Every engine log line so far, parsed. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Send a signal and resolve with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

// A test that fails before stopping its daemon must not leave it running: vitest ends its
// worker processes without running 'exit' handlers, so the kernel kills the daemon when the
// test process dies (setpriv --pdeathsig, util-linux; setpriv execs, so the pid is the daemon's).
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export function tempDir(prefix = 'sluice-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Start `sluice run --config <file>` as a real child process on the repo's Node 24 (`launcher`:
 * through bin/sluice.js), or as `...command run --config <file>` (say the sh launcher
 * bin/sluice, which picks its own Node).
 */
export async function startDaemon(
  configYaml: string,
  opts: { dir?: string; env?: Record<string, string>; launcher?: boolean; command?: readonly string[] } = {},
): Promise<RunningDaemon> {
  const dir = opts.dir ?? tempDir();
  const configPath = join(dir, 'sluice.yaml');
  writeFileSync(configPath, configYaml);
  const argv =
    opts.command !== undefined
      ? [...opts.command, 'run', '--config', configPath]
      : [process.execPath, opts.launcher === true ? LAUNCHER : CLI, 'run', '--config', configPath];
  if (SETPRIV !== undefined) argv.unshift(SETPRIV, '--pdeathsig', 'KILL', '--');
  const proc = spawn(argv[0]!, argv.slice(1), {
    cwd: dir,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let err = '';
  let partial = '';
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const running = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec['msg'] === 'sluice is running') resolve(rec);
        } catch {
          logs.push({ raw: line });
        }
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => (err += chunk));
    void exited.then((code) =>
      reject(new Error(`sluice exited with ${code} before it was running\n${err}\n${JSON.stringify(logs)}`)),
    );
  });
  const rec = await running;
  return {
    proc,
    sources: rec['sources'] as Record<string, string[]>,
    apiPort: rec['api_port'] as number,
    logs,
    stderr: () => err,
    exited,
    stop: async (signal = 'SIGTERM') => {
      proc.kill(signal);
      return exited;
    },
  };
}

/** host and port of `host:port` / `[v6]:port`. */
export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/** Every object file under dir (skipping temporary files), relative paths sorted. */
/** Send lines over one TCP connection (newline-terminated) and resolve once it is closed. */
export function sendTcpLines(address: string, lines: readonly string[]): Promise<void> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => s.end(lines.map((l) => `${l}\n`).join('')));
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

/** Send each datagram to a udp source (`host:port`), one after another. */
export async function sendUdp(address: string, datagrams: readonly string[]): Promise<void> {
  const { host, port } = splitAddress(address);
  const udp = createSocket('udp4');
  for (const d of datagrams)
    await new Promise<void>((resolve, reject) => udp.send(d, port, host, (err) => (err ? reject(err) : resolve())));
  udp.close();
}

/** POST `body` to a splunk_hec source's event endpoint; resolves with the status. */
export async function hecPost(address: string, token: string, body: string): Promise<number> {
  const res = await fetch(`http://${address}/services/collector/event`, {
    method: 'POST',
    headers: { authorization: `Splunk ${token}` },
    body,
  });
  await res.arrayBuffer();
  return res.status;
}

/** The objects under `dir` (index sidecars left out), relative paths, sorted. */
export function listObjects(dir: string): string[] {
  return listFiles(dir).filter((p) => !isIndexKey(p));
}

/** The index sidecars under `dir`, relative paths, sorted. */
export function listIndexes(dir: string): string[] {
  return listFiles(dir).filter((p) => isIndexKey(p));
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * Decompress an object by its extension and return its lines. zstd goes through
 * @mongodb-js/zstd: node:zlib's zstdDecompressSync (Node 24.21) decodes only the first of
 * concatenated frames (nodejs/node#64741), and an object is many frames.
 */
export async function readObjectLines(path: string): Promise<string[]> {
  const raw = readFileSync(path);
  const data = path.endsWith('.zst') ? await zstdDecompress(raw) : path.endsWith('.gz') ? gunzipSync(raw) : raw;
  const text = data.toString('utf8');
  if (text.length === 0) return [];
  if (!text.endsWith('\n')) throw new Error(`${path}: the last record has no newline`);
  return text.slice(0, -1).split('\n');
}

/** Scrape /metrics and return `name{labels}` → value. */
export async function scrape(apiPort: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${apiPort}/metrics`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** Sum of every series of a metric whose labels include all of `match`. */
export function metricSum(metrics: Map<string, number>, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const [key, value] of metrics) {
    const brace = key.indexOf('{');
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const labels = brace < 0 ? '' : key.slice(brace);
    if (Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}
