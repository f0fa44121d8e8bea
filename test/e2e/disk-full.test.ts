/**
 * A full disk never loses what was accepted. The real daemon writes to a real tmpfs of 3 MiB
 * (packages/testkit/src/tmpfs.ts; CI runs as root, and a mount that fails fails the test):
 *
 * - `file` sink, `when_full: block` (the default): the stream is more than twice what the disk
 *   and the daemon's buffers hold together, so the disk fills. The daemon blocks: the metrics say
 *   so, a warn line names the sink's path and ENOSPC, nothing is dropped and the intake stops
 *   (the TCP sender is held back). The tmpfs grows to 64 MiB: every line is stored exactly once,
 *   and an info line says the disk recovered.
 * - `file` sink, `when_full: drop_newest`: while the disk is full new batches are dropped and
 *   counted (reason `disk_blocked`), what was taken is still written once the disk grows, and
 *   received = stored + dropped exactly.
 * - The same blocked disk behind udp and splunk_hec sources: the backpressure reaches them as
 *   it does for a slow S3. UDP counts `ring_full` drops at the source, HEC answers 503 code 9
 *   (nothing kept); every datagram received and every event answered 200 is stored once.
 * - `file` sink with `spool: true`, the spool's disk (data_dir) full before the first line:
 *   appends wait, nothing is dropped or sent past the spool, the sender is held; once the disk
 *   grows every line goes through the spool and is stored once.
 *
 * compression: none, so the bytes on disk are the bytes sent (~220 per line) and the sizes
 * below hold whatever zstd would make of the lines.
 */
import { createSocket } from 'node:dgram';
import { closeSync, openSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { mulberry32, serviceLine } from '@sluice/testkit';
import { mountTmpfs, type Tmpfs } from '@sluice/testkit/tmpfs';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
  type RunningDaemon,
} from '../helpers/daemon.ts';
import { sendTcpPaced, serviceId, sleep } from '../helpers/s3.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Generous: CI is a loaded 2-core machine. */
const WAIT = { timeout: 60_000, interval: 200 };
/** The daemon logs a blocked disk at most once per this long per sink and target (observability.ts). */
const DISK_LOG_INTERVAL_SECS = 30;

let fs: Tmpfs | null = null;
let daemon: RunningDaemon | null = null;
afterEach(async () => {
  if (daemon !== null && daemon.proc.exitCode === null) await daemon.stop('SIGKILL');
  daemon = null;
  fs?.unmount();
  fs = null;
});

function config(dataDir: string, outDir: string, opts: { whenFull: 'block' | 'drop_newest'; spool?: boolean }): string {
  const out = {
    type: 'file',
    inputs: ['talos'],
    path: outDir,
    key_prefix: 'talos/',
    compression: 'none',
    upload_period_secs: 1,
    when_full: opts.whenFull,
    spool: opts.spool === true,
  };
  return stringify({
    data_dir: dataDir,
    api: { address: '127.0.0.1:0' },
    sources: { talos: { type: 'tcp', address: '127.0.0.1:0', ring_bytes: MiB } },
    sinks: { out },
  });
}

async function counters(d: RunningDaemon) {
  const m = await scrape(d.apiPort);
  return {
    received: metricSum(m, 'sluice_source_received_events_total'),
    stored: metricSum(m, 'sluice_sink_sent_events_total'),
    sinkDiscarded: metricSum(m, 'sluice_sink_discarded_events_total'),
    diskBlockedDrops: metricSum(m, 'sluice_sink_discarded_events_total', { reason: 'disk_blocked' }),
    sourceDiscarded: metricSum(m, 'sluice_source_discarded_events_total'),
    blockedObject: metricSum(m, 'sluice_sink_disk_blocked', { component_id: 'out', target: 'object' }),
    blockedSpool: metricSum(m, 'sluice_sink_disk_blocked', { component_id: 'out', target: 'spool' }),
    blockedSecsObject: metricSum(m, 'sluice_sink_disk_blocked_seconds_total', { target: 'object' }),
    blockedSecsSpool: metricSum(m, 'sluice_sink_disk_blocked_seconds_total', { target: 'spool' }),
    retriesEnospc: metricSum(m, 'sluice_sink_disk_retries_total', { code: 'ENOSPC' }),
    spoolAppended: metricSum(m, 'sluice_spool_appended_events_total'),
    spoolDropped: metricSum(m, 'sluice_spool_dropped_events_total'),
  };
}

