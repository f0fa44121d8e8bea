/**
 * What every source's options share (address, tags, ring), the `tls` block of the sources
 * that listen on TCP, and the shape of a source type's definition: its type id, its option
 * table, the build step that turns valid values into its config, and how it starts.
 * docs/internals.md, "Adding a component", walks through a new one.
 */
import { constants, accessSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  INVALID,
  address,
  childPath,
  def,
  integer,
  oneOf,
  opt,
  quote,
  report,
  req,
  section,
  string,
  stringMap,
  componentType,
  type ComponentType,
  type Ctx,
  type Invalid,
  type ListenAddress,
  type Values,
} from '@sluice/schema';
import type { HecDecoder } from '@sluice/worker';
import type { Source, SourceContext } from './source.ts';

const MIB = 1024 * 1024;

export interface SourceBase extends ListenAddress {
  /** The key this source has under `sources`. */
  readonly id: string;
  readonly extra_tags: Readonly<Record<string, string>>;
  readonly host_key: string | null;
  readonly ring_bytes: number;
}

/** Who must show a client certificate: nobody, whoever shows one (it must verify), everybody. */
export type ClientAuth = 'none' | 'optional' | 'required';

/** A `tls` block: PEM files, checked to exist and to form a usable key pair at validation. */
export interface TlsConfig {
  readonly cert_file: string;
  readonly key_file: string;
  /** CA bundle that client certificates must chain to; required unless client_auth is none. */
  readonly ca_file: string | null;
  readonly client_auth: ClientAuth;
  /** A connection that has not completed its TLS handshake this long after connecting is closed. */
  readonly handshake_timeout_secs: number;
}

/** A `tls` block. The files are read at validation, so a typo fails `sluice validate`, not the first handshake. */
export const tlsOptions = {
  cert_file: req(string({ doc: 'path' })),
  key_file: req(string({ doc: 'path' })),
  ca_file: opt(string({ doc: 'path' })),
  client_auth: def(oneOf(['none', 'optional', 'required']), 'none'),
  handshake_timeout_secs: def(integer(1, 3600), 10),
};

/** A message when `file` is not a readable regular file, else undefined. */
function checkReadableFile(file: string): string | undefined {
  try {
    if (!statSync(file).isFile()) return `${quote(file)} is not a file`;
    accessSync(file, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${quote(file)} does not exist`;
    if (code === 'EACCES') return `${quote(file)} is not readable by this user`;
    return `${quote(file)} cannot be read (${code ?? 'error'})`;
  }
}

function buildTls(v: Values<typeof tlsOptions>, path: string, ctx: Ctx): TlsConfig | Invalid {
  let ok = true;
  for (const key of ['cert_file', 'key_file', 'ca_file'] as const) {
    const file = v[key];
    if (file === null) continue;
    const problem = checkReadableFile(file);
    if (problem !== undefined) {
      report(ctx, childPath(path, key), problem);
      ok = false;
    }
  }
  if (v.client_auth !== 'none' && v.ca_file === null) {
    report(
      ctx,
      childPath(path, 'ca_file'),
      `is required when client_auth is ${v.client_auth} (the CA that client certificates must chain to)`,
    );
    ok = false;
  }
  if (!ok) return INVALID;
  // Parse the PEM now: a key that does not match its certificate is a boot error, not a failed
  // handshake later. OpenSSL's messages name the problem, never the key material.
  try {
    // node:tls loads only when a source has TLS (~6 MiB resident otherwise never needed).
    const { createSecureContext } = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
    createSecureContext({
      cert: readFileSync(v.cert_file),
      key: readFileSync(v.key_file),
      ...(v.ca_file === null ? {} : { ca: readFileSync(v.ca_file) }),
    });
  } catch (err) {
    return report(
      ctx,
      path,
      `cert_file, key_file and ca_file do not form a usable TLS setup: ${(err as Error).message}`,
    );
  }
  return {
    cert_file: v.cert_file,
    key_file: v.key_file,
    ca_file: v.ca_file,
    client_auth: v.client_auth,
    handshake_timeout_secs: v.handshake_timeout_secs,
  };
}

/** The `tls` option of the sources that listen on TCP. */
export const tls = opt(section(tlsOptions, buildTls));

/** Options every source has (udp's ring default; see {@link streamSourceOptions}). */
export const sourceOptions = {
  address: req(address()),
  extra_tags: def(stringMap(), {}),
  host_key: opt(string()),
  ring_bytes: def(integer(65_536, 1_073_741_824, { powerOfTwo: true }), 8 * MIB),
};

/**
 * The same for the sources that can make their senders wait (tcp pauses its sockets,
 * splunk_hec answers 503): a smaller ring by default. Its pages stay resident once a burst has
 * filled it, and a worker takes 256 KiB at a time (two per thread in flight), so 2 MiB keeps
 * the workers fed: peak RSS of a 1,000,000-line TCP burst ~6 MiB lower (docs/benchmarks.md,
 * "Memory"). udp keeps 8 MiB: a datagram that finds the ring full is lost.
 */
export const streamSourceOptions = {
  ...sourceOptions,
  ring_bytes: def(integer(65_536, 1_073_741_824, { powerOfTwo: true }), 2 * MIB),
};

/** The fields every source config has; reports a tag that the host_key would overwrite. */
export function commonSource(
  v: Values<typeof sourceOptions>,
  id: string,
  path: string,
  ctx: Ctx,
): SourceBase | Invalid {
  if (v.host_key !== null && Object.hasOwn(v.extra_tags, v.host_key)) {
    const tagPath = childPath(childPath(path, 'extra_tags'), v.host_key);
    return report(ctx, tagPath, `conflicts with host_key \`${v.host_key}\`, which receives the peer address`);
  }
  return { id, ...v.address, extra_tags: v.extra_tags, host_key: v.host_key, ring_bytes: v.ring_bytes };
}

/**
 * The build step of a source type whose own options need no checks across fields: the fields
 * every source has (commonSource), then the type's own, from `own`.
 */
export function sourceBuild<S extends typeof sourceOptions, C extends SourceBase>(
  options: S,
  own: (v: Values<S>) => Omit<C, keyof SourceBase>,
): ComponentType<C> {
  return componentType(options, (v, id, path, ctx): C | Invalid => {
    const common = commonSource(v as Values<typeof sourceOptions>, id, path, ctx);
    return common === INVALID ? INVALID : ({ ...common, ...own(v) } as C);
  });
}

/** What the daemon lends a source when it starts one. */
export interface SourceRuntime {
  /** The worker threads that decode HEC bodies, started on first use. */
  hecDecoder(): HecDecoder;
}

/** One source type: type id, option table, build step, and how it starts. */
export interface SourceDefinition<C extends SourceBase & { readonly type: string }> extends ComponentType<C> {
  readonly type: C['type'];
  /** The socket protocol it listens on: two sources may not share protocol and address. */
  readonly protocol: 'tcp' | 'udp';
  /** Bind and start reading into ctx.ring. Rejects (with the errno code) when it cannot listen. */
  start(ctx: SourceContext, config: C, runtime: SourceRuntime): Promise<Source>;
}
