/**
 * The object index, end to end with real processes: the daemon writes Talos lines whose
 * talos-times span ten hours, one hour per object, into a file sink and an aws_s3 sink (Ceph
 * RGW) at once. Every object gets an index sidecar with its exact record-time range and
 * service/level/host/source sets (counted in sluice_sink_index_written_total); `sluice read`
 * over one hour (10 % of the range) reads at most 20 % of the archive's bytes and prints exactly
 * what a full scan filtered the same way prints; --where on talos-service skips objects
 * without the service; a deleted or corrupt sidecar means that object is read (same output);
 * and with the spool on, an object open at kill -9 is recovered at the restart with its index.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { rgwClient } from '../s3/rgw.ts';
import { mulberry32 } from '@sluice/testkit';
import {
  listIndexes,
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  sendTcpLines,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';
import { freshBucket, getObjectLines, listIndexKeys, listKeys, runCli, s3Connection, s3Env } from '../helpers/s3.ts';
import { waitUntil } from '@sluice/testkit';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

const HOUR = 3_600_000;
/** Twenty half hours: one object each. */
const ROUNDS = 20;
const PER_ROUND = 600;
const ROUND_MS = HOUR / 2;
const SERVICES = ['machined', 'etcd', 'kubelet'];
const LEVELS = ['info', 'warn', 'error'];
/** Record times: ten hours, long before the keys' times (so the key-time rule skips nothing). */
const T0 = Date.UTC(2024, 4, 1, 0, 0, 0);

/** A seeded generator: payloads zstd cannot fold away, so objects have real sizes. */
const prng = mulberry32;

/** Round h's lines (a half hour, 3 s apart): only machined in rounds 0, 3, 6, ...; etcd and kubelet in the others. */
function roundLines(h: number, rand: () => number): string[] {
  return Array.from({ length: PER_ROUND }, (_, i) => {
    const service = h % 3 === 0 ? SERVICES[0]! : SERVICES[1 + (i % 2)]!;
    const noise = Array.from({ length: 6 }, () => Math.floor(rand() * 2 ** 32).toString(36)).join(' ');
    return JSON.stringify({
      msg: `h${h} i${i} ${noise}`,
      'talos-level': LEVELS[i % 3],
      'talos-service': service,
      'talos-time': new Date(T0 + h * ROUND_MS + i * 3_000).toISOString().replace('Z', '456Z'),
    });
  });
}

/** An index document as stored. */
interface IndexDoc {
  sluice_index: number;
  object: string;
  records: number;
  untimed_records: number;
  min_time: string | null;
  max_time: string | null;
  fields: Record<string, string[] | null>;
}

/** What the index of an object with these lines must say. */
function expectedIndex(key: string, lines: string[]): IndexDoc {
  const recs = lines.map((l) => JSON.parse(l) as Record<string, string>);
  const times = recs
    .map((r) => r['talos-time']!.replace(/\.(\d+)Z$/, (_, d: string) => `.${d.padEnd(9, '0')}Z`))
    .sort();
  const set = (f: string): string[] => [...new Set(recs.filter((r) => f in r).map((r) => r[f]!))];
  return {
    sluice_index: 1,
    object: basename(key),
    records: lines.length,
    untimed_records: 0,
    min_time: times[0]!,
    max_time: times.at(-1)!,
    fields: { 'talos-service': set('talos-service'), 'talos-level': set('talos-level'), host: set('host'), source: [] },
  };
}

/** The index as stored, with its field lists sorted for comparison. */
function normal(doc: IndexDoc): IndexDoc {
  const fields: IndexDoc['fields'] = {};
  for (const [k, v] of Object.entries(doc.fields)) fields[k] = v === null ? null : [...v].sort();
  return { ...doc, fields };
}

function indexNameOf(key: string): string {
  return join(dirname(key), `_${basename(key)}.index.json`);
}

interface Stats {
  objects_listed: number;
  objects_skipped: number;
  objects_read: number;
  bytes_read: number;
  records_matched: number;
}

function statsOf(stderr: string): Stats {
  const m =
    /objects_listed=(\d+) objects_skipped=(\d+) objects_read=(\d+) .*bytes_read=(\d+) .*records_matched=(\d+)/.exec(
      stderr,
    );
  if (m === null) throw new Error(`no stats in ${JSON.stringify(stderr)}`);
  return {
    objects_listed: Number(m[1]),
    objects_skipped: Number(m[2]),
    objects_read: Number(m[3]),
    bytes_read: Number(m[4]),
    records_matched: Number(m[5]),
  };
}

