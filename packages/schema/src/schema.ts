/**
 * A small schema language for option tables. A component type is a table of fields; each
 * field is a kind (how to read and check one raw value) plus its presence (required,
 * optional, or a default). readSection() reads a map against a table and reports every
 * problem into the context instead of stopping at the first.
 *
 * String scalars are interpolated (`${VAR}`) when a kind reads them, so the option path is
 * known for messages and numbers/booleans can tell interpolated strings from quoted ones.
 */
import { checkAddress } from './address.ts';
import type { ConfigIssue } from './errors.ts';
import { interpolate } from './interpolate.ts';
import { didYouMean } from './suggest.ts';
import type { Env, ListenAddress } from './types.ts';

export const INVALID: unique symbol = Symbol('invalid');
export type Invalid = typeof INVALID;

export interface Ctx {
  readonly env: Env;
  readonly issues: ConfigIssue[];
}

export function report(ctx: Ctx, path: string, message: string): Invalid {
  ctx.issues.push({ path: path === '' ? '(root)' : path, message });
  return INVALID;
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** `sinks.s3.bucket`, `sinks.s3.inputs[0]`, `sources["bad id"]`. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (!PLAIN_KEY.test(key)) return `${parent}[${JSON.stringify(key)}]`;
  return parent === '' ? key : `${parent}.${key}`;
}

