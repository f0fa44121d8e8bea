/**
 * A real Prometheus (Debian's package; scrape and rule evaluation every second, with
 * deploy/prometheus/rules.yaml loaded) scrapes a real daemon through a run that exercises what
 * the dashboard and the alerts are about:
 *   - tcp, udp and splunk_hec sources get good lines and bad ones (malformed, oversize, empty,
 *     a bad HEC body, a wrong token); a second tcp source with max_connections 1 refuses one;
 *   - a file sink takes every source;
 *   - an aws_s3 sink (its own tcp source; spool on, 64 KiB of it, drop_newest) reaches the run's Ceph RGW through
 *     a TCP relay that the test cuts for a while: requests fail with network errors and are
 *     retried, the spool fills and drops (spool_full), and once the relay is back every
 *     object completes;
 *   - a second aws_s3 sink (no spool) whose bucket is deleted once it runs: its objects fail
 *     for good (client_error), their records counted as dropped.
 * Then, through Prometheus's HTTP API only:
 *   - once the daemon is idle and Prometheus has scraped it after that, the books balance
 *     exactly per sink (received - dropped = stored + dropped by the sink, as docs/metrics.md
 *     writes it in PromQL), with the same numbers as the daemon's own /metrics;
 *   - every expression of deploy/grafana/sluice.json parses and returns data over the run,
 *     with the dashboard's variables set as Grafana sets them (all values of each variable);
 *   - every rule of rules.yaml evaluates with health "ok", and the alerts for what happened
 *     (records lost to a full spool, objects failing) fire.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { DeleteBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { rgwClient } from '../s3/rgw.ts';
import {
  hecPost,
  metricSum,
  type RunningDaemon,
  scrape,
  sendTcpLines,
  sendUdp,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';
import { needPrometheus, startPrometheus, type PrometheusServer } from '../helpers/prometheus.ts';
import { freshBucket, s3Connection, s3Env } from '../helpers/s3.ts';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

needPrometheus();

const ROOT = new URL('../../', import.meta.url).pathname;
const RULES = join(ROOT, 'deploy/prometheus/rules.yaml');
const TOKEN = 'prom-token-6d1f0a2c9e47';
/** Sources of each sink (the daemon's config below). */
const INPUTS: Record<string, string[]> = {
  files: ['prom_tcp', 'prom_udp', 'prom_hec', 'prom_limited', 'prom_s3'],
  s3: ['prom_s3'],
  s3_gone: ['prom_tcp'],
};
const SOURCES = INPUTS['files']!;
const BAD_LINES = ['{"msg":"hel', '[1,2]', 'null', '', `{"big":"${'y'.repeat(3000)}"}`];
/** Grafana's $__rate_interval for a 1 s step and a 1 s scrape interval: max($__interval + scrape, 4 x scrape). */
const STEP_SECS = 1;
const RATE_INTERVAL = `${Math.max(STEP_SECS + 1, 4 * 1)}s`;
/**
 * Dashboard queries that have no data in this run, and why: a worker fails a batch only when
 * a worker thread dies or is handed a corrupt task, which no input can cause. They must still
 * evaluate, and without their `> 0` filter (the series exists at 0) return data.
 */
const NO_DATA: Record<string, string> = {
  'Batches B': 'sluice_worker_batch_failures_total counts batches lost to a failing worker thread; no input causes one',
};

