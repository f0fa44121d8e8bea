import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CODECS,
  DEFAULT_LEVELS,
  compressFrame,
  decompressObject,
  selectZstd,
  zstdFrameLength,
  zstdImplementation,
  type Codec,
} from './codecs.ts';
import { loadNativeZstd } from './zstd-native.ts';
import { TalosLineGenerator } from '@sluice/testkit';

const gen = new TalosLineGenerator(99);
const chunk = (records: number): Buffer =>
  Buffer.from(Array.from({ length: records }, () => `${gen.next()}\n`).join(''));
// Frames of varied size, an empty one included, and a Buffer view into a larger pooled allocation.
const pooled = Buffer.from('{"tiny":true}\n');
const CHUNKS: Uint8Array[] = [chunk(500), new Uint8Array(0), chunk(3), pooled, chunk(2000)];
const WHOLE = Buffer.concat(CHUNKS);

const has = (cmd: string): boolean => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'sluice-codecs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function splitZstd(object: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < object.length; ) {
    const len = zstdFrameLength(object, off);
    out.push(object.subarray(off, off + len));
    off += len;
  }
  return out;
}

function concatFrames(codec: Codec, level?: number): Buffer {
  return Buffer.concat(CHUNKS.map((c) => compressFrame(codec, c, level)));
}

describe('compressFrame', () => {
  it.each([
    ['zstd', (b: Buffer) => Buffer.concat(splitZstd(b).map((f) => zstdDecompressSync(f)))],
    ['gzip', (b: Buffer) => gunzipSync(b)],
    ['none', (b: Buffer) => b],
  ] as const)('%s: concatenated frames decompress whole with node:zlib', (codec, decompress) => {
    const object = concatFrames(codec);
    expect(decompress(object).equals(WHOLE)).toBe(true);
    expect(decompressObject(codec, object).equals(WHOLE)).toBe(true);
    if (codec !== 'none') expect(object.length).toBeLessThan(WHOLE.length / 3);
  });

  it('zstdFrameLength finds every frame boundary, skippable frames included', () => {
    const frames = CHUNKS.map((c) => compressFrame('zstd', c));
    const skippable = Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    const object = Buffer.concat([frames[0]!, skippable, ...frames.slice(1)]);
    expect(splitZstd(object).map((f) => f.length)).toEqual([
      frames[0]!.length,
      skippable.length,
      ...frames.slice(1).map((f) => f.length),
    ]);
    expect(decompressObject('zstd', object).equals(WHOLE)).toBe(true);
    expect(() => zstdFrameLength(object.subarray(0, frames[0]!.length - 1), 0)).toThrow(RangeError);
    expect(() => zstdFrameLength(Buffer.from('not zstd'), 0)).toThrow(/not a zstd frame/);
  });

  it('canary: node zstdDecompressSync still stops after the first frame (nodejs/node#64741); when this fails, readers may drop decompressObject', () => {
    const object = concatFrames('zstd');
    expect(zstdDecompressSync(object).equals(Buffer.from(CHUNKS[0]!))).toBe(true);
  });

  it.each(CODECS)('%s: each frame owns its ArrayBuffer exactly (transferable)', (codec) => {
    for (const c of CHUNKS) {
      const f = compressFrame(codec, c);
      expect(f.byteOffset).toBe(0);
      expect(f.byteLength).toBe(f.buffer.byteLength);
      expect(f.buffer).not.toBe(c.buffer);
    }
  });

  it('none returns a copy, not a view', () => {
    const src = Buffer.from('abc');
    const f = compressFrame('none', src);
    src[0] = 0x7a;
    expect(Buffer.from(f).toString()).toBe('abc');
  });

  it.each([
    ['zstd', 1],
    ['zstd', 19],
    ['gzip', 0],
    ['gzip', 1],
    ['gzip', 9],
  ] as const)('%s level %d round-trips', (codec, level) => {
    const f = compressFrame(codec, CHUNKS[0]!, level);
    const back = codec === 'zstd' ? zstdDecompressSync(f) : gunzipSync(f);
    expect(back.equals(Buffer.from(CHUNKS[0]!))).toBe(true);
  });

  it('levels change the output; the default is DEFAULT_LEVELS', () => {
    const big = CHUNKS[4]!;
    expect(Buffer.from(compressFrame('zstd', big)).equals(compressFrame('zstd', big, DEFAULT_LEVELS.zstd))).toBe(true);
    expect(Buffer.from(compressFrame('gzip', big)).equals(compressFrame('gzip', big, DEFAULT_LEVELS.gzip))).toBe(true);
    expect(compressFrame('zstd', big, 19).length).toBeLessThan(compressFrame('zstd', big, 1).length);
    expect(compressFrame('gzip', big, 9).length).toBeLessThan(compressFrame('gzip', big, 1).length);
  });

  it.each([
    ['zstd', 0],
    ['zstd', -1],
    ['zstd', 23],
    ['zstd', 2.5],
    ['gzip', -1],
    ['gzip', 10],
    ['gzip', Number.NaN],
  ] as const)('%s level %d is a RangeError', (codec, level) => {
    expect(() => compressFrame(codec, CHUNKS[2]!, level)).toThrow(RangeError);
  });

  it('an unknown codec is a RangeError', () => {
    expect(() => compressFrame('lz4' as Codec, CHUNKS[2]!)).toThrow(/unknown codec "lz4"/);
  });

  it.skipIf(!has('zstd'))(
    'zstd CLI: `zstd -d` reads the concatenated frames whole, `zstd -t` verifies every checksum',
    () => {
      const file = join(dir, 'object.zst');
      writeFileSync(file, concatFrames('zstd'));
      const d = spawnSync('zstd', ['-d', '-c', file], { maxBuffer: 64 << 20 });
      expect(d.status).toBe(0);
      expect(d.stdout.equals(WHOLE)).toBe(true);
      expect(spawnSync('zstd', ['-t', '-q', file]).status).toBe(0);
      const list = spawnSync('zstd', ['-l', '-v', file], { encoding: 'utf8' });
      expect(list.stdout).toMatch(new RegExp(`Zstandard Frames: ${CHUNKS.length}`));
      expect(list.stdout).toMatch(/Check: XXH64/);
    },
  );

  it.skipIf(!has('gzip'))('gzip CLI: `gzip -d` reads the concatenated members whole', () => {
    const file = join(dir, 'object.gz');
    writeFileSync(file, concatFrames('gzip'));
    const d = spawnSync('gzip', ['-d', '-c', file], { maxBuffer: 64 << 20 });
    expect(d.status).toBe(0);
    expect(d.stdout.equals(WHOLE)).toBe(true);
  });
});