export function isMap(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Own property or undefined: `toString` or `__proto__` in a config are only ever keys. */
export function own(map: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/** Sets an own enumerable property even for keys like `__proto__`. */
export function setOwn<T>(map: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A string for messages, shortened; JSON quotes make blanks and escapes visible. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 97)}...` : text);
}

/** `string "abc"`, `number 1.5`, `a list`; scalars of secret options show as `(redacted)`. */
export function describeValue(value: unknown, secret: boolean): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  if (typeof value === 'object') return 'a map';
  if (secret) return `a ${typeof value} (redacted)`;
  return `${typeof value} ${typeof value === 'string' ? quote(value) : String(value)}`;
}

export function typeError(ctx: Ctx, path: string, expected: string, got: unknown, secret: boolean, hint = ''): Invalid {
  return report(ctx, path, `expected ${expected}, got ${describeValue(got, secret)}${hint}`);
}

export function rangeMessage(min: number, max: number | undefined, got: number, suffix = ''): string {
  if (max === undefined) return `must be at least ${min}${suffix}, got ${got}`;
  return `must be between ${min} and ${max}${suffix}, got ${got}`;
}

/** How one raw value is read and checked. `doc` is the type column of the reference. */
export interface Kind<T> {
  readonly doc: string;
  read(raw: unknown, path: string, ctx: Ctx, secret: boolean): T | Invalid;
}

type Presence =
  | { readonly kind: 'required' }
  | { readonly kind: 'optional' }
  /** A raw value (or a function giving one) read through the kind like a written one. */
  | { readonly kind: 'default'; readonly raw: unknown };

export interface Field<T> {
  readonly kind: Kind<unknown>;
  readonly presence: Presence;
  readonly secret: boolean;
  /** Type carrier only. */
  readonly __type?: T;
}

export type Schema = Readonly<Record<string, Field<unknown>>>;
export type Values<S extends Schema> = { -readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };

/** Must be given (null counts as not given). */
export function req<T>(kind: Kind<T>): Field<T> {
  return { kind, presence: { kind: 'required' }, secret: false };
}

/** May be left out: then null. */
export function opt<T>(kind: Kind<T>): Field<T | null> {
  return { kind, presence: { kind: 'optional' }, secret: false };
}

/** May be left out: then `raw` (or `raw()`) is read as if written, so defaults obey the kind. */
export function def<T>(kind: Kind<T>, raw: unknown): Field<T> {
  return { kind, presence: { kind: 'default', raw }, secret: false };
}

/** The value is never shown in a message. */
export function secret<T>(field: Field<T>): Field<T> {
  return { ...field, secret: true };
}

/** Interpolates a string scalar, reporting problems. `fromEnv` = something was substituted. */
function resolve(raw: string, path: string, ctx: Ctx): { value: string; fromEnv: boolean } | Invalid {
  const result = interpolate(raw, ctx.env);
  if (result.errors.length > 0) {
    for (const error of result.errors) report(ctx, path, error);
    return INVALID;
  }
  return { value: result.value, fromEnv: result.substituted };
}

/** Reads a string scalar (interpolated); other types are a type error naming `expected`. */
function readString(raw: unknown, path: string, ctx: Ctx, secret: boolean, expected: string): string | Invalid {
  if (typeof raw !== 'string') return typeError(ctx, path, expected, raw, secret);
  const resolved = resolve(raw, path, ctx);
  return resolved === INVALID ? INVALID : resolved.value;
}

const INTEGER_TEXT = /^-?(?:0|[1-9][0-9]*)$/;

/**
 * An integer in [min, max] (max undefined = no upper bound but a safe integer). Interpolated
 * strings that are exactly an integer count as one.
 */
export function integer(
  min = -Number.MAX_SAFE_INTEGER,
  max?: number,
  options: { powerOfTwo?: boolean } = {},
): Kind<number> {
  return {
    doc: options.powerOfTwo ? 'integer, power of two' : 'integer',
    read(raw, path, ctx, secret) {
      let value: number;
      if (typeof raw === 'number') {
        value = raw;
      } else if (typeof raw === 'string') {
        const resolved = resolve(raw, path, ctx);
        if (resolved === INVALID) return INVALID;
        if (!(resolved.fromEnv && INTEGER_TEXT.test(resolved.value))) {
          const hint = !resolved.fromEnv && INTEGER_TEXT.test(resolved.value) ? ' (remove the quotes)' : '';
          return typeError(ctx, path, 'an integer', resolved.value, secret, hint);
        }
        value = Number(resolved.value);
      } else {
        return typeError(ctx, path, 'an integer', raw, secret);
      }
      if (!Number.isInteger(value)) return typeError(ctx, path, 'an integer', value, secret);
      if (value < min || (max !== undefined && value > max)) return report(ctx, path, rangeMessage(min, max, value));
      if (!Number.isSafeInteger(value))
        return report(ctx, path, `must be at most ${Number.MAX_SAFE_INTEGER}, got ${value}`);
      if (options.powerOfTwo && (value & (value - 1)) !== 0) {
        // Only used below 2^31, where the bit trick and Math.log2 are exact.
        const below = 2 ** Math.floor(Math.log2(value));
        return report(ctx, path, `must be a power of two, got ${value} (nearest: ${below} or ${below * 2})`);
      }
      return value;
    },
  };
}

export function boolean(): Kind<boolean> {
  return {
    doc: 'boolean',
    read(raw, path, ctx, secret) {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw !== 'string') return typeError(ctx, path, 'true or false', raw, secret);
      const resolved = resolve(raw, path, ctx);
      if (resolved === INVALID) return INVALID;
      const isWord = resolved.value === 'true' || resolved.value === 'false';
      if (resolved.fromEnv && isWord) return resolved.value === 'true';
      return typeError(ctx, path, 'true or false', resolved.value, secret, isWord ? ' (remove the quotes)' : '');
    },
  };
}

/**
 * A string. Empty is an error unless `allowEmpty`. `check` returns a message or undefined; it
 * is not run for secret options, so it may quote the value.
 */
export function string(
  options: { allowEmpty?: boolean; doc?: string; check?: (value: string) => string | undefined } = {},
): Kind<string> {
  return {
    doc: options.doc ?? 'string',
    read(raw, path, ctx, secret) {
      const value = readString(raw, path, ctx, secret, 'a string');
      if (value === INVALID) return INVALID;
      if (value === '' && !options.allowEmpty) return report(ctx, path, 'must not be empty');
      if (options.check && !secret) {
        const problem = options.check(value);
        if (problem !== undefined) return report(ctx, path, problem);
      }
      return value;
    },
  };
}

/** One of a fixed set of words. */
export function oneOf<const T extends string>(values: readonly T[]): Kind<T> {
  const list = values.join(', ');
  return {
    doc: values.map((v) => `\`${v}\``).join(' \\| '),
    read(raw, path, ctx, secret) {
      const value = readString(raw, path, ctx, secret, `one of ${list}`);
      if (value === INVALID) return INVALID;
      if ((values as readonly string[]).includes(value)) return value as T;
      const shown = secret ? '(redacted)' : quote(value);
      return report(ctx, path, `must be one of ${list}, got ${shown}${secret ? '' : didYouMean(value, values)}`);
    },
  };
}

/** `host:port`, IPv6 as `[::1]:5170`. */
export function address(): Kind<ListenAddress> {
  return {
    doc: 'host:port',
    read(raw, path, ctx, secret) {
      const value = readString(raw, path, ctx, secret, 'a host:port string');
      if (value === INVALID) return INVALID;
      const parsed = checkAddress(value);
      if (typeof parsed === 'string') return report(ctx, path, parsed);
      return { address: value, host: parsed.host, port: parsed.port };
    },
  };
}