const iso = (ms: number): string => new Date(ms).toISOString();
/** One hour of the ten (10 %), not on object boundaries: 4:40 to 5:40 (rounds 9, 10 and 11). */
const SINCE = T0 + 4 * HOUR + 40 * 60_000;
const UNTIL = SINCE + HOUR;

/** The lines of a full scan (no filter) whose talos-time is in [SINCE, UNTIL). */
function inWindow(lines: string[]): string[] {
  return lines.filter((l) => {
    const t = Date.parse((JSON.parse(l) as Record<string, string>)['talos-time']!);
    return t >= SINCE && t < UNTIL;
  });
}

function outLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l !== '');
}

let dir = '';
let out = '';
let bucket = '';
let objectKeys: string[] = [];
const linesByKey = new Map<string, string[]>();
let written = { local: 0, remote: 0, completedLocal: 0, completedRemote: 0 };

beforeAll(async () => {
  dir = tempDir('sluice-read-index-');
  out = join(dir, 'out');
  bucket = await freshBucket(client, 'e2e-read-index');
  const nodes = { type: 'tcp', address: '127.0.0.1:0', host_key: 'host' };
  // No `index` option: both sinks index their objects by default.
  const local = { type: 'file', inputs: ['nodes'], path: out, key_prefix: 'talos/', upload_period_secs: 1 };
  const yaml = `${stringify({ data_dir: `${dir}/data`, api: { address: '127.0.0.1:0' }, sources: { nodes }, sinks: { local } })}
  remote:
    type: aws_s3
    inputs: [nodes]
    ${s3Connection(env.endpoint, bucket)}
    key_prefix: talos/
    upload_period_secs: 1
`;
  const daemon = await startDaemon(yaml, { dir, env: s3Env(env) });
  const rand = prng(7);
  for (let h = 0; h < ROUNDS; h++) {
    await sendTcpLines(daemon.sources['nodes']![0]!, roundLines(h, rand));
    // Every line of the round is in a completed object of each sink before the next round comes:
    // objects never mix rounds, however slow the machine (a round may span two objects).
    await vi.waitFor(
      async () => {
        const m = await scrape(daemon.apiPort);
        for (const id of ['local', 'remote'])
          expect(metricSum(m, 'sluice_sink_sent_events_total', { component_id: id })).toBe((h + 1) * PER_ROUND);
      },
      { timeout: 60_000, interval: 100 },
    );
  }
  // Every object completed, and every index after it.
  await vi.waitFor(
    async () => {
      const m = await scrape(daemon.apiPort);
      written = {
        local: metricSum(m, 'sluice_sink_index_written_total', { component_id: 'local' }),
        remote: metricSum(m, 'sluice_sink_index_written_total', { component_id: 'remote' }),
        completedLocal: metricSum(m, 'sluice_sink_objects_completed_total', { component_id: 'local' }),
        completedRemote: metricSum(m, 'sluice_sink_objects_completed_total', { component_id: 'remote' }),
      };
      expect(metricSum(m, 'sluice_sink_sent_events_total', { component_id: 'local' })).toBe(ROUNDS * PER_ROUND);
      expect(metricSum(m, 'sluice_sink_sent_events_total', { component_id: 'remote' })).toBe(ROUNDS * PER_ROUND);
      expect(written.local).toBe(written.completedLocal);
      expect(written.remote).toBe(written.completedRemote);
      expect(metricSum(m, 'sluice_sink_index_failures_total')).toBe(0);
    },
    { timeout: 30_000, interval: 200 },
  );
  expect(await daemon.stop()).toBe(0);
  objectKeys = listObjects(out);
  for (const key of objectKeys) linesByKey.set(key, await readObjectLines(join(out, key)));
}, 180_000);

function read(args: string[], extraEnv: Record<string, string> = {}): ReturnType<typeof runCli> {
  return runCli(['read', ...args], extraEnv);
}

