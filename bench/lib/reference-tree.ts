/**
 * The gate's reference: the commit named in bench/reference, checked out into a git worktree
 * outside the repository and installed there (`npm ci`, which builds its native addons), so
 * that the gate can run the reference's code next to the tree under test.
 *
 * A worktree that was installed once is reused (a stamp file names the commit it holds). Every
 * failure is one line that says what went wrong, and the gate fails on it: a gate that cannot
 * measure the reference never passes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
const REFERENCE_FILE = join(ROOT, 'bench/reference');
const STAMP = '.sluice-gate-ready';

export interface Tree {
  /** `head` (the tree under test) or `reference`. */
  name: 'head' | 'reference';
  /** The tree's root directory. */
  root: string;
  /** Commit (the reference) or `HEAD` plus a note when the working tree is dirty. */
  label: string;
  /** The Node.js the tree's package.json installed (node_modules/.bin/node). */
  node: string;
}

/** A failure the gate reports in one line and fails on. */
export class GateSetupError extends Error {}

/** The commit bench/reference names: the first line that is not blank or a `#` comment. */
export function referenceSha(file = REFERENCE_FILE): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new GateSetupError(`bench/reference is missing: it must name the reference commit (40 hex digits)`);
  }
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (line === undefined || !/^[0-9a-f]{40}$/.test(line)) {
    throw new GateSetupError(
      `bench/reference does not name a commit: expected 40 lowercase hex digits, found ${JSON.stringify(line ?? '')}`,
    );
  }
  return line;
}

function git(args: string[], cwd = ROOT, timeoutMs?: number): { ok: boolean; out: string } {
  const r = spawnSync('git', args, {
    cwd,
    encoding: 'utf8',
    ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
  });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

export function headTree(): Tree {
  const sha = git(['rev-parse', '--short=12', 'HEAD']).out;
  const dirty = git(['status', '--porcelain', '--untracked-files=no']).out !== '';
  return {
    name: 'head',
    root: ROOT,
    label: `${sha}${dirty ? ' + uncommitted changes' : ''}`,
    node: join(ROOT, 'node_modules/.bin/node'),
  };
}

export interface ReferenceOptions {
  /** Default: the commit bench/reference names. */
  sha?: string;
  /** Default: $SLUICE_GATE_REF_DIR or <tmp>/sluice-gate-ref/<sha>. */
  dir?: string;
  /** Whether a shallow clone that lacks the commit may fetch it from origin. Default true. */
  fetch?: boolean;
}

/** The reference tree, checked out and installed (or reused). */
export function referenceTree(log: (msg: string) => void, opts: ReferenceOptions = {}): Tree {
  const sha = opts.sha ?? referenceSha();
  const dir = opts.dir;
  const short = sha.slice(0, 12);
  if (!git(['cat-file', '-e', `${sha}^{commit}`]).ok) {
    // A shallow clone may lack it: ask the origin for that one commit before giving up.
    const fetched =
      opts.fetch !== false &&
      git(['rev-parse', '--is-shallow-repository']).out === 'true' &&
      git(['fetch', '--quiet', '--no-tags', '--depth=1', 'origin', sha], ROOT, 120_000).ok;
    if (!fetched || !git(['cat-file', '-e', `${sha}^{commit}`]).ok) {
      throw new GateSetupError(
        `the reference commit ${short} (bench/reference) is not in this clone: fetch it (a shallow clone needs git fetch --unshallow)`,
      );
    }
    log(`reference ${short}: fetched from origin into this shallow clone`);
  }
  const where = dir ?? process.env['SLUICE_GATE_REF_DIR'] ?? join(tmpdir(), 'sluice-gate-ref', sha);
  const tree: Tree = { name: 'reference', root: where, label: short, node: join(where, 'node_modules/.bin/node') };
  const stamp = join(where, STAMP);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === sha && existsSync(tree.node)) {
    log(`reference ${short}: reusing ${where}`);
    return tree;
  }
  const started = performance.now();
  rmSync(where, { recursive: true, force: true });
  git(['worktree', 'prune']);
  mkdirSync(join(where, '..'), { recursive: true });
  const add = git(['worktree', 'add', '--detach', '--force', where, sha]);
  if (!add.ok)
    throw new GateSetupError(
      `the reference commit ${short} could not be checked out into ${where}: ${lastLine(add.out)}`,
    );
  // CI=true: a native addon that does not build fails the install instead of falling back, as in CI.
  const logFile = join(where, '..', `${sha}.install.log`);
  // npm_* variables of an enclosing `npm run` would point the nested install at this repository.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') && k !== 'INIT_CWD'),
  );
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
    cwd: where,
    encoding: 'utf8',
    env: { ...env, CI: 'true' },
  });
  writeFileSync(logFile, `${npm.stdout ?? ''}${npm.stderr ?? ''}`);
  if (npm.status !== 0) {
    throw new GateSetupError(
      `the reference commit ${short} could not be built: npm ci exited with ${npm.status ?? npm.signal}: ${firstError(`${npm.stdout ?? ''}\n${npm.stderr ?? ''}`)}; full log: ${logFile}`,
    );
  }
  for (const addon of [
    'packages/worker/build-native/batch.node',
    'packages/worker/build-native/zstd.node',
    'packages/sources/build/udp_recv.node',
  ]) {
    if (!existsSync(join(where, addon)))
      throw new GateSetupError(
        `the reference commit ${short} could not be built: npm ci did not build ${addon}; full log: ${logFile}`,
      );
  }
  if (!existsSync(tree.node))
    throw new GateSetupError(
      `the reference commit ${short} could not be built: npm ci installed no node_modules/.bin/node; full log: ${logFile}`,
    );
  writeFileSync(stamp, `${sha}\n`);
  log(
    `reference ${short}: checked out and installed in ${where} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );
  return tree;
}

/** The line that says why an install failed: the first ERROR or error line, npm's own last. */
function firstError(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return (
    lines.find((l) => /\bERROR\b/.test(l)) ??
    lines.find((l) => /\berror\b/.test(l) && !l.startsWith('npm error')) ??
    lastLine(text)
  );
}

function lastLine(text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  return lines.length === 0 ? 'no output' : lines[lines.length - 1]!.trim();
}
