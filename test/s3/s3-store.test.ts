/**
 * S3Store against a real Ceph RADOS Gateway: the run's shared one (inject('s3'), from
 * test/s3/global-setup.ts) and, for the outage, a private one this file stops and restarts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { SluiceError } from '@sluice/schema';
import { startRgw, type Rgw } from './rgw.ts';
import type { AwsS3SinkConfig } from '@sluice/sinks/registry';
import {
  createS3Client,
  S3Store,
  s3StoreFromConfig,
  type RetryNotice,
  type S3ClientOptions,
  type S3StoreOptions,
} from '@sluice/sinks/aws-s3';

const MiB = 1024 * 1024;
const env =
  inject('s3') ??
  (() => {
    throw new Error('no S3 gateway: vitest.config.ts must list test/s3/global-setup.ts in test.globalSetup');
  })();
const bucket = `s3-store-${randomBytes(4).toString('hex')}`;

function clientFor(over: Partial<S3ClientOptions> = {}): S3Client {
  return createS3Client({
    endpoint: env.endpoint,
    region: env.region,
    accessKeyId: env.accessKeyId,
    secretAccessKey: env.secretAccessKey,
    forcePathStyle: true,
    ...over,
  });
}

/** Records the name of every command the client sends (once per command, not per try). */
function recordCommands(client: S3Client): string[] {
  const names: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      names.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: 'testRecordCommands' },
  );
  return names;
}

function storeFor(client: S3Client, over: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store({
    sinkId: 'test_s3',
    client,
    bucket,
    partSizeBytes: 5 * MiB,
    queueSize: 2,
    maxBufferedBytes: 64 * MiB,
    ...over,
  });
}