/** Wait until the daemon's intake stands still: the same count received 2 s apart. */
async function intakeStopped(d: RunningDaemon): Promise<number> {
  let last = -1;
  let received = 0;
  await vi.waitFor(async () => {
    received = (await counters(d)).received;
    const same = received === last;
    last = received;
    if (!same) await sleep(2_000); // a pause on purpose: standing still is the same count 2 s apart
    expect(same, 'records received stop growing').toBe(true);
  }, WAIT);
  return received;
}

const diskLines = (d: RunningDaemon, prefix: 'disk blocked' | 'disk unblocked', target: 'object' | 'spool') =>
  d.logs.filter((l) => String(l['msg']).startsWith(prefix) && l['target'] === target && l['component_id'] === 'out');

/** Ids of the lines in every object under `dir`, how often each was stored. No temp file may be left. */
async function storedIds(dir: string, n: number): Promise<Uint8Array> {
  const files = listObjects(dir);
  expect(files.filter((f) => !f.endsWith('.ndjson'))).toEqual([]);
  const seen = new Uint8Array(n);
  for (const f of files)
    for (const line of await readObjectLines(join(dir, f)))
      seen[serviceId(JSON.parse(line) as Record<string, unknown>)]!++;
  return seen;
}

function lines(n: number, seed: number): string[] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, (_, id) => serviceLine({ id, rand }));
}

