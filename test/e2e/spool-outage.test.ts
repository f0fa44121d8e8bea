/**
 * The spool through a 60 s S3 outage, with real processes and a private Ceph RGW (the run's
 * shared one must keep answering the other files): radosgw is stopped while one TCP sender
 * streams far more than the daemon's memory bounds (a 1 MiB ring, 5 MiB max_buffered_bytes and
 * part_size_bytes), and started again 60 s later.
 *
 * What it proves, each from outside the process (/metrics, the spool directory, the objects read
 * back from S3):
 * - backpressure: the sender's write progress stalls for the rest of the outage (its socket
 *   stops draining), with most of its lines still unsent;
 * - the spool holds the unfinished objects on disk meanwhile (sluice_spool_bytes > 0, segment
 *   files present, records appended and not yet stored);
 * - after the gateway returns, every line the sender wrote is in S3 exactly once, nothing is
 *   counted as dropped, no multipart upload is left open, and the spool directory is empty
 *   (while the daemon still runs, and after its clean exit).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { metricSum, scrape, startDaemon, tempDir } from '../helpers/daemon.ts';
import {
  countIds,
  freshBucket,
  linesOfAtLeast,
  openUploads,
  privateRgw,
  s3Env,
  sendTcpPaced,
  tcpToS3Config,
  serviceId,
  sleep,
  tcpBufferMaxBytes,
} from '../helpers/s3.ts';

const MiB = 1024 * 1024;
const OUTAGE_MS = 60_000;
/** A gateway of this file's own: its tests stop and start it. */
const gw = privateRgw();

interface Sample {
  t: number;
  sent: number;
  /** How long the sender has been waiting for 'drain' (0: not held back). */
  waitingMs: number;
  received: number;
  appended: number;
  stored: number;
  spoolBytes: number;
  segments: number;
}

