/**
 * The workspace rules Biome and knip do not check, run by `npm run lint`:
 *
 * 1. Every `exports` and `bin` target of every workspace package.json exists.
 * 2. No relative import leaves its package: a module of another package is imported by that
 *    package's name and one of its `exports` (static, dynamic and `typeof import()` forms
 *    alike). The repository's own tooling in scripts/ belongs to no package and may be
 *    imported by the tests that check it.
 * 3. Every workspace package a file imports by name is declared in its package.json.
 *
 *   node scripts/lint-packages.ts        prints each problem as `file: message`, exits 1 if any
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

interface Manifest {
  name: string;
  exports?: Record<string, string>;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const ROOT = normalize(join(import.meta.dirname, '..'));
const rootManifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };

/** Workspace directories relative to the root, e.g. `packages/ring`, `bench`. */
function workspaceDirs(): string[] {
  const dirs: string[] = [];
  for (const pattern of rootManifest.workspaces) {
    if (pattern.endsWith('/*')) {
      const parent = pattern.slice(0, -2);
      const listed = execFileSync('git', ['ls-files', '--', `${parent}/*/package.json`], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      for (const line of listed.split('\n')) if (line.split('/').length === 3) dirs.push(dirname(line));
    } else {
      dirs.push(pattern);
    }
  }
  return dirs;
}

// Import specifiers: `from '...'`, `import('...')`, `import '...'`, `require('...')`.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"]+)['"]/g;

export function lintPackages(): string[] {
  const problems: string[] = [];
  const dirs = workspaceDirs();
  const manifests = new Map<string, Manifest>();
  for (const dir of dirs)
    manifests.set(dir, JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as Manifest);
  const names = new Set([...manifests.values()].map((m) => m.name));

  for (const [dir, manifest] of manifests) {
    const where = `${dir}/package.json`;
    for (const [key, target] of Object.entries(manifest.exports ?? {})) {
      if (!existsSync(join(ROOT, dir, target)))
        problems.push(`${where}: exports["${key}"] names ${target}, which does not exist`);
    }
    for (const [key, target] of Object.entries(manifest.bin ?? {})) {
      if (!existsSync(join(ROOT, dir, target)))
        problems.push(`${where}: bin["${key}"] names ${target}, which does not exist`);
    }
    const declared = new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.devDependencies ?? {}),
    ]);
    const files = execFileSync('git', ['ls-files', '--', `${dir}/*.ts`, `${dir}/*.js`], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((f) => f !== '' && existsSync(join(ROOT, f)));
    for (const file of files) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const match of text.matchAll(SPECIFIER)) {
        const spec = match[1] as string;
        if (spec.startsWith('.')) {
          const target = relative(ROOT, normalize(join(ROOT, dirname(file), spec)));
          if (!target.startsWith(`${dir}/`) && !target.startsWith('scripts/')) {
            problems.push(`${file}: '${spec}' reaches ${target}, outside ${dir}: import it by its package name`);
          }
          continue;
        }
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string);
        if (names.has(name) && name !== manifest.name && !declared.has(name)) {
          problems.push(`${file}: imports ${name}, which ${where} does not declare`);
        }
      }
    }
  }
  return problems;
}

if (import.meta.main) {
  const problems = lintPackages();
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`lint-packages: ${problems.length} problem(s)`);
    process.exit(1);
  }
  console.log(
    'lint-packages: every export and bin exists, no import leaves its package, every workspace import declared',
  );
}
