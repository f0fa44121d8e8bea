/**
 * bin/stripped.js: the main thread's sources stripped at install and served by a load hook, so
 * Node's type stripper (amaro) is never loaded; a source that changed since the build loads
 * from its .ts as before. Real build, real Node child processes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildStripped } from '../bin/stripped.js';

const STRIPPED = new URL('../bin/stripped.js', import.meta.url).href;
const SCHEMA = new URL('../../../packages/schema/src/index.ts', import.meta.url).href;
const DAEMON = new URL('./daemon.ts', import.meta.url).href;

/** In a fresh Node: useStripped(dir), import `url`, and report what was loaded. */
function loadWith(dir: string, url: string): { used: boolean; amaro: boolean; exports: number } {
  const script = `
const { useStripped } = await import(${JSON.stringify(STRIPPED)});
const used = await useStripped(${JSON.stringify(dir)});
const m = await import(${JSON.stringify(url)});
const amaro = process.moduleLoadList.some((x) => x.includes('amaro'));
console.log(JSON.stringify({ used, amaro, exports: Object.keys(m).length }));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as {
    used: boolean;
    amaro: boolean;
    exports: number;
  };
}

describe('stripped main-thread sources', () => {
  let dir = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-stripped-'));
    expect(await buildStripped(dir)).toBeGreaterThan(50);
  });

  it('the daemon module graph loads from the build without the type stripper', () => {
    const r = loadWith(dir, DAEMON);
    expect(r).toEqual({ used: true, amaro: false, exports: expect.any(Number) });
    expect(r.exports).toBeGreaterThan(0);
  });

  it('a source whose text differs from the build loads from its .ts (through the stripper)', () => {
    const manifestPath = join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
      node: string;
      sources: Record<string, string>;
    };
    manifest.sources['packages/schema/src/index.ts'] = '0'.repeat(64);
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const r = loadWith(dir, SCHEMA);
    expect(r.used).toBe(true);
    expect(r.amaro).toBe(true);
    expect(r.exports).toBeGreaterThan(10);
  });

  it('without a build (or a build for another Node) nothing is registered', () => {
    expect(loadWith(join(dir, 'missing'), SCHEMA)).toMatchObject({ used: false, amaro: true });
    const manifestPath = join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { node: string };
    writeFileSync(manifestPath, JSON.stringify({ ...manifest, node: 'v0.0.0' }));
    expect(loadWith(dir, SCHEMA)).toMatchObject({ used: false, amaro: true });
  });
});