/** Fill the filesystem of `dir` to the last byte with a ballast file. */
function fillUp(dir: string): void {
  const fd = openSync(join(dir, 'ballast'), 'w');
  const chunk = Buffer.alloc(64 * KiB, 0x61);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

/** Give the disk room, then wait until every line sent was received and stored, and the sink said it recovered. */
async function growAndStoreAll(
  d: RunningDaemon,
  disk: Tmpfs,
  sent: Promise<unknown>,
  lines: number,
  target: 'object' | 'spool',
) {
  disk.resize(64 * MiB);
  await sent;
  await vi.waitFor(async () => {
    const c = await counters(d);
    expect(c.received).toBe(lines);
    expect(c.stored).toBe(lines);
  }, WAIT);
  await vi.waitFor(() => expect(diskLines(d, 'disk unblocked', target).length).toBeGreaterThanOrEqual(1), WAIT);
  return counters(d);
}

/** Warn lines of one stall: at least one, and at most one per DISK_LOG_INTERVAL_SECS (plus the first and a spare). */
function expectRateLimited(warns: number, startedAt: number): void {
  const elapsedSecs = (Date.now() - startedAt) / 1000;
  expect(warns).toBeGreaterThanOrEqual(1);
  expect(warns).toBeLessThanOrEqual(Math.floor(elapsedSecs / DISK_LOG_INTERVAL_SECS) + 2);
}

describe('end to end: a full disk under a file sink (real tmpfs)', () => {
  it('block: the daemon holds what it took and the sender, drops nothing, and stores every line exactly once when the disk grows', {
    timeout: 240_000,
  }, async () => {
    // 60,000 lines are ~13 MB: more than twice the 3 MiB disk plus what the daemon holds in
    // memory while blocked (the 1 MiB ring, batches in flight, an object's 1 MiB write queue).
    const LINES = 60_000;
    fs = mountTmpfs(3 * MiB);
    const dir = tempDir();
    const out = join(fs.dir, 'out');
    const startedAt = Date.now();
    daemon = await startDaemon(config(join(dir, 'data'), out, { whenFull: 'block' }), { dir });
    const d = daemon;
    const sender = sendTcpPaced(d.sources['talos']![0]!, lines(LINES, 11), 1_000, 20);
    void sender.done.catch(() => {}); // awaited below; a failure there fails the test

    // Blocked: the metric says so, and a warn line names the path and the errno code.
    await vi.waitFor(async () => expect((await counters(d)).blockedObject).toBe(1), WAIT);
    await vi.waitFor(() => expect(diskLines(d, 'disk blocked', 'object').length).toBeGreaterThanOrEqual(1), WAIT);
    const warn = diskLines(d, 'disk blocked', 'object')[0]!;
    expect(warn['level']).toBe(40);
    expect(warn['code']).toBe('ENOSPC');
    expect(String(warn['path']).startsWith(out)).toBe(true);
    // Held back: the intake stops short of the stream, and nothing is dropped.
    const receivedWhileBlocked = await intakeStopped(d);
    const blocked = await counters(d);
    expect(receivedWhileBlocked).toBeLessThan(LINES);
    expect(blocked.sinkDiscarded + blocked.sourceDiscarded).toBe(0);
    expect(blocked.blockedObject).toBe(1);
    expect(blocked.retriesEnospc).toBeGreaterThanOrEqual(1);
    expect(blocked.blockedSecsObject).toBeGreaterThan(0);
    expect(diskLines(d, 'disk unblocked', 'object')).toEqual([]);

    const end = await growAndStoreAll(d, fs, sender.done, LINES, 'object');
    expect(end.blockedObject).toBe(0);
    expect(end.sinkDiscarded + end.sourceDiscarded).toBe(0);
    expect(await d.stop()).toBe(0);
    expectRateLimited(diskLines(d, 'disk blocked', 'object').length, startedAt);
    const recovered = diskLines(d, 'disk unblocked', 'object')[0]!;
    expect(recovered['level']).toBe(30);
    expect(Number(recovered['blocked_secs'])).toBeGreaterThan(0);

    // Every line stored exactly once: the books balance with no drop at all.
    const seen = await storedIds(out, LINES);
    expect({ missing: seen.filter((n) => n === 0).length, twice: seen.filter((n) => n > 1).length }).toEqual({
      missing: 0,
      twice: 0,
    });
    console.log(
      JSON.stringify({
        lines: LINES,
        receivedWhileBlocked,
        blockedSecs: Math.round(end.blockedSecsObject * 10) / 10,
        retriesEnospc: end.retriesEnospc,
        heldBackMs: Math.round(sender.heldBackMs()),
      }),
    );
  });

  it('drop_newest: new batches are dropped and counted (disk_blocked) while the disk is full; what was taken is stored once it grows; received = stored + dropped', {
    timeout: 240_000,
  }, async () => {
    const LINES = 60_000;
    fs = mountTmpfs(3 * MiB);
    const dir = tempDir();
    const out = join(fs.dir, 'out');
    daemon = await startDaemon(config(join(dir, 'data'), out, { whenFull: 'drop_newest' }), { dir });
    const d = daemon;
    const sender = sendTcpPaced(d.sources['talos']![0]!, lines(LINES, 13), 1_000, 20);
    // Never held back for long: the daemon drops instead, so the whole stream is taken in.
    await sender.done;
    await vi.waitFor(async () => expect((await counters(d)).received).toBe(LINES), WAIT);
    await vi.waitFor(async () => expect((await counters(d)).diskBlockedDrops).toBeGreaterThan(0), WAIT);
    const during = await counters(d);
    expect(during.blockedObject).toBe(1);
    expect(during.stored + during.sinkDiscarded + during.sourceDiscarded).toBeLessThan(LINES); // taken, waiting for the disk

    fs.resize(64 * MiB);
    await vi.waitFor(async () => {
      const c = await counters(d);
      expect(c.stored + c.sinkDiscarded + c.sourceDiscarded).toBe(LINES);
    }, WAIT);
    const final = await counters(d);
    expect(final.blockedObject).toBe(0);
    expect(await d.stop()).toBe(0);
    const seen = await storedIds(out, LINES);
    const stored = seen.reduce((a, n) => a + n, 0);
    expect(seen.some((n) => n > 1)).toBe(false);
    expect(stored).toBeGreaterThan(0);
    // The books, exactly: every line received is stored once or counted as dropped.
    expect(final.stored).toBe(stored);
    expect(stored + final.sinkDiscarded + final.sourceDiscarded).toBe(LINES);
    expect(final.diskBlockedDrops).toBeGreaterThan(0);
    console.log(
      JSON.stringify({
        lines: LINES,
        stored,
        dropped: final.sinkDiscarded + final.sourceDiscarded,
        diskBlockedDrops: final.diskBlockedDrops,
      }),
    );
  });

  it("spool: the spool's disk (data_dir) is full; appends wait, nothing is dropped or sent past the spool, the sender is held; every line stored once when it grows", {
    timeout: 240_000,
  }, async () => {
    // The disk is full before the first line, so nothing the daemon does frees it: the wait
    // lasts until the disk grows. 30,000 lines (~6.6 MB) are far more than the ring and the
    // batches in flight hold.
    const LINES = 30_000;
    fs = mountTmpfs(3 * MiB);
    const dir = tempDir();
    const out = join(dir, 'out');
    const dataDir = join(fs.dir, 'data');
    const startedAt = Date.now();
    daemon = await startDaemon(config(dataDir, out, { whenFull: 'block', spool: true }), { dir });
    const d = daemon;
    fillUp(fs.dir);
    const sender = sendTcpPaced(d.sources['talos']![0]!, lines(LINES, 17), 1_000, 20);
    void sender.done.catch(() => {}); // awaited below

    await vi.waitFor(async () => expect((await counters(d)).blockedSpool).toBe(1), WAIT);
    await vi.waitFor(() => expect(diskLines(d, 'disk blocked', 'spool').length).toBeGreaterThanOrEqual(1), WAIT);
    const warn = diskLines(d, 'disk blocked', 'spool')[0]!;
    expect(warn['code']).toBe('ENOSPC');
    expect(String(warn['path']).startsWith(dataDir)).toBe(true);
    const receivedWhileBlocked = await intakeStopped(d);
    const blocked = await counters(d);
    expect(receivedWhileBlocked).toBeLessThan(LINES);
    expect(blocked.spoolDropped).toBe(0); // neither dropped nor sent without the spool
    expect(blocked.sinkDiscarded + blocked.sourceDiscarded).toBe(0);
    expect(blocked.spoolAppended).toBe(0);
    expect(blocked.stored).toBe(0);
    expect(blocked.blockedSecsSpool).toBeGreaterThan(0);

    const end = await growAndStoreAll(d, fs, sender.done, LINES, 'spool');
    expect(end.spoolAppended).toBe(LINES); // every line went through the spool
    expect(end.spoolDropped + end.sinkDiscarded + end.sourceDiscarded).toBe(0);
    expect(end.blockedSpool).toBe(0);
    expect(await d.stop()).toBe(0);
    expectRateLimited(diskLines(d, 'disk blocked', 'spool').length, startedAt);
    expect(readdirSync(join(dataDir, 'spool/out'))).toEqual([]);
    const seen = await storedIds(out, LINES);
    expect({ missing: seen.filter((n) => n === 0).length, twice: seen.filter((n) => n > 1).length }).toEqual({
      missing: 0,
      twice: 0,
    });
    console.log(
      JSON.stringify({
        lines: LINES,
        receivedWhileBlocked,
        blockedSecs: Math.round(end.blockedSecsSpool * 10) / 10,
        heldBackMs: Math.round(sender.heldBackMs()),
      }),
    );
  });

  it('block, udp and splunk_hec sources: UDP counts ring_full at the source, HEC answers 503 code 9; once the disk grows every datagram received and every event answered 200 is stored once', {
    timeout: 240_000,
  }, async () => {
    const TOKEN = 'disk-full-token-3c9a51e0b7';
    fs = mountTmpfs(3 * MiB);
    const dir = tempDir();
    const out = join(fs.dir, 'out');
    daemon = await startDaemon(
      `
data_dir: ${join(dir, 'data')}
api: { address: 127.0.0.1:0 }
sources:
  udp: { type: udp, address: 127.0.0.1:0, ring_bytes: 65536, extra_tags: { src: udp } }
  hec: { type: splunk_hec, address: 127.0.0.1:0, ring_bytes: 65536, valid_tokens: ["${TOKEN}"], extra_tags: { src: hec } }
sinks:
  out: { type: file, inputs: [udp, hec], path: ${out}, compression: none, upload_period_secs: 1 }
`,
      { dir },
    );
    const d = daemon;
    fillUp(fs.dir); // the disk is full from the first object on
    const pad = 'p'.repeat(200);

    // HEC: 50 events a request until one is refused with 503 code 9 (the ring is full and stays so).
    const hecUrl = `http://${d.sources['hec']![0]!}/services/collector/event`;
    const accepted: number[] = [];
    let busy: { status: number; body: string } | null = null;
    let n = 0;
    const deadline = Date.now() + 60_000;
    while (busy === null && Date.now() < deadline) {
      const ids = Array.from({ length: 50 }, () => n++);
      const res = await fetch(hecUrl, {
        method: 'POST',
        headers: { authorization: `Splunk ${TOKEN}` },
        body: ids.map((id) => JSON.stringify({ event: { msg: `hec ${id}`, n: id, pad } })).join(''),
      });
      const body = await res.text();
      if (res.status === 200) accepted.push(...ids);
      else busy = { status: res.status, body };
    }
    expect(busy).not.toBeNull();
    expect(busy!.status).toBe(503);
    expect((JSON.parse(busy!.body) as { code: number }).code).toBe(9);

    // UDP: datagrams until the source counts ring_full drops.
    const { host, port } = splitAddress(d.sources['udp']![0]!);
    const socket = createSocket('udp4');
    let sent = 0;
    try {
      await vi.waitFor(async () => {
        for (let i = 0; i < 200; i++, sent++)
          socket.send(
            JSON.stringify({ facility: 'kern', priority: 'info', seq: sent, msg: `udp ${sent}`, pad }),
            port,
            host,
          );
        await sleep(20); // a pause on purpose: bursts of 200, 20 ms apart
        expect(
          metricSum(await scrape(d.apiPort), 'sluice_source_discarded_events_total', {
            component_id: 'udp',
            reason: 'ring_full',
          }),
        ).toBeGreaterThan(0);
      }, WAIT);
    } finally {
      // Every datagram handed to the kernel before the socket closes.
      await vi.waitFor(() => expect(socket.getSendQueueCount(), 'datagrams still queued').toBe(0), WAIT);
      socket.close();
    }
    const blocked = await counters(d);
    expect(blocked.blockedObject).toBe(1);
    expect(blocked.sinkDiscarded).toBe(0);

    fs.resize(64 * MiB);
    // Everything received and not dropped at a source is stored.
    await vi.waitFor(async () => {
      const c = await counters(d);
      expect(c.stored).toBe(c.received - c.sourceDiscarded);
    }, WAIT);
    const m = await scrape(d.apiPort);
    const udpReceived = metricSum(m, 'sluice_source_received_events_total', { component_id: 'udp' });
    const udpDropped = metricSum(m, 'sluice_source_discarded_events_total', { component_id: 'udp' });
    const hecReceived = metricSum(m, 'sluice_source_received_events_total', { component_id: 'hec' });
    // The refused request's events: received, then counted as discarded (reason busy), none kept.
    const hecBusy = metricSum(m, 'sluice_source_discarded_events_total', { component_id: 'hec', reason: 'busy' });
    expect(metricSum(m, 'sluice_source_discarded_events_total', { component_id: 'hec' })).toBe(hecBusy);
    expect(metricSum(m, 'sluice_sink_discarded_events_total')).toBe(0);
    expect(await d.stop()).toBe(0);

    const files = listObjects(out);
    expect(files.filter((f) => !f.endsWith('.ndjson'))).toEqual([]);
    const hecSeen = new Uint8Array(n);
    const udpSeen = new Uint8Array(sent);
    for (const f of files) {
      for (const line of await readObjectLines(join(out, f))) {
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (rec['src'] === 'hec')
          hecSeen[(rec['event'] as { n: number }).n]!++; // the record is the envelope as sent
        else udpSeen[rec['seq'] as number]!++;
      }
    }
    // HEC: exactly the events answered 200, once each; nothing of a refused request.
    expect(hecReceived - hecBusy).toBe(accepted.length);
    expect(hecBusy).toBe(n - accepted.length);
    const acceptedSet = new Set(accepted);
    expect(hecSeen.every((c, id) => c === (acceptedSet.has(id) ? 1 : 0))).toBe(true);
    // UDP: every datagram received and not dropped at the ring, once each.
    expect(udpSeen.some((c) => c > 1)).toBe(false);
    expect(udpSeen.reduce((a, c) => a + c, 0)).toBe(udpReceived - udpDropped);
    console.log(
      JSON.stringify({ hecAccepted: accepted.length, hecBusy, udpSent: sent, udpReceived, udpRingFull: udpDropped }),
    );
  });
});
