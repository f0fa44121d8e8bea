/**
 * The daemon into the run's shared Ceph RGW (inject('s3')), through the aws_s3 sink: objects
 * rotate on the upload period, read back whole with every line exactly once; an object of
 * several multipart parts still uploading at SIGTERM is completed.
 */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { rgwClient } from '../s3/rgw.ts';
import { metricSum, scrape, startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.ts';
import {
  countIds,
  freshBucket,
  listKeys,
  openUploads,
  s3Connection,
  s3Env,
  sendTcpPaced,
  serviceId,
} from '../helpers/s3.ts';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

const MiB = 1024 * 1024;
const KEY = /^talos\/\d{4}\/\d{2}\/\d{2}\/\d{2}:\d{2}:\d{2}-[0-9a-f]{16}-\d{6}\.ndjson(\.zst)?$/;

function output(d: RunningDaemon): string {
  return JSON.stringify(d.logs) + d.stderr();
}

describe('end to end: TCP into the aws_s3 sink (Ceph RGW)', () => {
  it('200,000 lines, upload_period_secs 2: several objects, every line exactly once with its tags', {
    timeout: 60_000,
  }, async () => {
    const LINES = 200_000;
    const bucket = await freshBucket(client, 'e2e-stream');
    const dir = tempDir();
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  talos_service: { type: tcp, address: 127.0.0.1:0, extra_tags: { cluster: e2e }, host_key: __host }
sinks:
  s3:
    type: aws_s3
    inputs: [talos_service]
    ${s3Connection(env.endpoint, bucket)}
    key_prefix: talos/
    upload_period_secs: 2
`,
      { dir, env: s3Env(env) },
    );
    const rand = mulberry32(7);
    const lines = Array.from({ length: LINES }, (_, id) => serviceLine({ id, rand }));
    // 40,000 lines a second for 5 s: the 2 s period cuts it into at least 3 objects.
    await sendTcpPaced(daemon.sources['talos_service']![0]!, lines, 4_000, 100).done;
    await waitUntil(
      'every line received',
      async () => metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total') === LINES,
      30_000,
    );
    expect(await daemon.stop()).toBe(0);

    const keys = await listKeys(client, bucket);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const key of keys) {
      expect(key).toMatch(KEY);
      expect(key.endsWith('.ndjson.zst')).toBe(true);
    }
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keys[0] }));
    expect(head.ContentType).toBe('application/x-ndjson');
    expect(head.ContentEncoding).toBe('zstd');

    // Plain comparisons per record (an expect() per record costs seconds at 200,000).
    const wrong: string[] = [];
    const seen = await countIds(client, bucket, 'talos/', LINES, (rec) => {
      const id = serviceId(rec);
      const { cluster, __host, ...original } = rec;
      if (cluster !== 'e2e' || __host !== '127.0.0.1' || JSON.stringify(original) !== lines[id])
        wrong.push(JSON.stringify(rec));
      return id;
    });
    expect(wrong.slice(0, 3)).toEqual([]);
    expect(seen.every((n) => n === 1)).toBe(true);
    expect(await openUploads(client, bucket)).toEqual([]);
    expect(output(daemon)).not.toContain(env.secretAccessKey);
  });

  it('SIGTERM while an object of several 5 MiB parts is uploading: the object is completed whole', {
    timeout: 60_000,
  }, async () => {
    const LINES = 80_000; // ~19 MiB of NDJSON: 4 parts
    const bucket = await freshBucket(client, 'e2e-parts');
    const dir = tempDir();
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  talos_service: { type: tcp, address: 127.0.0.1:0 }
sinks:
  s3:
    type: aws_s3
    inputs: [talos_service]
    ${s3Connection(env.endpoint, bucket)}
    key_prefix: talos/
    compression: none
    part_size_bytes: ${5 * MiB}
    upload_period_secs: 3600
`,
      { dir, env: s3Env(env) },
    );
    const rand = mulberry32(11);
    const lines = Array.from({ length: LINES }, (_, id) => serviceLine({ id, rand }));
    await sendTcpPaced(daemon.sources['talos_service']![0]!, lines, 10_000, 0).done;
    await waitUntil(
      'every line received',
      async () => metricSum(await scrape(daemon.apiPort), 'sluice_source_received_events_total') === LINES,
      30_000,
    );
    // The object is a multipart upload in progress: parts stored, the rest in memory.
    await waitUntil(
      'the multipart upload to be open',
      async () => (await openUploads(client, bucket)).length === 1,
      30_000,
    );
    expect(await listKeys(client, bucket)).toEqual([]);

    expect(await daemon.stop('SIGTERM')).toBe(0);

    expect(await openUploads(client, bucket)).toEqual([]);
    const keys = await listKeys(client, bucket);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(KEY);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keys[0] }));
    expect(head.ContentType).toBe('application/x-ndjson');
    expect(head.ContentEncoding).toBeUndefined();
    expect(head.ContentLength).toBeGreaterThan(15 * MiB);
    expect(head.ETag).toMatch(/-4"$/); // a multipart object of 4 parts
    const seen = await countIds(client, bucket, 'talos/', LINES, serviceId);
    expect(seen.every((n) => n === 1)).toBe(true);
  });
});
