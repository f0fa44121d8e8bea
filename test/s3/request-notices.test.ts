/**
 * What an aws_s3 sink's client tells the daemon's metrics (sluice_sink_parts_uploaded_total,
 * the part stage of sluice_sink_upload_duration_seconds, sluice_sink_failures_total), against
 * the run's shared Ceph RGW.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { failureReason } from '@sluice/sinks';
import { createS3Client, S3Store, type RequestNotice } from '@sluice/sinks/aws-s3';

const MiB = 1024 * 1024;
const env = inject('s3');
const bucket = `notices-${randomBytes(4).toString('hex')}`;
let client: S3Client;
const notices: RequestNotice[] = [];

beforeAll(async () => {
  client = createS3Client({
    endpoint: env.endpoint,
    region: env.region,
    accessKeyId: env.accessKeyId,
    secretAccessKey: env.secretAccessKey,
    forcePathStyle: true,
    onRequest: (n) => notices.push(n),
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
});
afterAll(() => client?.destroy());

const store = (): S3Store =>
  new S3Store({ sinkId: 'n', client, bucket, partSizeBytes: 5 * MiB, queueSize: 2, maxBufferedBytes: 64 * MiB });

describe('createS3Client onRequest', () => {
  it('reports each request once, settled, with its duration: a multipart object is Create, its parts, Complete, Head', async () => {
    notices.length = 0;
    const up = store().open('multi.json', { contentType: 'application/x-ndjson' });
    up.write(randomBytes(11 * MiB));
    await up.close();
    expect(notices.map((n) => [n.command, n.ok, n.reason])).toEqual([
      ['CreateMultipartUploadCommand', true, null],
      ['UploadPartCommand', true, null],
      ['UploadPartCommand', true, null],
      ['UploadPartCommand', true, null],
      ['CompleteMultipartUploadCommand', true, null],
      ['HeadObjectCommand', true, null],
    ]);
    for (const n of notices) expect(n.durationMs).toBeGreaterThan(0);
  });

  it('a request refused for good is reported with its reason, and the failed object carries the same reason', async () => {
    notices.length = 0;
    // A part refused with a 4xx (never retried).
    const refuse = 'testRefuseParts';
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand')
          throw Object.assign(new Error('injected refusal'), {
            name: 'InvalidRequest',
            $metadata: { httpStatusCode: 400 },
          });
        return next(args);
      },
      { step: 'initialize', name: refuse },
    );
    try {
      const up = store().open('refused.json', { contentType: 'application/x-ndjson' });
      up.write(randomBytes(6 * MiB));
      const err = await up.close().then(
        () => null,
        (e: unknown) => e,
      );
      expect(failureReason(err)).toBe('client_error');
      expect(notices.find((n) => n.command === 'UploadPartCommand')).toMatchObject({
        ok: false,
        reason: 'client_error',
      });
    } finally {
      client.middlewareStack.remove(refuse);
    }
  });
});
