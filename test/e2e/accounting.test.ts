/**
 * The books balance. tcp, udp and splunk_hec sources feed a file sink and an aws_s3 sink (the
 * run's shared Ceph RGW); each source tags its records (`src`) so every stored line can be
 * attributed. The sources get valid lines, malformed lines, oversize lines, empty lines, bad
 * and unauthorized HEC requests, and a UDP ring small enough to overflow (ring_full drops).
 *
 * During the run, /metrics must never claim more than was received, nor go negative, nor run
 * a counter backwards. Once everything is processed (scraped before SIGTERM), per source:
 *   received = lines stored (by tag, read back from the objects) + Σ discarded by reason
 * exactly, for both sinks; per sink: sent events = lines in its objects, bytes = object bytes;
 * received bytes = bytes sent; and for UDP, datagrams sent = received + kernel drops.
 * The engine's log at debug level has no line per record and no secret.
 */
import { createSocket } from 'node:dgram';
import { statSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { rgwClient } from '../s3/rgw.ts';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';
import { freshBucket, getObjectLines, listKeys, s3Connection, s3Env } from '../helpers/s3.ts';
import { HeadObjectCommand } from '@aws-sdk/client-s3';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

const TOKEN = 'acct-token-7f3e9c21d4b84a6f';
const WRONG_TOKEN = 'not-the-token-55aa19c3e7d2';
const SOURCES = ['acct_tcp', 'acct_udp', 'acct_hec'] as const;
type SourceId = (typeof SOURCES)[number];
const SINKS = ['file', 's3'] as const;

/** Malformed lines, each with the reason the worker counts it under. */
const MALFORMED: { bytes: Buffer; reason: string }[] = [
  { bytes: Buffer.from('{"msg":"hel'), reason: 'invalid_json' },
  { bytes: Buffer.from('<13>Nov 22 10:00:00 host app: hello'), reason: 'invalid_json' },
  { bytes: Buffer.from('[{"msg":"a"}]'), reason: 'not_object' },
  { bytes: Buffer.from('null'), reason: 'not_object' },
  { bytes: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0x80, 0x22, 0x7d]), reason: 'invalid_utf8' },
  { bytes: Buffer.from('   \t '), reason: 'empty' },
];

/** Kernel-style lines of one fixed length, so UDP bytes received = datagrams received x length. */
const UDP_LINE_BYTES = 200;
function udpLine(id: number): string {
  const head = JSON.stringify({
    facility: 'kern',
    priority: 'info',
    seq: id,
    msg: `udp line ${String(id).padStart(8, '0')}`,
    pad: '',
  });
  return head.replace('"pad":""', `"pad":"${'x'.repeat(UDP_LINE_BYTES - head.length)}"`);
}

function hecEnvelope(id: number): string {
  return JSON.stringify({
    time: 1_763_800_000 + id / 1000,
    sourcetype: 'acct',
    event: { msg: `hec event ${id}`, n: id },
  });
}

interface HecAnswer {
  status: number;
  body: string;
}

function hecPost(
  address: string,
  path: string,
  headers: Record<string, string>,
  body: string | null,
  agent: Agent | false,
  declaredLength?: number,
): Promise<HecAnswer> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path,
        method: 'POST',
        agent,
        headers: { ...headers, ...(declaredLength !== undefined ? { 'content-length': String(declaredLength) } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    if (body === null)
      req.flushHeaders(); // the answer comes before any body: declared too large
    else req.end(body);
  });
}

const sendDatagram = (
  socket: ReturnType<typeof createSocket>,
  bytes: Buffer | string,
  address: string,
): Promise<void> => {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => socket.send(bytes, port, host, (err) => (err ? reject(err) : resolve())));
};

type Scrape = Map<string, number>;
const received = (m: Scrape, id: string): number =>
  metricSum(m, 'sluice_source_received_events_total', { component_id: id });
const discarded = (m: Scrape, id: string, reason?: string): number =>
  metricSum(
    m,
    'sluice_source_discarded_events_total',
    reason === undefined ? { component_id: id } : { component_id: id, reason },
  );
