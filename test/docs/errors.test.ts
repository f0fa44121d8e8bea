/**
 * One error catalogue: every SLUICE_ERR_* code the sources, tests and docs use is in
 * @sluice/schema's ERROR_CODES, and docs/errors.md has a section for each code of the
 * catalogue and names no other.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '@sluice/schema';

const ROOT = new URL('../../', import.meta.url);
const DOC = readFileSync(new URL('docs/errors.md', ROOT), 'utf8');
const CATALOGUE = new Set<string>(Object.keys(ERROR_CODES));

/** A code, or the start of one built from pieces (`SLUICE_ERR_S3_` + ...): not followed by `*`. */
const CODE = /SLUICE_ERR_[A-Z0-9_]*(?![A-Z0-9_*])/g;

/** Where codes are written: every package's and app's sources (native included), the tests, the benches, the docs. */
const TREES = ['packages', 'apps', 'test', 'bench', 'scripts', 'docs'];
const FILE = /\.(ts|js|cc|h|md|sh)$/;
const SKIP_DIR = /^(node_modules|build(-.*)?|\..*)$/;
const SELF = new URL(import.meta.url).pathname;

function files(dir: URL, out: URL[] = []): URL[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIR.test(e.name)) files(new URL(`${e.name}/`, dir), out);
    } else if (e.isFile() && FILE.test(e.name)) {
      out.push(new URL(e.name, dir));
    }
  }
  return out;
}

/** `path:line: code` for every code in the tree that is not in the catalogue. */
function strays(): string[] {
  const out: string[] = [];
  const sources = [...TREES.flatMap((t) => files(new URL(`${t}/`, ROOT))), new URL('README.md', ROOT)];
  for (const file of sources) {
    if (file.pathname === SELF) continue;
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const m of line.matchAll(CODE)) {
        if (!CATALOGUE.has(m[0])) out.push(`${file.pathname.slice(new URL(ROOT).pathname.length)}:${i + 1}: ${m[0]}`);
      }
    });
  }
  return out;
}

/** The `### \`SLUICE_ERR_...\`` sections of docs/errors.md, in order, with their text. */
function sections(): Map<string, string> {
  const out = new Map<string, string>();
  const parts = DOC.split(/^### `(SLUICE_ERR_[A-Z0-9_]+)`$/m);
  for (let i = 1; i < parts.length; i += 2) {
    expect(out.has(parts[i]!), `${parts[i]} has two sections`).toBe(false);
    out.set(parts[i]!, parts[i + 1]!.split(/^## /m)[0]!);
  }
  return out;
}

describe('the error catalogue', () => {
  it('holds every SLUICE_ERR_* code written in the sources, tests, scripts and docs', () => {
    expect(strays(), 'codes not in ERROR_CODES (packages/schema/src/error-codes.ts)').toEqual([]);
  });

  it('gives each code a one-line meaning and is frozen', () => {
    expect(CATALOGUE.size).toBeGreaterThan(0);
    expect(Object.isFrozen(ERROR_CODES)).toBe(true);
    for (const [code, meaning] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^SLUICE_ERR_[A-Z0-9_]+$/);
      expect(meaning, code).toMatch(/^\S[^\n]*$/);
    }
  });
});

describe('docs/errors.md', () => {
  it('has one section per catalogue code, and none for another code', () => {
    const documented = [...sections().keys()];
    expect(
      [...CATALOGUE].filter((c) => !documented.includes(c)),
      'in ERROR_CODES but no section',
    ).toEqual([]);
    expect(
      documented.filter((c) => !CATALOGUE.has(c)),
      'a section for a code not in ERROR_CODES',
    ).toEqual([]);
  });

  it('says for each code what it means, when it happens, what to do, and shows a message', () => {
    for (const [code, text] of sections()) {
      for (const part of ['**Means:**', '**When:**', '**Do:**', '**Example:**']) {
        expect(text, `${code}: ${part}`).toContain(part);
      }
      expect(text, `${code}: an example message in a code block`).toMatch(/^```\n[^\n]+\n(.*\n)*```$/m);
    }
  });

  it("lists every code in its table with its meaning, linked to its section, in the catalogue's order", () => {
    const rows = [...DOC.matchAll(/^\| \[`(SLUICE_ERR_[A-Z0-9_]+)`\]\(#([a-z0-9_]+)\) \| (.+) \|$/gm)];
    expect(rows.map((r) => r[1])).toEqual([...CATALOGUE]);
    expect([...sections().keys()]).toEqual([...CATALOGUE]);
    for (const [, code, anchor, meaning] of rows) {
      expect(anchor, code).toBe(code!.toLowerCase());
      // The catalogue's line as a sentence; backticks are the page's markup only.
      const line = ERROR_CODES[code as keyof typeof ERROR_CODES];
      expect(meaning!.replaceAll('`', '').toLowerCase(), code).toBe(`${line}.`.toLowerCase());
    }
  });
});
