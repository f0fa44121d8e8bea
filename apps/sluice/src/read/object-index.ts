/**
 * Which objects a read needs to open. Today only the key's time is known, so only --since can
 * rule objects out; a per-object index (each object's record time range) will implement the
 * same interface and rule out objects on both sides.
 */
import { keyTime, msOfCanonical } from './time.ts';

export interface ObjectIndex {
  /** false = no record of the object can match: skip it (counted as skipped by the index). */
  wants(key: string): boolean;
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