/** A flat map of string to string; numbers and booleans must be quoted. */
export function stringMap(): Kind<Record<string, string>> {
  return {
    doc: 'map of string to string',
    read(raw, path, ctx, secret) {
      if (!isMap(raw)) return typeError(ctx, path, 'a map of string to string', raw, secret);
      const out: Record<string, string> = {};
      let ok = true;
      for (const key of Object.keys(raw)) {
        const itemPath = childPath(path, key);
        if (key === '') {
          report(ctx, itemPath, 'keys must not be empty');
          ok = false;
          continue;
        }
        const item = raw[key];
        if (typeof item === 'number' || typeof item === 'boolean') {
          const hint = secret ? '' : ` (values are strings: write ${quote(String(item))})`;
          typeError(ctx, itemPath, 'a string', item, secret, hint);
          ok = false;
          continue;
        }
        const value = readString(item, itemPath, ctx, secret, 'a string');
        if (value === INVALID) ok = false;
        else setOwn(out, key, value);
      }
      return ok ? out : INVALID;
    },
  };
}

/** A non-empty list of distinct strings. */
export function stringList(): Kind<string[]> {
  return {
    doc: 'list of strings',
    read(raw, path, ctx, secret) {
      if (!Array.isArray(raw)) return typeError(ctx, path, 'a list of strings', raw, secret);
      if (raw.length === 0) return report(ctx, path, 'must not be empty');
      const out: string[] = [];
      let ok = true;
      raw.forEach((item: unknown, index) => {
        const itemPath = childPath(path, index);
        const value = readString(item, itemPath, ctx, secret, 'a string');
        if (value === INVALID) {
          ok = false;
        } else if (out.includes(value)) {
          report(ctx, itemPath, `${secret ? 'an entry' : `\`${value}\``} is listed twice`);
          ok = false;
        } else {
          out.push(value);
        }
      });
      return ok ? out : INVALID;
    },
  };
}

/** A nested map read against its own table, then turned into the result by `build`. */
export function section<S extends Schema, T = Values<S>>(
  schema: S,
  build?: (values: Values<S>, path: string, ctx: Ctx) => T | Invalid,
): Kind<T> {
  return {
    doc: 'map',
    read(raw, path, ctx) {
      const read = readSection(raw, path, schema, ctx);
      if (read === INVALID || !read.ok) return INVALID;
      return build ? build(read.values, path, ctx) : (read.values as unknown as T);
    },
  };
}

export interface SectionOptions {
  /** Keys handled by the caller (a component's `type`). */
  readonly ignore?: readonly string[];
  /** A better message for a key the table does not have (it belongs to another type). */
  readonly unknownHint?: (key: string) => string | undefined;
}

/**
 * Reads `raw` (a map; null = empty) against `schema`: reports unknown keys with a suggestion,
 * missing required options and every bad value. `ok` = no problem in this section. Values of
 * bad options are undefined, so only look at them when `ok` (or check them yourself).
 */
export function readSection<S extends Schema>(
  raw: unknown,
  path: string,
  schema: S,
  ctx: Ctx,
  options: SectionOptions = {},
): { values: Values<S>; ok: boolean } | Invalid {
  if (raw === null || raw === undefined) raw = {};
  if (!isMap(raw)) return typeError(ctx, path, 'a map', raw, false);
  let ok = true;
  for (const key of Object.keys(raw)) {
    if (Object.hasOwn(schema, key) || options.ignore?.includes(key)) continue;
    const hint = options.unknownHint?.(key) ?? didYouMean(key, [...Object.keys(schema), ...(options.ignore ?? [])]);
    report(ctx, childPath(path, key), `unknown option \`${key}\`${hint}`);
    ok = false;
  }
  const values: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema)) {
    const fieldPath = childPath(path, name);
    let value = own(raw, name);
    if (value === null || value === undefined) {
      const presence = field.presence;
      if (presence.kind === 'optional') {
        values[name] = null;
        continue;
      }
      if (presence.kind === 'required') {
        report(ctx, fieldPath, 'is required');
        ok = false;
        continue;
      }
      value = typeof presence.raw === 'function' ? (presence.raw as () => unknown)() : presence.raw;
    }
    const read = field.kind.read(value, fieldPath, ctx, field.secret);
    if (read === INVALID) ok = false;
    else values[name] = read;
  }
  return { values: values as Values<S>, ok };
}
