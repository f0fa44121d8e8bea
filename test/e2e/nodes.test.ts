/**
 * Several Talos nodes, several replicas: the aggregator shape (deploy/kubernetes/overlays/
 * aggregator/sluice.yaml, run as shipped but for its fixed ports, data_dir and upload period)
 * twice, two replicas writing ONE bucket and prefix on the run's shared Ceph RGW. Three nodes
 * are simulated by loopback addresses (127.0.0.2, .3, .4: Linux routes all of 127.0.0.0/8 to
 * lo, so a socket bound to one sends from it): each sends service logs over TCP and kernel
 * logs over UDP (Talos json_lines, docs/talos.md) and spreads them over both replicas, as a
 * Service would: its TCP stream reconnects half way to the other replica, its datagrams
 * alternate between them.
 *
 * Checked: every replica's books balance exactly (received = stored + dropped, nothing
 * dropped); the objects of the two replicas never share a key (each key's unique part belongs
 * to one replica, and the bucket holds as many objects as the replicas completed: an
 * overwrite would lose one); `host_key` names the sending node on every record (the node is
 * written in each message); and the lines read back are the lines sent, as a multiset: none
 * lost, none twice, none altered beyond the tags; `sluice read --where __host=<node>` finds
 * exactly that node's records across both replicas' objects.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { kernelLine, mulberry32, serviceLine, waitUntil } from '@sluice/testkit';
import { rgwClient } from '../s3/rgw.ts';
import { metricSum, scrape, splitAddress, startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon.ts';
import { freshBucket, getObjectLines, listKeys, openUploads, runCli, sleep } from '../helpers/s3.ts';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

const ROOT = new URL('../../', import.meta.url).pathname;
const AGGREGATOR_CONFIG = join(ROOT, 'deploy/kubernetes/overlays/aggregator/sluice.yaml');
const CLUSTER = 'nodes-e2e';
const PREFIX = `talos/${CLUSTER}/`;
const KEY = /^talos\/nodes-e2e\/\d{4}\/\d{2}\/\d{2}\/\d{2}:\d{2}:\d{2}-([0-9a-f]{16})-\d{6}\.ndjson\.zst$/;

const NODES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;
const REPLICAS = 2;
const SERVICE_LINES = 3_000; // per node, over TCP
const KERNEL_LINES = 3_000; // per node, over UDP
// Kernel logs paced at 1,000 datagrams a second per node (3 s): each replica takes about 1,500
// a second, far below what its two sockets' receive buffers hold through a stall of the daemon,
// so the kernel drops none and every datagram must arrive.
const UDP_PER_TICK = 20;
const UDP_TICK_MS = 20;

/** The aggregator's sluice.yaml with free ports, a private data_dir and 1 s objects (several per replica). */
function replicaConfig(dataDir: string): string {
  let yaml = readFileSync(AGGREGATOR_CONFIG, 'utf8');
  const edits: [string, string][] = [
    ['data_dir: /var/lib/sluice', `data_dir: ${dataDir}`],
    ['address: 0.0.0.0:9598', 'address: 127.0.0.1:0'],
    ['address: 0.0.0.0:5170', 'address: 127.0.0.1:0'],
    ['address: 0.0.0.0:6050', 'address: 127.0.0.1:0'],
    ['upload_period_secs: 60', 'upload_period_secs: 1'],
  ];
  for (const [from, to] of edits) {
    // Each edit must apply exactly once: a changed manifest fails here rather than run something else.
    expect(yaml.split(from).length - 1, `${AGGREGATOR_CONFIG}: "${from}"`).toBe(1);
    yaml = yaml.replace(from, to);
  }
  return yaml;
}

/** The pod environment of the aggregator, pointed at the test's bucket. */
function replicaEnv(bucket: string): Record<string, string> {
  return {
    CLUSTER_NAME: CLUSTER,
    S3_ENDPOINT: env.endpoint,
    S3_BUCKET: bucket,
    S3_REGION: env.region,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: env.accessKeyId,
    S3_SECRET_ACCESS_KEY: env.secretAccessKey,
    // Two replicas share two cores here.
    SLUICE_WORKER_THREADS: '1',
  };
}

/** `line` with `node=<n>` at the head of its msg, members kept in the order Talos sends them. */
function onNode(line: string, node: number): string {
  const rec = JSON.parse(line) as Record<string, unknown>;
  rec['msg'] = `node=${node} ${String(rec['msg'])}`;
  return JSON.stringify(rec);
}

