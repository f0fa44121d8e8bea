/**
 * The worker threads' native addons (packages/worker/native: the batch processor and the zstd
 * compressor) and their fallbacks, through the real daemon: with the addons the running log
 * says so; where they do not load (here: SLUICE_WORKER_ADDON_DIR pointed at an empty
 * directory, as on a machine where `npm ci` had no g++) the daemon warns once, names the
 * reason, and stores exactly the same records.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32, serviceLine } from '@sluice/testkit';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';

const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';

const CONFIG = `
api: { address: 127.0.0.1:0 }
sources:
  t: { type: tcp, address: 127.0.0.1:0, extra_tags: { cluster: c1 }, host_key: __host }
sinks:
  f: { type: file, inputs: [t], path: ./out, compression: zstd }
`;

// Valid Talos lines with a few that leave the fast scan's common case (each path decides them
// on its own): malformed, colliding with a tag, a key spelled with an escape.
const rand = mulberry32(11);
const LINES = Array.from({ length: 3000 }, (_, id) =>
  id % 500 === 7
    ? '{"truncated":'
    : id % 500 === 9
      ? `{"cluster":"theirs","id":${id}}`
      : id % 500 === 11
        ? `{"\\u0063luster":"x","id":${id}}`
        : serviceLine({ id, rand }),
);

async function sendTcp(address: string, lines: readonly string[]): Promise<void> {
  const { host, port } = splitAddress(address);
  const socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(`${lines.join('\n')}\n`);
  await new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
    socket.end();
  });
}

/** Start, send LINES, stop (SIGTERM completes the objects); the running log and every stored line. */
async function runOnce(
  env: Record<string, string>,
): Promise<{
  running: Record<string, unknown>;
  logs: Record<string, unknown>[];
  stored: string[];
  gauge: { batch: number; zstd: number };
}> {
  const dir = tempDir();
  const d = await startDaemon(CONFIG, { dir, env });
  let gauge = { batch: -1, zstd: -1 };
  try {
    await sendTcp((d.sources['t'] as string[])[0]!, LINES);
    const m = await scrape(d.apiPort);
    gauge = {
      batch: metricSum(m, 'sluice_worker_native', { addon: 'batch' }),
      zstd: metricSum(m, 'sluice_worker_native', { addon: 'zstd' }),
    };
  } finally {
    expect(await d.stop('SIGTERM')).toBe(0);
  }
  const out = join(dir, 'out');
  const stored: string[] = [];
  for (const f of listObjects(out)) stored.push(...(await readObjectLines(join(out, f))));
  const running = d.logs.find((l) => l['msg'] === 'sluice is running')!;
  return { running, logs: d.logs, stored, gauge };
}

describe('worker native addons and their fallback, through the daemon', () => {
  it('with the addons the running log says so; without them it warns with the reason and stores the same records', async () => {
    const native = await runOnce({});
    // Under CI the addons must be there (scripts/build-native.ts fails the install otherwise).
    if (CI) expect(native.running['worker_native']).toEqual({ batch: true, zstd: true });
    if (CI) expect(native.gauge).toEqual({ batch: 1, zstd: 1 });

    const empty = tempDir('sluice-no-addons-');
    const fallback = await runOnce({ SLUICE_WORKER_ADDON_DIR: empty });
    expect(fallback.running['worker_native']).toEqual({ batch: false, zstd: false });
    expect(fallback.gauge).toEqual({ batch: 0, zstd: 0 });
    const warnings = fallback.logs
      .filter((l) => l['level'] === 40)
      .map((l) => `${String(l['msg'])} (${String(l['reason'])})`);
    expect(warnings).toEqual([
      expect.stringMatching(
        /^the native batch processor is not available: the worker threads validate and tag in TypeScript .*batch\.node is not built/,
      ),
      expect.stringMatching(/^the native zstd compressor is not available: .*zstd\.node is not built/),
    ]);
    // No warning when the addons load.
    if (CI) expect(native.logs.filter((l) => l['level'] === 40)).toEqual([]);

    // The same records, byte for byte: 3000 sent, 6 malformed, the rest tagged in order.
    expect(native.stored).toHaveLength(LINES.length - 6);
    expect(fallback.stored).toEqual(native.stored);
    const parsed = native.stored.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.every((r) => r['cluster'] === 'c1' && r['__host'] === '127.0.0.1')).toBe(true);
  });
});
