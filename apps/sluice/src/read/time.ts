/**
 * Record times for --since/--until, as canonical text: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn` (UTC,
 * 29 ASCII chars, nanoseconds). Canonical texts compare as strings in time order, so a
 * record's `talos-time` in Z form is compared as it is stored, byte by byte, without parsing
 * the line or building a Date (compareZBytes).
 */
import { canonicalFromEpochSeconds, canonicalOf, inRange, NANO_ZEROS, parseRfc3339 } from '@sluice/worker/record-time';

/** Length of a canonical time text. */
export const CANONICAL_LENGTH = 29;

export { canonicalFromEpochSeconds, parseRfc3339 };

/** A time in epoch milliseconds as canonical text. */
export function canonicalFromMs(ms: number): string {
  const t = canonicalOf(Math.floor(ms / 1000), (ms - Math.floor(ms / 1000) * 1000) * 1_000_000);
  if (t === undefined) throw new RangeError(`time ${ms} ms is outside years 0-9999`);
  return t;
}

const KEY_TIME = /(\d{4})\/(\d{2})\/(\d{2})\/(\d{2}):(\d{2}):(\d{2})-[^/]*$/;

/** The time in an object's key (`<prefix>YYYY/MM/DD/HH:MM:SS-...`), canonical, or undefined. */
export function keyTime(key: string): string | undefined {
  const m = KEY_TIME.exec(key);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  if (!inRange(Number(mo), Number(d), Number(h), Number(mi), Number(s))) return undefined;
  return `${y}-${mo}-${d}T${h}:${mi}:${s}.${NANO_ZEROS}`;
}

const DURATION = /^(\d+(?:\.\d+)?)(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * `--since`/`--until`: RFC 3339 (`2024-05-01T12:00:00Z`, an offset, a fraction) or a duration
 * back from `nowMs` (`90s`, `90m`, `2h`, `1d`). Canonical text, or a message for the user.
 */
export function parseTimeArg(text: string, nowMs: number): string | { error: string } {
  const d = DURATION.exec(text);
  if (d !== null) return canonicalFromMs(nowMs - Number(d[1]) * UNIT_MS[d[2] as keyof typeof UNIT_MS]);
  const t = parseRfc3339(text);
  if (t !== undefined) return t;
  return {
    error: `${JSON.stringify(text)} is neither an RFC 3339 time (2024-05-01T12:00:00Z) nor a duration back from now (90m, 2h, 1d)`,
  };
}

/** Epoch milliseconds of a canonical text (for the index's arithmetic). */
export function msOfCanonical(t: string): number {
  return Date.parse(`${t.slice(0, 23)}Z`);
}

const D0 = 0x30;
const D9 = 0x39;

/**
 * Compares a Z-form RFC 3339 string stored in a JSON line, from its first digit at `pos` up to
 * its closing quote, with a canonical bound (as bytes): -1 / 0 / 1, or 2 when the bytes are
 * not a plain `YYYY-MM-DDTHH:MM:SS[.digits]Z"` (the caller then parses the line). Exactly the
 * order parseRfc3339 gives, with no allocation.
 */
export function compareZBytes(buf: Uint8Array, pos: number, end: number, bound: Uint8Array): number {
  if (pos + 21 > end) return 2;
  // Shape first: digits where digits go, separators where they go.
  for (let i = 0; i < 19; i++) {
    const c = buf[pos + i]!;
    if (i === 4 || i === 7) {
      if (c !== 0x2d) return 2;
    } else if (i === 10) {
      if (c !== 0x54) return 2;
    } else if (i === 13 || i === 16) {
      if (c !== 0x3a) return 2;
    } else if (c < D0 || c > D9) {
      return 2;
    }
  }
  const mo = (buf[pos + 5]! - D0) * 10 + buf[pos + 6]! - D0;
  const d = (buf[pos + 8]! - D0) * 10 + buf[pos + 9]! - D0;
  const h = (buf[pos + 11]! - D0) * 10 + buf[pos + 12]! - D0;
  const mi = (buf[pos + 14]! - D0) * 10 + buf[pos + 15]! - D0;
  const s = (buf[pos + 17]! - D0) * 10 + buf[pos + 18]! - D0;
  if (!inRange(mo, d, h, mi, s)) return 2;
  // Fraction digits, then `Z"`.
  let f = pos + 19;
  let fracEnd = f;
  if (buf[f] === 0x2e) {
    f++;
    fracEnd = f;
    while (fracEnd < end && buf[fracEnd]! >= D0 && buf[fracEnd]! <= D9) fracEnd++;
    if (fracEnd === f) return 2;
  }
  if (fracEnd + 1 >= end || buf[fracEnd] !== 0x5a || buf[fracEnd + 1] !== 0x22) return 2;
  for (let i = 0; i < 19; i++) {
    const a = buf[pos + i]!;
    const b = bound[i]!;
    if (a !== b) return a < b ? -1 : 1;
  }
  // bound[19] is '.', its 9 digits follow; missing record digits count as 0, extra ones are cut.
  for (let i = 0; i < 9; i++) {
    const a = f + i < fracEnd ? buf[f + i]! : D0;
    const b = bound[20 + i]!;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}
