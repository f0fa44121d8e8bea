/**
 * What Node's HTTP server costs per HEC-sized request, against the least a server on node:net
 * can do: the server CPU (process.cpuUsage, this process only) per request of a 22 KiB POST,
 * 4 keep-alive connections, the client in a child process. Neither server decodes or stores
 * anything; each reads the whole body and answers HEC's 200 with the same bytes.
 *
 *   node_modules/.bin/node bench/hec-http-floor.bench.ts [--requests 10000] [--rounds 3]
 *
 * - `node:http`: createServer, body by 'data'/'end', writeHead with an array + end(string),
 *   as the splunk_hec source answers;
 * - `node:net`: a hand parser of Content-Length requests only (no chunked bodies, no
 *   Expect, no timeouts): the floor a hand-written HTTP/1.1 server could approach, not one.
 *
 * Rounds alternate the two servers; each round starts a fresh server and discards a warm-up
 * of 3,000 requests. Checks that every body byte arrived before it prints anything.
 */
import { fork } from 'node:child_process';
import { Agent, createServer as createHttpServer, request } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { median } from './lib/stats.ts';

const BODY_BYTES = 22_551; // 100 Talos-shaped envelopes, as the load generator sends them
const CONNECTIONS = 4;
const WARM = 3000;
const OK = '{"text":"Success","code":0}';

if (process.argv[2] === '--client') {
  const port = Number(process.argv[3]);
  const count = Number(process.argv[4]);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const payload = Buffer.alloc(BODY_BYTES, 0x61);
  const headers = {
    'content-type': 'application/json',
    authorization: 'Splunk t',
    'content-length': String(BODY_BYTES),
  };
  const target = { host: '127.0.0.1', port, path: '/services/collector/event', method: 'POST', agent, headers };
  let next = 0;
  const post = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request(target, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(payload);
    });
  const loop = async (): Promise<void> => {
    while (next++ < count) await post();
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, loop));
  agent.destroy();
  process.exit(0);
}

const { values } = parseArgs({
  options: { requests: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '3' } },
});
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);

type Kind = 'node:http' | 'node:net';

/** A server of `kind` and the body bytes it has read. */
function serve(kind: Kind): { server: Server; bytes: () => number } {
  let bytes = 0;
  if (kind === 'node:http') {
    const server = createHttpServer({ keepAliveTimeout: 120_000 }, (req, res) => {
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      req.on('end', () => {
        res.writeHead(200, ['content-type', 'application/json; charset=utf-8', 'content-length', String(OK.length)]);
        res.end(OK, 'latin1');
      });
    });
    return { server, bytes: () => bytes };
  }
  const answer = Buffer.from(
    'HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n' +
      `content-length: ${OK.length}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=120\r\n\r\n${OK}`,
  );
  const server = createNetServer((socket: Socket) => {
    socket.setNoDelay(true);
    // One growing buffer per connection: a request's head and body are parsed in place.
    let buf = Buffer.allocUnsafe(64 * 1024);
    let len = 0;
    socket.on('data', (chunk: Buffer) => {
      if (len + chunk.length > buf.length) {
        const grown = Buffer.allocUnsafe(Math.max(2 * buf.length, len + chunk.length));
        buf.copy(grown, 0, 0, len);
        buf = grown;
      }
      chunk.copy(buf, len);
      len += chunk.length;
      for (;;) {
        const headEnd = buf.subarray(0, len).indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const m = /content-length:\s*(\d+)/i.exec(buf.toString('latin1', 0, headEnd));
        const end = headEnd + 4 + (m === null ? 0 : Number(m[1]));
        if (len < end) return;
        bytes += end - headEnd - 4;
        socket.write(answer);
        buf.copy(buf, 0, end, len);
        len -= end;
      }
    });
  });
  return { server, bytes: () => bytes };
}

async function round(kind: Kind): Promise<number> {
  const { server, bytes } = serve(kind);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const run = (count: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const client = fork(process.argv[1]!, ['--client', String(port), String(count)]);
      client.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`client exited ${code}`))));
    });
  await run(WARM);
  const b0 = bytes();
  const c0 = process.cpuUsage();
  await run(REQUESTS);
  const c = process.cpuUsage(c0);
  const read = bytes() - b0;
  const expected = REQUESTS * BODY_BYTES;
  if (read !== expected) throw new Error(`${kind}: ${read} body bytes read, expected ${expected}`);
  server.close();
  return (c.user + c.system) / REQUESTS;
}

const results: Record<Kind, number[]> = { 'node:http': [], 'node:net': [] };
for (let r = 0; r < ROUNDS; r++) {
  const order: Kind[] = r % 2 === 0 ? ['node:http', 'node:net'] : ['node:net', 'node:http'];
  for (const kind of order) results[kind].push(await round(kind));
}
for (const [kind, us] of Object.entries(results)) {
  const each = us.map((u) => u.toFixed(1)).join(', ');
  console.log(`${kind.padEnd(10)} ${median(us).toFixed(1)} µs server CPU per request (${each})`);
}
process.exit(0);