describe('end to end: the spool through a 60 s S3 outage (private Ceph RGW)', () => {
  it('radosgw down 60 s under a stream larger than the memory bounds: sender held back, spool holds the data, nothing lost, spool empty after', {
    timeout: 240_000,
  }, async () => {
    // ~220 bytes a line: 176 MB of NDJSON (30 MB compressed). A first run took in ~425,000
    // lines before it held the sender back (the ring, 5 objects of about 1 s each in the sink's
    // buffers and in the spool) and ~125,000 more sat in the kernel's socket buffers (loopback
    // autotuning grows them to tens of MB). So at least 800,000 lines, and 1.25 x what can hold
    // the stream (5 s of it at the paced rate, the ring, the socket buffers at the kernel's
    // tcp_rmem/tcp_wmem maxima) where that is more: the sender is held back with lines unsent.
    const PACED_BYTES_PER_SEC = 100_000 * 220;
    const rand = mulberry32(21);
    const lines = linesOfAtLeast(1.25 * (5 * PACED_BYTES_PER_SEC + MiB + tcpBufferMaxBytes()), 800_000, (id) =>
      serviceLine({ id, rand }),
    );
    const LINES = lines.length;
    const bucket = await freshBucket(gw.client, 'e2e-spool-outage');
    const dir = tempDir();
    const spoolDir = join(dir, 'data/spool/s3');
    const daemon = await startDaemon(tcpToS3Config(`${dir}/data`, gw.rgw.endpoint, bucket, { spool: true }), {
      dir,
      env: s3Env(gw.rgw),
    });
    const segments = (): number => readdirSync(spoolDir).filter((n) => n.endsWith('.seg')).length;
    const sample = async (t0: number): Promise<Sample> => {
      const m = await scrape(daemon.apiPort);
      return {
        t: Date.now() - t0,
        sent: sender.sent(),
        waitingMs: sender.waitingMs(),
        received: metricSum(m, 'sluice_source_received_events_total'),
        appended: metricSum(m, 'sluice_spool_appended_events_total'),
        stored: metricSum(m, 'sluice_sink_sent_events_total'),
        spoolBytes: metricSum(m, 'sluice_spool_bytes'),
        segments: segments(),
      };
    };

    // Up to 100,000 lines a second, as fast as Sluice takes them.
    const sender = sendTcpPaced(daemon.sources['talos']![0]!, lines, 5_000, 50);
    await waitUntil(
      'the stream to be flowing',
      async () => metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total') >= 40_000,
      30_000,
      50,
    );
    await gw.rgw.stopGateway();
    const downAt = Date.now();
    const timeline: Sample[] = [];
    while (Date.now() - downAt < OUTAGE_MS - 2_000) {
      timeline.push(await sample(downAt));
      await sleep(2_000); // a pause on purpose: the outage is the test, sampled every 2 s
    }
    const last = await sample(downAt);
    timeline.push(last);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt))); // a pause on purpose: the outage lasts OUTAGE_MS
    await gw.rgw.startGateway();
    const upAt = Date.now();

    // Held back: from 20 s into the outage to its end, nothing more left the sender or reached
    // Sluice, with lines still unsent.
    const held = timeline.find((s) => s.t >= 20_000)!;
    console.log(
      JSON.stringify({
        'timeline [ms, sent, received, spool bytes]': timeline.map((x) => [x.t, x.sent, x.received, x.spoolBytes]),
      }),
    );
    expect(last.sent).toBe(held.sent);
    expect(last.received).toBe(held.received);
    expect(last.sent).toBeLessThan(LINES);
    expect(last.waitingMs).toBeGreaterThan(0); // backpressure reached the sender: its write is refused
    // On disk meanwhile: segments of the objects S3 has not stored, with records in them.
    for (const s of timeline.filter((x) => x.t >= 20_000)) {
      expect(s.spoolBytes).toBeGreaterThan(0);
      expect(s.segments).toBeGreaterThan(0);
      expect(s.appended).toBeGreaterThan(s.stored);
    }
    expect(last.stored).toBe(held.stored); // nothing completed while the gateway was down

    await sender.done;
    const sentAt = Date.now();
    await waitUntil(
      'every line received',
      async () => metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total') === LINES,
      30_000,
    );
    // Every line stored or counted as dropped (the counters only rise): nothing is left in the
    // ring, a batch, an open object or a PUT.
    await waitUntil(
      'every line stored or counted as dropped',
      async () => {
        const m = await scrape(daemon.apiPort);
        const drops =
          metricSum(m, 'sluice_sink_discarded_events_total') + metricSum(m, 'sluice_source_discarded_events_total');
        return metricSum(m, 'sluice_sink_sent_events_total') + drops === LINES;
      },
      60_000,
      200,
    );
    const emptyAt = Date.now();
    const end = await scrape(daemon.apiPort);
    expect(metricSum(end, 'sluice_spool_appended_events_total')).toBe(LINES);
    expect(metricSum(end, 'sluice_sink_sent_events_total')).toBe(LINES);
    // Every object completed, every segment removed (with its object), while the daemon still runs.
    expect(segments()).toBe(0);
    expect(metricSum(end, 'sluice_spool_bytes')).toBe(0);
    expect(metricSum(end, 'sluice_spool_dropped_events_total')).toBe(0);
    expect(metricSum(end, 'sluice_sink_discarded_events_total')).toBe(0);
    expect(metricSum(end, 'sluice_source_discarded_events_total')).toBe(0);
    expect(metricSum(end, 'sluice_sink_retries_total')).toBeGreaterThan(0);

    expect(await daemon.stop()).toBe(0);
    expect(readdirSync(spoolDir)).toEqual([]);
    expect(await openUploads(gw.client, bucket)).toEqual([]);
    const seen = await countIds(gw.client, bucket, 'talos/', LINES, serviceId);
    let missing = 0;
    let duplicates = 0;
    for (const n of seen) {
      if (n === 0) missing++;
      if (n > 1) duplicates++;
    }
    console.log(
      JSON.stringify({
        heldAt: held,
        sentAfterUpMs: sentAt - upAt,
        spoolEmptyAfterUpMs: emptyAt - upAt,
        missing,
        duplicates,
      }),
    );
    expect(missing).toBe(0);
    expect(duplicates).toBe(0);
  });
});
