/**
 * What a record must be to be printed: --where clauses, --grep, --since/--until, and the
 * literals a line must contain to be worth parsing (the byte pre-filter).
 *
 * The pre-filter may let through lines that do not match (they are parsed and checked) but
 * never drops one that does: see literalOfValue and match.test.ts's differential test.
 */
import { parsedRecordTime } from '@sluice/worker/record-time';

export interface WhereClause {
  /** `event.action` → ['event', 'action']. */
  readonly path: readonly string[];
  readonly value: string;
}

/** `KEY=VALUE` → a clause, or a message. The first `=` splits (values may hold `=`). */
export function parseWhere(text: string): WhereClause | { error: string } {
  const eq = text.indexOf('=');
  if (eq <= 0) return { error: `${JSON.stringify(text)} is not KEY=VALUE (event.action=UPDATE)` };
  const key = text.slice(0, eq);
  const path = key.split('.');
  if (path.some((p) => p === '')) return { error: `${JSON.stringify(key)} has an empty field name` };
  return { path, value: text.slice(eq + 1) };
}

/**
 * The field at `path` of a parsed record matches `value`: a string equal to it, or a number,
 * true, false or null whose JSON text is it (`status=200` matches 200 and 2e2, `ok=true`).
 */
export function whereMatches(rec: unknown, clause: WhereClause): boolean {
  let v: unknown = rec;
  for (const key of clause.path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, key)) return false;
    v = (v as Record<string, unknown>)[key];
  }
  if (typeof v === 'string') return v === clause.value;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return JSON.stringify(v) === clause.value;
  return false;
}

/** Characters JSON may write with a short escape (`\"`, `\\`, `\/`, `\n`...): never in a literal. */
function shortEscapable(code: number): boolean {
  return code < 0x20 || code === 0x22 || code === 0x5c || code === 0x2f || code === 0x7f;
}

/**
 * The longest run of `text` a JSON encoding of it must contain as is, unless the line uses a
 * `\u` escape: characters with a short escape form end a run, every other character is
 * either its own UTF-8 bytes or `\uXXXX`. Empty when there is no such run.
 */
export function longestPlainRun(text: string): string {
  let best = '';
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || shortEscapable(text.charCodeAt(i))) {
      if (i - start > best.length) best = text.slice(start, i);
      start = i + 1;
    }
  }
  return best;
}

const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/**
 * A literal every line whose record matches the clause contains, or contains `\u`. A number
 * may be written many ways (200, 200.0, 2e2), so for a numeric VALUE the field's name serves.
 */
export function literalOfClause(clause: WhereClause): string {
  if (!JSON_NUMBER.test(clause.value)) return longestPlainRun(clause.value);
  return longestPlainRun(clause.path[clause.path.length - 1]!);
}

/**
 * A literal every string the regular expression matches contains, or '' when none can be
 * told: the longest run of plain characters outside groups and classes that no quantifier
 * makes optional. Alternation at the top level (`a|b`) or flags give none.
 */
export function requiredLiteralOfRegex(source: string): string {
  let best = '';
  let run = '';
  const end = (): void => {
    if (run.length > best.length) best = run;
    run = '';
  };
  // A literal character at `i`: a following `*`, `?` or `{` makes it optional (the run ends
  // before it); `+` makes it required but ends the run after it.
  const literal = (ch: string, i: number): void => {
    const q = source[i + 1];
    if (q === '*' || q === '?' || q === '{') {
      end();
      return;
    }
    run += ch;
    if (q === '+') end();
  };
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '|') return '';
    if (c === '\\') {
      const n = source[i + 1];
      if (n === undefined) return '';
      i++;
      if (/[A-Za-z0-9]/.test(n))
        end(); // \d, \w, \b, \u…, \1: a class, an assertion or an escape we do not decode
      else literal(n, i);
      continue;
    }
    if (c === '[') {
      end();
      i = skipClass(source, i);
      if (i < 0) return '';
      continue;
    }
    if (c === '(') {
      end();
      let depth = 1;
      for (i++; i < source.length && depth > 0; i++) {
        const g = source[i]!;
        if (g === '\\') i++;
        else if (g === '[') {
          i = skipClass(source, i);
          if (i < 0) return '';
        } else if (g === '(') depth++;
        else if (g === ')') depth--;
      }
      if (depth > 0) return '';
      i--;
      // A quantifier after the group makes no difference: the run already ended.
      continue;
    }
    if ('.^$)*+?{}]'.includes(c)) {
      end();
      continue;
    }
    literal(c, i);
  }
  end();
  return best;
}

/** Index of the `]` closing the class opened at `i`, or -1. */
function skipClass(source: string, i: number): number {
  let j = i + 1;
  if (source[j] === '^') j++;
  if (source[j] === ']') j++;
  for (; j < source.length; j++) {
    if (source[j] === '\\') j++;
    else if (source[j] === ']') return j;
  }
  return -1;
}

/**
 * The time of a parsed record: `talos-time` (RFC 3339) for Talos records, the HEC envelope's
 * `time` (epoch seconds) for HEC ones (those with an `event`), else the object's key time.
 */
export function recordTime(rec: unknown, keyTime: string | undefined): string | undefined {
  return parsedRecordTime(rec) ?? keyTime;
}
