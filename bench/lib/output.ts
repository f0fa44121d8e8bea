/**
 * Loss check: read every object a run produced (file tree or S3 bucket), decompress it whole,
 * and find each line's id (`req=<id>` / `kseq=<id>`, see apps/loadgen/src/line-set.ts).
 *
 * zstd objects are concatenations of frames: @mongodb-js/zstd's decompress reads them all,
 * node:zlib's zstdDecompressSync only the first (nodejs/node#64741).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { isIndexKey } from '@sluice/sinks/registry';
import { decompress as zstdDecompress } from '@mongodb-js/zstd';
import { lineId } from '@sluice/loadgen/line-set';

export interface OutputCount {
  objects: number;
  /** Compressed bytes of every object. */
  storedBytes: number;
  /** Lines found (records). */
  lines: number;
  /** Distinct ids of [firstId, firstId + count) found. */
  unique: number;
  /** Lines whose id was seen before. */
  duplicates: number;
  /** Lines without an id in range. */
  foreign: number;
  /** Lines without the expected tag text. */
  untagged: number;
  /** Ids of the range never found: count - unique. */
  missing: number;
}

export class OutputCounter {
  readonly #seen: Uint8Array;
  readonly #firstId: number;
  readonly #tag: string;
  readonly count: OutputCount = {
    objects: 0,
    storedBytes: 0,
    lines: 0,
    unique: 0,
    duplicates: 0,
    foreign: 0,
    untagged: 0,
    missing: 0,
  };

  /** @param tag text every stored line must contain, e.g. `"cluster":"bench"`. */
  constructor(firstId: number, n: number, tag: string) {
    this.#seen = new Uint8Array(n);
    this.#firstId = firstId;
    this.#tag = tag;
    this.count.missing = n;
  }

  async addObject(name: string, raw: Buffer): Promise<void> {
    const data = name.endsWith('.zst') ? await zstdDecompress(raw) : name.endsWith('.gz') ? gunzipSync(raw) : raw;
    const c = this.count;
    c.objects++;
    c.storedBytes += raw.length;
    const text = data.toString('utf8');
    if (text.length === 0) return;
    if (!text.endsWith('\n')) throw new Error(`${name}: the last record has no newline`);
    let start = 0;
    while (start < text.length) {
      const nl = text.indexOf('\n', start);
      const line = text.slice(start, nl);
      start = nl + 1;
      c.lines++;
      if (!line.includes(this.#tag)) c.untagged++;
      const k = lineId(line) - this.#firstId;
      if (k < 0 || k >= this.#seen.length) {
        c.foreign++;
        continue;
      }
      if (this.#seen[k] === 1) c.duplicates++;
      else {
        this.#seen[k] = 1;
        c.unique++;
        c.missing--;
      }
    }
  }
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      // .<name>.<hex>.tmp: an object being written; _<object>.index.json: an object's index.
      else if (!name.startsWith('.') && !isIndexKey(name)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

export async function countFileOutput(
  dir: string,
  firstId: number,
  n: number,
  tag: string,
  counter = new OutputCounter(firstId, n, tag),
): Promise<OutputCount> {
  for (const f of filesUnder(dir)) await counter.addObject(f, readFileSync(f));
  return counter.count;
}

/** `counter`: add to one that already holds other outputs (the gate counts several daemons' outputs as one). */
export async function countS3Output(
  client: S3Client,
  bucket: string,
  firstId: number,
  n: number,
  tag: string,
  counter = new OutputCounter(firstId, n, tag),
): Promise<OutputCount> {
  let token: string | undefined;
  do {
    const res = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of res.Contents ?? []) {
      if (isIndexKey(o.Key!)) continue;
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      await counter.addObject(o.Key!, Buffer.from(await got.Body!.transformToByteArray()));
    }
    token = res.NextContinuationToken;
  } while (token !== undefined);
  return counter.count;
}
