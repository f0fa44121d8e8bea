/**
 * The aws_s3 sink through an S3 outage, on a private Ceph RGW (the run's shared one must keep
 * answering the other files): radosgw is stopped for 20 s mid-stream and restarted.
 *
 * - `when_full: block` (s3_block, fed by TCP and UDP): the store fills to max_buffered_bytes,
 *   the writer says wait, the dispatcher stops, the rings fill, the TCP sender is paused and
 *   UDP datagrams are counted as ring_full drops. Nothing sent over TCP is lost; retries are
 *   counted and logged.
 * - `when_full: drop_newest` (s3_drop, its own TCP source): the sender is never paused; what
 *   the blocked sink could not take is counted as buffer_full, the rest is stored once.
 * - SIGTERM while the gateway is down: the sink's shutdown_timeout_secs gives up and exits 1;
 *   the unfinished object's records stay in the spool (counted as deferred, not lost), and the
 *   next start, with the gateway back, uploads every one of them exactly once.
 */
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { kernelLine, mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { metricSum, scrape, splitAddress, startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.ts';
import {
  countIds,
  freshBucket,
  getObjectLines,
  linesOfAtLeast,
  listKeys,
  openUploads,
  privateRgw,
  s3Connection,
  s3Env,
  sendTcpPaced,
  serviceId,
  sleep,
  tcpBufferMaxBytes,
  within,
} from '../helpers/s3.ts';

const MiB = 1024 * 1024;
/** A gateway of this file's own: its tests stop and start it. */
const gw = privateRgw();

async function sendUdp(address: string, lines: readonly string[], perTick: number, tickMs: number): Promise<void> {
  const { host, port } = splitAddress(address);
  const socket = createSocket('udp4');
  for (let i = 0; i < lines.length; i += perTick) {
    await Promise.all(
      lines
        .slice(i, i + perTick)
        .map(
          (l) =>
            new Promise<void>((resolve, reject) =>
              socket.send(l, port, host, (err) => (err ? reject(err) : resolve())),
            ),
        ),
    );
    await sleep(tickMs); // a pause on purpose: paced, UDP has no backpressure
  }
  socket.close();
}

const output = (d: RunningDaemon): string => JSON.stringify(d.logs) + d.stderr();

describe('end to end: the aws_s3 sink through an S3 outage (private Ceph RGW)', () => {
  it('radosgw down for 20 s mid-stream: TCP paused and nothing lost (block), drops counted (UDP, drop_newest), retries counted', {
    timeout: 180_000,
  }, async () => {
    const DROPPING = 40_000;
    const UDP = 3_000;
    const bucket = await freshBucket(gw.client, 'e2e-outage');
    const dir = tempDir();
    const conn = s3Connection(gw.rgw.endpoint, bucket);
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  blocked_tcp: { type: tcp, address: 127.0.0.1:0, ring_bytes: ${MiB} }
  blocked_udp: { type: udp, address: 127.0.0.1:0, ring_bytes: 65536 }
  dropping_tcp: { type: tcp, address: 127.0.0.1:0, ring_bytes: ${MiB} }
sinks:
  s3_block:
    type: aws_s3
    inputs: [blocked_tcp, blocked_udp]
    ${conn}
    key_prefix: block/
    compression: none
    part_size_bytes: ${5 * MiB}
    max_buffered_bytes: ${5 * MiB}
    upload_period_secs: 3600
  s3_drop:
    type: aws_s3
    inputs: [dropping_tcp]
    ${conn}
    key_prefix: drop/
    compression: none
    upload_period_secs: 1
    when_full: drop_newest
`,
      { dir, env: s3Env(gw.rgw) },
    );
    const rand = mulberry32(3);
    // Twice what can hold the blocked stream before its sender is stopped: the socket buffers
    // (up to the kernel's autotuning maxima), the ring, and s3_block's buffer (max_buffered_bytes,
    // plus up to one part). So the sender is held back with lines unsent.
    const holds = tcpBufferMaxBytes() + MiB + 10 * MiB;
    const blocked = linesOfAtLeast(2 * holds, 150_000, (id) => serviceLine({ id, rand }));
    const BLOCKED = blocked.length;
    const dropping = Array.from({ length: DROPPING }, (_, id) => serviceLine({ id, rand }));
    const kernel = Array.from({ length: UDP }, (_, id) => kernelLine({ id, rand }));
    const metrics = () => scrape(daemon.apiPort);
    const received = async (id: string) =>
      metricSum(await metrics(), 'sluice_source_received_events_total', { component_id: id });

    // 50,000 lines a second: the buffers are full within a few seconds of the gateway stopping.
    const blockedSender = sendTcpPaced(daemon.sources['blocked_tcp']![0]!, blocked, 5_000, 100);
    await waitUntil('the stream to be flowing', async () => (await received('blocked_tcp')) >= 20_000, 30_000);
    await gw.rgw.stopGateway();
    const downAt = Date.now();
    // 4,000 lines a second for 10 s into a sink that drops while blocked.
    const droppingSender = sendTcpPaced(daemon.sources['dropping_tcp']![0]!, dropping, 1_000, 250);
    droppingSender.done.catch(() => {}); // awaited below

    // A pause on purpose: the outage is the test. 10 s in, the blocked sink's buffers are long full, and
    // the drop_newest stream has run its course meanwhile.
    await sleep(10_000);
    await sendUdp(daemon.sources['blocked_udp']![0]!, kernel, 100, 10);
    // The TCP sender is held back: its write refused, 'drain' not coming (the ring and the socket buffers full).
    await waitUntil('the TCP sender to be held back', () => blockedSender.waitingMs() >= 3_000, 30_000);
    const pausedAt = { sent: blockedSender.sent(), received: await received('blocked_tcp'), ms: Date.now() - downAt };
    // A pause on purpose, at least 3 s more (to the 19th second of the outage, usually 9 s): nothing may
    // move meanwhile.
    await sleep(Math.max(0, Math.max(19_000, pausedAt.ms + 3_000) - (Date.now() - downAt)));
    const m = await metrics();
    // The TCP sender is paused: nothing more went out or came in for seconds, and its ring is full.
    expect(blockedSender.waitingMs()).toBeGreaterThanOrEqual(6_000);
    expect(blockedSender.sent()).toBe(pausedAt.sent);
    expect(blockedSender.sent()).toBeLessThan(BLOCKED);
    expect(metricSum(m, 'sluice_source_received_events_total', { component_id: 'blocked_tcp' })).toBe(
      pausedAt.received,
    );
    expect(metricSum(m, 'sluice_ring_used_bytes', { component_id: 'blocked_tcp' })).toBeGreaterThan(0.9 * MiB);
    // UDP cannot push back: a full ring is a counted drop.
    const udpDropped = metricSum(m, 'sluice_source_discarded_events_total', {
      component_id: 'blocked_udp',
      reason: 'ring_full',
    });
    expect(udpDropped).toBeGreaterThan(UDP / 2);
    // drop_newest never held its sender back: all of its stream taken in with the gateway still
    // down (block would hold it until the gateway returns), and hardly ever waiting for 'drain'.
    await within('the drop_newest stream to be taken in while the gateway is down', droppingSender.done, 30_000);
    await waitUntil(
      'every drop_newest line received while the gateway is down',
      async () => (await received('dropping_tcp')) === DROPPING,
      30_000,
    );
    const droppingHeldBackMs = droppingSender.heldBackMs();
    expect(droppingHeldBackMs).toBeLessThan(3_000);
    expect(metricSum(m, 'sluice_sink_retries_total', { component_id: 's3_block' })).toBeGreaterThan(0);

    await sleep(Math.max(0, 20_000 - (Date.now() - downAt))); // a pause on purpose: the outage lasts 20 s
    const downMs = Date.now() - downAt;
    await gw.rgw.startGateway();
    await blockedSender.done;
    await waitUntil('every TCP line received', async () => (await received('blocked_tcp')) === BLOCKED, 60_000);
    const end = await metrics();
    const udpReceived = metricSum(end, 'sluice_source_received_events_total', { component_id: 'blocked_udp' });
    const bufferFull = metricSum(end, 'sluice_sink_discarded_events_total', {
      component_id: 's3_drop',
      reason: 'buffer_full',
    });
    expect(metricSum(end, 'sluice_source_received_events_total', { component_id: 'dropping_tcp' })).toBe(DROPPING);
    expect(bufferFull).toBeGreaterThan(0);
    expect(
      daemon.logs.some((l) => l['msg'] === 'S3 request failed; retrying' && l['component_id'] === 's3_block'),
    ).toBe(true);

    expect(await daemon.stop()).toBe(0);
    expect(await openUploads(gw.client, bucket)).toEqual([]);

    // block: every TCP line exactly once; every UDP datagram that got into the ring, once.
    const seenTcp = new Uint8Array(BLOCKED);
    const seenUdp = new Uint8Array(UDP);
    for (const key of await listKeys(gw.client, bucket, 'block/')) {
      for (const line of await getObjectLines(gw.client, bucket, key)) {
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (typeof rec['seq'] === 'number') seenUdp[rec['seq']]!++;
        else seenTcp[serviceId(rec)]!++;
      }
    }
    expect(seenTcp.every((n) => n === 1)).toBe(true);
    expect(seenUdp.every((n) => n <= 1)).toBe(true);
    expect(seenUdp.reduce((a, n) => a + n, 0)).toBe(udpReceived - udpDropped);

    // drop_newest: stored once or counted as buffer_full, never both, never lost silently.
    const seenDrop = new Uint8Array(DROPPING);
    for (const key of await listKeys(gw.client, bucket, 'drop/')) {
      for (const line of await getObjectLines(gw.client, bucket, key))
        seenDrop[serviceId(JSON.parse(line) as Record<string, unknown>)]!++;
    }
    expect(seenDrop.every((n) => n <= 1)).toBe(true);
    expect(seenDrop.reduce((a, n) => a + n, 0)).toBe(DROPPING - bufferFull);
    console.log(
      JSON.stringify({
        blocked: BLOCKED,
        pausedAt,
        downMs,
        udpDropped,
        bufferFull,
        droppingDrainWaits: droppingSender.drainWaits(),
        droppingHeldBackMs: Math.round(droppingHeldBackMs),
      }),
    );
    expect(output(daemon)).not.toContain(gw.rgw.secretAccessKey);
  });

  it("SIGTERM with the gateway down: the sink's shutdown_timeout_secs gives up (exit 1), the spool keeps the records, the next start stores them once", {
    timeout: 60_000,
  }, async () => {
    const LINES = 1_000;
    await gw.rgw.startGateway();
    const bucket = await freshBucket(gw.client, 'e2e-sigterm-down');
    const dir = tempDir();
    const yaml = `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
shutdown_timeout_secs: 20
sources:
  talos: { type: tcp, address: 127.0.0.1:0 }
sinks:
  s3:
    type: aws_s3
    inputs: [talos]
    ${s3Connection(gw.rgw.endpoint, bucket)}
    shutdown_timeout_secs: 1
`;
    const daemon = await startDaemon(yaml, { dir, env: s3Env(gw.rgw) });
    const rand = mulberry32(5);
    await sendTcpPaced(
      daemon.sources['talos']![0]!,
      Array.from({ length: LINES }, (_, id) => serviceLine({ id, rand })),
      LINES,
      0,
    ).done;
    await waitUntil(
      'every line received',
      async () => metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total') === LINES,
      30_000,
    );
    await gw.rgw.stopGateway();
    const t0 = Date.now();
    expect(await daemon.stop('SIGTERM')).toBe(1);
    // The sink's 1 s deadline, with room for a loaded machine; a hang would reach the daemon's 20 s.
    expect(Date.now() - t0).toBeLessThan(15_000);

    const gaveUp = daemon.logs.find((l) => l['component_id'] === 's3' && l['records'] === LINES);
    expect(gaveUp?.['msg']).toMatch(
      /^shutdown_timeout_secs \(1\) of sink s3 passed with 1 object\(s\) unfinished; of their 1000 records, 0 are counted as discarded \(reason shutdown_timeout\) and 1000 stay in the spool: the next start uploads them/,
    );
    expect(gaveUp?.['spooled']).toBe(LINES);
    expect(gaveUp?.['objects']).toEqual([
      expect.stringMatching(/^\d{4}\/\d{2}\/\d{2}\/\d{2}:\d{2}:\d{2}-[0-9a-f]{16}-000000\.ndjson\.zst$/),
    ]);
    expect(daemon.stderr()).toBe(
      "sluice: sink s3: objects not completed within the sink's shutdown_timeout_secs; 0 records counted as discarded (reason shutdown_timeout); 1000 records of unfinished objects stay in the spool, and the next start uploads them (SLUICE_ERR_SHUTDOWN_TIMEOUT)\n",
    );
    expect(output(daemon)).not.toContain(gw.rgw.secretAccessKey);

    // The next start, with the gateway back: the spool's object goes up before the sources bind.
    await gw.rgw.startGateway();
    const again = await startDaemon(yaml, { dir, env: s3Env(gw.rgw) });
    try {
      expect(metricSum(await scrape(again.apiPort), 'sluice_spool_recovered_events_total')).toBe(LINES);
    } finally {
      expect(await again.stop('SIGTERM')).toBe(0);
    }
    const seen = await countIds(gw.client, bucket, '', LINES, serviceId);
    expect({ missing: seen.filter((n) => n === 0).length, twice: seen.filter((n) => n > 1).length }).toEqual({
      missing: 0,
      twice: 0,
    });
    expect(await openUploads(gw.client, bucket)).toEqual([]);
  });
});
