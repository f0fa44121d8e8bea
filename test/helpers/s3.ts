/**
 * Helpers for end-to-end tests of the aws_s3 sink against a real Ceph RGW: buckets, reading
 * objects back the way a user would (GetObject, then decompress every frame), a paced TCP
 * sender, the CLI as a child process, and a private gateway for files that stop theirs.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from '@mongodb-js/zstd';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isIndexKey } from '@sluice/sinks/registry';
import { afterAll, beforeAll } from 'vitest';
import { startRgw, type Rgw } from '../s3/rgw.ts';
import { splitAddress } from './daemon.ts';

const CLI = new URL('../../apps/sluice/src/cli.ts', import.meta.url).pathname;

/**
 * A Ceph RGW of the calling test file's own (the shared one from global-setup.ts must stay up
 * for the other files): started before the file's tests, stopped after them. Call at the top
 * level of the file; `rgw` and `client` are set once its tests run.
 */
export function privateRgw(): { readonly rgw: Rgw; readonly client: S3Client } {
  let rgw: Rgw | undefined;
  let client: S3Client | undefined;
  beforeAll(async () => {
    rgw = await startRgw();
    client = rgw.client();
  });
  afterAll(async () => {
    client?.destroy();
    await rgw?.stop();
  });
  return {
    get rgw(): Rgw {
      if (rgw === undefined) throw new Error('privateRgw: the gateway is not started (use it inside a test)');
      return rgw;
    },
    get client(): S3Client {
      if (client === undefined) throw new Error('privateRgw: the gateway is not started (use it inside a test)');
      return client;
    },
  };
}

/** A bucket no other test uses. */
export async function freshBucket(client: S3Client, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

/** Every object key in the bucket (index sidecars left out: listIndexKeys), sorted. */
export async function listKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  return (await listAllKeys(client, bucket, prefix)).filter((k) => !isIndexKey(k));
}

/** Every index sidecar key in the bucket (`_<object>.index.json`), sorted. */
export async function listIndexKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  return (await listAllKeys(client, bucket, prefix)).filter(isIndexKey);
}

async function listAllKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const res = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of res.Contents ?? []) keys.push(String(o.Key));
    token = res.NextContinuationToken;
  } while (token !== undefined);
  return keys.sort();
}

/** Keys of the multipart uploads still open in the bucket. */
export async function openUploads(client: S3Client, bucket: string): Promise<string[]> {
  const res = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (res.Uploads ?? []).map((u) => String(u.Key));
}

/**
 * GetObject and the object's lines: zstd through @mongodb-js/zstd (node:zlib reads only the
 * first of concatenated frames, nodejs/node#64741), gzip through gunzipSync (all members).
 */
export async function getObjectLines(client: S3Client, bucket: string, key: string): Promise<string[]> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const raw = Buffer.from(await res.Body!.transformToByteArray());
  const data = key.endsWith('.zst') ? await zstdDecompress(raw) : key.endsWith('.gz') ? gunzipSync(raw) : raw;
  const text = data.toString('utf8');
  if (text.length === 0) return [];
  if (!text.endsWith('\n')) throw new Error(`${key}: the last record has no newline`);
  return text.slice(0, -1).split('\n');
}

/** Counts how often each id occurs across all objects under `prefix`; `idOf` reads a record's id. */
export async function countIds(
  client: S3Client,
  bucket: string,
  prefix: string,
  size: number,
  idOf: (rec: Record<string, unknown>) => number,
): Promise<Uint8Array> {
  const seen = new Uint8Array(size);
  for (const key of await listKeys(client, bucket, prefix)) {
    for (const line of await getObjectLines(client, bucket, key))
      seen[idOf(JSON.parse(line) as Record<string, unknown>)]!++;
  }
  return seen;
}

/** The id of a loadgen service line (`... req=<id>` at the end of msg). */
export function serviceId(rec: Record<string, unknown>): number {
  return Number(/req=(\d+)$/.exec(String(rec['msg']))![1]);
}

export interface Sender {
  /** Lines handed to the socket so far (a chunk counts once the socket took all of it). */
  readonly sent: () => number;
  /**
   * Backpressure the sender met: how often a write was refused (the socket's buffers were full,
   * so the receiver was not reading fast enough or not at all) and the sender waited for 'drain'.
   */
  readonly drainWaits: () => number;
  /** Milliseconds spent waiting for 'drain' so far, the wait in progress included. */
  readonly heldBackMs: () => number;
  /** How long the wait for 'drain' in progress has lasted; 0 while the sender is not held back. */
  readonly waitingMs: () => number;
  /** Resolves when every line was sent and the server closed the connection (it read them all). */
  readonly done: Promise<void>;
}

/**
 * Send `lines` over one TCP connection, `perTick` lines every `tickMs`, honouring the
 * socket's backpressure (a paused Sluice source stops the sender here).
 *
 * The pace follows an absolute schedule: chunk k is due at start + k x tickMs, so a late timer
 * or a wait for 'drain' is caught up at once instead of adding up (on a loaded machine the
 * stream still takes about lines / perTick x tickMs). Whether the receiver held the sender back
 * is measured directly (drainWaits, heldBackMs, waitingMs), not inferred from wall-clock time.
 */