async function getBytes(client: S3Client, b: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: b, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

async function openUploads(client: S3Client, b = bucket): Promise<string[]> {
  const res = await client.send(new ListMultipartUploadsCommand({ Bucket: b }));
  return (res.Uploads ?? []).map((u) => String(u.Key));
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Writes `data` in `chunk`-byte slices, waiting for 'drain' whenever write() says so. */
async function writeAll(
  upload: ReturnType<S3Store['open']>,
  data: Buffer,
  chunk = 64 * 1024,
  onWrite?: () => void,
): Promise<number> {
  let waits = 0;
  for (let off = 0; off < data.length; off += chunk) {
    const ok = upload.write(data.subarray(off, Math.min(off + chunk, data.length)));
    onWrite?.();
    if (!ok) {
      waits++;
      await new Promise<void>((resolve) => upload.once('drain', resolve));
    }
  }
  return waits;
}

/** How long a test waits for the gateway to take parts: generous, the machine may be loaded. */
const WAIT = { timeout: 30_000, interval: 20 };

let client: S3Client;
beforeAll(async () => {
  client = clientFor();
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
});
afterAll(() => client?.destroy());

describe('S3Store uploads', () => {
  it('stores a small object with one PutObject, with its content type and encoding', async () => {
    const c = clientFor();
    const calls = recordCommands(c);
    const store = storeFor(c);
    const body = Buffer.from('{"a":1}\n{"a":2,"msg":"é"}\n');
    const up = store.open('small/one.json.zst', { contentType: 'application/x-ndjson', contentEncoding: 'zstd' });
    expect(up.write(body.subarray(0, 5))).toBe(true);
    expect(up.write(body.subarray(5))).toBe(true);
    await up.close();

    expect(calls.filter((n) => n !== 'HeadObjectCommand')).toEqual(['PutObjectCommand']);
    expect(await getBytes(client, bucket, 'small/one.json.zst')).toEqual(body);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small/one.json.zst' }));
    expect(head.ContentType).toBe('application/x-ndjson');
    expect(head.ContentEncoding).toBe('zstd');
    expect(store.bufferedBytes).toBe(0);
    c.destroy();
  });

  it('streams a 17 MiB object as 5 MiB parts while it is written, read back byte for byte', async () => {
    const c = clientFor();
    const calls = recordCommands(c);
    const store = storeFor(c);
    const data = randomBytes(17 * MiB);
    const key = 'multi/17mib.json';
    const up = store.open(key, { contentType: 'application/x-ndjson' });

    await writeAll(up, data.subarray(0, 12 * MiB));
    // Parts leave as bytes arrive: two full parts are in S3 before close() is even called.
    await vi.waitFor(() => expect(store.bufferedBytes, 'two parts uploaded').toBeLessThanOrEqual(2 * MiB), WAIT);
    expect(calls.filter((n) => n === 'UploadPartCommand').length).toBe(2);
    await writeAll(up, data.subarray(12 * MiB));
    await up.close();

    expect(calls).toEqual([
      'CreateMultipartUploadCommand',
      'UploadPartCommand',
      'UploadPartCommand',
      'UploadPartCommand',
      'UploadPartCommand',
      'CompleteMultipartUploadCommand',
      'HeadObjectCommand',
    ]);
    const got = await getBytes(client, bucket, key);
    expect(got.length).toBe(data.length);
    expect(sha256(got)).toBe(sha256(data));
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ETag).toMatch(/-4"$/);
    expect(head.ContentType).toBe('application/x-ndjson');
    expect(await openUploads(client)).not.toContain(key);
    expect(store.bufferedBytes).toBe(0);
    c.destroy();
  });

  it('stores an empty object', async () => {
    const store = storeFor(client);
    const up = store.open('empty.json', { contentType: 'application/x-ndjson' });
    await up.close();
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'empty.json' }));
    expect(head.ContentLength).toBe(0);
  });

  it('applies backpressure across the uploads of the store, bounded to within one part', async () => {
    const part = 5 * MiB;
    const max = 6 * MiB;
    const store = storeFor(client, { queueSize: 1, maxBufferedBytes: max });
    const a = store.open('bp/a.json', { contentType: 'application/x-ndjson' });
    const b = store.open('bp/b.json', { contentType: 'application/x-ndjson' });
    const dataA = randomBytes(23 * MiB);
    const dataB = randomBytes(11 * MiB + 123);

    // write() says false once the store holds more than max and the upload holds more than a part.
    const chunk = 64 * 1024;
    let off = 0;
    while (a.write(dataA.subarray(off, off + chunk))) {
      off += chunk;
      if (off >= dataA.length) throw new Error('write() never returned false');
    }
    off += chunk;
    expect(store.bufferedBytes).toBeGreaterThan(max);
    expect(store.bufferedBytes).toBeLessThanOrEqual(max + chunk);
    // 'drain' comes once S3 took a part.
    await new Promise<void>((resolve) => a.once('drain', resolve));
    expect(store.bufferedBytes).toBeLessThanOrEqual(max);

    // Both uploads at once, both honouring 'drain': the store never holds much more than
    // max + one part per upload, and nothing deadlocks.
    let peak = 0;
    const sample = () => {
      peak = Math.max(peak, store.bufferedBytes);
    };
    const [waitsA, waitsB] = await Promise.all([
      writeAll(a, dataA.subarray(off), chunk, sample),
      writeAll(b, dataB, chunk, sample),
    ]);
    expect(waitsA + waitsB).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(max + 2 * (part + chunk));
    await Promise.all([a.close(), b.close()]);
    expect(store.bufferedBytes).toBe(0);
    expect(sha256(await getBytes(client, bucket, 'bp/a.json'))).toBe(sha256(dataA));
    expect(sha256(await getBytes(client, bucket, 'bp/b.json'))).toBe(sha256(dataB));
  });

  it('does not deadlock when max_buffered_bytes equals the part size', async () => {
    const store = storeFor(client, { queueSize: 1, maxBufferedBytes: 5 * MiB });
    const data = randomBytes(16 * MiB);
    const up = store.open('bp/tight.json', { contentType: 'application/x-ndjson' });
    expect(await writeAll(up, data)).toBeGreaterThan(0);
    await up.close();
    expect(sha256(await getBytes(client, bucket, 'bp/tight.json'))).toBe(sha256(data));
  });

  it('abort() leaves no multipart upload and no object', async () => {
    const c = clientFor();
    const calls = recordCommands(c);
    const store = storeFor(c);
    const key = 'abort/partial.json';
    const up = store.open(key, { contentType: 'application/x-ndjson' });
    await writeAll(up, randomBytes(12 * MiB));
    await vi.waitFor(() => expect(store.bufferedBytes, 'a part uploaded').toBeLessThan(12 * MiB), WAIT);
    expect(await openUploads(client)).toContain(key);
    await up.abort();
    expect(calls).toContain('AbortMultipartUploadCommand');
    expect(await openUploads(client)).not.toContain(key);
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).rejects.toMatchObject({
      name: 'NotFound',
    });
    expect(up.write(Buffer.from('discarded'))).toBe(true);
    await expect(up.close()).rejects.toMatchObject({ code: 'SLUICE_ERR_S3_UPLOAD' });
    expect(store.bufferedBytes).toBe(0);

    // An object still under one part: nothing reached S3, nothing stays.
    const small = store.open('abort/small.json', { contentType: 'application/x-ndjson' });
    small.write(Buffer.from('{"x":1}\n'));
    await small.abort();
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'abort/small.json' }))).rejects.toMatchObject(
      { name: 'NotFound' },
    );
    c.destroy();
  });

  it('abort() while close() is in flight throws the object away and close() rejects', async () => {
    // Once while parts are still uploading, once when the completion already reached S3.
    for (const when of ['parts', 'completion'] as const) {
      const c = clientFor();
      let completionSent = false;
      let release = () => {};
      const released = new Promise<void>((r) => (release = r));
      c.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName !== 'CompleteMultipartUploadCommand' || when !== 'completion') return next(args);
          const out = await next(args);
          completionSent = true;
          await released;
          return out;
        },
        { step: 'initialize', name: 'testHoldCompletion' },
      );
      const store = storeFor(c);
      const key = `abort/closing-${when}.json`;
      const up = store.open(key, { contentType: 'application/x-ndjson' });
      await writeAll(up, randomBytes(7 * MiB));
      const closing = up.close();
      closing.catch(() => {});
      if (when === 'completion') {
        await vi.waitFor(() => expect(completionSent, 'the completion answered').toBe(true), WAIT);
      }
      const aborting = up.abort();
      release();
      await aborting;
      await expect(closing).rejects.toMatchObject({
        code: 'SLUICE_ERR_S3_UPLOAD',
        message: expect.stringContaining('was aborted'),
      });
      expect(await openUploads(client)).not.toContain(key);
      await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).rejects.toMatchObject({
        name: 'NotFound',
      });
      c.destroy();
    }
  });

  it('completes an object whose CompleteMultipartUpload answer was lost and retried', async () => {
    // Ceph answers the retried completion 200 again; other stores answer NoSuchUpload (404),
    // which the second case plays: the object is there whole, so close() must resolve.
    for (const retryAnswer of ['ceph', 'NoSuchUpload'] as const) {
      const c = clientFor();
      let completes = 0;
      // Inside the retry middleware: the first completion reaches S3, its answer does not.
      c.middlewareStack.add(
        (next, context) => async (args) => {
          const out = await next(args);
          if (context.commandName === 'CompleteMultipartUploadCommand' && completes++ === 0) {
            throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
          }
          if (context.commandName === 'CompleteMultipartUploadCommand' && retryAnswer === 'NoSuchUpload') {
            throw Object.assign(new Error('The specified upload does not exist.'), {
              name: 'NoSuchUpload',
              $metadata: { httpStatusCode: 404 },
            });
          }
          return out;
        },
        { step: 'finalizeRequest', priority: 'low', name: 'testLoseCompleteAnswer' },
      );
      const warnings: string[] = [];
      const store = storeFor(c, { logger: { debug: () => {}, warn: (_o, msg) => warnings.push(msg) } });
      const key = `lost/complete-${retryAnswer}.json`;
      const data = randomBytes(7 * MiB);
      const up = store.open(key, { contentType: 'application/x-ndjson' });
      await writeAll(up, data);
      await up.close();
      expect(completes).toBe(2);
      expect(warnings.some((w) => w.includes('lost answer'))).toBe(retryAnswer === 'NoSuchUpload');
      expect(sha256(await getBytes(client, bucket, key))).toBe(sha256(data));
      c.destroy();
    }
  });

  it('a final failure rejects close() with SLUICE_ERR_S3_UPLOAD and leaves nothing behind', async () => {
    const c = clientFor();
    // Part 2 is refused for good (a 4xx is never retried).
    c.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { PartNumber?: number };
        if (input.PartNumber === 2) {
          throw Object.assign(new Error('injected refusal of part 2'), {
            name: 'InvalidRequest',
            $metadata: { httpStatusCode: 400 },
          });
        }
        return next(args);
      },
      { step: 'initialize', name: 'testRefusePart2' },
    );
    const store = storeFor(c, { queueSize: 1, maxBufferedBytes: 5 * MiB });
    const key = 'fail/part2.json';
    const up = store.open(key, { contentType: 'application/x-ndjson' });
    // The writer keeps going after the failure: writes are discarded, 'drain' still comes.
    await writeAll(up, randomBytes(25 * MiB));
    const err = await up.close().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SluiceError);
    const e = err as SluiceError;
    expect(e.code).toBe('SLUICE_ERR_S3_UPLOAD');
    expect(e.message).toContain('sink test_s3');
    expect(e.message).toContain(`s3://${bucket}/${key}`);
    expect(e.message).toContain('injected refusal of part 2');
    expect(inspect(e, { depth: 10 })).not.toContain(env.secretAccessKey);
    expect(await openUploads(client)).not.toContain(key);
    await expect(client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).rejects.toMatchObject({
      name: 'NotFound',
    });
    expect(store.bufferedBytes).toBe(0);
    c.destroy();
  });
});

