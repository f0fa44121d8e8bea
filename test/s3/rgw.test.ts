import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { privateRgw } from '../helpers/s3.ts';
import { rgwClient, startRgw } from './rgw.ts';

const MiB = 1024 * 1024;

async function getBytes(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('the shared gateway from global-setup', () => {
  const env =
    inject('s3') ??
    (() => {
      throw new Error('no S3 gateway: vitest.config.ts must list test/s3/global-setup.ts in test.globalSetup');
    })();
  const bucket = `rgw-test-${randomBytes(4).toString('hex')}`;
  let client: S3Client;

  beforeAll(async () => {
    client = rgwClient(env);
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(() => client.destroy());

  it('puts and gets an object byte for byte, with its content type', async () => {
    const body = Buffer.from('{"msg":"héllo"}\n{"msg":"world"}\n');
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'a/b.json', Body: body, ContentType: 'application/x-ndjson' }),
    );
    expect(await getBytes(client, bucket, 'a/b.json')).toEqual(body);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a/b.json' }));
    expect(head.ContentType).toBe('application/x-ndjson');
    expect(head.ContentLength).toBe(body.length);
  });

  it('assembles a multipart upload of 3 parts of 5 MiB', async () => {
    const key = 'multi/object.bin';
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB)];
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const done = [];
    for (let i = 0; i < parts.length; i++) {
      const r = await client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: parts[i] }),
      );
      done.push({ PartNumber: i + 1, ETag: r.ETag! });
    }
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: done } }),
    );

    const got = await getBytes(client, bucket, key);
    expect(got.length).toBe(15 * MiB);
    expect(sha256(got)).toBe(sha256(Buffer.concat(parts)));
    // Ceph's CompleteMultipartUpload answers an empty ETag; HEAD has the real one.
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-3"$/);
    const open = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(open.Uploads ?? []).toEqual([]);
  });
});

describe('a private gateway', () => {
  const gw = privateRgw();

  it('stops and starts again on the same port, keeping the data', async () => {
    const { rgw, client } = gw;
    await rgw.createBucket('outage');
    await client.send(new PutObjectCommand({ Bucket: 'outage', Key: 'k', Body: 'before' }));

    await rgw.stopGateway();
    const refused = client.send(new GetObjectCommand({ Bucket: 'outage', Key: 'k' }));
    await expect(refused).rejects.toThrow(/ECONNREFUSED/);

    const endpoint = rgw.endpoint;
    await rgw.startGateway();
    expect(rgw.endpoint).toBe(endpoint);
    expect((await getBytes(client, 'outage', 'k')).toString()).toBe('before');
    // Metadata writes work at once after a restart (no wait for the killed gateway's watches).
    const t0 = Date.now();
    await rgw.createBucket('after-restart');
    // The killed gateway's watches would hold it for 30 s; 15 s leaves room for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('cleans up: stop() kills the daemons and removes the temp dir', async () => {
    const other = await startRgw();
    const { existsSync } = await import('node:fs');
    expect(existsSync(other.dir)).toBe(true);
    await other.stop();
    expect(existsSync(other.dir)).toBe(false);
    const c = other.client();
    await expect(c.send(new GetObjectCommand({ Bucket: 'x-x-x', Key: 'k' }))).rejects.toThrow(/ECONNREFUSED/);
    c.destroy();
  });
});
