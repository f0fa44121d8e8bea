/**
 * `sluice read`, run as users run it (the CLI as a child process), on what the real daemon
 * stored: Talos lines over TCP (three services, two hosts, one by host_key and one by
 * extra_tags, three levels, talos-times over three hours ending 10 minutes ago, some nested
 * fields) and HEC events, into a file sink and an aws_s3 sink (Ceph RGW) at once. Each filter,
 * both formats, --limit, --stats, a corrupt object (exit 2, the rest printed), bad arguments
 * and an unreachable endpoint (exit 1, one line), --config/--sink with the sink's own
 * credentials (never printed), and --follow picking up a new object.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { rgwClient } from '../s3/rgw.ts';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  sendTcpLines,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';
import { freshBucket, runCli, s3Connection, s3Env } from '../helpers/s3.ts';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

const CLI = new URL('../../apps/sluice/src/cli.ts', import.meta.url).pathname;
const TOKEN = 'read-test-token-0123456789';
const SERVICES = ['machined', 'etcd', 'kubelet'];
const LEVELS = ['info', 'warn', 'error'];
const TALOS = 300;
const HEC = 20;
const STEP_MS = 36_000; // 300 lines x 36 s = 3 h
const MINUTE = 60_000;

interface Expected {
  id: string;
  service?: string;
  level?: string;
  host: string;
  timeMs: number;
  action?: string;
  renewed: boolean;
}

// The test's clock: record times are chosen relative to it.
const T0 = Date.now() - 3 * 60 * MINUTE - 10 * MINUTE;
const expected: Expected[] = [];
const talosLines: string[][] = [[], []];
for (let i = 0; i < TALOS; i++) {
  const timeMs = T0 + i * STEP_MS;
  const rec: Record<string, unknown> = {
    msg: `line t${i}${i % 10 === 0 ? ' certificate renewed' : ''} [talos]`,
    'talos-level': LEVELS[(i >> 1) % 3],
    'talos-service': SERVICES[i % 3],
    'talos-time': new Date(timeMs).toISOString().replace('Z', '123Z'),
  };
  if (i % 4 === 0) rec['event'] = { action: i % 8 === 0 ? 'UPDATE' : 'CREATE' };
  talosLines[i % 2]!.push(JSON.stringify(rec));
  expected.push({
    id: `t${i}`,
    service: SERVICES[i % 3]!,
    level: LEVELS[(i >> 1) % 3]!,
    host: i % 2 === 0 ? '127.0.0.1' : 'node-2',
    timeMs: timeMs + 0.123,
    ...(i % 4 === 0 ? { action: i % 8 === 0 ? 'UPDATE' : 'CREATE' } : {}),
    renewed: i % 10 === 0,
  });
}
const hecBody = Array.from({ length: HEC }, (_, j) => {
  const timeMs = T0 + j * 9 * MINUTE;
  expected.push({ id: `h${j}`, host: 'hec-1', timeMs, action: j % 2 === 0 ? 'UPDATE' : 'DELETE', renewed: false });
  return JSON.stringify({
    time: timeMs / 1000,
    host: 'hec-1',
    source: 'tailscale',
    event: { action: j % 2 === 0 ? 'UPDATE' : 'DELETE', msg: `audit h${j}` },
  });
}).join('\n');

/** The id of a printed record (`t12`, `h3`). */
function idOf(line: string): string {
  return /\b([th]\d+)\b/.exec(line)![1]!;
}

function ids(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map(idOf)
    .sort();
}

function want(pred: (e: Expected) => boolean): string[] {
  return expected
    .filter(pred)
    .map((e) => e.id)
    .sort();
}

let dir = '';
let out = '';
let bucket = '';
let configPath = '';
/** Every stored line, objects in key order. */
const stored: string[] = [];
let objectKeys: string[] = [];

function read(args: string[], extraEnv: Record<string, string> = {}): ReturnType<typeof runCli> {
  return runCli(['read', ...args], extraEnv);
}

