/**
 * The C++ headers generated from the shared constants (scripts/gen-native-constants.ts) are
 * what their TypeScript gives, and --check catches one that is not: CI runs it here as well as
 * in scripts/test.sh. Plus what the slot numbers must satisfy for the addon and BatchProcessor
 * to share one Float64Array.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as C from './native-constants.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const SCRIPT = join(ROOT, 'scripts/gen-native-constants.ts');
const SOURCES = ['packages/ring/src/record-format.ts', 'packages/worker/src/native-constants.ts'];
const HEADERS = ['packages/sources/native/generated-constants.h', 'packages/worker/native/generated-constants.h'];

function check(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, '--check', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

const copies: string[] = [];
afterAll(() => {
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the generator's inputs and outputs, with `from` replaced by `to` in `file`. */
function treeWith(file: string, from: string, to: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-gen-constants-'));
  copies.push(dir);
  for (const f of [...SOURCES, ...HEADERS]) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  const text = readFileSync(join(dir, file), 'utf8');
  expect(text).toContain(from);
  writeFileSync(join(dir, file), text.replace(from, to));
  return dir;
}

describe('generated-constants.h', () => {
  it('every checked-in header is what its TypeScript gives (gen-native-constants.ts --check)', () => {
    const r = check();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('--check fails and names each stale header when a TypeScript constant changes', () => {
    const slot = treeWith('packages/worker/src/native-constants.ts', 'S_F_HAS_TIME = 25;', 'S_F_HAS_TIME = 27;');
    const worker = check(`--root=${slot}`);
    expect(worker.status).toBe(1);
    expect(worker.stderr).toContain('packages/worker/native/generated-constants.h is stale');
    expect(worker.stderr).not.toContain('packages/sources/native');
    const flag = treeWith('packages/ring/src/record-format.ts', 'BLOCK_FLAG = 0x80;', 'BLOCK_FLAG = 0x40;');
    const ring = check(`--root=${flag}`);
    expect(ring.status).toBe(1);
    for (const h of HEADERS) expect(ring.stderr).toContain(`${h} is stale`);
  });
});

describe('the state slots', () => {
  it('are distinct, inside STATE_SLOTS, with one malformed count per reason before the index facts', () => {
    const slots = Object.entries(C)
      .filter(([k]) => k.startsWith('S_'))
      .map(([, v]) => v as number);
    const used = [...slots, ...C.MALFORMED_REASONS.map((_, i) => C.S_MALFORMED + i).slice(1)];
    expect(new Set(used).size).toBe(used.length);
    expect(used.every((s) => Number.isInteger(s) && s >= 0 && s < C.STATE_SLOTS)).toBe(true);
    expect(C.S_MALFORMED + C.MALFORMED_REASONS.length).toBe(C.S_F_RECORDS);
    expect(C.F_STRIDE).toBe(1 + 2 * C.MAX_FIELD_VALUES);
  });
});