const sent = (m: Scrape, sink: string): number => metricSum(m, 'sluice_sink_sent_events_total', { component_id: sink });
const sinkDiscarded = (m: Scrape, sink: string): number =>
  metricSum(m, 'sluice_sink_discarded_events_total', { component_id: sink });
/** Records the sources handed on to the sinks (every sink here reads every source). */
const delivered = (m: Scrape): number => SOURCES.reduce((n, id) => n + received(m, id) - discarded(m, id), 0);

/** What must hold at any moment of a run. */
function checkConsistent(m: Scrape, sentSoFar: Record<SourceId, number>, where: string): void {
  for (const [key, value] of m) {
    // prom-client's event-loop lag figures are NaN when no sample fell between two scrapes.
    if (key.startsWith('sluice_nodejs_eventloop_lag') && Number.isNaN(value)) continue;
    expect(Number.isFinite(value) && value >= 0, `${where}: ${key} = ${value}`).toBe(true);
  }
  for (const id of SOURCES) {
    expect(discarded(m, id), `${where}: ${id} discarded <= received`).toBeLessThanOrEqual(received(m, id));
    expect(metricSum(m, 'sluice_ring_used_bytes', { component_id: id }), `${where}: ${id} ring`).toBeLessThanOrEqual(
      metricSum(m, 'sluice_ring_capacity_bytes', { component_id: id }),
    );
  }
  expect(received(m, 'acct_tcp'), `${where}: tcp received <= sent`).toBeLessThanOrEqual(sentSoFar.acct_tcp);
  expect(
    received(m, 'acct_udp') +
      metricSum(m, 'sluice_source_kernel_dropped_datagrams_total', { component_id: 'acct_udp' }),
    `${where}: udp`,
  ).toBeLessThanOrEqual(sentSoFar.acct_udp);
  expect(received(m, 'acct_hec'), `${where}: hec received <= sent`).toBeLessThanOrEqual(sentSoFar.acct_hec);
  for (const sink of SINKS) {
    expect(
      sent(m, sink) + sinkDiscarded(m, sink),
      `${where}: ${sink} stored + dropped <= delivered`,
    ).toBeLessThanOrEqual(delivered(m));
  }
  const util = metricSum(m, 'sluice_worker_utilization_ratio');
  expect(util, `${where}: utilization`).toBeLessThanOrEqual(1);
  expect(metricSum(m, 'sluice_worker_threads')).toBe(2);
}

/** Counters (and histogram series) never go backwards between two scrapes. */
function checkMonotonic(before: Scrape, after: Scrape, where: string): void {
  for (const [key, value] of before) {
    const name = key.split('{', 1)[0]!;
    // prom-client's default process metrics are not the engine's books: skip them.
    if (name.startsWith('sluice_nodejs_') || !/(_total|_count|_sum|_bucket)$/.test(name)) continue;
    expect(after.get(key) ?? 0, `${where}: ${key}`).toBeGreaterThanOrEqual(value);
  }
}