describe('the object index (file sink)', () => {
  it('every object has an index with its exact time range and service/level/host/source sets; counted', () => {
    expect(objectKeys.length).toBeGreaterThanOrEqual(ROUNDS);
    expect(listIndexes(out)).toEqual(objectKeys.map(indexNameOf).sort());
    expect(written.local).toBe(objectKeys.length);
    for (const key of objectKeys) {
      const doc = JSON.parse(readFileSync(join(out, indexNameOf(key)), 'utf8')) as IndexDoc;
      expect(normal(doc)).toEqual(normal(expectedIndex(key, linesByKey.get(key)!)));
    }
  });

  it('--since/--until over 10 % of the range reads at most 20 % of the bytes, and prints exactly what a full scan does', async () => {
    const all = await read(['--path', join(out, 'talos/'), '--stats']);
    expect(all.status).toBe(0);
    const full = statsOf(all.stderr);
    expect(full.objects_skipped).toBe(0);
    const narrow = await read(['--path', join(out, 'talos/'), '--since', iso(SINCE), '--until', iso(UNTIL), '--stats']);
    expect(narrow.status).toBe(0);
    const got = outLines(narrow.stdout);
    expect(got).toEqual(inWindow(outLines(all.stdout)));
    expect(got.length).toBe(2 * PER_ROUND);
    const s = statsOf(narrow.stderr);
    expect(s.objects_skipped).toBeGreaterThanOrEqual(objectKeys.length - 4);
    console.log(
      JSON.stringify({
        sink: 'file',
        objects: objectKeys.length,
        skipped: s.objects_skipped,
        bytes_read: s.bytes_read,
        archive_bytes: full.bytes_read,
        share: s.bytes_read / full.bytes_read,
      }),
    );
    expect(s.bytes_read).toBeLessThanOrEqual(full.bytes_read * 0.2);
  });

  it('--where talos-service=machined skips the objects without it; same records as a full scan', async () => {
    const all = await read(['--path', join(out, 'talos/')]);
    const r = await read(['--path', join(out, 'talos/'), '--where', 'talos-service=machined', '--stats']);
    expect(r.status).toBe(0);
    expect(outLines(r.stdout)).toEqual(
      outLines(all.stdout).filter((l) => (JSON.parse(l) as Record<string, string>)['talos-service'] === 'machined'),
    );
    expect(outLines(r.stdout).length).toBe(7 * PER_ROUND);
    expect(statsOf(r.stderr).objects_skipped).toBeGreaterThanOrEqual(ROUNDS - 7 - 2);
  });

  it('a deleted and a corrupt sidecar: those objects are read, the output is the same', async () => {
    const before = await read(['--path', join(out, 'talos/'), '--since', iso(SINCE), '--until', iso(UNTIL), '--stats']);
    const copy = join(dir, 'copy');
    // Work on a copy: the other tests keep the intact archive.
    rmSync(copy, { recursive: true, force: true });
    cpSync(out, copy, { recursive: true });
    // Objects outside the window: the first hour's and the last hour's.
    const first = objectKeys[0]!;
    const last = objectKeys.at(-1)!;
    rmSync(join(copy, indexNameOf(first)));
    writeFileSync(join(copy, indexNameOf(last)), '{"sluice_index":1,"object":"tru');
    const after = await read(['--path', join(copy, 'talos/'), '--since', iso(SINCE), '--until', iso(UNTIL), '--stats']);
    expect(after.status).toBe(0);
    expect(after.stdout).toBe(before.stdout);
    const a = statsOf(after.stderr);
    const b = statsOf(before.stderr);
    expect(a.objects_skipped).toBe(b.objects_skipped - 2);
    expect(a.objects_read).toBe(b.objects_read + 2);
    // An index of another version, or naming another object, is no index either.
    const doc = JSON.parse(readFileSync(join(copy, indexNameOf(objectKeys[1]!)), 'utf8')) as IndexDoc;
    writeFileSync(join(copy, indexNameOf(objectKeys[1]!)), JSON.stringify({ ...doc, sluice_index: 2 }));
    writeFileSync(join(copy, indexNameOf(objectKeys[2]!)), JSON.stringify({ ...doc }));
    const third = await read(['--path', join(copy, 'talos/'), '--since', iso(SINCE), '--until', iso(UNTIL), '--stats']);
    expect(third.stdout).toBe(before.stdout);
    expect(statsOf(third.stderr).objects_read).toBe(b.objects_read + 4);
  });
});

