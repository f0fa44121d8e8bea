/**
 * runRead with scan workers prints exactly what the single-thread path prints: the same bytes
 * in the same order, the same exit code, the same objects named, the same --stats counts. Over
 * several objects of several codecs (zstd with frames straddling 1 MiB read chunks, gzip,
 * plain), one of them corrupt in the middle (its records before the bad bytes, then its name,
 * then the others, in key order), with each kind of filter, both formats and --limit. Real
 * worker threads, real files, no timing.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '@sluice/testkit';
import { readerForPath } from '@sluice/sinks/registry';
import { parseWhere, type WhereClause } from './match.ts';
import { KeyTimeIndex } from './object-index.ts';
import { runRead } from './read.ts';
import { Filter } from './scan.ts';

const SERVICES = ['etcd', 'kubelet', 'machined', 'apid'];
const OBJECTS = 7;
/** The object whose second zstd frame is overwritten with bytes that are not a frame. */
const CORRUPT = 3;
/** Lines of an object and a frame: ~3.5 MiB of poorly compressible NDJSON, 16 frames. */
const LINES = 16_000;
const FRAME_LINES = 1000;

let dir = '';
/** Per object, its lines in order (each with its newline). */
const objectLines: string[][] = [];
/** What a correct unfiltered read prints, in key order. */
let expectedAll = '';

function key(i: number): string {
  const ext = i === 5 ? '.ndjson.gz' : i === 6 ? '.ndjson' : '.ndjson.zst';
  return `talos/2025/11/22/08:0${i}:00-0123456789abcdef-00000${i}${ext}`;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-read-threads-'));
  const rand = mulberry32(20251122);
  const hex = (n: number): string => {
    let s = '';
    for (let k = 0; k < n; k++) s += Math.floor(rand() * 16).toString(16);
    return s;
  };
  for (let i = 0; i < OBJECTS; i++) {
    const lines: string[] = [];
    for (let j = 0; j < LINES; j++) {
      const ms = Date.UTC(2025, 10, 22, 8, i, 0) + j * 3;
      const time = new Date(ms).toISOString().replace('Z', `${j % 1000}Z`);
      const service = SERVICES[Math.floor(rand() * SERVICES.length)]!;
      // Now and then a nested object or an escape, so the fast paths give way to parsing.
      const extra = j % 97 === 0 ? ',"event":{"talos-service":"etcd"}' : j % 89 === 0 ? ',"note":"caf\\u00e9"' : '';
      lines.push(
        `{"msg":"o${i} l${j} ${hex(120)}${j % 50 === 0 ? ' certificate renewed' : ''}","talos-service":"${service}","talos-time":"${time}"${extra}}\n`,
      );
    }
    objectLines.push(lines);
    const frames: Uint8Array[] = [];
    for (let f = 0; f < LINES; f += FRAME_LINES)
      frames.push(zstdCompressSync(Buffer.from(lines.slice(f, f + FRAME_LINES).join(''))));
    if (i === CORRUPT) frames[1] = Buffer.concat([Buffer.from('not a zstd frame'), frames[1]!]);
    const body = i === 5 ? gzipSync(lines.join('')) : i === 6 ? Buffer.from(lines.join('')) : Buffer.concat(frames);
    mkdirSync(join(dir, key(i), '..'), { recursive: true });
    writeFileSync(join(dir, key(i)), body);
  }
  expectedAll = objectLines.map((lines, i) => (i === CORRUPT ? lines.slice(0, FRAME_LINES) : lines).join('')).join('');
});

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

class Sink extends Writable {
  readonly parts: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.parts.push(chunk);
    cb();
  }
  text(): string {
    return Buffer.concat(this.parts).toString('utf8');
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  stats: object;
}

async function read(
  threads: number,
  f: {
    where?: string[];
    grep?: RegExp;
    since?: string;
    until?: string;
    format?: 'ndjson' | 'pretty';
    limit?: number;
    stats?: boolean;
  },
): Promise<Run> {
  const where = (f.where ?? []).map((w) => parseWhere(w) as WhereClause);
  const stdout = new Sink();
  const stderr = new Sink();
  const { code, stats } = await runRead({
    reader: await readerForPath(dir, {}),
    index: new KeyTimeIndex(f.since ?? null, 60 * 60_000),
    filter: new Filter({
      where,
      grep: f.grep ?? null,
      since: f.since ?? null,
      until: f.until ?? null,
      format: f.format ?? 'ndjson',
      color: false,
    }),
    limit: f.limit ?? null,
    follow: false,
    pollMs: 1000,
    stats: f.stats ?? false,
    parallel: 4,
    threads,
    stdout,
    stderr,
    progress: false,
  });
  const { ...counts } = stats;
  return { code, stdout: stdout.text(), stderr: stderr.text().replace(/seconds=[\d.]+/, ''), stats: counts };
}

describe('runRead with scan workers', () => {
  it('no filter: every record as stored, in key order; the corrupt object named, exit 2; the same as one thread', async () => {
    const one = await read(0, { stats: true });
    const two = await read(2, { stats: true });
    expect(two.stdout).toBe(expectedAll);
    expect(one.stdout).toBe(expectedAll);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain(`sluice read: ${key(CORRUPT)}: no zstd frame at byte`);
    expect(two.stderr).toBe(one.stderr);
    expect(two.stats).toEqual(one.stats);
    expect(two.stats).toMatchObject({
      objectsListed: OBJECTS,
      objectsRead: OBJECTS - 1,
      objectsFailed: 1,
      recordsMatched: LINES * (OBJECTS - 1) + FRAME_LINES,
    });
  });

  const cases: [string, Parameters<typeof read>[1]][] = [
    ['--where on a top-level field', { where: ['talos-service=etcd'], stats: true }],
    ['--where on a nested field', { where: ['event.talos-service=etcd'] }],
    ['--grep', { grep: /certificate renewed/ }],
    [
      '--since and --until',
      { since: '2025-11-22T08:02:10.000000000', until: '2025-11-22T08:05:20.000000000', stats: true },
    ],
    [
      '--where and --since, pretty',
      { where: ['talos-service=kubelet'], since: '2025-11-22T08:01:30.000000000', format: 'pretty' },
    ],
    ['--limit past the corrupt object', { where: ['talos-service=apid'], limit: 17_000 }],
  ];
  for (const [name, f] of cases) {
    it(`${name}: the same bytes, order, exit code, errors and counts as one thread`, async () => {
      const one = await read(0, f);
      const two = await read(2, f);
      expect(two.stdout.length).toBeGreaterThan(0);
      expect(two.stdout === one.stdout).toBe(true);
      expect(two.code).toBe(one.code);
      expect(two.stderr).toBe(one.stderr);
      if (f.limit === undefined) {
        expect(two.stats).toEqual(one.stats);
      } else {
        // Where the read stopped inside the objects in flight depends on timing, in both paths.
        const { ndjsonBytes: _n1, bytesRead: _b1, objectsRead: _r1, ...a } = one.stats as Record<string, number>;
        const { ndjsonBytes: _n2, bytesRead: _b2, objectsRead: _r2, ...b } = two.stats as Record<string, number>;
        expect(b).toEqual(a);
      }
    });
  }
});
