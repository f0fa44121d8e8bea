/**
 * DuckDB reads a Sluice archive as-is: `read_json(..., format='newline_delimited',
 * compression='zstd')` over a file sink's directory sees the same records `sluice read`
 * prints, and a WHERE on "talos-service" counts what `--where talos-service=…` prints. The
 * archive is what the real daemon stored from Talos lines over TCP and HEC events: objects of
 * several zstd frames each (one per worker batch), records of different shapes (nested
 * fields, one key holding a number in some records and a string in others, unicode and
 * escapes). The two query forms are the ones docs/querying.md gives.
 *
 * DuckDB runs in this process through @duckdb/node-api; its json extension is linked in. If it
 * cannot load, this file fails: it is never skipped.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { zstdFrameEnd } from '@sluice/worker/zstd-frame';
import { listObjects, metricSum, scrape, sendTcpLines, startDaemon, tempDir } from '../helpers/daemon.ts';
import { runCli } from '../helpers/s3.ts';

const TOKEN = 'duckdb-test-token-0123456789';
const SERVICES = ['machined', 'etcd', 'kubelet'];
const LEVELS = ['info', 'warn', 'error'];
const TALOS = 240;
const HEC = 20;
const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

/** A Talos line; some carry nesting, a `code` that is a number or a string, unicode, escapes. */
function talosLine(i: number): string {
  const rec: Record<string, unknown> = {
    msg: `line t${i}`,
    'talos-level': LEVELS[(i >> 1) % 3],
    'talos-service': SERVICES[i % 3],
    'talos-time': new Date(T0 + i * 1000).toISOString(),
  };
  if (i % 4 === 0)
    rec['event'] = {
      action: i % 8 === 0 ? 'UPDATE' : 'CREATE',
      ids: [i, i + 1],
      ok: i % 3 === 0,
      none: null,
      empty: {},
    };
  if (i % 5 === 0) rec['code'] = i % 10 === 0 ? 200 + i : `E${i}`;
  if (i % 7 === 0) rec['msg'] = `naïve café ☕ 日本語 😀 "quoted" back\\slash\ttab\nnewline \u2028 t${i}`;
  if (i % 11 === 0) rec['ratio'] = i / 7;
  if (i % 13 === 0) rec['big'] = 12345678901234567000 + i;
  return JSON.stringify(rec);
}

const lines: string[][] = [[], []];
for (let i = 0; i < TALOS; i++) lines[i % 2]!.push(talosLine(i));
const hecEvents: string[][] = [[], []];
for (let j = 0; j < HEC; j++) {
  hecEvents[j % 2]!.push(
    JSON.stringify({
      time: (T0 + j * 60_000) / 1000 + 0.25,
      host: 'hec-1',
      source: 'tailscale',
      event: { action: j % 2 === 0 ? 'UPDATE' : 'DELETE', msg: `audit h${j}` },
    }),
  );
}
const ETCD = Array.from({ length: TALOS }, (_, i) => i).filter((i) => SERVICES[i % 3] === 'etcd').length;

/** JSON text with every object's keys sorted: two records are the same when these are equal. */
function canonical(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return JSON.stringify(sort(value));
}

function canonicalLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => canonical(JSON.parse(l)))
    .sort();
}

function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** Zstd frames in an object. */
function frameCount(path: string): number {
  const buf = readFileSync(path);
  let frames = 0;
  for (let pos = 0; pos < buf.length; frames++) {
    pos = zstdFrameEnd(buf, pos, buf.length);
    if (pos < 0) throw new Error(`${path}: ends inside a zstd frame`);
  }
  return frames;
}

let out = '';
let objectKeys: string[] = [];
let db: DuckDBInstance | undefined;
let conn: DuckDBConnection | undefined;

/** The first column of every row of a query, as text. */
async function column(sql: string): Promise<string[]> {
  const reader = await conn!.runAndReadAll(sql);
  return reader.getRowsJS().map((row) => String(row[0]));
}

