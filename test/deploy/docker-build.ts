/**
 * The Dockerfile without Docker: a parser for its instructions and stages, a .dockerignore
 * matcher, and a replay of the build into a directory (the deps stage's RUN executed for real,
 * every COPY of the final stage emulated), so that the tree the image would hold can be run.
 *
 * The replay covers what this Dockerfile uses: `COPY . .` + the `find` of the first stage
 * that keeps the files it names (`! -name` / `! -path`), the deps stage's RUNs, and COPY (from
 * the context or `--from=<stage>`) in the final stage. apt-get, useradd and USER are not
 * replayed (they need a Debian image and root); dockerfile.test.ts checks those statically,
 * and that the tools the deps stage installs are on this machine.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Instructions with continuation lines joined and comments dropped (as BuildKit reads them). */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split('\n');
  const instructions: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (first === '' || first.startsWith('#')) continue;
    const start = i;
    let joined = lines[i]!;
    while (joined.trimEnd().endsWith('\\') && i + 1 < lines.length) {
      joined = joined.trimEnd().slice(0, -1);
      i++;
      if (lines[i]!.trim().startsWith('#')) continue; // comment lines inside a continuation are dropped
      joined += ` ${lines[i]!.trim()}`;
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(joined)!;
    instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ').trim(), line: start + 1 });
  }
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (m === null) throw new Error(`Dockerfile:${ins.line}: cannot read FROM ${ins.args}`);
      stages.push({ image: m[1]!, name: m[2], instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`Dockerfile:${ins.line}: ${ins.keyword} before the first FROM`);
      const [k, v] = ins.args.split('=');
      globalArgs[k!] = v ?? '';
    } else stages.at(-1)!.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** Flags (`--from=deps`, `--chown=…`) and the rest of an instruction's arguments. */
export function splitFlags(args: string): { flags: Record<string, string>; rest: string[] } {
  const flags: Record<string, string> = {};
  const words = args.split(' ');
  let i = 0;
  for (; i < words.length && words[i]!.startsWith('--'); i++) {
    const eq = words[i]!.indexOf('=');
    flags[words[i]!.slice(2, eq < 0 ? undefined : eq)] = eq < 0 ? '' : words[i]!.slice(eq + 1);
  }
  return { flags, rest: words.slice(i) };
}

