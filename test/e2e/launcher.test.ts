import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startDaemon } from '../helpers/daemon.ts';

const CONFIG = `
api: { address: 127.0.0.1:0 }
sources:
  t: { type: tcp, address: 127.0.0.1:0 }
sinks:
  f: { type: file, inputs: [t], path: ./out }
`;

/** argv and environment of a running process, as the kernel has them. */
function procInfo(pid: number): { argv: string[]; env: Map<string, string> } {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  const env = new Map(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
  );
  return { argv, env };
}

describe.runIf(process.platform === 'linux')('the sluice launcher (bin/sluice.js)', () => {
  it('`run` restarts itself in place (same pid) with a capped young generation and two malloc arenas', async () => {
    const env = { ...process.env } as Record<string, string>;
    delete env['MALLOC_ARENA_MAX'];
    delete env['NODE_OPTIONS'];
    const d = await startDaemon(CONFIG, { launcher: true, env });
    try {
      const { argv, env: seen } = procInfo(d.proc.pid!);
      expect(argv).toContain('--max-semi-space-size=4');
      expect(argv.filter((a) => a.startsWith('--max-semi-space-size'))).toHaveLength(1);
      expect(argv.some((a) => a.endsWith('apps/sluice/bin/sluice.js'))).toBe(true);
      expect(seen.get('MALLOC_ARENA_MAX')).toBe('2');
    } finally {
      expect(await d.stop('SIGTERM')).toBe(0);
    }
  });

  it('leaves settings the operator chose alone', async () => {
    const d = await startDaemon(CONFIG, { launcher: true, env: { MALLOC_ARENA_MAX: '8', NODE_OPTIONS: '--max-semi-space-size=8' } });
    try {
      const { argv, env: seen } = procInfo(d.proc.pid!);
      expect(argv.some((a) => a.startsWith('--max-semi-space-size'))).toBe(false);
      expect(seen.get('MALLOC_ARENA_MAX')).toBe('8');
      expect(seen.get('NODE_OPTIONS')).toBe('--max-semi-space-size=8');
    } finally {
      expect(await d.stop('SIGTERM')).toBe(0);
    }
  });
});