describe('native zstd (zstd-native.ts, one context per thread)', () => {
  const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
  const load = loadNativeZstd();
  // Under CI the addon must be there (scripts/build-native.ts fails the install otherwise).
  const available = load.ok || CI;
  afterAll(() => void selectZstd('auto'));

  it.skipIf(!available)('loads, and compressFrame uses it by default', () => {
    if (!load.ok) throw new Error(load.reason);
    expect(selectZstd('auto')).toBe('native');
    expect(zstdImplementation()).toBe('native');
    expect(load.addon.zstdVersion).toBeGreaterThanOrEqual(10500);
  });

  it.skipIf(!available)('writes the same bytes as node:zlib at every level, switching levels on one context', () => {
    for (const level of [1, 3, 6, 1, 19, 3]) {
      for (const c of CHUNKS) {
        selectZstd('zlib');
        const viaZlib = compressFrame('zstd', c, level);
        expect(selectZstd('native')).toBe('native');
        const viaNative = compressFrame('zstd', c, level);
        expect(Buffer.from(viaNative).equals(Buffer.from(viaZlib)), `level ${level}, ${c.length} bytes`).toBe(true);
        // Owned and exact: transferable without dragging anything along.
        expect(viaNative.byteOffset).toBe(0);
        expect(viaNative.buffer.byteLength).toBe(viaNative.length);
        expect(decompressObject('zstd', viaNative).equals(Buffer.from(c))).toBe(true);
      }
    }
  });

  it.skipIf(!available)('frames carry the content size and a checksum (zstd -t verifies them)', () => {
    selectZstd('native');
    const frame = compressFrame('zstd', CHUNKS[0]!);
    const fhd = frame[4]!;
    expect(fhd >> 6, 'content size field present').not.toBe(0);
    expect((fhd >> 2) & 1, 'checksum flag').toBe(1);
    if (!has('zstd')) return;
    const file = join(dir, 'native.zst');
    writeFileSync(file, Buffer.concat([frame, compressFrame('zstd', CHUNKS[4]!)]));
    expect(spawnSync('zstd', ['-t', file]).status).toBe(0);
  });

  it.skipIf(!available)('a bad argument is an Error, and the context goes on working after it', () => {
    if (!load.ok) throw new Error(load.reason);
    expect(() => load.addon.zstdCompress('text' as unknown as Uint8Array, 1, true)).toThrow(/Uint8Array/);
    expect(() => load.addon.zstdCompress(new Uint8Array(4), 'x' as unknown as number, true)).toThrow(/level/);
    const frame = new Uint8Array(load.addon.zstdCompress(CHUNKS[2]!, 1, true));
    expect(decompressObject('zstd', frame).equals(Buffer.from(CHUNKS[2]!))).toBe(true);
  });

  it('selectZstd: zlib on request; native refused with the reason when it is not built', () => {
    expect(selectZstd('zlib')).toBe('zlib');
    expect(zstdImplementation()).toBe('zlib');
    if (load.ok) expect(selectZstd('native')).toBe('native');
    else expect(() => selectZstd('native')).toThrow(/native zstd: .*zstd\.node/);
  });
});