export function sendTcpPaced(address: string, lines: readonly string[], perTick: number, tickMs: number): Sender {
  const { host, port } = splitAddress(address);
  let sent = 0;
  let drainWaits = 0;
  let heldMs = 0;
  let waitingSince: number | null = null;
  const done = (async () => {
    const socket = connect({ host, port });
    let failure: Error | undefined;
    socket.on('error', (err) => (failure ??= err));
    const closed = (what: string): Error =>
      failure ?? new Error(`sendTcpPaced: the connection to ${address} closed ${what}`);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('close', () => reject(closed('before it was established')));
    });
    const drained = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        if (socket.destroyed) return reject(closed(`with ${lines.length - sent} lines unsent`));
        const onDrain = (): void => {
          socket.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          socket.off('drain', onDrain);
          reject(closed(`with ${lines.length - sent} lines unsent`));
        };
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
    const start = performance.now();
    for (let i = 0, tick = 0; i < lines.length; i += perTick, tick++) {
      const wait = start + tick * tickMs - performance.now();
      if (wait > 0) await sleep(wait); // a pause on purpose: a paced sender
      const chunk = lines.slice(i, i + perTick);
      if (!socket.write(`${chunk.join('\n')}\n`)) {
        drainWaits++;
        const since = performance.now();
        waitingSince = since;
        try {
          await drained();
        } finally {
          heldMs += performance.now() - since;
          waitingSince = null;
        }
      }
      sent += chunk.length;
    }
    await new Promise<void>((resolve, reject) => {
      if (socket.destroyed) return reject(closed('before the sender ended it'));
      socket.once('close', (hadError) => (hadError ? reject(closed('with an error')) : resolve()));
      socket.end();
    });
  })();
  const waitingMs = (): number => (waitingSince === null ? 0 : performance.now() - waitingSince);
  return { sent: () => sent, drainWaits: () => drainWaits, heldBackMs: () => heldMs + waitingMs(), waitingMs, done };
}

/**
 * The most one loopback TCP connection can hold in the kernel: the receiver's receive buffer
 * plus the sender's send buffer, which autotuning grows up to the maxima of tcp_rmem and
 * tcp_wmem (/proc/sys/net/ipv4; e.g. 32 MiB + 4 MiB). A stream meant to outrun everything
 * that can buffer it must be sized from these, not from what one run happened to see.
 * Unreadable (not Linux): a generous 32 MiB each.
 */
export function tcpBufferMaxBytes(): number {
  const max = (name: string): number => {
    try {
      const v = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
      if (Number.isSafeInteger(v) && v > 0) return v;
    } catch {
      // not Linux
    }
    return 32 * 1024 * 1024;
  };
  return max('tcp_rmem') + max('tcp_wmem');
}

/** Lines `make(0)`, `make(1)`, … until they hold at least `minBytes` (newlines included) and number at least `minLines`. */
export function linesOfAtLeast(minBytes: number, minLines: number, make: (id: number) => string): string[] {
  const lines: string[] = [];
  let bytes = 0;
  while (bytes < minBytes || lines.length < minLines) {
    const line = make(lines.length);
    lines.push(line);
    bytes += Buffer.byteLength(line) + 1;
  }
  return lines;
}

/** YAML of an aws_s3 sink's connection options; the keys come from the environment. */
export function s3Connection(endpoint: string, bucket: string): string {
  return `endpoint: ${endpoint}
    bucket: ${bucket}
    access_key_id: \${S3_ACCESS_KEY_ID}
    secret_access_key: \${S3_SECRET_ACCESS_KEY}`;
}

/**
 * A daemon config: one tcp source `talos` (1 MiB ring) into an aws_s3 sink `s3` (key prefix
 * `talos/`, 1 s objects, 5 MiB parts and buffer) on `endpoint`, with the sink's `extra` options.
 * Credentials come from the environment (s3Env).
 */
export function tcpToS3Config(
  dataDir: string,
  endpoint: string,
  bucket: string,
  extra: Record<string, string | number | boolean>,
): string {
  const MiB = 1024 * 1024;
  const lines = Object.entries(extra)
    .map(([k, v]) => `    ${k}: ${v}\n`)
    .join('');
  return `data_dir: ${dataDir}
api: { address: 127.0.0.1:0 }
sources:
  talos: { type: tcp, address: 127.0.0.1:0, ring_bytes: ${MiB} }
sinks:
  s3:
    type: aws_s3
    inputs: [talos]
    ${s3Connection(endpoint, bucket)}
    key_prefix: talos/
    upload_period_secs: 1
    part_size_bytes: ${5 * MiB}
    max_buffered_bytes: ${5 * MiB}
${lines}`;
}

/** The environment s3Connection() reads. */
export function s3Env(env: { accessKeyId: string; secretAccessKey: string }): Record<string, string> {
  return { S3_ACCESS_KEY_ID: env.accessKeyId, S3_SECRET_ACCESS_KEY: env.secretAccessKey };
}

/** `sluice <args>` as a child process on the repo's Node 24. */
export function runCli(
  args: string[],
  env: Record<string, string>,
  cwd?: string,
): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd ? { cwd } : {}),
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve) =>
    proc.on('close', (status) => resolve({ status, stdout, stderr, ms: Date.now() - started })),
  );
}

/** `work`, or a rejection naming `what` once `timeoutMs` passed without it settling (instead of a hung test). */
export async function within<T>(what: string, work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A fixed pause: only where time itself is the test (an outage that lasts, a sender held back
 * for a while, nothing happening for a while). To wait for something, use waitUntil or vi.waitFor.
 */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
