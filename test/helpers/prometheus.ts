/**
 * Prometheus's own programs for tests: `promtool` (lints an exposition) and the `prometheus`
 * server (startPrometheus runs one). prometheusBinaries() installs Debian's prometheus package through
 * scripts/ensure-prometheus.sh when either is missing (a no-op when both are there, about 10 s
 * of apt otherwise) and throws when they still cannot be found: a missing tool fails the test,
 * never skips it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll } from 'vitest';
import { waitUntil } from '@sluice/testkit';

const ENSURE = fileURLToPath(new URL('../../scripts/ensure-prometheus.sh', import.meta.url));
/** Where Debian's package puts them, for a PATH without /usr/bin (a test's env rarely lacks it). */
const FALLBACK_DIRS = ['/usr/bin', '/usr/local/bin', '/bin'];

export interface PrometheusBinaries {
  promtool: string;
  prometheus: string;
}

/** The absolute path of an executable named `name` on PATH (or in FALLBACK_DIRS), or undefined. */
function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...FALLBACK_DIRS];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here; try the next directory
    }
  }
  return undefined;
}

let found: PrometheusBinaries | undefined;

/** Both binaries, installing them first when one is missing. Call from beforeAll (allow a minute). */
export function prometheusBinaries(): PrometheusBinaries {
  if (found !== undefined) return found;
  execFileSync('bash', [ENSURE], { stdio: ['ignore', 'inherit', 'inherit'] });
  const promtool = findExecutable('promtool');
  const prometheus = findExecutable('prometheus');
  if (promtool === undefined || prometheus === undefined) {
    throw new Error(
      `scripts/ensure-prometheus.sh ran, yet ${promtool === undefined ? 'promtool' : 'prometheus'} is not on PATH (${process.env.PATH ?? ''})`,
    );
  }
  found = { promtool, prometheus };
  return found;
}

export interface LintResult {
  /** promtool's exit code: 0 clean, 3 lint problems, 1 a parse error. */
  status: number | null;
  /** stdout and stderr together: one line per problem, empty when clean. */
  output: string;
}

/** `promtool check metrics` over a Prometheus text exposition (what /metrics answers). */
export function promtoolCheckMetrics(exposition: string): LintResult {
  const { promtool } = prometheusBinaries();
  const r = spawnSync(promtool, ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

export interface PrometheusServer {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** GET `path` (e.g. `/api/v1/query`) with `params`; the `data` of a success answer, or throws with Prometheus's error. */
  api<T = unknown>(path: string, params?: Record<string, string>): Promise<T>;
  /** Everything it wrote on stderr so far (its log). */
  log(): string;
  stop(): Promise<void>;
}

/** A free loopback port, as the kernel hands out for port 0 (taken again by someone else at worst: the caller retries). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// Killed with the test process if that dies first (as the daemons of test/helpers/daemon.ts).
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * A real Prometheus server on loopback with the configuration `configYaml` and a fresh TSDB in
 * `dir`, ready (/-/ready answers 200). Prometheus cannot listen on port 0, so a free port is
 * picked and, if another process takes it first, the start is tried again on another one.
 */
export async function startPrometheus(configYaml: string, dir: string): Promise<PrometheusServer> {
  const { prometheus } = prometheusBinaries();
  const configPath = join(dir, 'prometheus.yml');
  writeFileSync(configPath, configYaml);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const argv = [
      prometheus,
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${join(dir, `tsdb-${attempt}`)}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=info',
    ];
    if (SETPRIV !== undefined) argv.unshift(SETPRIV, '--pdeathsig', 'KILL', '--');
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (log += c));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    let gone = false;
    void exited.then(() => (gone = true));
    const url = `http://127.0.0.1:${port}`;
    // Ready, or gone (a port taken meanwhile): a dead prometheus is not worth waiting 60 s for.
    const answers = async (): Promise<boolean> =>
      fetch(`${url}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
    const ready = await waitUntil('prometheus to be ready', async () => gone || (await answers()), 60_000).then(
      () => !gone,
      () => false,
    );
    if (!ready) {
      proc.kill('SIGKILL');
      await exited;
      if (/address already in use/.test(log) && attempt < 5) continue;
      throw new Error(`prometheus did not become ready on 127.0.0.1:${port}:\n${log}`);
    }
    return {
      url,
      log: () => log,
      async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
        const res = await fetch(`${url}${path}?${new URLSearchParams(params).toString()}`);
        const body = (await res.json()) as { status: string; data?: T; error?: string; errorType?: string };
        if (body.status !== 'success')
          throw new Error(
            `prometheus ${path} ${JSON.stringify(params)}: ${body.errorType ?? ''} ${body.error ?? res.status}`,
          );
        return body.data as T;
      },
      async stop(): Promise<void> {
        if (!gone) proc.kill('SIGTERM');
        await exited;
      },
    };
  }
}

/**
 * For a test file that needs promtool or prometheus: installs them before its tests when missing
 * (about 10 s of apt on a fresh machine); a failure fails the file.
 */
export function needPrometheus(): void {
  beforeAll(() => {
    prometheusBinaries();
  }, 600_000);
}