/**
 * A .dockerignore as BuildKit applies it: patterns relative to the context root, `*` and `?`
 * within one path segment, `**` across segments, a pattern that matches a directory excludes
 * everything below it, `!` re-includes, the last matching line wins.
 */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ''));
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          if (pattern[i + 2] === '/') {
            re += '(?:.*/)?';
            i += 2;
          } else {
            re += '.*';
            i += 1;
          }
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}(?:/.*)?$`) };
    });
  return (path: string) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(path)) excluded = !r.negate;
    return excluded;
  };
}

/** Files of the build context (relative paths), after .dockerignore. */
export function contextFiles(root: string): string[] {
  const ignored = dockerignore(
    existsSync(join(root, '.dockerignore')) ? readFileSync(join(root, '.dockerignore'), 'utf8') : '',
  );
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      // Never walked: huge, and excluded by the rules (dockerfile.test.ts checks that they are).
      if (name === 'node_modules' || path === '.git') continue;
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (!ignored(path)) out.push(path);
    }
  };
  walk('');
  return out.sort();
}

/** The build replayed into `out`: returns the final stage's root directory (`/` of the image). */
export function replayBuild(
  root: string,
  out: string,
  env: NodeJS.ProcessEnv = process.env,
): { imageRoot: string; runLog: string } {
  const df = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  const files = contextFiles(root);
  const stageRoots = new Map<string, string>();
  let runLog = '';
  const [manifests, deps, runtime] = df.stages;
  if (manifests === undefined || deps === undefined || runtime === undefined || df.stages.length !== 3)
    throw new Error('expected three stages: manifests, deps, runtime');

  // Stage 1: COPY . . then keep what its `find … -delete` keeps.
  const mRoot = join(out, manifests.name!);
  const mWorkdir = manifests.instructions.find((i) => i.keyword === 'WORKDIR')!.args;
  const keep = findKeeps(manifests.instructions.find((i) => i.keyword === 'RUN')!.args);
  for (const f of files) {
    if (!keep(f)) continue;
    mkdirSync(dirname(join(mRoot, mWorkdir, f)), { recursive: true });
    cpSync(join(root, f), join(mRoot, mWorkdir, f));
  }
  stageRoots.set(manifests.name!, mRoot);

  // Stage 2: COPY --from=manifests, then its RUNs for real (without the BuildKit --mount
  // flags), except apt-get (checked statically).
  const dRoot = join(out, deps.name!);
  let workdir = '/';
  for (const ins of deps.instructions) {
    if (ins.keyword === 'WORKDIR') workdir = ins.args;
    else if (ins.keyword === 'COPY') copy(ins, stageRoots, root, dRoot, workdir);
    else if (ins.keyword === 'RUN' && !ins.args.startsWith('apt-get ')) {
      const { rest } = splitFlags(ins.args);
      mkdirSync(join(dRoot, workdir), { recursive: true });
      runLog += execFileSync('sh', ['-c', rest.join(' ')], {
        cwd: join(dRoot, workdir),
        env,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    }
  }
  stageRoots.set(deps.name!, dRoot);

  // Stage 3: every COPY, and the RUNs that are Node scripts (the worker build) for real; the
  // rest (users, directories) is checked statically.
  const rRoot = join(out, runtime.name!);
  workdir = '/';
  for (const ins of runtime.instructions) {
    if (ins.keyword === 'WORKDIR') workdir = ins.args;
    else if (ins.keyword === 'COPY') copy(ins, stageRoots, root, rRoot, workdir);
    else if (ins.keyword === 'RUN' && ins.args.startsWith('node ')) {
      runLog += execFileSync('sh', ['-c', ins.args], {
        cwd: join(rRoot, workdir),
        env,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    }
  }
  return { imageRoot: rRoot, runLog };
}

/**
 * The files (context paths) that the first `find . -type f ! -name A ! -path ./B … -delete` of
 * a RUN leaves in place: `-name` matches the base name, `-path` the `./`-prefixed path, and
 * `*` matches any characters, `/` included, as in find.
 */
export function findKeeps(run: string): (path: string) => boolean {
  const first = run.split('&&')[0]!;
  const glob = (p: string): RegExp =>
    new RegExp(
      `^${p
        .replace(/^'|'$/g, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
  const names = [...first.matchAll(/! -name (\S+)/g)].map((m) => glob(m[1]!));
  const paths = [...first.matchAll(/! -path (\S+)/g)].map((m) => glob(m[1]!));
  if (names.length === 0 && paths.length === 0)
    throw new Error(`expected \`find … ! -name … -delete\` in the first stage, got: ${first}`);
  return (path) => names.some((re) => re.test(basename(path))) || paths.some((re) => re.test(`./${path}`));
}

function copy(ins: Instruction, stages: Map<string, string>, context: string, dest: string, workdir: string): void {
  const { flags, rest } = splitFlags(ins.args);
  const to = rest.at(-1)!;
  const target = join(dest, to.startsWith('/') ? to : posix.join(workdir, to));
  for (const src of rest.slice(0, -1)) {
    if (flags['from'] !== undefined) {
      const from = stages.get(flags['from']);
      if (from === undefined) throw new Error(`Dockerfile:${ins.line}: no stage ${flags['from']}`);
      const file = !statSync(join(from, src)).isDirectory() && !to.endsWith('/');
      mkdirSync(file ? dirname(target) : target, { recursive: true });
      cpSync(join(from, src), target, { recursive: true, verbatimSymlinks: true });
      continue;
    }
    // From the context: only files that .dockerignore lets through.
    const prefix = posix.normalize(src).replace(/\/$/, '').replace(/^\.$/, '');
    const chosen = contextFiles(context).filter((f) => prefix === '' || f === prefix || f.startsWith(`${prefix}/`));
    if (chosen.length === 0) throw new Error(`Dockerfile:${ins.line}: COPY ${src}: nothing in the build context`);
    for (const f of chosen) {
      // `COPY a/file dir/` puts it at dir/file, `COPY a/file path` at path.
      const dst =
        f === prefix
          ? to.endsWith('/')
            ? join(target, basename(f))
            : target
          : join(target, prefix === '' ? f : f.slice(prefix.length + 1));
      mkdirSync(dirname(dst), { recursive: true });
      cpSync(join(context, f), dst);
    }
  }
}
