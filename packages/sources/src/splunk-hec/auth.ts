/**
 * HEC authorization: which token a request carries, and whether it is one of ours.
 *
 * Accepted forms of the `Authorization` header:
 * - `Splunk <token>` (HEC's own scheme; the scheme name is case-insensitive);
 * - `Basic base64(<anything>:<token>)` (Splunk takes the token as the Basic password);
 * - `<token>` alone: Tailscale sends its token field verbatim, so a user who typed only the
 *   token (not `Splunk <token>`) is still understood.
 * Anything else with a scheme (`Bearer x`, `Splunk` with nothing after it, Basic without a
 * colon) is malformed: 401 code 3.
 */
import { hash, timingSafeEqual } from 'node:crypto';

export type Authorization = { kind: 'missing' } | { kind: 'malformed' } | { kind: 'token'; token: string };

const MISSING: Authorization = { kind: 'missing' };
const MALFORMED: Authorization = { kind: 'malformed' };

export function parseAuthorization(header: string | undefined): Authorization {
  if (header === undefined) return MISSING;
  const value = header.trim();
  if (value === '') return MISSING;
  const sp = value.indexOf(' ');
  if (sp === -1) {
    const word = value.toLowerCase();
    return word === 'splunk' || word === 'basic' ? MALFORMED : { kind: 'token', token: value };
  }
  const scheme = value.slice(0, sp).toLowerCase();
  const rest = value.slice(sp + 1).trim();
  if (scheme === 'splunk') return rest === '' || rest.includes(' ') ? MALFORMED : { kind: 'token', token: rest };
  if (scheme === 'basic') {
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1 || colon === decoded.length - 1) return MALFORMED;
    return { kind: 'token', token: decoded.slice(colon + 1) };
  }
  return MALFORMED;
}

/** The configured tokens, compared in constant time (over SHA-256 digests, so lengths leak nothing). */
export class TokenSet {
  readonly #digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.#digests = tokens.map(digest);
  }

  has(token: string): boolean {
    const d = digest(token);
    let found = false;
    // Every entry is compared, so the time does not say which one matched.
    for (const known of this.#digests) found = timingSafeEqual(d, known) || found;
    return found;
  }
}

// One-shot hash(): no Hash object per request (createHash + update + digest was ~10 µs of each
// HEC request's main-thread time in the daemon's profile).
function digest(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}
