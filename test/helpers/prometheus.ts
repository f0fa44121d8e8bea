/**
 * Prometheus's own programs for tests: `promtool` (lints an exposition) and the `prometheus`
 * server. prometheusBinaries() installs Debian's prometheus package through
 * scripts/ensure-prometheus.sh when either is missing (a no-op when both are there, about 10 s
 * of apt otherwise) and throws when they still cannot be found: a missing tool fails the test,
 * never skips it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ENSURE = fileURLToPath(new URL('../../scripts/ensure-prometheus.sh', import.meta.url));
/** Where Debian's package puts them, for a PATH without /usr/bin (a test's env rarely lacks it). */
const FALLBACK_DIRS = ['/usr/bin', '/usr/local/bin', '/bin'];

export interface PrometheusBinaries {
  promtool: string;
  prometheus: string;
}

/** The absolute path of an executable named `name` on PATH (or in FALLBACK_DIRS), or undefined. */
export function findExecutable(name: string): string | undefined {
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
    throw new Error(`scripts/ensure-prometheus.sh ran, yet ${promtool === undefined ? 'promtool' : 'prometheus'} is not on PATH (${process.env.PATH ?? ''})`);
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