describe('the object index (aws_s3 sink, Ceph RGW)', () => {
  it('every object has an index beside it with the right facts; counted; --since/--until reads at most 20 % of the bytes, same records', async () => {
    const keys = await listKeys(client, bucket, 'talos/');
    const indexes = await listIndexKeys(client, bucket, 'talos/');
    expect(keys.length).toBeGreaterThanOrEqual(ROUNDS);
    expect(indexes).toEqual(keys.map(indexNameOf).sort());
    expect(written.remote).toBe(keys.length);
    for (const key of keys) {
      const [line] = await getObjectLines(client, bucket, indexNameOf(key));
      expect(normal(JSON.parse(line!) as IndexDoc)).toEqual(
        normal(expectedIndex(key, await getObjectLines(client, bucket, key))),
      );
    }
    const creds = { AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey };
    const path = ['--path', `s3://${bucket}/talos/`, '--endpoint', env.endpoint];
    const all = await read([...path, '--stats'], creds);
    expect(all.status).toBe(0);
    expect(outLines(all.stdout).length).toBe(ROUNDS * PER_ROUND);
    const narrow = await read([...path, '--since', iso(SINCE), '--until', iso(UNTIL), '--stats'], creds);
    expect(narrow.status).toBe(0);
    expect(outLines(narrow.stdout)).toEqual(inWindow(outLines(all.stdout)));
    const s = statsOf(narrow.stderr);
    const full = statsOf(all.stderr);
    console.log(
      JSON.stringify({
        sink: 'aws_s3',
        objects: keys.length,
        skipped: s.objects_skipped,
        bytes_read: s.bytes_read,
        archive_bytes: full.bytes_read,
        share: s.bytes_read / full.bytes_read,
      }),
    );
    expect(s.bytes_read).toBeLessThanOrEqual(full.bytes_read * 0.2);
  });
});

describe('the object index through kill -9 (spool)', () => {
  it('an object open at kill -9 is recovered at the restart with its index', { timeout: 120_000 }, async () => {
    const d = tempDir('sluice-index-crash-');
    const o = join(d, 'out');
    const local = {
      type: 'file',
      inputs: ['nodes'],
      path: o,
      key_prefix: 'talos/',
      upload_period_secs: 3600,
      spool: true,
      index: true,
    };
    const yaml = stringify({
      data_dir: `${d}/data`,
      api: { address: '127.0.0.1:0' },
      sources: { nodes: { type: 'tcp', address: '127.0.0.1:0', host_key: 'host' } },
      sinks: { local },
    });
    const daemon = await startDaemon(yaml, { dir: d });
    const lines = roundLines(6, prng(3)).concat(roundLines(7, prng(4)));
    await sendTcpLines(daemon.sources['nodes']![0]!, lines);
    // Spooled (the object stays open: the period is an hour), then killed.
    await waitUntil(
      'every line spooled',
      async () => metricSum(await scrape(daemon.apiPort), 'sluice_spool_appended_events_total') >= lines.length,
      30_000,
    );
    expect(await daemon.stop('SIGKILL')).toBeNull();
    // The file store's partial object (a hidden temp file) is all there is.
    const visible = (): string[] => listObjects(o).filter((k) => !basename(k).startsWith('.'));
    expect(visible()).toEqual([]);

    const again = await startDaemon(yaml, { dir: d });
    const m = await scrape(again.apiPort);
    expect(metricSum(m, 'sluice_spool_recovered_objects_total')).toBe(1);
    expect(metricSum(m, 'sluice_sink_index_written_total', { component_id: 'local' })).toBe(1);
    expect(await again.stop()).toBe(0);
    const keys = visible();
    expect(keys.length).toBe(1);
    expect(listIndexes(o)).toEqual([indexNameOf(keys[0]!)]);
    const stored = await readObjectLines(join(o, keys[0]!));
    expect(stored.length).toBe(lines.length);
    const doc = JSON.parse(readFileSync(join(o, indexNameOf(keys[0]!)), 'utf8')) as IndexDoc;
    expect(normal(doc)).toEqual(normal(expectedIndex(keys[0]!, stored)));
    // The recovered object's index is used: a window outside its hours (3:00 to 4:00) skips it.
    const r = await read([
      '--path',
      join(o, 'talos/'),
      '--since',
      iso(T0 + 7 * HOUR),
      '--until',
      iso(T0 + 8 * HOUR),
      '--stats',
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(statsOf(r.stderr).objects_skipped).toBe(1);
  });
});
