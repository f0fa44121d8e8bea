/**
 * The spool through a crash, with real processes and the run's shared Ceph RGW: kill -9 while
 * 500,000 TCP lines stream in, restart on the same data_dir.
 *
 * What the test can prove: lines the kernel accepted but Sluice had not read, or had read and
 * not yet spooled, are lost with the process (at most once until spooled). So the test reads
 * the spool segments left on disk after the kill (the frames that reached the spool) and
 * asserts, after the restart, that S3 holds exactly the ids 0..M-1 (one TCP connection: the
 * stream is stored in order), that M covers every spooled id, that nothing is there twice
 * (recovered objects reuse their key, so an object completed before the kill is overwritten,
 * not duplicated), and that no multipart upload is left open.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decompress as zstdDecompress } from '@mongodb-js/zstd';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { SegmentReader } from '@sluice/spool';
import { rgwClient } from '../s3/rgw.ts';
import { metricSum, scrape, startDaemon, tempDir } from '../helpers/daemon.ts';
import { countIds, freshBucket, openUploads, s3Connection, s3Env, sendTcpPaced, serviceId } from '../helpers/s3.ts';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

const MiB = 1024 * 1024;

/** Ids in every good frame of every segment under dir. */
async function spooledIds(dir: string): Promise<{ ids: number[]; segments: number; records: number }> {
  const ids: number[] = [];
  let records = 0;
  const names = readdirSync(dir).filter((n) => n.endsWith('.seg'));
  for (const name of names) {
    const r = new SegmentReader(join(dir, name));
    for (let f = r.next(); f !== null; f = r.next()) {
      records += f.records;
      const text = (await zstdDecompress(Buffer.from(f.bytes))).toString('utf8');
      for (const line of text.split('\n'))
        if (line !== '') ids.push(serviceId(JSON.parse(line) as Record<string, unknown>));
    }
  }
  return { ids, segments: names.length, records };
}

describe('end to end: the spool through kill -9 (Ceph RGW)', () => {
  it('kill -9 mid-stream of 500,000 lines, restart: every spooled line is in S3, in order, once; no upload left open', {
    timeout: 120_000,
  }, async () => {
    const LINES = 500_000;
    const bucket = await freshBucket(client, 'e2e-spool-crash');
    const dir = tempDir();
    const config = `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  talos_service: { type: tcp, address: 127.0.0.1:0, ring_bytes: ${MiB} }
sinks:
  s3:
    type: aws_s3
    inputs: [talos_service]
    ${s3Connection(env.endpoint, bucket)}
    key_prefix: talos/
    upload_period_secs: 1
    part_size_bytes: ${5 * MiB}
    spool: true
`;
    const daemon = await startDaemon(config, { dir, env: s3Env(env) });
    const rand = mulberry32(11);
    const lines = Array.from({ length: LINES }, (_, id) => serviceLine({ id, rand }));
    const sender = sendTcpPaced(daemon.sources['talos_service']![0]!, lines, 5_000, 20);
    sender.done.catch(() => {}); // the connection dies with the daemon
    await waitUntil(
      'half the stream received',
      async () => metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total') >= LINES / 2,
      60_000,
      50,
    );
    const before = await scrape(daemon.apiPort);
    expect(await daemon.stop('SIGKILL')).toBeNull();
    const sentAtKill = sender.sent();

    const spool = await spooledIds(join(dir, 'data/spool/s3'));
    const spooledMax = spool.ids.reduce((a, b) => Math.max(a, b), -1);

    const again = await startDaemon(config, { dir, env: s3Env(env) });
    const m = await scrape(again.apiPort);
    const recovered = metricSum(m, 'sluice_spool_recovered_events_total');
    expect(await again.stop()).toBe(0);
    expect(readdirSync(join(dir, 'data/spool/s3'))).toEqual([]);

    const seen = await countIds(client, bucket, 'talos/', LINES, serviceId);
    let stored = 0;
    while (stored < LINES && seen[stored]! > 0) stored++;
    let beyond = 0;
    let duplicates = 0;
    for (let i = 0; i < LINES; i++) {
      if (i >= stored && seen[i]! > 0) beyond++;
      if (seen[i]! > 1) duplicates++;
    }
    console.log(
      JSON.stringify({
        sentAtKill,
        appendedBeforeKill: metricSum(before, 'sluice_spool_appended_events_total'),
        spooledAtKill: spool.records,
        segments: spool.segments,
        recovered,
        stored,
        duplicates,
      }),
    );
    expect(spool.segments).toBeGreaterThan(0);
    expect(beyond).toBe(0); // a prefix of the stream, no holes
    expect(stored).toBeGreaterThan(spooledMax); // every spooled line is in S3
    expect(stored).toBeGreaterThanOrEqual(LINES / 2 - 100_000);
    expect(stored).toBeGreaterThanOrEqual(metricSum(before, 'sluice_spool_appended_events_total'));
    expect(recovered).toBe(spool.records);
    expect(duplicates).toBe(0);
    expect(await openUploads(client, bucket)).toEqual([]);
  });
});