beforeAll(async () => {
  const dir = tempDir('sluice-duckdb-');
  out = join(dir, 'out');
  // Two daemon runs, each writing one object (the period is never reached; SIGTERM completes
  // it): two objects whatever the machine's speed. Each run feeds both sources, whose records
  // are batched apart (a ring each), so each object holds at least two frames.
  const yaml = `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  nodes: { type: tcp, address: 127.0.0.1:0, host_key: host }
  audit: { type: splunk_hec, address: 127.0.0.1:0, valid_tokens: ["\${HEC_TOKEN}"] }
sinks:
  archive: { type: file, inputs: [nodes, audit], path: ${out}, key_prefix: talos/, compression: zstd, upload_period_secs: 3600 }
`;
  for (let run = 0; run < 2; run++) {
    const daemon = await startDaemon(yaml, { dir, env: { HEC_TOKEN: TOKEN } });
    await sendTcpLines(daemon.sources['nodes']![0]!, lines[run]!);
    const res = await fetch(`http://${daemon.sources['audit']![0]}/services/collector/event`, {
      method: 'POST',
      headers: { authorization: `Splunk ${TOKEN}` },
      body: hecEvents[run]!.join('\n'),
    });
    expect(res.status).toBe(200);
    await vi.waitFor(
      async () =>
        expect(metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total')).toBe((TALOS + HEC) / 2),
      { timeout: 60_000, interval: 100 },
    );
    expect(await daemon.stop()).toBe(0);
  }
  objectKeys = listObjects(out);
  db = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
  conn = await db.connect();
}, 180_000);

afterAll(() => {
  conn?.closeSync();
  db?.closeSync();
});

describe('DuckDB over a file-sink archive', () => {
  it('the archive: several objects, each a concatenation of zstd frames', () => {
    expect(objectKeys).toHaveLength(2);
    for (const key of objectKeys) {
      expect(key).toMatch(/^talos\/\d{4}\/\d{2}\/\d{2}\/\d{2}:\d{2}:\d{2}-.+\.ndjson\.zst$/);
      expect(frameCount(join(out, key)), key).toBeGreaterThanOrEqual(2);
    }
  });

  it('read_json sees every record sluice read prints, the same ones', async () => {
    const r = await runCli(['read', '--path', out], {});
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const fromSluice = canonicalLines(r.stdout);
    expect(fromSluice).toHaveLength(TALOS + HEC);
    // One JSON column holding each record whole: no inferred schema to widen or drop fields.
    const glob = sqlString(join(out, 'talos/**/*.ndjson.zst'));
    const rows = await column(
      `SELECT record::VARCHAR FROM read_json(${glob}, format = 'newline_delimited', compression = 'zstd', records = false, columns = {record: 'JSON'})`,
    );
    expect(rows.map((l) => canonical(JSON.parse(l))).sort()).toEqual(fromSluice);
  });

  it('a WHERE on "talos-service" counts what sluice read --where prints', async () => {
    const r = await runCli(['read', '--path', out, '--where', 'talos-service=etcd'], {});
    expect(r.status).toBe(0);
    const fromSluice = canonicalLines(r.stdout);
    expect(fromSluice).toHaveLength(ETCD);
    const glob = sqlString(join(out, 'talos/**/*.ndjson.zst'));
    // Columns inferred from the records, as a user would first try it.
    const [count] = await column(
      `SELECT count(*) FROM read_json(${glob}, format = 'newline_delimited', compression = 'zstd') WHERE "talos-service" = 'etcd'`,
    );
    expect(Number(count)).toBe(ETCD);
    // And the records themselves, through the JSON column.
    const rows = await column(
      `SELECT record::VARCHAR FROM read_json(${glob}, format = 'newline_delimited', compression = 'zstd', records = false, columns = {record: 'JSON'}) WHERE record->>'talos-service' = 'etcd'`,
    );
    expect(rows.map((l) => canonical(JSON.parse(l))).sort()).toEqual(fromSluice);
  });
});