beforeAll(async () => {
  dir = tempDir('sluice-read-');
  out = join(dir, 'out');
  bucket = await freshBucket(client, 'e2e-read');
  const yaml = `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  nodes_a: { type: tcp, address: 127.0.0.1:0, host_key: host }
  nodes_b: { type: tcp, address: 127.0.0.1:0, extra_tags: { host: node-2 } }
  audit: { type: splunk_hec, address: 127.0.0.1:0, valid_tokens: ["\${HEC_TOKEN}"] }
sinks:
  local: { type: file, inputs: [nodes_a, nodes_b, audit], path: ${out}, key_prefix: talos/, upload_period_secs: 1 }
  remote:
    type: aws_s3
    inputs: [nodes_a, nodes_b, audit]
    ${s3Connection(env.endpoint, bucket)}
    key_prefix: talos/
    upload_period_secs: 1
`;
  const daemon = await startDaemon(yaml, { dir, env: { ...s3Env(env), HEC_TOKEN: TOKEN } });
  configPath = join(dir, 'sluice.yaml');
  // In three rounds, so the period cuts the data into several objects.
  for (let round = 0; round < 3; round++) {
    const part = <T>(xs: T[]): T[] => xs.filter((_, k) => k % 3 === round);
    await sendTcpLines(daemon.sources['nodes_a']![0]!, part(talosLines[0]!));
    await sendTcpLines(daemon.sources['nodes_b']![0]!, part(talosLines[1]!));
    if (round === 1) {
      const res = await fetch(`http://${daemon.sources['audit']![0]}/services/collector/event`, {
        method: 'POST',
        headers: { authorization: `Splunk ${TOKEN}` },
        body: hecBody,
      });
      expect(res.status).toBe(200);
    }
    const sent = ((round + 1) * TALOS) / 3 + (round >= 1 ? HEC : 0);
    // Every line of the round stored by both sinks: their objects closed (the period ended), so the
    // next round starts new ones.
    await vi.waitFor(
      async () => {
        const m = await scrape(daemon.apiPort);
        for (const sink of ['local', 'remote']) {
          const sinkSent = metricSum(m, 'sluice_sink_sent_events_total', { component_id: sink });
          expect(sinkSent, `round ${round} stored by ${sink}`).toBe(sent);
        }
      },
      { timeout: 30_000, interval: 100 },
    );
  }
  expect(await daemon.stop()).toBe(0);
  objectKeys = listObjects(out);
  for (const key of objectKeys) stored.push(...(await readObjectLines(join(out, key))));
  expect(stored.length).toBe(TALOS + HEC);
}, 120_000);

