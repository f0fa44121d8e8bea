import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Schema } from '@sluice/schema';
import { sinkTypes } from '@sluice/sinks/registry';
import { sourceTypes, tlsOptions } from '@sluice/sources/registry';
import { apiOptions, deadLetterOptions, logOptions, topOptions, workersOptions } from '@sluice/config/validate';

// Keeps docs/configuration.md in step with the option tables: one row per option.
const reference = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

function documented(table: string): string[] {
  const start = reference.indexOf(`<!-- options: ${table} -->`);
  expect(start, `table ${table} in docs/configuration.md`).toBeGreaterThan(-1);
  const rows = reference.slice(start).split('\n').slice(3);
  const end = rows.findIndex((row) => !row.startsWith('|'));
  return rows.slice(0, end).map((row) => /^\| `([a-z0-9_]+)` \|/.exec(row)?.[1] ?? `unparsed: ${row}`);
}

const component = (options: Schema) => ['type', ...Object.keys(options)];

const tables: Record<string, string[]> = {
  top: [...Object.keys(topOptions), 'sources', 'sinks'],
  api: Object.keys(apiOptions),
  log: Object.keys(logOptions),
  workers: Object.keys(workersOptions),
  dead_letter: Object.keys(deadLetterOptions),
  tls: Object.keys(tlsOptions),
  ...Object.fromEntries(Object.entries(sourceTypes).map(([type, spec]) => [type, component(spec.options)])),
  ...Object.fromEntries(Object.entries(sinkTypes).map(([type, spec]) => [type, component(spec.options)])),
};

describe('docs/configuration.md', () => {
  for (const [table, options] of Object.entries(tables)) {
    it(`documents every ${table} option`, () => {
      expect(documented(table)).toEqual(options);
    });
  }
});
