/**
 * Which objects a read needs to open. Two rules, both of which only ever rule out an object no
 * record of which can match (docs/reading.md, "What is skipped"):
 *
 * - the key's time (KeyTimeIndex): objects opened long before --since;
 * - the object's index (SidecarIndex, docs/internals.md "Object index"): its record-time range
 *   against --since/--until, and its distinct talos-service/talos-level/host/source values
 *   against --where. A missing, unreadable, damaged or unknown-version index means "read it".
 */
import { decodeIndex, INDEX_MAX_BYTES, indexKeyOf, type IndexFacts, type ObjectReader } from '@sluice/sinks/registry';
import type { WhereClause } from './match.ts';
import { keyTime, msOfCanonical } from './time.ts';

export interface ObjectIndex {
  /** false = no record of the object can match: skip it (counted as skipped by the index). */
  wants(key: string, signal: AbortSignal): boolean | Promise<boolean>;
  /** Bytes the index itself read (sidecars), counted in bytes_read. */
  readonly bytesRead?: number;
}

/** Clocks of senders and Sluice may differ by this much. */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * An object's key holds the time it was opened, and it takes records for at most its sink's
 * upload_period_secs, each arriving after its own time (give or take clock skew): so no record
 * of an object opened before `since - span - skew` can be at or after `since`. Records may
 * arrive long after their time (a sender that buffered through an outage), so a key's time
 * says nothing against --until.
 */
export class KeyTimeIndex implements ObjectIndex {
  readonly #sinceMs: number | null;
  readonly #spanMs: number;

  /** @param spanMs the longest an object stays open: the sink's upload_period_secs. */
  constructor(since: string | null, spanMs: number) {
    this.#sinceMs = since === null ? null : msOfCanonical(since);
    this.#spanMs = spanMs;
  }

  wants(key: string): boolean {
    if (this.#sinceMs === null) return true;
    const t = keyTime(key);
    if (t === undefined) return true;
    return msOfCanonical(t) + this.#spanMs + CLOCK_SKEW_MS >= this.#sinceMs;
  }
}

export interface SidecarQuery {
  /** Canonical times, inclusive / exclusive, or null. */
  readonly since: string | null;
  readonly until: string | null;
  readonly where: readonly WhereClause[];
}

/**
 * Whether a record of an object with index `f` and key time `kt` can match the query. Exact
 * to the reader's own rules (scan.ts): a record's time is its own, or the key's when it has none
 * (the index counts those), and a `--where FIELD=TEXT` on an indexed top-level field matches
 * only records whose value is TEXT (the index lists every such text, or says "many": null).
 */
export function indexAdmits(f: IndexFacts, kt: string | undefined, q: SidecarQuery): boolean {
  if (q.since !== null || q.until !== null) {
    const timed =
      f.minTime !== null &&
      f.maxTime !== null &&
      (q.until === null || f.minTime < q.until) &&
      (q.since === null || f.maxTime >= q.since);
    // Untimed records take the key's time; a key without one gives them none (they match no time filter).
    const untimed =
      f.untimed > 0 && kt !== undefined && (q.since === null || kt >= q.since) && (q.until === null || kt < q.until);
    if (!timed && !untimed) return false;
  }
  for (const clause of q.where) {
    if (clause.path.length !== 1) continue;
    const values = f.fields[clause.path[0]!];
    if (Array.isArray(values) && !values.includes(clause.value)) return false;
  }
  return true;
}

/**
 * The key-time rule, then each object's index, fetched (one small GET or file read per object
 * the key time did not rule out) only when the query has something an index can decide.
 */
export class SidecarIndex implements ObjectIndex {
  readonly #reader: ObjectReader;
  readonly #keyTime: KeyTimeIndex;
  readonly #query: SidecarQuery;
  readonly #useful: boolean;
  bytesRead = 0;

  constructor(reader: ObjectReader, query: SidecarQuery, spanMs: number) {
    this.#reader = reader;
    this.#query = query;
    this.#keyTime = new KeyTimeIndex(query.since, spanMs);
    this.#useful = query.since !== null || query.until !== null || query.where.some((c) => c.path.length === 1);
  }

  async wants(key: string, signal: AbortSignal): Promise<boolean> {
    if (!this.#keyTime.wants(key)) return false;
    if (!this.#useful) return true;
    const facts = await this.#load(key, signal);
    return facts === null || indexAdmits(facts, keyTime(key), this.#query);
  }

  /** The object's index, or null: none, unreadable, too large, damaged, another version. */
  async #load(key: string, signal: AbortSignal): Promise<IndexFacts | null> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const chunk of this.#reader.read(indexKeyOf(key), signal)) {
        size += chunk.byteLength;
        this.bytesRead += chunk.byteLength;
        if (size > INDEX_MAX_BYTES) return null;
        chunks.push(chunk);
      }
    } catch {
      signal.throwIfAborted();
      return null;
    }
    return decodeIndex(key, Buffer.concat(chunks));
  }
}