/** Lines over one TCP connection from `localAddress`, honouring backpressure; resolves once the server closed it (it read them all). */
async function sendTcpFrom(localAddress: string, address: string, lines: readonly string[]): Promise<void> {
  const { host, port } = splitAddress(address);
  const socket = connect({ host, port, localAddress });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  for (let i = 0; i < lines.length; i += 200) {
    const chunk = `${lines.slice(i, i + 200).join('\n')}\n`;
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  }
  await new Promise<void>((resolve, reject) => {
    socket.once('close', (hadError) =>
      hadError ? reject(new Error(`tcp from ${localAddress} closed with an error`)) : resolve(),
    );
    socket.once('error', reject);
    socket.end();
  });
}

function bindUdp(localAddress: string): Promise<UdpSocket> {
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: localAddress, port: 0 }, () => resolve(socket));
  });
}

/**
 * One datagram per line from `localAddress`, line k to `targets[k % targets.length]`, paced
 * `UDP_PER_TICK` every `UDP_TICK_MS` on an absolute schedule (a late timer is caught up, not added).
 */
async function sendUdpFrom(localAddress: string, targets: readonly string[], lines: readonly string[]): Promise<void> {
  const socket = await bindUdp(localAddress);
  const to = targets.map(splitAddress);
  const start = performance.now();
  try {
    for (let i = 0, tick = 0; i < lines.length; i += UDP_PER_TICK, tick++) {
      const wait = start + tick * UDP_TICK_MS - performance.now();
      if (wait > 0) await sleep(wait); // a pause on purpose: a paced sender
      const sends: Promise<void>[] = [];
      for (let k = i; k < Math.min(i + UDP_PER_TICK, lines.length); k++) {
        const { host, port } = to[k % to.length]!;
        sends.push(
          new Promise((resolve, reject) =>
            socket.send(lines[k]!, port, host, (err) => (err ? reject(err) : resolve())),
          ),
        );
      }
      await Promise.all(sends);
    }
  } finally {
    socket.close();
  }
}

type Scrape = Map<string, number>;
const SOURCES = ['talos_service', 'talos_kernel'] as const;
const received = (m: Scrape, id: string): number =>
  metricSum(m, 'sluice_source_received_events_total', { component_id: id });
const sourceDiscarded = (m: Scrape, id: string): number =>
  metricSum(m, 'sluice_source_discarded_events_total', { component_id: id });
const kernelDrops = (m: Scrape): number =>
  metricSum(m, 'sluice_source_kernel_dropped_datagrams_total', { component_id: 'talos_kernel' });
const stored = (m: Scrape): number => metricSum(m, 'sluice_sink_sent_events_total', { component_id: 's3' });
const sinkDiscarded = (m: Scrape): number => metricSum(m, 'sluice_sink_discarded_events_total', { component_id: 's3' });
const objectsCompleted = (m: Scrape): number =>
  metricSum(m, 'sluice_sink_objects_completed_total', { component_id: 's3' });

