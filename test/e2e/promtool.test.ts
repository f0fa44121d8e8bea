/**
 * /metrics passes `promtool check metrics` (Prometheus's linter: HELP on every family, counters
 * end in _total and nothing else does, base units, no histogram suffixes on other types, no
 * duplicate families or series). promtool lints only families that have a series, so:
 *   - a real daemon (tcp, udp and splunk_hec into a file sink) gets good and bad lines, datagrams
 *     and HEC requests, and its /metrics is linted once its objects are written;
 *   - the same with an aws_s3 sink on the run's Ceph RGW (inject('s3')), spool on, for the
 *     families of the S3 client and the spool;
 *   - the registry itself, with a series put into every family Sluice registers, covers the
 *     families that only get series on failures (retries, spool corruption).
 * promtool comes from Debian's prometheus package (scripts/ensure-prometheus.sh installs it).
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { Metrics, SpoolMetrics } from '@sluice/telemetry';
import { rgwClient } from '../s3/rgw.ts';
import {
  hecPost,
  metricSum,
  type RunningDaemon,
  scrape,
  sendUdp,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';
import { needPrometheus, promtoolCheckMetrics } from '../helpers/prometheus.ts';
import { freshBucket, s3Connection, s3Env } from '../helpers/s3.ts';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

needPrometheus();

const TOKEN = 'promtool-token-3c9a51e0b7d2';
const GOOD_LINES = 500;
const BAD_LINES = ['{"msg":"hel', '[1,2]', 'null', `{"big":"${'y'.repeat(3000)}"}`];

async function metricsText(apiPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${apiPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** Families declared by `# TYPE` lines, and those that have at least one sample. */
function families(text: string): { declared: string[]; withSeries: Set<string> } {
  const declared = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  const withSeries = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const name = line.replace(/[{ ].*$/, '');
    withSeries.add(declared.includes(name) ? name : name.replace(/_(bucket|sum|count)$/, ''));
  }
  return { declared, withSeries };
}

