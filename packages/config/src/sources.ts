/** Option tables for sources. A new source type is one entry in `sourceTypes`. */
import { constants, accessSync, readFileSync, statSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { componentType, type ComponentType } from './components.ts';
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
  secret,
  string,
  stringList,
  stringMap,
  type Ctx,
  type Invalid,
  type Values,
} from './schema.ts';
import type { SourceConfig, SourceType, SplunkHecSourceConfig, TcpSourceConfig, TlsConfig, UdpSourceConfig } from './types.ts';

const MIB = 1024 * 1024;

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
    report(ctx, childPath(path, 'ca_file'), `is required when client_auth is ${v.client_auth} (the CA that client certificates must chain to)`);
    ok = false;
  }
  if (!ok) return INVALID;
  // Parse the PEM now: a key that does not match its certificate is a boot error, not a failed
  // handshake later. OpenSSL's messages name the problem, never the key material.
  try {
    createSecureContext({
      cert: readFileSync(v.cert_file),
      key: readFileSync(v.key_file),
      ...(v.ca_file === null ? {} : { ca: readFileSync(v.ca_file) }),
    });
  } catch (err) {
    return report(ctx, path, `cert_file, key_file and ca_file do not form a usable TLS setup: ${(err as Error).message}`);
  }
  return { cert_file: v.cert_file, key_file: v.key_file, ca_file: v.ca_file, client_auth: v.client_auth, handshake_timeout_secs: v.handshake_timeout_secs };
}

const tls = opt(section(tlsOptions, buildTls));

/** Options every source has. */
export const sourceOptions = {
  address: req(address()),
  extra_tags: def(stringMap(), {}),
  host_key: opt(string()),
  ring_bytes: def(integer(65_536, 1_073_741_824, { powerOfTwo: true }), 8 * MIB),
};

export const tcpOptions = {
  ...sourceOptions,
  max_line_bytes: def(integer(1, 16_777_216), 262_144),
  max_connections: def(integer(1, 65_535), 1024),
  idle_timeout_secs: def(integer(0, 86_400), 300),
  tls,
};

export const udpOptions = {
  ...sourceOptions,
  receive_buffer_bytes: def(integer(65_536, 268_435_456), 8 * MIB),
  sockets: def(integer(1, 64), 2),
  reader: def(oneOf(['auto', 'native', 'dgram']), 'auto'),
};

/**
 * Slow-client deadlines (docs/hec.md, "Slow clients"). 10 s for the request head: a client sends it
 * in one segment right after connecting; Node's own 60 s let 60 connections trickling a header
 * byte a second hold 50 slots for over a minute. The body gets body_timeout_secs plus one second
 * per min_body_bytes_per_sec received (Apache mod_reqtimeout's `body=…,MinRate=…` model): a
 * 16 MiB body over a 64 KiB/s link (256 s) is well inside its deadline (10 + 16384 s), a
 * 1 byte/s trickle is cut after 10 s.
 */
const slowClientOptions = {
  header_timeout_secs: def(integer(1, 3600), 10),
  body_timeout_secs: def(integer(1, 3600), 10),
  min_body_bytes_per_sec: def(integer(0, 1_073_741_824), 1024),
};

/**
 * 16 MiB by default: HEC senders batch far below it (Vector's splunk_hec sink sends at most
 * 1 MB, Tailscale's streamer a few hundred KiB), while one aggregator still bounds what a
 * request can make it hold. Splunk's own default (800 MB) is for an indexer, not a DaemonSet.
 */
export const splunkHecOptions = {
  ...sourceOptions,
  valid_tokens: secret(req(stringList())),
  max_body_bytes: def(integer(1024, 268_435_456), 16 * MIB),
  max_connections: def(integer(1, 65_535), 1024),
  ...slowClientOptions,
  tls,
};

type CommonSource = Omit<TcpSourceConfig, 'type' | 'max_line_bytes' | 'max_connections' | 'idle_timeout_secs' | 'tls'>;

/** Tokens travel in an HTTP header after `Splunk `: visible ASCII, no spaces. */
const TOKEN_TEXT = /^[\x21-\x7e]+$/;

/** The fields every source config has; reports a tag that the host_key would overwrite. */
function commonSource(v: Values<typeof sourceOptions>, id: string, path: string, ctx: Ctx): CommonSource | Invalid {
  if (v.host_key !== null && Object.hasOwn(v.extra_tags, v.host_key)) {
    const tagPath = childPath(childPath(path, 'extra_tags'), v.host_key);
    return report(ctx, tagPath, `conflicts with host_key \`${v.host_key}\`, which receives the peer address`);
  }
  return { id, ...v.address, extra_tags: v.extra_tags, host_key: v.host_key, ring_bytes: v.ring_bytes };
}

export const sourceTypes: { readonly [T in SourceType]: ComponentType<Extract<SourceConfig, { type: T }>> } = {
  tcp: componentType(tcpOptions, (v, id, path, ctx): TcpSourceConfig | Invalid => {
    const common = commonSource(v, id, path, ctx);
    if (common === INVALID) return INVALID;
    const { max_line_bytes, max_connections, idle_timeout_secs } = v;
    return { ...common, type: 'tcp', max_line_bytes, max_connections, idle_timeout_secs, tls: v.tls };
  }),
  udp: componentType(udpOptions, (v, id, path, ctx): UdpSourceConfig | Invalid => {
    const common = commonSource(v, id, path, ctx);
    if (common === INVALID) return INVALID;
    const { receive_buffer_bytes, sockets, reader } = v;
    return { ...common, type: 'udp', receive_buffer_bytes, sockets, reader };
  }),
  splunk_hec: componentType(splunkHecOptions, (v, id, path, ctx): SplunkHecSourceConfig | Invalid => {
    const common = commonSource(v, id, path, ctx);
    let ok = common !== INVALID;
    v.valid_tokens.forEach((token, index) => {
      if (!TOKEN_TEXT.test(token)) {
        // Secret: say what is wrong, never what it is.
        report(ctx, childPath(childPath(path, 'valid_tokens'), index), 'must be visible ASCII characters without spaces (value not shown)');
        ok = false;
      }
    });
    if (!ok || common === INVALID) return INVALID;
    const { valid_tokens, max_body_bytes, max_connections, header_timeout_secs, body_timeout_secs, min_body_bytes_per_sec } = v;
    return { ...common, type: 'splunk_hec', valid_tokens, max_body_bytes, max_connections, header_timeout_secs, body_timeout_secs, min_body_bytes_per_sec, tls: v.tls };
  }),
};

/** The socket protocol a source listens on: two sources may not share protocol+address. */
export const sourceProtocol: { readonly [T in SourceType]: 'tcp' | 'udp' } = {
  tcp: 'tcp',
  udp: 'udp',
  splunk_hec: 'tcp',
};