describe('sluice read on a file sink', () => {
  it('no filter: every record exactly as stored, objects in key order; --stats counts them', async () => {
    expect(objectKeys.length).toBeGreaterThanOrEqual(2);
    const r = await read(['--path', join(out, 'talos/'), '--stats']);
    expect(r.stderr).toMatch(/^sluice read: objects_listed=\d+ /);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(stored.map((l) => `${l}\n`).join(''));
    const stats = Object.fromEntries(
      r.stderr
        .trim()
        .replace('sluice read: ', '')
        .split(' ')
        .map((kv) => kv.split('=')),
    );
    expect(stats).toMatchObject({
      objects_listed: String(objectKeys.length),
      objects_skipped: '0',
      objects_read: String(objectKeys.length),
      objects_failed: '0',
      records_scanned: String(TALOS + HEC),
      records_matched: String(TALOS + HEC),
    });
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    // The sink's directory and a key prefix that is a name prefix read the same.
    expect((await read(['--path', out])).stdout).toBe(r.stdout);
    expect((await read(['--path', join(out, 'tal')])).stdout).toBe(r.stdout);
  });

  it('--where: exact fields, nested ones dotted, several ANDed', async () => {
    const etcd = await read(['--path', out, '--where', 'talos-service=etcd']);
    expect(etcd.status).toBe(0);
    expect(ids(etcd.stdout)).toEqual(want((e) => e.service === 'etcd'));
    expect(
      etcd.stdout
        .split('\n')
        .filter(Boolean)
        .every((l) => stored.includes(l)),
    ).toBe(true);
    const both = await read(['--path', out, '--where', 'talos-service=etcd', '--where', 'talos-level=error']);
    expect(ids(both.stdout)).toEqual(want((e) => e.service === 'etcd' && e.level === 'error'));
    const nested = await read(['--path', out, '--where', 'event.action=UPDATE']);
    expect(ids(nested.stdout)).toEqual(want((e) => e.action === 'UPDATE'));
    const host = await read(['--path', out, '--where', 'host=node-2']);
    expect(ids(host.stdout)).toEqual(want((e) => e.host === 'node-2'));
  });

  it('--grep on the stored line', async () => {
    const r = await read(['--path', out, '--grep', 'certificate ren(ew)ed']);
    expect(ids(r.stdout)).toEqual(want((e) => e.renewed));
  });

  it('--since inclusive, --until exclusive: talos-time for Talos records, time for HEC ones', async () => {
    const since = T0 + 100 * STEP_MS + 0.123; // exactly record t100's time
    const until = T0 + 200 * STEP_MS + 0.123; // exactly t200's
    const r = await read([
      '--path',
      out,
      '--since',
      new Date(since - 0.123).toISOString().replace('Z', '123Z'),
      '--until',
      new Date(until - 0.123).toISOString().replace('Z', '123Z'),
    ]);
    expect(r.status).toBe(0);
    expect(ids(r.stdout)).toEqual(want((e) => e.timeMs >= since && e.timeMs < until));
    expect(ids(r.stdout)).toContain('t100');
    expect(ids(r.stdout)).not.toContain('t200');
    // A duration back from now: records well inside are there, records well before are not.
    const recent = ids((await read(['--path', out, '--since', '1h'])).stdout);
    const cut = Date.now() - 60 * MINUTE;
    for (const e of expected) {
      if (e.timeMs > cut + 5 * MINUTE) expect(recent).toContain(e.id);
      if (e.timeMs < cut - 5 * MINUTE) expect(recent).not.toContain(e.id);
    }
  });

  it('--limit N: the first N records', async () => {
    const r = await read(['--path', out, '--limit', '5']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      stored
        .slice(0, 5)
        .map((l) => `${l}\n`)
        .join(''),
    );
  });

  it('--format pretty: one line per record with time, host, service, level and message; no colour off a TTY', async () => {
    const r = await read(['--path', out, '--format', 'pretty', '--where', 'talos-service=etcd', '--limit', '1']);
    const first = stored
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((rec) => rec['talos-service'] === 'etcd')!;
    expect(r.stdout).toBe(
      `${String(first['talos-time']).slice(0, 23)}Z ${String(first['host'])} etcd ${String(first['talos-level'])}: ${String(first['msg'])}\n`,
    );
    const hec = await read(['--path', out, '--format', 'pretty', '--where', 'host=hec-1']);
    const lines = hec.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(HEC);
    expect(lines.every((l) => / hec-1 tailscale -: audit h\d+$/.test(l))).toBe(true);
    expect(hec.stdout).not.toContain('\x1b[');
  });

  it('a corrupt object: named on stderr with the reason, every other record printed, exit 2', async () => {
    const copy = join(tempDir('sluice-read-corrupt-'), 'out');
    cpSync(out, copy, { recursive: true });
    // A garbage object sorting among the real ones, and a real one cut short.
    const bad = objectKeys[0]!.replace(/-(\d{6})\.ndjson\.zst$/, '-999999.ndjson.zst');
    writeFileSync(join(copy, bad), Buffer.from('this is not zstd at all'));
    const r = await read(['--path', copy]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`sluice read: ${bad}: no zstd frame at byte 0 (not zstd, or corrupt)\n`);
    expect(r.stdout).toBe(stored.map((l) => `${l}\n`).join(''));
  });

  it('bad arguments: exit 1 with one line naming the problem, then the synopsis for a usage mistake', async () => {
    // [arguments, the first line, whether it is a usage mistake (the synopsis follows)]
    const cases: [string[], RegExp, boolean][] = [
      [['--path', out, '--since', 'yesterday'], /^sluice read: --since: "yesterday" is neither an RFC 3339 time/, true],
      [['--since', '1h'], /^sluice read: say where to read/, true],
      [['--path', out, '--limit', '0'], /^sluice read: --limit must be a whole number/, true],
      [['--path', out, '--where', 'novalue'], /^sluice read: --where: "novalue" is not KEY=VALUE/, true],
      [['--path', out, '--format', 'xml'], /^sluice read: --format must be ndjson or pretty/, true],
      [['--path', out, '--grep', '('], /^sluice read: --grep: /, true],
      [['--path', out, '--colour'], /^sluice read: Unknown option '--colour'/, true],
      [
        ['--path', 's3://Not_A_Bucket/x'],
        /^sluice read: --path: bucket: "Not_A_Bucket" is not a valid S3 bucket name/,
        false,
      ],
      [['--path', `${join(dir, 'missing')}/`], /^sluice read: cannot read .*missing: ENOENT/, false],
    ];
    for (const [args, message, isUsage] of cases) {
      const r = await read(args);
      expect(r.status, args.join(' ')).toBe(1);
      const [first, ...rest] = r.stderr.trim().split('\n');
      expect(first, args.join(' ')).toMatch(message);
      if (isUsage)
        expect(rest.join('\n'), args.join(' ')).toMatch(/^usage: sluice read --path DIR \| s3:\/\/BUCKET\/PREFIX/);
      else expect(rest, args.join(' ')).toEqual([]);
      expect(r.stdout).toBe('');
    }
  });

  it('--follow prints objects written after it started, until stopped', { timeout: 90_000 }, async () => {
    const copy = join(tempDir('sluice-read-follow-'), 'out');
    cpSync(out, copy, { recursive: true });
    const proc = spawn(process.execPath, [CLI, 'read', '--path', copy, '--follow'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    try {
      await vi.waitFor(() => expect(stdout.split('\n').length - 1).toBe(stored.length), {
        timeout: 60_000,
        interval: 200,
      });
      // A new object, written the way the file sink writes one: a temp name, then a rename.
      const last = objectKeys[objectKeys.length - 1]!;
      const key = last.replace(/-(\d{6})\.ndjson\.zst$/, '-999999.ndjson.zst');
      mkdirSync(dirname(join(copy, key)), { recursive: true });
      copyFileSync(join(out, objectKeys[0]!), join(copy, dirname(key), '.tmp-new'));
      renameSync(join(copy, dirname(key), '.tmp-new'), join(copy, key));
      const first = await readObjectLines(join(out, objectKeys[0]!));
      await vi.waitFor(() => expect(stdout).toBe([...stored, ...first].map((l) => `${l}\n`).join('')), {
        timeout: 60_000,
        interval: 200,
      });
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  });
});

describe('sluice read on a terminal', () => {
  // A pseudo-terminal from util-linux's script(1): stdout and stderr are both the TTY, as when
  // an operator runs it by hand. (Piped, stderr stays empty: the --follow test above.)
  it('--follow shows a progress line on stderr; --format pretty is coloured', { timeout: 90_000 }, async () => {
    const copy = join(tempDir('sluice-read-tty-'), 'out');
    cpSync(out, copy, { recursive: true });
    const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, CLI, 'read', '--path', copy, '--follow', '--format', 'pretty']
      .map(quote)
      .join(' ');
    const proc = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let tty = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (tty += c));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    try {
      // Every record printed, then (after a second of reading) the progress line: objects read
      // of objects wanted, MB, records matched, redrawn in place.
      await vi.waitFor(
        () =>
          expect(tty).toMatch(
            new RegExp(
              `\\r\\x1b\\[K${objectKeys.length}/${objectKeys.length} objects, \\d+ MB, ${stored.length} matched`,
            ),
          ),
        { timeout: 60_000, interval: 200 },
      );
      expect(tty).toContain('\x1b['); // colour escapes in the pretty lines
      expect(tty.split('\n').filter((l) => l.includes('machined')).length).toBeGreaterThan(0);
    } finally {
      proc.kill('SIGTERM');
    }
    await exited;
  });
});

describe('sluice read on an aws_s3 sink (Ceph RGW)', () => {
  it('--config/--sink: the sink location and its own credentials, never printed', async () => {
    // The credentials are in the config (through ${VARS}); none in the AWS environment.
    const r = await read(['--config', configPath, '--sink', 'remote', '--stats'], {
      ...s3Env(env),
      HEC_TOKEN: TOKEN,
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
      AWS_PROFILE: 'none-such',
    });
    expect(r.stderr).toMatch(/^sluice read: objects_listed=\d+ .*objects_failed=0 /);
    expect(r.status).toBe(0);
    // The same records as the file sink, each exactly as stored (objects may cut differently).
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([...stored].sort());
    expect(r.stdout + r.stderr).not.toContain(env.secretAccessKey);
  });

  it('--path s3://bucket/prefix with the AWS default chain (environment)', async () => {
    const r = await read(
      ['--path', `s3://${bucket}/talos/`, '--endpoint', env.endpoint, '--where', 'talos-service=kubelet'],
      { AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(ids(r.stdout)).toEqual(want((e) => e.service === 'kubelet'));
  });

  it('an unreachable endpoint: exit 1 with one line', { timeout: 60_000 }, async () => {
    const r = await read(['--path', 's3://some-bucket/x/', '--endpoint', 'http://127.0.0.1:1'], {
      AWS_ACCESS_KEY_ID: 'AKIAREADTEST',
      AWS_SECRET_ACCESS_KEY: 'read-test-secret-key',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^sluice read: cannot reach endpoint http:\/\/127\.0\.0\.1:1 \(.*ECONNREFUSED.*\); check --endpoint and the network \(SLUICE_ERR_S3_UNREACHABLE\)\n$/,
    );
    expect(r.stderr).not.toContain('read-test-secret-key');
    expect(r.stdout).toBe('');
  });
});
