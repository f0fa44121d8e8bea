/**
 * Object keys, Tailscale-style (`audit-logs/2024/04/22/12:34:56.json`), made collision-free:
 *
 *   <prefix>YYYY/MM/DD/HH:MM:SS-<uniqueId>-<seq>.ndjson[.zst|.gz]
 *
 * - the time is when the object was opened, in UTC, so keys under one prefix sort by time
 *   (fixed-width fields) and a day is one folder;
 * - uniqueId is 16 hex chars drawn once per writer (each sink, at each process start), so
 *   replicas, restarts and sinks of one process writing under the same prefix in the same
 *   second never collide;
 * - seq counts the writer's objects, zero-padded to 6 so keys of one writer in one second
 *   also sort in write order (up to 999,999 objects per second).
 */
import { randomBytes } from 'node:crypto';

export type Codec = 'zstd' | 'gzip' | 'none';

/** Every object is NDJSON, whatever the compression. */
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

/** 16 lowercase hex chars (64 random bits): draw one per writer. */
export function newUniqueId(): string {
  return randomBytes(8).toString('hex');
}

/** `.ndjson.zst` | `.ndjson.gz` | `.ndjson`. */
export function extensionFor(codec: Codec): string {
  switch (codec) {
    case 'zstd':
      return '.ndjson.zst';
    case 'gzip':
      return '.ndjson.gz';
    case 'none':
      return '.ndjson';
  }
}

/** The HTTP Content-Encoding of an object (`zstd` | `gzip`), undefined for plain NDJSON. */
export function contentEncodingFor(codec: Codec): string | undefined {
  switch (codec) {
    case 'zstd':
      return 'zstd';
    case 'gzip':
      return 'gzip';
    case 'none':
      return undefined;
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * `<prefix>YYYY/MM/DD/HH:MM:SS-<uniqueId>-<seq 6 digits>` + extension, time in UTC.
 * The prefix is used as given: `audit-logs/` gives `audit-logs/2024/...`, `logs` gives `logs2024/...`.
 */
export function objectKey(
  prefix: string,
  openedAtMs: number,
  uniqueId: string,
  seq: number,
  extension: string,
): string {
  const d = new Date(openedAtMs);
  const year = String(d.getUTCFullYear()).padStart(4, '0');
  return (
    `${prefix}${year}/${pad2(d.getUTCMonth() + 1)}/${pad2(d.getUTCDate())}/` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}` +
    `-${uniqueId}-${String(seq).padStart(6, '0')}${extension}`
  );
}