describe('s3StoreFromConfig', () => {
  it('builds a working store from a validated aws_s3 sink config', async () => {
    const sink: AwsS3SinkConfig = {
      type: 'aws_s3',
      id: 'from_config',
      inputs: ['in'],
      key_prefix: '',
      compression: 'none',
      compression_level: null,
      upload_period_secs: 60,
      max_object_bytes: 1 << 30,
      spool: false,
      max_spool_bytes: 1 << 30,
      spool_sync: 'interval',
      spool_sync_interval_ms: 1000,
      endpoint: env.endpoint,
      bucket,
      region: env.region,
      access_key_id: env.accessKeyId,
      secret_access_key: env.secretAccessKey,
      force_path_style: true,
      part_size_bytes: 8 * MiB,
      queue_size: 4,
      max_buffered_bytes: 64 * MiB,
      when_full: 'block',
      index: false,
      shutdown_timeout_secs: 30,
    };
    const store = s3StoreFromConfig(sink);
    expect(store.sinkId).toBe('from_config');
    expect(store.partSizeBytes).toBe(8 * MiB);
    await store.check();
    const up = store.open('from-config.json', { contentType: 'application/x-ndjson' });
    up.write(Buffer.from('{"ok":true}\n'));
    await up.close();
    expect((await getBytes(client, bucket, 'from-config.json')).toString()).toBe('{"ok":true}\n');
    store.client.destroy();
  });
});

