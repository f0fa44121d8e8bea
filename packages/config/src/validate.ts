/**
 * validateConfig(): raw (parsed YAML/JSON) to a frozen SluiceConfig with every default filled
 * in, or a ConfigError listing every problem. Cross-component rules live here: inputs name
 * sources, every source is consumed, ids are distinct, no two listeners share an address.
 */
import { availableParallelism } from 'node:os';
import {
  ConfigError,
  INVALID,
  canonicalHost,
  didYouMean,
  readComponents,
  type ComponentsRead,
  type ConfigIssue,
  address,
  boolean,
  childPath,
  def,
  integer,
  isMap,
  oneOf,
  opt,
  own,
  readSection,
  report,
  req,
  section,
  string,
  typeError,
  type Ctx,
} from '@sluice/schema';
import { sinkTypes } from '@sluice/sinks/registry';
import { sourceTypes } from '@sluice/sources/registry';
import type { ApiConfig, Env, ListenAddress, SinkConfig, SluiceConfig, SourceConfig } from './types.ts';

export const apiOptions = {
  enabled: def(boolean(), true),
  address: def(address(), '127.0.0.1:9598'),
};

export const logOptions = {
  level: def(oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal']), 'info'),
  format: def(oneOf(['json', 'pretty']), 'json'),
};

/**
 * One worker per CPU but one, within the allowed 1..64: the main thread (sockets, framing, the
 * sinks) keeps a core busy under load, so on 2 CPUs a second worker only shares the cores and
 * costs ~20 MiB at a burst's peak (docs/benchmarks.md, "Memory").
 */
export function defaultThreads(): number {
  return Math.min(64, Math.max(1, availableParallelism() - 1));
}

export const workersOptions = {
  threads: def(integer(1, 64), defaultThreads),
  batch_bytes: def(integer(4096, 67_108_864), 262_144),
  batch_timeout_ms: def(integer(1, 10_000), 50),
};

export const deadLetterOptions = {
  path: req(string()),
  key_prefix: def(string({ allowEmpty: true }), ''),
  upload_period_secs: def(integer(1, 86_400), 60),
};

/** Top-level options other than `sources` and `sinks`. */
export const topOptions = {
  data_dir: def(string(), './data'),
  shutdown_timeout_secs: def(integer(1, 3600), 30),
  api: def(
    section(apiOptions, (v): ApiConfig => ({ enabled: v.enabled, ...v.address })),
    {},
  ),
  log: def(section(logOptions), {}),
  workers: def(section(workersOptions), {}),
  dead_letter: opt(section(deadLetterOptions)),
};

/** Validates without throwing: the config exactly when there are no issues. */
export function checkConfig(raw: unknown, env: Env): { config: SluiceConfig | undefined; issues: ConfigIssue[] } {
  const ctx: Ctx = { env, issues: [] };
  if (raw === null || raw === undefined) raw = {};
  if (!isMap(raw)) {
    typeError(ctx, '', 'a map of options', raw, false);
    return { config: undefined, issues: ctx.issues };
  }
  const top = readSection(raw, '', topOptions, ctx, { ignore: ['sources', 'sinks'] });
  const sources = readComponents<SourceConfig>(own(raw, 'sources'), 'sources', 'source', sourceTypes, ctx);
  const sinks = readComponents<SinkConfig>(own(raw, 'sinks'), 'sinks', 'sink', sinkTypes, ctx);
  const api = top === INVALID || top.values.api === undefined ? undefined : top.values.api;
  crossCheck(sources, sinks, api, ctx);
  if (ctx.issues.length > 0 || top === INVALID) return { config: undefined, issues: ctx.issues };
  const config: SluiceConfig = { ...top.values, sources: sources.configs, sinks: sinks.configs };
  return { config: deepFreeze(config), issues: [] };
}

/**
 * Checks a parsed configuration (any JSON-like value) and returns it typed, defaults filled
 * in, deeply frozen. `${VAR}` in strings is replaced from `env`. Throws ConfigError with
 * every issue found.
 */
export function validateConfig(raw: unknown, env: Env = process.env): SluiceConfig {
  const { config, issues } = checkConfig(raw, env);
  if (config === undefined) throw new ConfigError(issues);
  return config;
}

function crossCheck(
  sources: ComponentsRead<SourceConfig>,
  sinks: ComponentsRead<SinkConfig>,
  api: ApiConfig | undefined,
  ctx: Ctx,
): void {
  // Components are named in metrics and logs by id alone.
  for (const id of sinks.partial.keys()) {
    if (sources.partial.has(id))
      report(ctx, childPath('sinks', id), `id \`${id}\` is also a source id; sources and sinks need distinct ids`);
  }

  const consumed = new Set<string>();
  let everyInputKnown = sinks.keys.length === sinks.partial.size;
  for (const [sinkId, values] of sinks.partial) {
    const inputs = values?.inputs;
    if (!Array.isArray(inputs)) {
      everyInputKnown = false;
      continue;
    }
    const inputsPath = childPath(childPath('sinks', sinkId), 'inputs');
    inputs.forEach((input: string, index) => {
      consumed.add(input);
      if (!sources.keys.includes(input)) {
        report(ctx, childPath(inputsPath, index), `unknown source \`${input}\`${didYouMean(input, sources.keys)}`);
      }
    });
  }
  // Without every sink's inputs (or without sinks) this would only add noise.
  if (everyInputKnown && sinks.keys.length > 0) {
    for (const id of sources.partial.keys()) {
      if (!consumed.has(id)) report(ctx, childPath('sources', id), `source \`${id}\` is not an input of any sink`);
    }
  }

  const taken = new Map<string, string>();
  const claim = (protocol: string, listen: ListenAddress, path: string, owner: string): void => {
    if (listen.port === 0) return;
    const key = `${protocol} ${canonicalHost(listen.host)} ${listen.port}`;
    const previous = taken.get(key);
    if (previous === undefined) taken.set(key, owner);
    else report(ctx, path, `${protocol} ${listen.address} is already used by ${previous}`);
  };
  if (api?.enabled) claim('tcp', api, 'api.address', 'api.address');
  for (const source of Object.values(sources.configs)) {
    claim(
      sourceTypes[source.type].protocol,
      source,
      childPath(childPath('sources', source.id), 'address'),
      `source \`${source.id}\``,
    );
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