describe('end to end: three Talos nodes into two aggregator replicas writing one bucket (Ceph RGW)', () => {
  it('books balance per replica, keys never collide, host_key names each node, every line stored exactly once', {
    timeout: 60_000,
  }, async () => {
    const bucket = await freshBucket(client, 'e2e-nodes');
    const replicas: RunningDaemon[] = [];
    try {
      for (let r = 0; r < REPLICAS; r++) {
        const dir = tempDir();
        replicas.push(await startDaemon(replicaConfig(join(dir, 'data')), { dir, env: replicaEnv(bucket) }));
      }
      const tcpOf = (r: number): string => replicas[r]!.sources['talos_service']![0]!;
      const udpOf = (r: number): string => replicas[r]!.sources['talos_kernel']![0]!;

      // What each node sends, and to which replica each line goes.
      const sentTo = Array.from({ length: REPLICAS }, () => ({ talos_service: 0, talos_kernel: 0 }));
      const replicaOfLine = new Map<string, number>();
      const sends: Promise<void>[] = [];
      NODES.forEach((address, node) => {
        const rand = mulberry32(100 + node);
        const service = Array.from({ length: SERVICE_LINES }, (_, id) => onNode(serviceLine({ id, rand }), node));
        const kernel = Array.from({ length: KERNEL_LINES }, (_, id) => onNode(kernelLine({ id, rand }), node));
        // TCP: half the stream to one replica, then a new connection lands on the other.
        const half = SERVICE_LINES / 2;
        const first = node % REPLICAS;
        const second = (node + 1) % REPLICAS;
        service.forEach((line, i) => {
          replicaOfLine.set(line, i < half ? first : second);
        });
        sentTo[first]!.talos_service += half;
        sentTo[second]!.talos_service += SERVICE_LINES - half;
        sends.push(
          (async () => {
            await sendTcpFrom(address, tcpOf(first), service.slice(0, half));
            await sendTcpFrom(address, tcpOf(second), service.slice(half));
          })(),
        );
        // UDP: datagrams alternate between the replicas, starting at a different one per node.
        const targets = Array.from({ length: REPLICAS }, (_, k) => (node + k) % REPLICAS);
        kernel.forEach((line, i) => {
          const r = targets[i % REPLICAS]!;
          replicaOfLine.set(line, r);
          sentTo[r]!.talos_kernel++;
        });
        sends.push(sendUdpFrom(address, targets.map(udpOf), kernel));
      });
      expect(replicaOfLine.size).toBe(NODES.length * (SERVICE_LINES + KERNEL_LINES)); // every line distinct
      await Promise.all(sends);

      // Every replica received all it was sent, and has stored it: nothing left in flight.
      const finals: Scrape[] = [];
      for (let r = 0; r < REPLICAS; r++) {
        let m: Scrape = new Map();
        await waitUntil(
          `replica ${r}: every line received and stored`,
          async () => {
            m = await scrape(replicas[r]!.apiPort);
            // A datagram the kernel dropped never arrives: stop waiting and report it below.
            if (kernelDrops(m) > 0) return true;
            const delivered = SOURCES.reduce((n, id) => n + received(m, id) - sourceDiscarded(m, id), 0);
            return (
              SOURCES.every((id) => received(m, id) === sentTo[r]![id]) && stored(m) + sinkDiscarded(m) === delivered
            );
          },
          45_000,
        );
        finals.push(m);
      }
      for (let r = 0; r < REPLICAS; r++) {
        const m = finals[r]!;
        expect(kernelDrops(m), `replica ${r}: datagrams dropped by the kernel`).toBe(0);
        for (const id of SOURCES) {
          expect(received(m, id), `replica ${r}: ${id} received`).toBe(sentTo[r]![id]);
          expect(sourceDiscarded(m, id), `replica ${r}: ${id} discarded`).toBe(0);
        }
        // The books: received = stored + dropped, exactly, and nothing dropped.
        expect(stored(m) + sinkDiscarded(m), `replica ${r}: books`).toBe(
          received(m, 'talos_service') + received(m, 'talos_kernel'),
        );
        expect(sinkDiscarded(m), `replica ${r}: sink discarded`).toBe(0);
        expect(objectsCompleted(m), `replica ${r}: objects`).toBeGreaterThan(0);
      }
      for (const [r, d] of replicas.entries()) expect(await d.stop('SIGTERM'), `replica ${r}: exit code`).toBe(0);

      // Read back the bucket as a whole.
      expect(await openUploads(client, bucket)).toEqual([]);
      const keys = await listKeys(client, bucket);
      const replicaOfUnique = new Map<string, number>();
      const objectsOf = Array.from({ length: REPLICAS }, () => 0);
      const expected = new Map<string, number>([...replicaOfLine.keys()].map((l) => [l, 1]));
      const wrong: string[] = [];
      const storedOf = NODES.map((): string[] => []);
      for (const key of keys) {
        const unique = KEY.exec(key)?.[1];
        expect(unique, key).toBeDefined();
        const lines = await getObjectLines(client, bucket, key);
        expect(lines.length, key).toBeGreaterThan(0);
        for (const line of lines) {
          const rec = JSON.parse(line) as Record<string, unknown>;
          const { cluster, __host, ...original } = rec;
          const sentLine = JSON.stringify(original);
          const node = Number(/^node=(\d+) /.exec(String(original['msg']))?.[1]);
          const left = expected.get(sentLine);
          if (left === undefined) wrong.push(`not sent: ${line}`);
          else if (left === 0) wrong.push(`stored twice: ${line}`);
          else expected.set(sentLine, 0);
          if (cluster !== CLUSTER) wrong.push(`cluster tag: ${line}`);
          if (__host !== NODES[node]) wrong.push(`host_key does not name node ${node}: ${line}`);
          else storedOf[node]!.push(line);
          // Every line of an object went to the replica whose unique part the key carries.
          const replica = replicaOfLine.get(sentLine);
          if (replica !== undefined) {
            const owner = replicaOfUnique.get(unique!) ?? replica;
            replicaOfUnique.set(unique!, owner);
            if (owner !== replica) wrong.push(`${key} holds a line sent to replica ${replica}: ${line}`);
          }
        }
        const owner = replicaOfUnique.get(unique!);
        if (owner !== undefined) objectsOf[owner]!++;
      }
      expect(wrong.slice(0, 5)).toEqual([]);
      const lost = [...expected].filter(([, n]) => n > 0).map(([l]) => l);
      expect(lost.length, `lines lost, e.g. ${lost[0]}`).toBe(0);
      // One unique part per replica, and no object overwritten: the bucket holds every object each replica completed.
      expect(replicaOfUnique.size).toBe(REPLICAS);
      expect(new Set(replicaOfUnique.values()).size).toBe(REPLICAS);
      expect(new Set(keys).size).toBe(keys.length);
      expect(objectsOf).toEqual(finals.map(objectsCompleted));
      expect(keys.length).toBe(finals.reduce((n, m) => n + objectsCompleted(m), 0));

      // One node's logs, across both replicas' objects, the way an operator reads them.
      const read = await runCli(
        ['read', '--path', `s3://${bucket}/${PREFIX}`, '--endpoint', env.endpoint, '--where', `__host=${NODES[1]}`],
        {
          AWS_ACCESS_KEY_ID: env.accessKeyId,
          AWS_SECRET_ACCESS_KEY: env.secretAccessKey,
        },
      );
      expect(read.status, read.stderr).toBe(0);
      const readLines = read.stdout.split('\n').filter((l) => l !== '');
      expect(readLines.length).toBe(SERVICE_LINES + KERNEL_LINES);
      expect(readLines.sort()).toEqual(storedOf[1]!.sort());
    } finally {
      for (const d of replicas) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
    }
  });

  it('two sinks of one process writing the same bucket and prefix: neither overwrites the other', {
    timeout: 60_000,
  }, async () => {
    // Both sinks get every batch at once, so they open their first objects in the same second
    // with the same sequence number: only the unique part of the key keeps them apart.
    const LINES = 2_000;
    const bucket = await freshBucket(client, 'e2e-twosinks');
    const dir = tempDir();
    const sink = (id: string): string => `
  ${id}:
    type: aws_s3
    inputs: [talos_service]
    endpoint: ${env.endpoint}
    bucket: ${bucket}
    access_key_id: \${S3_ACCESS_KEY_ID}
    secret_access_key: \${S3_SECRET_ACCESS_KEY}
    key_prefix: ${PREFIX}
    upload_period_secs: 1`;
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  talos_service: { type: tcp, address: 127.0.0.1:0, host_key: __host }
sinks:${sink('s3_a')}${sink('s3_b')}
`,
      { dir, env: replicaEnv(bucket) },
    );
    try {
      const rand = mulberry32(7);
      const lines = Array.from({ length: LINES }, (_, id) => onNode(serviceLine({ id, rand }), 0));
      await sendTcpFrom(NODES[0], daemon.sources['talos_service']![0]!, lines);
      let m: Scrape = new Map();
      await waitUntil(
        'both sinks stored every line',
        async () => {
          m = await scrape(daemon.apiPort);
          return ['s3_a', 's3_b'].every(
            (id) => metricSum(m, 'sluice_sink_sent_events_total', { component_id: id }) === LINES,
          );
        },
        30_000,
      );
      expect(await daemon.stop('SIGTERM')).toBe(0);
      const keys = await listKeys(client, bucket);
      // Every object both sinks completed is in the bucket, and each line is there twice (once per sink).
      expect(keys.length).toBe(metricSum(m, 'sluice_sink_objects_completed_total'));
      const count = new Map<string, number>();
      for (const key of keys) {
        expect(key).toMatch(KEY);
        for (const line of await getObjectLines(client, bucket, key)) {
          const { __host, ...original } = JSON.parse(line) as Record<string, unknown>;
          expect(__host).toBe(NODES[0]);
          const l = JSON.stringify(original);
          count.set(l, (count.get(l) ?? 0) + 1);
        }
      }
      expect(count.size).toBe(LINES);
      expect([...count.values()].every((n) => n === 2)).toBe(true);
      expect(lines.every((l) => count.get(l) === 2)).toBe(true);
    } finally {
      if (daemon.proc.exitCode === null && daemon.proc.signalCode === null) daemon.proc.kill('SIGKILL');
    }
  });
});