/** A TCP relay to `target` that can be cut: while down it resets every connection, open or new. */
function relay(target: string): {
  server: Server;
  port: () => number;
  setDown(down: boolean): void;
  close(): Promise<void>;
} {
  const { host, port } = splitAddress(target.replace(/^https?:\/\//, '').replace(/\/.*$/, ''));
  const open = new Set<Socket>();
  let down = false;
  const server = createServer((inbound) => {
    if (down) {
      inbound.resetAndDestroy();
      return;
    }
    const outbound = connect({ host, port });
    for (const s of [inbound, outbound]) {
      open.add(s);
      s.on('error', () => undefined).on('close', () => {
        open.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  return {
    server,
    port: () => (server.address() as { port: number }).port,
    setDown(d: boolean): void {
      down = d;
      if (d) for (const s of open) s.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Open a connection and keep it; resolves once connected. */
async function holdConnection(address: string): Promise<Socket> {
  const { host, port } = splitAddress(address);
  const sock = connect({ host, port });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  return sock;
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
interface RangeSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

/** A value quoted for a regex inside a PromQL string, as Grafana does: `.` becomes `\\.` in the query text. */
const regexQuote = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&');

/** Records in flight between a sink's sources and the sink, from one /metrics scrape. */
function inFlight(m: Map<string, number>, sink: string): number {
  let n = 0;
  for (const src of INPUTS[sink]!)
    n +=
      metricSum(m, 'sluice_source_received_events_total', { component_id: src }) -
      metricSum(m, 'sluice_source_discarded_events_total', { component_id: src });
  return (
    n -
    metricSum(m, 'sluice_sink_sent_events_total', { component_id: sink }) -
    metricSum(m, 'sluice_sink_discarded_events_total', { component_id: sink })
  );
}

describe('Prometheus scraping a running daemon', () => {
  it('the books balance through the query API, every dashboard query returns data, every rule evaluates', {
    timeout: 300_000,
  }, async () => {
    const started = Date.now() / 1000;
    const dir = tempDir();
    const bucket = await freshBucket(client, 'prom');
    const goneBucket = await freshBucket(client, 'prom-gone');
    const s3Relay = relay(env.endpoint);
    await new Promise<void>((resolve) => s3Relay.server.listen(0, '127.0.0.1', resolve));
    let daemon: RunningDaemon | undefined;
    let prom: PrometheusServer | undefined;
    try {
      daemon = await startDaemon(
        `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  prom_tcp: { type: tcp, address: 127.0.0.1:0, max_line_bytes: 2048 }
  prom_udp: { type: udp, address: 127.0.0.1:0 }
  prom_hec: { type: splunk_hec, address: 127.0.0.1:0, valid_tokens: ["\${HEC_TOKEN}"] }
  prom_limited: { type: tcp, address: 127.0.0.1:0, max_connections: 1 }
  prom_s3: { type: tcp, address: 127.0.0.1:0 }
sinks:
  files: { type: file, inputs: [${INPUTS['files']!.join(', ')}], path: ${join(dir, 'out')}, upload_period_secs: 1 }
  s3:
    type: aws_s3
    inputs: [prom_s3]
    ${s3Connection(`http://127.0.0.1:${s3Relay.port()}`, bucket)}
    compression: none
    upload_period_secs: 1
    spool: true
    max_spool_bytes: 65536
    when_full: drop_newest
  s3_gone:
    type: aws_s3
    inputs: [prom_tcp]
    ${s3Connection(env.endpoint, goneBucket)}
    upload_period_secs: 1
    spool: false
`,
        { dir, env: { ...s3Env(env), HEC_TOKEN: TOKEN } },
      );
      const d = daemon;
      // Its objects now fail for good: the bucket is gone (empty, as nothing was written yet).
      await client.send(new DeleteBucketCommand({ Bucket: goneBucket }));

      prom = await startPrometheus(
        `
global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
rule_files: [${JSON.stringify(RULES)}]
scrape_configs:
  - job_name: sluice
    static_configs: [{ targets: ["127.0.0.1:${d.apiPort}"] }]
`,
        dir,
      );
      const p = prom;
      await waitUntil(
        'a first scrape of the daemon',
        async () => {
          const up = await p.api<{ result: Sample[] }>('/api/v1/query', { query: 'up{job="sluice"} == 1' });
          return up.result.length === 1;
        },
        60_000,
        200,
      );

      // Prometheus has scraped the daemon after `at` (ms): a counter that grows after this has two
      // samples apart, which rate() needs (a series that appears at its first event starts there).
      const scrapedAfter = (at: number): Promise<number> =>
        waitUntil(
          'a scrape after the last step',
          async () => {
            const r = await p.api<{ result: Sample[] }>('/api/v1/query', {
              query: 'timestamp(sluice_build_info{job="sluice"})',
            });
            return r.result.length === 1 && Number(r.result[0]!.value[1]) * 1000 > at;
          },
          60_000,
          200,
        );
      const rand = mulberry32(7);
      let nextId = 0;
      const lines = (n: number): string[] => Array.from({ length: n }, () => serviceLine({ id: nextId++, rand }));
      const tcp = d.sources['prom_tcp']![0]!;
      const hec = d.sources['prom_hec']![0]!;

      // Good and bad input on every source, everything reachable.
      await sendTcpLines(tcp, [...lines(1500), ...BAD_LINES]);
      // Fewer than the 64 KiB spool holds (about 270 bytes a line, uncompressed).
      await sendTcpLines(d.sources['prom_s3']![0]!, lines(100));
      await sendUdp(d.sources['prom_udp']![0]!, [...lines(300), ...BAD_LINES.slice(0, 3)]);
      expect(
        await hecPost(
          hec,
          TOKEN,
          lines(20)
            .map((l) => JSON.stringify({ event: JSON.parse(l) as unknown }))
            .join(''),
        ),
      ).toBe(200);
      expect(await hecPost(hec, TOKEN, '{"event": ')).toBe(400);
      expect(await hecPost(hec, 'not-the-token', JSON.stringify({ event: 'x' }))).toBe(403);
      const limited = d.sources['prom_limited']![0]!;
      const held = await holdConnection(limited);
      held.write(`${lines(10).join('\n')}\n`);
      await waitUntil(
        'a connection refused at max_connections',
        async () => {
          const extra = await holdConnection(limited).catch(() => null);
          if (extra !== null)
            await new Promise<void>((resolve) => (extra.closed ? resolve() : extra.once('close', () => resolve())));
          return (
            metricSum(await scrape(d.apiPort), 'sluice_source_connections_refused_total', {
              component_id: 'prom_limited',
            }) > 0
          );
        },
        30_000,
        200,
      );
      await new Promise<void>((resolve) => held.end(() => resolve()));
      // A wait on the daemon's own /metrics that, on timeout, shows the sinks' counts and the last log lines.
      const untilMetrics = async (
        what: string,
        check: (m: Map<string, number>) => boolean | Promise<boolean>,
        timeoutMs: number,
        everyMs: number,
      ): Promise<void> => {
        let last = new Map<string, number>();
        const looked = async (): Promise<boolean> => check((last = await scrape(d.apiPort)));
        await waitUntil(what, looked, timeoutMs, everyMs).catch((err: Error) => {
          const counts = [...last]
            .filter(([k]) => /^sluice_(sink|spool)_[a-z_]+_total|sluice_spool_bytes|sluice_ring_used/.test(k))
            .map(([k, v]) => `${k} ${v}`);
          throw new Error(`${err.message}\n${counts.join('\n')}\n${JSON.stringify(d.logs.slice(-10))}`);
        });
      };
      await untilMetrics(
        'objects in both working sinks, objects failing in the other',
        (m) => {
          return (
            metricSum(m, 'sluice_sink_objects_completed_total', { component_id: 's3' }) > 0 &&
            metricSum(m, 'sluice_sink_objects_completed_total', { component_id: 'files' }) > 0 &&
            metricSum(m, 'sluice_sink_failures_total', { component_id: 's3_gone' }) > 0
          );
        },
        60_000,
        200,
      );

      // Again, once Prometheus has seen the series of the first round, so each grows between two scrapes.
      await scrapedAfter(Date.now());
      const before = await scrape(d.apiPort);
      await sendTcpLines(tcp, [...lines(200), ...BAD_LINES]);
      await sendUdp(d.sources['prom_udp']![0]!, BAD_LINES.slice(0, 3));
      expect(await hecPost(hec, 'not-the-token', JSON.stringify({ event: 'x' }))).toBe(403);
      // The one connection prom_limited takes, held so that the next is refused.
      const heldAgain = await holdConnection(limited);
      await untilMetrics(
        'a second round of drops, refusals and failures',
        async (m) => {
          const grew = (name: string, match: Record<string, string>): boolean =>
            metricSum(m, name, match) > metricSum(before, name, match);
          if (!grew('sluice_source_connections_refused_total', { component_id: 'prom_limited' })) {
            const extra = await holdConnection(limited).catch(() => null);
            if (extra !== null)
              await new Promise<void>((resolve) => (extra.closed ? resolve() : extra.once('close', () => resolve())));
            return false;
          }
          return (
            grew('sluice_source_malformed_events_total', { component_id: 'prom_tcp' }) &&
            grew('sluice_source_discarded_events_total', { component_id: 'prom_udp' }) &&
            grew('sluice_sink_failures_total', { component_id: 's3_gone' })
          );
        },
        60_000,
        200,
      );
      await new Promise<void>((resolve) => heldAgain.end(() => resolve()));

      // The store out of reach: retries, then a full spool that drops (when_full: drop_newest).
      s3Relay.setDown(true);
      const s3Lines = d.sources['prom_s3']![0]!;
      // An object the spool holds, whose upload fails and is retried...
      await sendTcpLines(s3Lines, lines(100));
      await untilMetrics(
        'S3 retries while the store is out of reach',
        (m) => metricSum(m, 'sluice_sink_retries_total', { component_id: 's3' }) > 0,
        60_000,
        200,
      );
      await scrapedAfter(Date.now());
      const retried = metricSum(await scrape(d.apiPort), 'sluice_sink_retries_total', { component_id: 's3' });
      await untilMetrics(
        'more S3 retries',
        (m) => metricSum(m, 'sluice_sink_retries_total', { component_id: 's3' }) > retried,
        60_000,
        200,
      );
      // ...then more than the rest of the spool holds, dropped.
      const spoolDrops = async (more: number): Promise<void> =>
        untilMetrics(
          'spool_full drops while the store is out of reach',
          async (m) => {
            if (metricSum(m, 'sluice_spool_dropped_events_total', { component_id: 's3', reason: 'spool_full' }) > more)
              return true;
            await sendTcpLines(s3Lines, lines(500));
            return false;
          },
          60_000,
          500,
        );
      await spoolDrops(0);
      await scrapedAfter(Date.now());
      await spoolDrops(
        metricSum(await scrape(d.apiPort), 'sluice_spool_dropped_events_total', {
          component_id: 's3',
          reason: 'spool_full',
        }),
      );
      s3Relay.setDown(false);

      // Idle: every record of every sink stored or counted as dropped, nothing buffered, twice
      // in a row a second apart (so no record was still on its way between two scrapes).
      let idleSince = 0;
      let balanced: Map<string, number> | undefined;
      await waitUntil(
        'the daemon idle with the books balanced',
        async () => {
          const m = await scrape(d.apiPort);
          const idle =
            Object.keys(INPUTS).every((s) => inFlight(m, s) === 0) &&
            metricSum(m, 'sluice_ring_used_bytes') === 0 &&
            metricSum(m, 'sluice_sink_buffered_bytes') === 0;
          if (!idle) {
            balanced = undefined;
            return false;
          }
          const same =
            balanced !== undefined &&
            [...m].filter(([k]) => /_events_total\{/.test(k)).every(([k, v]) => balanced!.get(k) === v);
          if (!same) {
            balanced = m;
            idleSince = Date.now() / 1000;
          }
          return same;
        },
        90_000,
        1_000,
      );
      const direct = balanced!;
      await waitUntil(
        'a scrape after the daemon went idle',
        async () => {
          const r = await p.api<{ result: Sample[] }>('/api/v1/query', {
            query: 'min(timestamp(sluice_sink_sent_events_total{job="sluice"}))',
          });
          return r.result.length === 1 && Number(r.result[0]!.value[1]) > idleSince;
        },
        60_000,
        200,
      );

      // The books, as docs/metrics.md writes them, per sink: exactly 0, and the same counts as /metrics.
      const scalar = async (query: string): Promise<number> => {
        const r = await p.api<{ result: Sample[] }>('/api/v1/query', { query });
        expect(r.result, query).toHaveLength(1);
        return Number(r.result[0]!.value[1]);
      };
      for (const [sink, inputs] of Object.entries(INPUTS)) {
        const sources = inputs.join('|');
        const received = await scalar(`sum(sluice_source_received_events_total{component_id=~"${sources}"})`);
        const dropped = await scalar(
          `sum(sluice_source_discarded_events_total{component_id=~"${sources}"}) or vector(0)`,
        );
        const sent = await scalar(`sum(sluice_sink_sent_events_total{component_id="${sink}"}) or vector(0)`);
        const sinkDropped = await scalar(
          `sum(sluice_sink_discarded_events_total{component_id="${sink}"}) or vector(0)`,
        );
        const sum = (name: string, match: Record<string, string>): number => metricSum(direct, name, match);
        expect(received, sink).toBe(
          inputs.reduce((n, s) => n + sum('sluice_source_received_events_total', { component_id: s }), 0),
        );
        expect(dropped, sink).toBe(
          inputs.reduce((n, s) => n + sum('sluice_source_discarded_events_total', { component_id: s }), 0),
        );
        expect(sent, sink).toBe(sum('sluice_sink_sent_events_total', { component_id: sink }));
        expect(sinkDropped, sink).toBe(sum('sluice_sink_discarded_events_total', { component_id: sink }));
        expect(received, sink).toBeGreaterThan(0);
        const books = await scalar(
          `  sum(sluice_source_received_events_total{component_id=~"${sources}"})
           - (sum(sluice_source_discarded_events_total{component_id=~"${sources}"}) or vector(0))
           - (sum(sluice_sink_sent_events_total{component_id="${sink}"}) or vector(0))
           - (sum(sluice_sink_discarded_events_total{component_id="${sink}"}) or vector(0))`,
        );
        expect(books, `records in flight to ${sink} once idle`).toBe(0);
      }
      // What each sink went through, as Prometheus saw it.
      expect(await scalar('sum(sluice_sink_sent_events_total{component_id="s3"})')).toBeGreaterThan(0);
      expect(
        await scalar('sum(sluice_sink_discarded_events_total{component_id="s3", reason="spool_full"})'),
      ).toBeGreaterThan(0);
      expect(
        await scalar('sum(sluice_sink_discarded_events_total{component_id="s3_gone", reason="object_failed"})'),
      ).toBe(
        await scalar(
          'sum(sluice_source_received_events_total{component_id="prom_tcp"}) - sum(sluice_source_discarded_events_total{component_id="prom_tcp"})',
        ),
      );
      // The recording rule of the books: received - dropped - stored over all sinks (negative
      // here, as prom_tcp feeds three sinks and each stores its copy), from the same counts.
      const kept = SOURCES.reduce(
        (n, s) =>
          n +
          metricSum(direct, 'sluice_source_received_events_total', { component_id: s }) -
          metricSum(direct, 'sluice_source_discarded_events_total', { component_id: s }),
        0,
      );
      const accounted = Object.keys(INPUTS).reduce(
        (n, s) =>
          n +
          metricSum(direct, 'sluice_sink_sent_events_total', { component_id: s }) +
          metricSum(direct, 'sluice_sink_discarded_events_total', { component_id: s }),
        0,
      );
      const expectedInFlight = kept - accounted;
      expect(expectedInFlight).toBeLessThan(0);
      await waitUntil(
        'the recording rule caught up',
        async () => (await scalar('instance:sluice_records_in_flight:sum{job="sluice"}')) === expectedInFlight,
        30_000,
        200,
      );

      // Every dashboard expression over the run, with the variables set as Grafana sets them.
      const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/sluice.json'), 'utf8')) as {
        panels: { title: string; targets?: { expr: string; refId: string }[] }[];
        templating: { list: { name: string; query: { query: string } | string }[] };
      };
      const end = Date.now() / 1000;
      const vars = new Map<string, string>();
      const substitute = (expr: string): string =>
        expr.replace(/\$(__rate_interval|__interval|[a-z_]+)/g, (_, name: string) => {
          if (name === '__rate_interval') return RATE_INTERVAL;
          if (name === '__interval') return `${STEP_SECS}s`;
          const v = vars.get(name);
          if (v === undefined) throw new Error(`dashboard variable $${name} is used before it is defined`);
          return v;
        });
      for (const v of dash.templating.list) {
        const q = typeof v.query === 'string' ? v.query : v.query.query;
        const m = /^label_values\((.+),\s*([a-z_]+)\)$/.exec(substitute(q));
        expect(m, `variable ${v.name}: ${q}`).not.toBeNull();
        const values = await p.api<string[]>(`/api/v1/label/${m![2]}/values`, {
          'match[]': m![1]!,
          start: String(started),
          end: String(end),
        });
        expect(values.length, `variable ${v.name} has values`).toBeGreaterThan(0);
        // "All" of a multi-value variable: each value, escaped, in one alternation.
        vars.set(v.name, `(${values.map(regexQuote).join('|')})`);
      }
      expect(vars.get('source')).toBe(`(${[...SOURCES].sort().join('|')})`);
      expect(vars.get('sink')).toBe(`(${Object.keys(INPUTS).sort().join('|')})`);
      const empty: string[] = [];
      for (const panel of dash.panels) {
        for (const t of panel.targets ?? []) {
          const where = `${panel.title} ${t.refId}`;
          const query = substitute(t.expr);
          const r = await p.api<{ result: RangeSeries[] }>('/api/v1/query_range', {
            query,
            start: String(started),
            end: String(end),
            step: String(STEP_SECS),
          });
          const hasData = r.result.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v))));
          if (NO_DATA[where] !== undefined) {
            expect(hasData, `${where} was expected to have no data (${NO_DATA[where]})`).toBe(false);
            const unfiltered = query.replace(/\s*>\s*0\s*$/, '');
            expect(unfiltered).not.toBe(query);
            const u = await p.api<{ result: RangeSeries[] }>('/api/v1/query_range', {
              query: unfiltered,
              start: String(started),
              end: String(end),
              step: String(STEP_SECS),
            });
            expect(u.result.length, `${where} without its filter: ${unfiltered}`).toBeGreaterThan(0);
          } else if (!hasData) empty.push(`${where}: ${query}`);
        }
      }
      expect(empty, 'dashboard queries without data').toEqual([]);

      // Every rule evaluated, without error; the alerts for what happened fire.
      interface RuleState {
        name: string;
        health: string;
        lastError?: string;
        lastEvaluation: string;
      }
      await waitUntil(
        'every rule evaluated',
        async () => {
          const r = await p.api<{ groups: { rules: RuleState[] }[] }>('/api/v1/rules');
          const rules = r.groups.flatMap((g) => g.rules);
          return rules.length > 0 && rules.every((x) => !x.lastEvaluation.startsWith('0001-'));
        },
        30_000,
        200,
      );
      const rules = (await p.api<{ groups: { rules: RuleState[] }[] }>('/api/v1/rules')).groups.flatMap((g) => g.rules);
      const inFile = [...readFileSync(RULES, 'utf8').matchAll(/^\s+- (?:alert|record): (\S+)$/gm)].map((m) => m[1]!);
      expect(rules.map((r) => r.name).sort()).toEqual([...inFile].sort());
      expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`)).toEqual(
        [],
      );
      await waitUntil(
        'SluiceRecordsLost (s3, spool_full) and SluiceObjectsFailing (s3_gone) firing',
        async () => {
          const { alerts } = await p.api<{ alerts: { labels: Record<string, string>; state: string }[] }>(
            '/api/v1/alerts',
          );
          const firing = (name: string, labels: Record<string, string>): boolean =>
            alerts.some(
              (a) =>
                a.state === 'firing' &&
                a.labels['alertname'] === name &&
                Object.entries(labels).every(([k, v]) => a.labels[k] === v),
            );
          return (
            firing('SluiceRecordsLost', { component_id: 's3', reason: 'spool_full' }) &&
            firing('SluiceObjectsFailing', { component_id: 's3_gone', reason: 'client_error' })
          );
        },
        30_000,
        500,
      );
    } finally {
      await prom?.stop();
      await daemon?.stop();
      await s3Relay.close();
    }
    expect(await daemon!.exited, `${JSON.stringify(daemon!.logs.slice(-20))}\n${daemon!.stderr()}`).toBe(0);
  });
});
