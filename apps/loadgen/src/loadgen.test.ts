import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { udpKernelDrops } from '@sluice/sources/kernel-drops';
import { generateLineSet, lineId, lineLength } from './line-set.ts';
import { sendHec, sendTcp, sendUdp } from './send.ts';

const CLI = new URL('./cli.ts', import.meta.url).pathname;

describe('generateLineSet', () => {
  it('is seeded, 150 to ~320 bytes a line, each line carrying its id', () => {
    const a = generateLineSet({ count: 2000, kind: 'mixed', seed: 5, firstId: 100 });
    const b = generateLineSet({ count: 2000, kind: 'mixed', seed: 5, firstId: 100 });
    expect(a.data.equals(b.data)).toBe(true);
    expect(generateLineSet({ count: 2000, kind: 'mixed', seed: 6, firstId: 100 }).data.equals(a.data)).toBe(false);
    expect(a.offsets[a.count]).toBe(a.data.length);
    let kernel = 0;
    for (let i = 0; i < a.count; i++) {
      const line = a.data.toString('utf8', a.offsets[i], a.offsets[i + 1]! - 1);
      expect(a.data[a.offsets[i + 1]! - 1]).toBe(0x0a);
      expect(lineLength(a, i)).toBeGreaterThanOrEqual(150);
      expect(lineLength(a, i)).toBeLessThanOrEqual(330);
      const obj = JSON.parse(line) as Record<string, unknown>;
      if ('facility' in obj) kernel++;
      else expect(obj['talos-service']).toBeTypeOf('string');
      expect(lineId(line)).toBe(100 + i);
      // Tags added at the end do not hide the id.
      expect(lineId(`${line.slice(0, -1)},"cluster":"x","__host":"10.0.0.1"}`)).toBe(100 + i);
    }
    expect(kernel).toBe(400); // mixed: every fifth line
    expect(lineId('{"msg":"no id"}')).toBe(-1);
  });

  it('rejects a bad kind or count', () => {
    expect(() => generateLineSet({ count: -1, kind: 'service' })).toThrow(RangeError);
    expect(() => generateLineSet({ count: 1, kind: 'nope' as 'service' })).toThrow(RangeError);
  });
});

describe('senders', () => {
  it('sendTcp: every byte over N connections, and resolves only after the receiver read it all', async () => {
    const set = generateLineSet({ count: 20_000, kind: 'service', seed: 1 });
    const got: Buffer[] = [];
    let conns = 0;
    const server = createServer((s) => {
      conns++;
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('end', () => got.push(Buffer.concat(parts)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const report = await sendTcp(set, { host: '127.0.0.1', port, connections: 3 });
    server.close();
    expect(conns).toBe(3);
    expect(report).toMatchObject({ protocol: 'tcp', lines: 20_000, bytes: set.data.length, errors: 0, connections: 3 });
    expect(report.linesPerSec).toBeGreaterThan(0);
    // Each connection carries a contiguous share: together, every line exactly once.
    const ids = got.flatMap((b) => b.toString('utf8').trimEnd().split('\n').map(lineId)).sort((x, y) => x - y);
    expect(ids).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
  });

  it('sendUdp: one datagram per line, paced at the rate asked for', async () => {
    const set = generateLineSet({ count: 3000, kind: 'kernel', seed: 2 });
    // A receive buffer that holds all 3000 even if this process is descheduled meanwhile.
    const sock = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    const got: number[] = [];
    sock.on('message', (m) => got.push(lineId(m.toString('utf8'))));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const report = await sendUdp(set, { host: '127.0.0.1', port: sock.address().port, rate: 20_000 });
    // Read what the buffer still holds (all of it, unless the kernel dropped some).
    const port = sock.address().port;
    const accounted = (): number => got.length + udpKernelDrops(port);
    await vi.waitFor(() => expect(accounted(), 'every datagram read or dropped').toBeGreaterThanOrEqual(3000), {
      timeout: 30_000,
      interval: 10,
    });
    sock.close();
    expect(report).toMatchObject({ protocol: 'udp', lines: 3000, rate: 20_000, errors: 0 });
    expect(report.bytes).toBe(set.data.length - set.count);
    // 3000 datagrams at 20,000/s take ~150 ms: not flat out, and not a sleep per datagram
    // (3000 x 1 ms timers would take 3 s or more); the slack is for a loaded machine.
    expect(report.seconds).toBeGreaterThan(0.12);
    expect(report.seconds).toBeLessThan(2.5);
    expect(new Set(got).size).toBeGreaterThan(2700);
    expect(got.every((id) => id >= 0 && id < 3000)).toBe(true);
  });

  it('sendHec: batches of lines as {"event":…} POSTs with the token; failed requests count as errors', async () => {
    const set = generateLineSet({ count: 1000, kind: 'service', seed: 3 });
    const events: unknown[] = [];
    let auth = '';
    let calls = 0;
    const server = createHttpServer((req: IncomingMessage, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        calls++;
        auth = String(req.headers['authorization']);
        if (calls === 2) {
          res.statusCode = 503;
          res.end('busy');
          return;
        }
        for (const line of Buffer.concat(parts).toString('utf8').trimEnd().split('\n')) events.push(JSON.parse(line));
        res.end('{"text":"Success","code":0}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const report = await sendHec(set, {
      url: `http://127.0.0.1:${port}/services/collector/event`,
      token: 'T0K',
      batchLines: 100,
      concurrency: 2,
    });
    server.close();
    expect(auth).toBe('Splunk T0K');
    expect(calls).toBe(10);
    expect(report).toMatchObject({ protocol: 'hec', lines: 900, errors: 100 });
    expect(events).toHaveLength(900);
    expect((events[0] as { event: Record<string, unknown> }).event['talos-service']).toBeTypeOf('string');
  });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sluice-loadgen CLI', () => {
  it('sends over TCP and prints one JSON report', async () => {
    let bytes = 0;
    const server = createServer((s) => s.on('data', (c: Buffer) => (bytes += c.length)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const r = await run([
      'tcp',
      '--address',
      `127.0.0.1:${port}`,
      '--lines',
      '5000',
      '--connections',
      '2',
      '--kind',
      'mixed',
      '--seed',
      '9',
    ]);
    server.close();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({ protocol: 'tcp', lines: 5000, connections: 2, kind: 'mixed', seed: 9, firstId: 0 });
    expect(report['bytes']).toBe(bytes);
  });

  it('names what is wrong: a bad protocol, a missing address, hec without --url', async () => {
    expect(await run(['smtp'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown protocol "smtp"') });
    expect(await run(['tcp', '--lines', '1'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--address HOST:PORT is required'),
    });
    expect(await run(['hec', '--lines', '1'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--url is required'),
    });
    expect((await run(['--help'])).stdout).toContain('sluice-loadgen tcp --address HOST:PORT');
  });
});
