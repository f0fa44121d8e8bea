/**
 * Record time as `sluice read` and the object index see it, as canonical text:
 * `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn` (UTC, nanoseconds; such texts compare as strings in time
 * order). `talos-time` (RFC 3339) for Talos records, the HEC envelope's `time` (epoch seconds)
 * for HEC records. One implementation for the worker threads (index facts) and the reader
 * (apps/sluice/src/read), so an index never disagrees with a scan.
 */

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|([+-])(\d{2}):(\d{2}))$/;
export const NANO_ZEROS = '000000000';

export function fraction9(digits: string | undefined): string {
  if (digits === undefined) return NANO_ZEROS;
  return digits.length >= 9 ? digits.slice(0, 9) : digits + NANO_ZEROS.slice(digits.length);
}

export function inRange(m: number, d: number, h: number, min: number, s: number): boolean {
  return m >= 1 && m <= 12 && d >= 1 && d <= 31 && h <= 23 && min <= 59 && s <= 59;
}

/** Canonical text of whole seconds since the epoch plus nanoseconds, or undefined outside years 0-9999. */
export function canonicalOf(epochSeconds: number, nanos: number): string | undefined {
  const ms = epochSeconds * 1000;
  if (!(ms >= -62_167_219_200_000 && ms < 253_402_300_800_000)) return undefined;
  return `${new Date(ms).toISOString().slice(0, 19)}.${String(Math.round(nanos)).padStart(9, '0')}`;
}

/**
 * An RFC 3339 time as canonical text, or undefined if it is not one. Z times keep their
 * digits as written (fraction cut to 9 digits), so a byte compare of Z texts agrees with it
 * exactly; offsets are moved to UTC.
 */
export function parseRfc3339(text: string): string | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone, sign, oh, om] = m;
  if (!inRange(Number(mo), Number(d), Number(h), Number(mi), Number(s))) return undefined;
  const nanos = fraction9(frac);
  if (zone === 'Z' || zone === 'z') return `${y}-${mo}-${d}T${h}:${mi}:${s}.${nanos}`;
  if (Number(oh) > 23 || Number(om) > 59) return undefined;
  const offsetSecs = (Number(oh) * 60 + Number(om)) * 60 * (sign === '-' ? -1 : 1);
  const secs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) / 1000 - offsetSecs;
  return canonicalOf(secs, Number(nanos));
}

/** HEC's `time`: epoch seconds, a number or a numeric string (`1714564800.123`). */
export function canonicalFromEpochSeconds(value: unknown): string | undefined {
  const n =
    typeof value === 'number' ? value : typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n)) return undefined;
  const secs = Math.floor(n);
  return canonicalOf(secs, Math.min(999_999_999, Math.round((n - secs) * 1e9)));
}

/** The time of a parsed record, or undefined when it has none (the reader then uses its object's key time). */
export function parsedRecordTime(rec: unknown): string | undefined {
  if (typeof rec === 'object' && rec !== null && !Array.isArray(rec)) {
    const r = rec as Record<string, unknown>;
    const talos = r['talos-time'];
    if (typeof talos === 'string') {
      const t = parseRfc3339(talos);
      if (t !== undefined) return t;
    }
    if (Object.hasOwn(r, 'event') && Object.hasOwn(r, 'time')) return canonicalFromEpochSeconds(r['time']);
  }
  return undefined;
}
