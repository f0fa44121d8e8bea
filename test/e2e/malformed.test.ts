import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { mulberry32, serviceLine } from '@sluice/testkit';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  splitAddress,
  startDaemon,
  tempDir,
} from '../helpers/daemon.ts';

/** Bad input as it arrives on the wire, with the reason Sluice must count it under. */
const BAD: { name: string; bytes: Buffer; reason: string }[] = [
  { name: 'truncated object', bytes: Buffer.from('{"msg":"hel'), reason: 'invalid_json' },
  { name: 'trailing garbage', bytes: Buffer.from('{"a":1}x'), reason: 'invalid_json' },
  { name: 'two objects on one line', bytes: Buffer.from('{"a":1}{"b":2}'), reason: 'invalid_json' },
  { name: 'single quotes', bytes: Buffer.from("{'a':1}"), reason: 'invalid_json' },
  { name: 'unquoted key', bytes: Buffer.from('{a:1}'), reason: 'invalid_json' },
  { name: 'trailing comma', bytes: Buffer.from('{"a":1,}'), reason: 'invalid_json' },
  { name: 'NaN', bytes: Buffer.from('{"a":NaN}'), reason: 'invalid_json' },
  { name: 'bad escape', bytes: Buffer.from('{"a":"\\q"}'), reason: 'invalid_json' },
  { name: 'raw control character in string', bytes: Buffer.from('{"a":"x\u0001y"}'), reason: 'invalid_json' },
  { name: 'NUL byte', bytes: Buffer.from([0x7b, 0x00, 0x7d]), reason: 'invalid_json' },
  { name: 'syslog text', bytes: Buffer.from('<13>Nov 22 10:00:00 host app: hello'), reason: 'invalid_json' },
  { name: 'array', bytes: Buffer.from('[{"msg":"a"}]'), reason: 'not_object' },
  { name: 'bare string', bytes: Buffer.from('"msg"'), reason: 'not_object' },
  { name: 'number', bytes: Buffer.from('42'), reason: 'not_object' },
  { name: 'null', bytes: Buffer.from('null'), reason: 'not_object' },
  {
    name: 'lone continuation byte',
    bytes: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0x80, 0x22, 0x7d]),
    reason: 'invalid_utf8',
  },
  {
    name: 'overlong slash',
    bytes: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]),
    reason: 'invalid_utf8',
  },
  {
    name: 'UTF-8 encoded surrogate',
    bytes: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]),
    reason: 'invalid_utf8',
  },
  {
    name: 'truncated 3-byte sequence',
    bytes: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe6, 0x97, 0x22, 0x7d]),
    reason: 'invalid_utf8',
  },
  {
    name: 'latin-1 text',
    bytes: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d]),
    reason: 'invalid_utf8',
  },
  { name: 'whitespace only', bytes: Buffer.from('   \t '), reason: 'empty' },
];

describe('end to end: malformed input is counted by reason, kept in dead letter, and crashes nothing', () => {
  it('TCP and UDP garbage among valid lines', async () => {
    const dir = tempDir();
    const out = join(dir, 'out');
    const dead = join(dir, 'dead');
    const daemon = await startDaemon(
      `
api: { address: 127.0.0.1:0 }
dead_letter: { path: ${dead} }
sources:
  t: { type: tcp, address: 127.0.0.1:0, max_line_bytes: 4096, extra_tags: { cluster: m } }
  u: { type: udp, address: 127.0.0.1:0, extra_tags: { cluster: m } }
sinks:
  f: { type: file, inputs: [t, u], path: ${out}, compression: gzip }
`,
      { dir },
    );
    const rand = mulberry32(7);
    const valid = Array.from({ length: BAD.length + 1 }, (_, id) => serviceLine({ id, rand }));

    // TCP: valid, bad, valid, bad, ... then one oversize line and an empty line; the connection stays usable.
    const parts: Buffer[] = [];
    BAD.forEach((bad, i) => {
      parts.push(Buffer.from(`${valid[i]!}\n`), bad.bytes, Buffer.from('\n'));
    });
    parts.push(
      Buffer.from(`{"big":"${'x'.repeat(5000)}"}\n`),
      Buffer.from('\n'),
      Buffer.from(`${valid[BAD.length]!}\n`),
    );
    const { host, port } = splitAddress(daemon.sources['t']![0]!);
    const socket = connect({ host, port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end(Buffer.concat(parts));
    });

    // UDP: every bad datagram once, plus an empty datagram.
    const u = splitAddress(daemon.sources['u']![0]!);
    const client = createSocket('udp4');
    for (const bad of BAD) await new Promise<void>((r) => client.send(bad.bytes, u.port, u.host, () => r()));
    await new Promise<void>((r) => client.send(Buffer.alloc(0), u.port, u.host, () => r()));
    client.close();

    const malformedTotal = BAD.length * 2 + 1; // every bad line over both sources, and the empty datagram
    const received = malformedTotal + valid.length + 2; // plus the oversize and the empty TCP line
    // Wait until every record has been through the workers, then take the books.
    const m = await vi.waitFor(
      async () => {
        const now = await scrape(daemon.apiPort);
        const discarded = metricSum(now, 'sluice_source_discarded_events_total');
        expect(discarded, 'every bad record through the workers').toBeGreaterThanOrEqual(malformedTotal + 2);
        return now;
      },
      { timeout: 60_000, interval: 100 },
    );
    expect(metricSum(m, 'sluice_source_received_events_total')).toBe(received);
    expect(metricSum(m, 'sluice_source_discarded_events_total', { reason: 'oversize' })).toBe(1);
    expect(metricSum(m, 'sluice_source_discarded_events_total', { reason: 'empty_line' })).toBe(1);
    expect(metricSum(m, 'sluice_source_discarded_events_total', { reason: 'malformed' })).toBe(malformedTotal);
    const reasons = new Set(BAD.map((b) => b.reason));
    for (const reason of reasons) {
      const n = BAD.filter((b) => b.reason === reason).length * 2 + (reason === 'empty' ? 1 : 0);
      expect(metricSum(m, 'sluice_source_malformed_events_total', { reason }), reason).toBe(n);
    }
    expect(await daemon.stop()).toBe(0);

    // Everything valid stored exactly once.
    const stored: string[] = [];
    for (const key of listObjects(out)) stored.push(...(await readObjectLines(join(out, key))));
    expect(
      stored
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .map(({ cluster, ...rest }) => {
          expect(cluster).toBe('m');
          return JSON.stringify(rest);
        })
        .sort(),
    ).toEqual([...valid].sort());

    // Dead letter holds each malformed record with its reason and source.
    const deadLines: Record<string, unknown>[] = [];
    for (const key of listObjects(dead))
      for (const l of await readObjectLines(join(dead, key))) deadLines.push(JSON.parse(l) as Record<string, unknown>);
    expect(deadLines.length).toBe(malformedTotal);
    for (const bad of BAD) {
      const hits = deadLines.filter(
        (d) =>
          d['reason'] === bad.reason &&
          (d['raw'] === bad.bytes.toString('utf8') || d['raw_base64'] === bad.bytes.toString('base64')),
      );
      expect(hits.length, bad.name).toBeGreaterThanOrEqual(2);
    }

    // The books balance: received = stored + every counted drop.
    expect(stored.length + metricSum(m, 'sluice_source_discarded_events_total')).toBe(received);
  });
});
