/**
 * Reading `sources:` and `sinks:`: a map of id to component, each component's `type` picking
 * one option table from a registry. Adding a component type = adding one registry entry.
 */
import {
  INVALID,
  childPath,
  isMap,
  oneOf,
  own,
  readSection,
  report,
  setOwn,
  typeError,
  type Ctx,
  type Invalid,
  type Schema,
  type Values,
} from './schema.ts';

/** One component type: its option table and how valid values become its config. */
export interface ComponentType<C> {
  readonly options: Schema;
  build(values: Record<string, unknown>, id: string, path: string, ctx: Ctx): C | Invalid;
}

/** Ties a table to its build step with the values fully typed. */
export function componentType<S extends Schema, C>(
  options: S,
  build: (values: Values<S>, id: string, path: string, ctx: Ctx) => C | Invalid,
): ComponentType<C> {
  return { options, build: build as ComponentType<C>['build'] };
}

export const COMPONENT_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface ComponentsRead<C> {
  /** Valid components, in file order. */
  readonly configs: Record<string, C>;
  /** Every key under the map, valid id or not. */
  readonly keys: readonly string[];
  /** Per valid id, the option values read (bad ones undefined), or null if unreadable. */
  readonly partial: ReadonlyMap<string, Readonly<Record<string, unknown>> | null>;
}

export function readComponents<C>(
  raw: unknown,
  path: string,
  noun: string,
  types: Readonly<Record<string, ComponentType<C>>>,
  ctx: Ctx,
): ComponentsRead<C> {
  const configs: Record<string, C> = {};
  const partial = new Map<string, Record<string, unknown> | null>();
  if (raw === null || raw === undefined) raw = {};
  if (!isMap(raw)) {
    typeError(ctx, path, `a map of ${noun} id to ${noun}`, raw, false);
    return { configs, keys: [], partial };
  }
  const keys = Object.keys(raw);
  if (keys.length === 0) report(ctx, path, `at least one ${noun} is required`);
  const typeNames = Object.keys(types);
  const typeKind = oneOf(typeNames);
  for (const id of keys) {
    const componentPath = childPath(path, id);
    if (!COMPONENT_ID.test(id)) {
      report(
        ctx,
        componentPath,
        `invalid ${noun} id ${JSON.stringify(id)}: use 1 to 64 characters from A-Z a-z 0-9 _ -`,
      );
      continue;
    }
    partial.set(id, null);
    const body = raw[id];
    if (!isMap(body)) {
      typeError(ctx, componentPath, `a map of ${noun} options`, body, false);
      continue;
    }
    const typePath = childPath(componentPath, 'type');
    const typeRaw = own(body, 'type');
    if (typeRaw === null || typeRaw === undefined) {
      report(ctx, typePath, `is required (one of ${typeNames.join(', ')})`);
      continue;
    }
    const type = typeKind.read(typeRaw, typePath, ctx, false);
    if (type === INVALID) continue;
    const spec = types[type]!;
    const unknownHint = (key: string): string | undefined => {
      const owners = typeNames.filter((other) => Object.hasOwn(types[other]!.options, key));
      return owners.length === 0 ? undefined : ` for ${type} ${noun}s; it applies to ${owners.join(', ')} ${noun}s`;
    };
    const read = readSection(body, componentPath, spec.options, ctx, { ignore: ['type'], unknownHint });
    if (read === INVALID) continue;
    partial.set(id, read.values);
    if (!read.ok) continue;
    const config = spec.build(read.values, id, componentPath, ctx);
    if (config !== INVALID) setOwn(configs, id, config);
  }
  return { configs, keys, partial };
}