/** promtool clean, one HELP and one TYPE per family, and the families named have series (so they were linted). */
function expectClean(text: string, mustHaveSeries: readonly string[]): void {
  const lint = promtoolCheckMetrics(text);
  expect(lint, `promtool check metrics said:\n${lint.output}`).toEqual({ status: 0, output: '' });
  const { declared, withSeries } = families(text);
  expect(
    declared.filter((n, i) => declared.indexOf(n) !== i),
    'families declared twice',
  ).toEqual([]);
  const helped = [...text.matchAll(/^# HELP (\S+) /gm)].map((m) => m[1]!);
  expect(helped.sort()).toEqual([...declared].sort());
  expect(
    mustHaveSeries.filter((n) => !withSeries.has(n)),
    'families without a series (not linted)',
  ).toEqual([]);
}

async function sendTcp(address: string, text: string): Promise<void> {
  const { host, port } = splitAddress(address);
  const sock = connect({ host, port });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  await new Promise<void>((resolve) => sock.end(text, () => resolve()));
  await new Promise<void>((resolve) => (sock.closed ? resolve() : sock.once('close', () => resolve())));
}

function output(d: RunningDaemon): string {
  return `${JSON.stringify(d.logs.slice(-20))}\n${d.stderr()}`;
}

/** Families every daemon below must show series for, whatever its sink. */
const COMMON = [
  'sluice_source_received_events_total',
  'sluice_source_received_bytes_total',
  'sluice_source_discarded_events_total',
  'sluice_source_malformed_events_total',
  'sluice_source_records_by_kind_total',
  'sluice_ring_capacity_bytes',
  'sluice_ring_used_bytes',
  'sluice_worker_batches_total',
  'sluice_worker_batch_duration_seconds',
  'sluice_worker_queue_depth',
  'sluice_worker_utilization_ratio',
  'sluice_worker_busy_seconds_total',
  'sluice_worker_threads',
  'sluice_worker_native',
  'sluice_sink_sent_events_total',
  'sluice_sink_sent_bytes_total',
  'sluice_sink_objects_completed_total',
  'sluice_sink_upload_duration_seconds',
  'sluice_sink_buffered_bytes',
  'sluice_sink_last_object_timestamp_seconds',
  'sluice_build_info',
  'sluice_process_cpu_seconds_total',
  'sluice_nodejs_active_handles',
  'sluice_nodejs_eventloop_lag_seconds',
];

describe('/metrics passes promtool check metrics', () => {
  it('a daemon with tcp, udp and splunk_hec sources and a file sink, after good and bad input', {
    timeout: 120_000,
  }, async () => {
    const dir = tempDir();
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  lint_tcp: { type: tcp, address: 127.0.0.1:0, max_line_bytes: 2048 }
  lint_udp: { type: udp, address: 127.0.0.1:0 }
  lint_hec: { type: splunk_hec, address: 127.0.0.1:0, valid_tokens: ["\${HEC_TOKEN}"] }
sinks:
  files: { type: file, inputs: [lint_tcp, lint_udp, lint_hec], path: ${join(dir, 'out')}, upload_period_secs: 1 }
`,
      { dir, env: { HEC_TOKEN: TOKEN } },
    );
    try {
      const rand = mulberry32(41);
      const good = Array.from({ length: GOOD_LINES }, (_, id) => serviceLine({ id, rand }));
      await sendTcp(daemon.sources['lint_tcp']![0]!, `${[...good, ...BAD_LINES].join('\n')}\n`);
      await sendUdp(daemon.sources['lint_udp']![0]!, [...good.slice(0, 20), ...BAD_LINES.slice(0, 3)]);
      const hec = daemon.sources['lint_hec']![0]!;
      expect(await hecPost(hec, TOKEN, JSON.stringify({ event: { msg: 'hello from hec' } }))).toBe(200);
      expect(await hecPost(hec, TOKEN, '{"event": ')).toBe(400);
      expect(await hecPost(hec, 'not-the-token', JSON.stringify({ event: 'x' }))).toBe(403);

      // The tcp lines processed and a first object written; udp datagrams may be lost, so only some.
      await waitUntil(
        'tcp lines validated, objects written',
        async () => {
          const m = await scrape(daemon.apiPort);
          return (
            metricSum(m, 'sluice_source_malformed_events_total', { component_id: 'lint_tcp' }) >= 3 &&
            metricSum(m, 'sluice_source_received_events_total', { component_id: 'lint_udp' }) > 0 &&
            metricSum(m, 'sluice_sink_sent_events_total') >= GOOD_LINES
          );
        },
        60_000,
        200,
      );
      expectClean(await metricsText(daemon.apiPort), [
        ...COMMON,
        'sluice_source_http_requests_total',
        'sluice_source_open_connections',
      ]);
    } finally {
      // Stopped whatever happened above; its exit code is checked once the lint passed.
      await daemon.stop();
    }
    expect(await daemon.exited, output(daemon)).toBe(0);
  });

  it('a daemon with an aws_s3 sink (spool on) into Ceph RGW', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const bucket = await freshBucket(client, 'promtool');
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  lint_tcp: { type: tcp, address: 127.0.0.1:0, max_line_bytes: 2048 }
sinks:
  s3:
    type: aws_s3
    inputs: [lint_tcp]
    ${s3Connection(env.endpoint, bucket)}
    spool: true
    upload_period_secs: 1
`,
      { dir, env: s3Env(env) },
    );
    try {
      const rand = mulberry32(43);
      const good = Array.from({ length: GOOD_LINES }, (_, id) => serviceLine({ id, rand }));
      await sendTcp(daemon.sources['lint_tcp']![0]!, `${[...good, ...BAD_LINES].join('\n')}\n`);
      await waitUntil(
        'an object completed in S3',
        async () =>
          metricSum(await scrape(daemon.apiPort), 'sluice_sink_sent_events_total', { component_id: 's3' }) >=
          GOOD_LINES,
        60_000,
        200,
      );
      expectClean(await metricsText(daemon.apiPort), [
        ...COMMON,
        'sluice_sink_parts_uploaded_total',
        'sluice_spool_bytes',
        'sluice_spool_appended_events_total',
      ]);
    } finally {
      // Stopped whatever happened above; its exit code is checked once the lint passed.
      await daemon.stop();
    }
    expect(await daemon.exited, output(daemon)).toBe(0);
  });

  it('every family Sluice registers, each given a series', async () => {
    const metrics = new Metrics('0.0.0-test');
    new SpoolMetrics(metrics.registry);
    for (const metric of metrics.registry.getMetricsAsArray()) {
      // The series here are the test's own: collectors (prom-client's per-type gauges reset
      // theirs to what is alive at the scrape, often no request at all) are switched off.
      (metric as unknown as { collect?: unknown }).collect = undefined;
      const labelNames = ((metric as unknown as { labelNames?: string[] }).labelNames ?? []).filter(
        (l) => l !== 'le' && l !== 'quantile',
      );
      const labels = Object.fromEntries(labelNames.map((l) => [l, 'x']));
      // prom-client's Counter, Gauge, Histogram and Summary, by the methods used here.
      const m = metric as unknown as {
        type: string;
        inc(l: object, v: number): void;
        set(l: object, v: number): void;
        observe(l: object, v: number): void;
      };
      if (m.type === 'counter') m.inc(labels, 1);
      else if (m.type === 'gauge') m.set(labels, 1);
      else if (m.type === 'histogram' || m.type === 'summary') m.observe(labels, 0.5);
      else throw new Error(`${metric.name}: unknown metric type ${m.type}`);
    }
    const text = await metrics.registry.metrics();
    const all = metrics.registry.getMetricsAsArray().map((m) => m.name);
    expectClean(text, all);
  });
});
