/**
 * sluice-loadgen: send seeded Talos lines to a Sluice source and print what was sent as JSON.
 *
 *   sluice-loadgen tcp --address 127.0.0.1:5170 --lines 1000000 --connections 4
 *   sluice-loadgen udp --address 127.0.0.1:6050 --lines 1000000 --rate 100000
 *   sluice-loadgen hec --url http://127.0.0.1:8088/services/collector/event --token T
 */
import { parseArgs } from 'node:util';
import { LINE_KINDS, generateLineSet, type LineKind } from './line-set.ts';
import { sendHec, sendTcp, sendUdp, type SendReport } from './send.ts';

const HELP = `sluice-loadgen: seeded Talos service and kernel lines (150 to 300 bytes, varied text)
sent to a Sluice source; prints one JSON report (lines/s, MB/s, bytes, errors) on stdout.

Usage:
  sluice-loadgen tcp --address HOST:PORT [--connections N]
  sluice-loadgen udp --address HOST:PORT [--rate DATAGRAMS_PER_SEC] [--sockets N]
  sluice-loadgen hec --url http://HOST:PORT/services/collector/event [--token T]
                     [--format event|raw] [--batch LINES] [--concurrency N]

Options (all protocols):
  --lines N         lines to send (default 100000)
  --kind K          service | kernel | mixed (default: service for tcp and hec, kernel for udp)
  --seed N          PRNG seed (default 1): same seed, same bytes
  --first-id N      id of the first line (default 0); line i carries req=<id> or kseq=<id>
  --rate N          udp only: datagrams/s, 0 = as fast as possible (default 0)

Sluice's splunk_hec source is a later issue: hec is a plain HTTP POST client for now.`;

function fail(message: string): never {
  process.stderr.write(`sluice-loadgen: ${message}\n`);
  process.exit(2);
}

function int(name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}

function hostPort(address: string | undefined): { host: string; port: number } {
  if (address === undefined) fail('--address HOST:PORT is required');
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535)
    fail(`--address must be HOST:PORT, got ${JSON.stringify(address)}`);
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

type Report = SendReport & { kind: LineKind; seed: number; firstId: number };

async function main(argv: string[]): Promise<Report | null> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      address: { type: 'string', short: 'a' },
      url: { type: 'string' },
      token: { type: 'string' },
      format: { type: 'string' },
      lines: { type: 'string', short: 'n' },
      kind: { type: 'string' },
      seed: { type: 'string' },
      'first-id': { type: 'string' },
      connections: { type: 'string', short: 'c' },
      rate: { type: 'string', short: 'r' },
      sockets: { type: 'string' },
      batch: { type: 'string' },
      concurrency: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const protocol = positionals[0];
  if (values.help === true || protocol === undefined) {
    process.stdout.write(`${HELP}\n`);
    return null;
  }
  if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'hec')
    fail(`unknown protocol ${JSON.stringify(protocol)}: tcp, udp or hec\n\n${HELP}`);
  const kind = (values.kind ?? (protocol === 'udp' ? 'kernel' : 'service')) as LineKind;
  if (!LINE_KINDS.includes(kind))
    fail(`--kind must be one of ${LINE_KINDS.join(', ')}, got ${JSON.stringify(values.kind)}`);
  const set = generateLineSet({
    count: int('lines', values.lines, 100_000, 1),
    kind,
    seed: int('seed', values.seed, 1),
    firstId: int('first-id', values['first-id'], 0),
  });
  const about = { kind, seed: set.seed, firstId: set.firstId };
  switch (protocol) {
    case 'tcp':
      return {
        ...(await sendTcp(set, {
          ...hostPort(values.address),
          connections: int('connections', values.connections, 1, 1),
        })),
        ...about,
      };
    case 'udp':
      return {
        ...(await sendUdp(set, {
          ...hostPort(values.address),
          rate: int('rate', values.rate, 0),
          sockets: int('sockets', values.sockets, 1, 1),
        })),
        ...about,
      };
    case 'hec': {
      if (values.url === undefined) fail('--url is required for hec');
      const format = values.format ?? 'event';
      if (format !== 'event' && format !== 'raw') fail(`--format must be event or raw, got ${JSON.stringify(format)}`);
      const r = await sendHec(set, {
        url: values.url,
        ...(values.token === undefined ? {} : { token: values.token }),
        format,
        batchLines: int('batch', values.batch, 500, 1),
        concurrency: int('concurrency', values.concurrency, 4, 1),
      });
      return { ...r, ...about };
    }
  }
}

main(process.argv.slice(2)).then(
  (r) => {
    if (r !== null) process.stdout.write(`${JSON.stringify(r)}\n`);
  },
  (err: unknown) => {
    if (err instanceof TypeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true)
      fail(`${err.message}\n\n${HELP}`);
    fail(err instanceof Error ? err.message : String(err));
  },
);
