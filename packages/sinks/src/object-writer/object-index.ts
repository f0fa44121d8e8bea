/**
 * An object's index: a small JSON sidecar beside the object, written once the object is
 * complete, that lets `sluice read` skip objects no record of which can match a narrow query.
 * Format, versioning and how readers treat it: docs/internals.md, "Object index".
 *
 *   talos/2024/05/01/12:00:00-<uid>-000001.ndjson.zst              the object
 *   talos/2024/05/01/_12:00:00-<uid>-000001.ndjson.zst.index.json  its index
 *
 * The leading `_` keeps other engines from reading it as data (Athena, Hive and Spark skip
 * names starting with `_` or `.`; a `*.ndjson.zst` glob does not match it); `sluice read` tells
 * it from an object by its suffix. Not `.`: the file store refuses hidden names (its temp files).
 */
import type { BatchFacts, FrameFacts } from '@sluice/worker';
import { MAX_FIELD_VALUES } from '@sluice/worker/native-constants';
import type { ObjectStore } from '../object-store.ts';

/** What an index knows about its object's records: the workers' batch facts, merged. */
export type IndexFacts = BatchFacts;
export type { FrameFacts };

/** The format version written; a reader treats any other as no index. */
export const INDEX_VERSION = 1;
/** Distinct texts kept per field before it becomes "many" (null): the workers' limit for a batch. */
const INDEX_MAX_FIELD_VALUES = MAX_FIELD_VALUES;
const INDEX_SUFFIX = '.index.json';
const INDEX_CONTENT_TYPE = 'application/json';
/** An index larger than this is not one (a reader stops reading it): 64 fields of 64 texts fit. */
export const INDEX_MAX_BYTES = 1024 * 1024;

/** The key of an object's index: `_` + the object's name + `.index.json`, in the same folder. */
export function indexKeyOf(objectKey: string): string {
  const slash = objectKey.lastIndexOf('/');
  return `${objectKey.slice(0, slash + 1)}_${objectKey.slice(slash + 1)}${INDEX_SUFFIX}`;
}

/** Whether a listed key is an index (not an object). */
export function isIndexKey(key: string): boolean {
  return key.endsWith(INDEX_SUFFIX) && key.charCodeAt(key.lastIndexOf('/') + 1) === 0x5f;
}

/** A copy of `f` to merge into. */
export function cloneFacts(f: IndexFacts): IndexFacts {
  const fields: Record<string, string[] | null> = {};
  for (const [k, v] of Object.entries(f.fields)) fields[k] = v === null ? null : [...v];
  return { records: f.records, untimed: f.untimed, minTime: f.minTime, maxTime: f.maxTime, fields };
}

/** Merge `b` into `a`. A field `a` indexes and `b` does not (or has as many) becomes many. */
export function mergeFacts(a: IndexFacts, b: IndexFacts): void {
  mergeCounts(a, b);
  mergeFields(a, b.fields);
}

/** An object's first frame's facts, to merge the next ones into. */
export function factsOfFrame(f: FrameFacts): IndexFacts {
  return {
    records: f.records,
    untimed: f.untimed,
    minTime: f.minTime,
    maxTime: f.maxTime,
    fields: JSON.parse(f.fields) as IndexFacts['fields'],
  };
}

/**
 * Merge a frame's facts into `a`; `sameFields`: its fields text is that of a frame merged
 * before, so only the counts and times change (no parse, no set work: most frames).
 */
export function mergeFrameFacts(a: IndexFacts, b: FrameFacts, sameFields: boolean): void {
  mergeCounts(a, b);
  if (!sameFields) mergeFields(a, JSON.parse(b.fields) as IndexFacts['fields']);
}

function mergeCounts(
  a: IndexFacts,
  b: { records: number; untimed: number; minTime: string | null; maxTime: string | null },
): void {
  a.records += b.records;
  a.untimed += b.untimed;
  if (b.minTime !== null && (a.minTime === null || b.minTime < a.minTime)) a.minTime = b.minTime;
  if (b.maxTime !== null && (a.maxTime === null || b.maxTime > a.maxTime)) a.maxTime = b.maxTime;
}

function mergeFields(a: IndexFacts, theirFields: IndexFacts['fields']): void {
  for (const name of Object.keys(a.fields)) {
    const mine = a.fields[name];
    if (mine === null || mine === undefined) continue;
    const theirs = theirFields[name];
    if (theirs === undefined || theirs === null) {
      a.fields[name] = null;
      continue;
    }
    for (const v of theirs) {
      if (mine.includes(v)) continue;
      if (mine.length >= INDEX_MAX_FIELD_VALUES) {
        a.fields[name] = null;
        break;
      }
      mine.push(v);
    }
  }
}

/** The index document of an object (UTF-8 JSON). */
export function encodeIndex(objectKey: string, f: IndexFacts): Uint8Array {
  const z = (t: string | null): string | null => (t === null ? null : `${t}Z`);
  const doc = {
    sluice_index: INDEX_VERSION,
    object: objectKey.slice(objectKey.lastIndexOf('/') + 1),
    records: f.records,
    untimed_records: f.untimed,
    min_time: z(f.minTime),
    max_time: z(f.maxTime),
    fields: f.fields,
  };
  return Buffer.from(`${JSON.stringify(doc)}\n`);
}

const CANONICAL_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

/**
 * An index document read back, or null when it is not one this version understands, is not
 * the index of `objectKey`, or is damaged in any way: the reader then scans the object.
 */
export function decodeIndex(objectKey: string, bytes: Uint8Array): IndexFacts | null {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return null;
  }
  if (typeof doc !== 'object' || doc === null) return null;
  const d = doc as Record<string, unknown>;
  if (d['sluice_index'] !== INDEX_VERSION || d['object'] !== objectKey.slice(objectKey.lastIndexOf('/') + 1))
    return null;
  const records = d['records'];
  const untimed = d['untimed_records'];
  if (
    !Number.isSafeInteger(records) ||
    !Number.isSafeInteger(untimed) ||
    (untimed as number) < 0 ||
    (untimed as number) > (records as number)
  )
    return null;
  const time = (v: unknown): string | null | undefined =>
    v === null ? null : typeof v === 'string' && CANONICAL_Z.test(v) ? v.slice(0, -1) : undefined;
  const minTime = time(d['min_time']);
  const maxTime = time(d['max_time']);
  if (minTime === undefined || maxTime === undefined || (minTime === null) !== (maxTime === null)) return null;
  if (minTime !== null && maxTime !== null && minTime > maxTime) return null;
  // Every record is timed or untimed: a range is needed when some are timed.
  if (minTime === null && untimed !== records) return null;
  const rawFields = d['fields'];
  if (typeof rawFields !== 'object' || rawFields === null || Array.isArray(rawFields)) return null;
  const fields: Record<string, string[] | null> = {};
  for (const [k, v] of Object.entries(rawFields as Record<string, unknown>)) {
    if (v === null) fields[k] = null;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) fields[k] = v as string[];
    else return null;
  }
  return { records: records as number, untimed: untimed as number, minTime, maxTime, fields };
}

/** Store an object's index (after the object itself is durable). Rejects as the store does. */
export async function writeIndex(store: ObjectStore, objectKey: string, f: IndexFacts): Promise<number> {
  const bytes = encodeIndex(objectKey, f);
  const upload = store.open(indexKeyOf(objectKey), { contentType: INDEX_CONTENT_TYPE });
  upload.write(bytes);
  await upload.close();
  return bytes.byteLength;
}