describe('end to end: the books balance (tcp, udp, splunk_hec → file and aws_s3)', () => {
  it('received = stored + every drop, per source, exactly; sinks and bytes agree with the objects; /metrics consistent during the run', {
    timeout: 60_000,
  }, async () => {
    const startedAt = Date.now();
    const dir = tempDir();
    const out = join(dir, 'out');
    const bucket = await freshBucket(client, 'e2e-acct');
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
log: { level: debug }
api: { address: 127.0.0.1:0 }
# Batches leave a ring every 200 ms (or at 256 KiB): a UDP burst overflows the 64 KiB ring first.
workers: { threads: 2, batch_timeout_ms: 200 }
sources:
  acct_tcp: { type: tcp, address: 127.0.0.1:0, max_line_bytes: 2048, extra_tags: { src: acct_tcp } }
  acct_udp: { type: udp, address: 127.0.0.1:0, ring_bytes: 65536, extra_tags: { src: acct_udp } }
  acct_hec: { type: splunk_hec, address: 127.0.0.1:0, valid_tokens: ["\${HEC_TOKEN}"], max_body_bytes: 65536, extra_tags: { src: acct_hec } }
sinks:
  file: { type: file, inputs: [acct_tcp, acct_udp, acct_hec], path: ${out}, compression: zstd, upload_period_secs: 1 }
  s3:
    type: aws_s3
    inputs: [acct_tcp, acct_udp, acct_hec]
    ${s3Connection(env.endpoint, bucket)}
    compression: gzip
    upload_period_secs: 1
`,
      { dir, env: { ...s3Env(env), HEC_TOKEN: TOKEN } },
    );
    const addr = (id: SourceId): string => daemon.sources[id]![0]!;
    const sentSoFar: Record<SourceId, number> = { acct_tcp: 0, acct_udp: 0, acct_hec: 0 };
    const scrapes: Scrape[] = [];
    const midRun = async (where: string): Promise<Scrape> => {
      const m = await scrape(daemon.apiPort);
      checkConsistent(m, sentSoFar, where);
      if (scrapes.length > 0) checkMonotonic(scrapes[scrapes.length - 1]!, m, where);
      scrapes.push(m);
      return m;
    };
    await midRun('at start');

    // ---- tcp: valid, malformed, oversize and empty lines over one connection, kept open a while.
    const rand = mulberry32(5);
    const tcpValid = Array.from({ length: 2_000 }, (_, id) => serviceLine({ id, rand }));
    const OVERSIZE = 3;
    const tcpParts: Buffer[] = [];
    tcpValid.forEach((line, i) => {
      tcpParts.push(Buffer.from(`${line}\n`));
      if (i % 400 === 0) for (const bad of MALFORMED) tcpParts.push(bad.bytes, Buffer.from('\n'));
      if (i % 700 === 0) tcpParts.push(Buffer.from(`{"big":"${'y'.repeat(3000)}"}\n`), Buffer.from('\n'));
    });
    tcpParts.push(Buffer.from('\r\n'), Buffer.from('\n'));
    const tcpBytes = Buffer.concat(tcpParts);
    const tcpMalformed = MALFORMED.length * Math.ceil(tcpValid.length / 400);
    expect(Math.ceil(tcpValid.length / 700)).toBe(OVERSIZE);
    const tcpReceived = tcpValid.length + tcpMalformed + OVERSIZE + (OVERSIZE + 2);
    const { host, port } = splitAddress(addr('acct_tcp'));
    const tcp = connect({ host, port });
    await new Promise<void>((resolve, reject) => tcp.once('connect', resolve).once('error', reject));
    await new Promise<void>((resolve) => tcp.write(tcpBytes, () => resolve()));
    sentSoFar.acct_tcp = tcpReceived;

    // ---- splunk_hec: stacked envelopes over a keep-alive connection, a raw request with blank
    // lines, a request refused for bad data, unauthorized requests, a body declared too large.
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const auth = { authorization: `Splunk ${TOKEN}` };
    let hecBodyBytes = 0;
    let hecStored = 0;
    for (let r = 0; r < 10; r++) {
      const body = Array.from({ length: 50 }, (_, i) => hecEnvelope(r * 50 + i)).join('\n');
      sentSoFar.acct_hec += 50;
      expect(await hecPost(addr('acct_hec'), '/services/collector/event', auth, body, keepAlive)).toEqual({
        status: 200,
        body: '{"text":"Success","code":0}',
      });
      hecBodyBytes += Buffer.byteLength(body);
      hecStored += 50;
    }
    const rawLines = Array.from({ length: 20 }, (_, i) => `raw line ${i}`);
    const rawBody = rawLines.map((l, i) => (i % 4 === 0 ? `${l}\n\n` : `${l}\n`)).join('');
    const rawBlank = 5;
    sentSoFar.acct_hec += rawLines.length + rawBlank;
    expect(
      (
        await hecPost(
          addr('acct_hec'),
          '/services/collector/raw',
          { ...auth, 'x-splunk-request-channel': '0aa3b8c6-1e1f-4a4b-9a39-6f4d2c1b0e77' },
          rawBody,
          keepAlive,
        )
      ).status,
    ).toBe(200);
    hecBodyBytes += Buffer.byteLength(rawBody);
    hecStored += rawLines.length;
    // All or nothing: the third envelope has no event, so none of the three is kept.
    const badBody = `${hecEnvelope(9001)}\n${hecEnvelope(9002)}\n{"time":1}`;
    sentSoFar.acct_hec += 3;
    expect((await hecPost(addr('acct_hec'), '/services/collector/event', auth, badBody, keepAlive)).status).toBe(400);
    hecBodyBytes += Buffer.byteLength(badBody);
    const UNAUTHORIZED = 20;
    for (let i = 0; i < UNAUTHORIZED; i++) {
      sentSoFar.acct_hec += 1;
      expect(
        (
          await hecPost(
            addr('acct_hec'),
            '/services/collector/event',
            { authorization: `Splunk ${WRONG_TOKEN}` },
            hecEnvelope(i),
            false,
          )
        ).status,
      ).toBe(403);
    }
    sentSoFar.acct_hec += 1;
    expect((await hecPost(addr('acct_hec'), '/services/collector/event', auth, null, false, 70_000)).status).toBe(413);
    const hecReceived = sentSoFar.acct_hec;

    let m = await midRun('tcp and hec connections open');
    expect(metricSum(m, 'sluice_source_open_connections', { component_id: 'acct_tcp' })).toBe(1);
    // The keep-alive connection (refused requests' connections may still be closing).
    expect(metricSum(m, 'sluice_source_open_connections', { component_id: 'acct_hec' })).toBeGreaterThanOrEqual(1);
    // Mid-run, with objects completed and more records still open in the writers.
    await waitUntil(
      'a first object in each sink',
      async () => {
        m = await midRun('first objects');
        return SINKS.every((sink) => sent(m, sink) > 0);
      },
      30_000,
      100,
    );

    // ---- udp: malformed and empty datagrams (processed before the bursts), then bursts of
    // valid datagrams until the 64 KiB ring overflows.
    const udp = createSocket('udp4');
    let udpBytes = 0;
    for (const bad of [...MALFORMED.map((b) => b.bytes), Buffer.alloc(0)]) {
      await sendDatagram(udp, bad, addr('acct_udp'));
      sentSoFar.acct_udp++;
      udpBytes += bad.length;
    }
    const udpMalformed = MALFORMED.length + 1; // the empty datagram is malformed (reason empty)
    await waitUntil(
      'udp malformed datagrams processed',
      async () => discarded(await scrape(daemon.apiPort), 'acct_udp', 'malformed') === udpMalformed,
      30_000,
      50,
    );
    let nextUdp = 0;
    for (let burst = 0; burst < 20; burst++) {
      const lines = Array.from({ length: 600 }, () => udpLine(nextUdp++));
      await Promise.all(lines.map((l) => sendDatagram(udp, l, addr('acct_udp'))));
      sentSoFar.acct_udp += lines.length;
      m = await midRun(`udp burst ${burst}`);
      if (discarded(m, 'acct_udp', 'ring_full') > 0) break;
    }
    udp.close();
    expect(discarded(m, 'acct_udp', 'ring_full')).toBeGreaterThan(0);

    // ---- close the connections; wait until every record is in a completed object or counted.
    await new Promise<void>((resolve) => {
      tcp.once('close', () => resolve());
      tcp.end();
    });
    keepAlive.destroy();
    await midRun('connections closed');
    const settled = (s: Scrape): boolean =>
      received(s, 'acct_tcp') === tcpReceived &&
      received(s, 'acct_hec') === hecReceived &&
      received(s, 'acct_udp') +
        metricSum(s, 'sluice_source_kernel_dropped_datagrams_total', { component_id: 'acct_udp' }) ===
        sentSoFar.acct_udp &&
      SINKS.every((sink) => sent(s, sink) + sinkDiscarded(s, sink) === delivered(s)) &&
      SOURCES.every(
        (id) =>
          metricSum(s, 'sluice_ring_used_bytes', { component_id: id }) === 0 &&
          metricSum(s, 'sluice_source_open_connections', { component_id: id }) === 0,
      ) &&
      SINKS.every((sink) => metricSum(s, 'sluice_sink_buffered_bytes', { component_id: sink }) === 0);
    let final: Scrape = new Map();
    await waitUntil(
      'every record stored or counted',
      async () => settled((final = await midRun('draining'))),
      60_000,
      250,
    );

    expect(await daemon.stop()).toBe(0);

    // ---- read the objects back and attribute every line to its source.
    const fileLines: string[] = [];
    const fileKeys = listObjects(out);
    let fileBytes = 0;
    for (const key of fileKeys) {
      fileLines.push(...(await readObjectLines(join(out, key))));
      fileBytes += statSync(join(out, key)).size;
    }
    const s3Keys = await listKeys(client, bucket);
    const s3Lines: string[] = [];
    let s3Bytes = 0;
    for (const key of s3Keys) {
      s3Lines.push(...(await getObjectLines(client, bucket, key)));
      s3Bytes += (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength ?? 0;
    }
    const bySource = (lines: string[]): Record<string, number> => {
      const n: Record<string, number> = {};
      for (const l of lines) {
        const src = String((JSON.parse(l) as { src?: unknown }).src);
        n[src] = (n[src] ?? 0) + 1;
      }
      return n;
    };
    const storedFile = bySource(fileLines);
    const storedS3 = bySource(s3Lines);
    expect(Object.keys(storedFile).sort()).toEqual([...SOURCES].sort());
    expect(storedS3).toEqual(storedFile);

    // The identity, per source, exactly.
    for (const id of SOURCES) {
      expect(received(final, id), `${id}: received = stored + discarded`).toBe(storedFile[id]! + discarded(final, id));
    }
    // Per sink: what it says it stored is what its objects hold, and it dropped nothing.
    expect(sent(final, 'file')).toBe(fileLines.length);
    expect(sent(final, 's3')).toBe(s3Lines.length);
    for (const sink of SINKS) expect(sinkDiscarded(final, sink)).toBe(0);
    expect(metricSum(final, 'sluice_sink_sent_bytes_total', { component_id: 'file' })).toBe(fileBytes);
    expect(metricSum(final, 'sluice_sink_sent_bytes_total', { component_id: 's3' })).toBe(s3Bytes);
    const ndjsonBytes = fileLines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    expect(metricSum(final, 'sluice_sink_sent_uncompressed_bytes_total', { component_id: 'file' })).toBe(ndjsonBytes);
    expect(metricSum(final, 'sluice_sink_sent_uncompressed_bytes_total', { component_id: 's3' })).toBe(ndjsonBytes);
    expect(metricSum(final, 'sluice_sink_objects_completed_total', { component_id: 'file' })).toBe(fileKeys.length);
    expect(metricSum(final, 'sluice_sink_objects_completed_total', { component_id: 's3' })).toBe(s3Keys.length);
    // Objects under one part are one PutObject each: one part per object.
    expect(metricSum(final, 'sluice_sink_parts_uploaded_total', { component_id: 's3' })).toBe(s3Keys.length);
    expect(metricSum(final, 'sluice_sink_upload_duration_seconds_count', { component_id: 's3', stage: 'part' })).toBe(
      s3Keys.length,
    );
    for (const sink of SINKS) {
      const objects = metricSum(final, 'sluice_sink_objects_completed_total', { component_id: sink });
      expect(
        metricSum(final, 'sluice_sink_upload_duration_seconds_count', { component_id: sink, stage: 'object' }),
      ).toBe(objects);
      expect(
        metricSum(final, 'sluice_sink_upload_duration_seconds_count', { component_id: sink, stage: 'close' }),
      ).toBe(objects);
      expect(metricSum(final, 'sluice_sink_failures_total', { component_id: sink })).toBe(0);
      const last = metricSum(final, 'sluice_sink_last_object_timestamp_seconds', { component_id: sink });
      expect(last * 1000).toBeGreaterThanOrEqual(startedAt);
      expect(last * 1000).toBeLessThanOrEqual(Date.now());
    }

    // tcp: every valid line stored once, as sent; each drop under its reason; bytes as written.
    expect(storedFile['acct_tcp']).toBe(tcpValid.length);
    const tcpStored = fileLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => r['src'] === 'acct_tcp')
      .map(({ src: _src, ...rest }) => JSON.stringify(rest));
    expect(tcpStored.sort()).toEqual([...tcpValid].sort());
    expect(discarded(final, 'acct_tcp', 'oversize')).toBe(OVERSIZE);
    expect(discarded(final, 'acct_tcp', 'empty_line')).toBe(OVERSIZE + 2);
    expect(discarded(final, 'acct_tcp', 'malformed')).toBe(tcpMalformed);
    expect(metricSum(final, 'sluice_source_received_bytes_total', { component_id: 'acct_tcp' })).toBe(tcpBytes.length);

    // udp: sent = received + kernel drops; the ring overflowed; bytes follow the datagrams.
    const kernelDrops = metricSum(final, 'sluice_source_kernel_dropped_datagrams_total', { component_id: 'acct_udp' });
    const udpReceived = received(final, 'acct_udp');
    expect(udpReceived + kernelDrops).toBe(sentSoFar.acct_udp);
    expect(discarded(final, 'acct_udp', 'malformed')).toBe(udpMalformed);
    expect(discarded(final, 'acct_udp', 'ring_full')).toBeGreaterThan(0);
    expect(storedFile['acct_udp']).toBe(udpReceived - udpMalformed - discarded(final, 'acct_udp', 'ring_full'));
    expect(metricSum(final, 'sluice_source_received_bytes_total', { component_id: 'acct_udp' })).toBe(
      udpBytes + (udpReceived - udpMalformed) * UDP_LINE_BYTES,
    );
    for (const reason of new Set(MALFORMED.map((b) => b.reason))) {
      const perSource = MALFORMED.filter((b) => b.reason === reason).length;
      expect(
        metricSum(final, 'sluice_source_malformed_events_total', { component_id: 'acct_tcp', reason }),
        reason,
      ).toBe(perSource * Math.ceil(tcpValid.length / 400));
      expect(
        metricSum(final, 'sluice_source_malformed_events_total', { component_id: 'acct_udp', reason }),
        reason,
      ).toBe(perSource + (reason === 'empty' ? 1 : 0));
    }

    // splunk_hec: every accepted event stored; each refusal counted under its reason.
    expect(storedFile['acct_hec']).toBe(hecStored);
    expect(discarded(final, 'acct_hec', 'empty_line')).toBe(rawBlank);
    expect(discarded(final, 'acct_hec', 'invalid_event')).toBe(3);
    expect(discarded(final, 'acct_hec', 'unauthorized')).toBe(UNAUTHORIZED);
    expect(discarded(final, 'acct_hec', 'body_too_large')).toBe(1);
    expect(metricSum(final, 'sluice_source_received_bytes_total', { component_id: 'acct_hec' })).toBe(hecBodyBytes);
    expect(metricSum(final, 'sluice_source_http_requests_total', { component_id: 'acct_hec', status: '403' })).toBe(
      UNAUTHORIZED,
    );

    // The engine log: no line per record, repeated refusals rate-limited, no secret anywhere.
    const records = tcpReceived + sentSoFar.acct_udp + hecReceived;
    expect(daemon.logs.length).toBeLessThan(records / 20);
    expect(daemon.logs.filter((l) => l['msg'] === 'request refused: Invalid token')).toHaveLength(1);
    expect(
      daemon.logs.some(
        (l) => l['msg'] === 'object completed' && l['component_id'] === 's3' && l['component_type'] === 'aws_s3',
      ),
    ).toBe(true);
    const output = JSON.stringify(daemon.logs) + daemon.stderr();
    for (const secret of [TOKEN, WRONG_TOKEN, env.secretAccessKey]) expect(output).not.toContain(secret);
  });
});