describe('S3Store.check()', () => {
  const expectCheckError = async (store: S3Store, code: string, secret: string): Promise<SluiceError> => {
    const err = await store.check().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SluiceError);
    const e = err as SluiceError;
    expect(e.code).toBe(code);
    expect(e.message).toContain('sink test_s3');
    expect(e.message).not.toContain(secret);
    expect(inspect(e, { depth: 10 })).not.toContain(secret);
    return e;
  };

  it('passes for a bucket it can reach', async () => {
    await storeFor(client).check();
  });

  it('names a missing bucket', async () => {
    const e = await expectCheckError(
      storeFor(client, { bucket: 'no-such-bucket-here' }),
      'SLUICE_ERR_S3_NO_BUCKET',
      env.secretAccessKey,
    );
    expect(e.message).toContain('"no-such-bucket-here"');
    expect(e.message).toContain(env.endpoint);
  });

  it('names refused credentials: a wrong secret and an unknown access key', async () => {
    const wrongSecret = randomBytes(30).toString('base64');
    const c1 = clientFor({ secretAccessKey: wrongSecret });
    await expectCheckError(storeFor(c1), 'SLUICE_ERR_S3_CREDENTIALS', wrongSecret);
    c1.destroy();
    const c2 = clientFor({ accessKeyId: 'NOSUCHKEY0000000000' });
    await expectCheckError(storeFor(c2), 'SLUICE_ERR_S3_CREDENTIALS', env.secretAccessKey);
    c2.destroy();
  });

  it('names an unreachable endpoint quickly', async () => {
    const port = 1; // tcpmux, privileged: nothing listens there, and no parallel test's port-0 listener gets it
    const c = clientFor({ endpoint: `http://127.0.0.1:${port}` });
    const t0 = Date.now();
    const e = await expectCheckError(
      storeFor(c, { checkTimeoutMs: 1500 }),
      'SLUICE_ERR_S3_UNREACHABLE',
      env.secretAccessKey,
    );
    // Bounded by checkTimeoutMs, with slack for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(e.message).toContain(`127.0.0.1:${port}`);
    expect(e.message).toContain('ECONNREFUSED');
    c.destroy();
  });

  it('names what the last real try ran into when the timeout cuts a later try short', async () => {
    // The first connection is reset; every later one is accepted and never answered, so the
    // check's timeout fires in the middle of a retry, whose own error is only the abort.
    let connections = 0;
    const held: Socket[] = [];
    const server = createServer((sock) => {
      if (connections++ === 0) sock.resetAndDestroy();
      else held.push(sock);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const c = clientFor({ endpoint: `http://127.0.0.1:${port}` });
    try {
      const e = await expectCheckError(
        storeFor(c, { checkTimeoutMs: 3000 }),
        'SLUICE_ERR_S3_UNREACHABLE',
        env.secretAccessKey,
      );
      expect(connections).toBeGreaterThanOrEqual(2);
      expect(e.message).toContain('no answer within 3000 ms (');
      expect(e.message).toMatch(/ECONNRESET|socket hang up/);
      expect(e.message).not.toMatch(/abort/i);
    } finally {
      c.destroy();
      for (const sock of held) sock.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('S3Store through a gateway outage', () => {
  let rgw: Rgw;
  beforeAll(async () => {
    rgw = await startRgw();
    await rgw.createBucket('outage');
  });
  afterAll(async () => {
    await rgw?.stop();
  });

  it('completes an object whose parts hit a 20 s outage, byte for byte', { timeout: 120_000 }, async () => {
    const retries: RetryNotice[] = [];
    const c = createS3Client({
      endpoint: rgw.endpoint,
      region: rgw.region,
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
      forcePathStyle: true,
      // The default 20 s cap would only make this test slower: patience is the time budget.
      maxRetryDelayMs: 3_000,
      onRetry: (n) => retries.push(n),
    });
    const store = new S3Store({
      sinkId: 'outage',
      client: c,
      bucket: 'outage',
      partSizeBytes: 5 * MiB,
      queueSize: 2,
      maxBufferedBytes: 64 * MiB,
    });
    const data = randomBytes(23 * MiB);
    const key = 'outage/object.json';
    const up = store.open(key, { contentType: 'application/x-ndjson' });

    await writeAll(up, data.subarray(0, 11 * MiB));
    await vi.waitFor(() => expect(store.bufferedBytes, 'two parts uploaded').toBeLessThanOrEqual(1 * MiB), WAIT);
    await rgw.stopGateway();
    const downAt = Date.now();
    // Two more parts, the last one and the completion are due while nothing answers.
    await writeAll(up, data.subarray(11 * MiB));
    const closing = up.close();
    let settled = false;
    closing.then(
      () => (settled = true),
      () => (settled = true),
    );
    // A sleep on purpose: the outage is the test; close() must still be retrying after 20 s down.
    await new Promise((r) => setTimeout(r, 20_000 - (Date.now() - downAt)));
    expect(settled).toBe(false);
    expect(retries.length).toBeGreaterThan(0);
    await rgw.startGateway();
    await closing;

    const got = await getBytes(c, 'outage', key);
    expect(got.length).toBe(data.length);
    expect(sha256(got)).toBe(sha256(data));
    expect(await openUploads(c, 'outage')).toEqual([]);
    expect(retries.some((r) => /ECONNREFUSED|ECONNRESET|EPIPE|socket/i.test(r.error))).toBe(true);
    c.destroy();
  });
});
