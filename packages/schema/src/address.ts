import { isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from './errors.ts';
import type { HostPort } from './types.ts';

// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Splits `host:port` (IPv6 as `[::1]:5170`). Returns the parts, or the reason the text is not
 * an address, phrased as a message that quotes the text.
 */
export function checkAddress(text: string): HostPort | string {
  const shown = JSON.stringify(text);
  const notAddress = `${shown} is not host:port`;
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end === -1 || text[end + 1] !== ':') return notAddress;
    host = text.slice(1, end);
    portText = text.slice(end + 2);
    if (!isIPv6(host)) return `${notAddress}: ${JSON.stringify(host)} is not an IPv6 address`;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return notAddress;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host === '') return `${notAddress}: the host is missing (0.0.0.0 listens on every interface)`;
    if (host.includes(':')) return `${notAddress}: write IPv6 addresses in brackets, as in [::1]:5170`;
    const ok = /^[0-9.]+$/.test(host) ? isIPv4(host) : HOST_NAME.test(host);
    if (!ok) return `${notAddress}: ${JSON.stringify(host)} is not an IP address or host name`;
  }
  if (!/^[0-9]+$/.test(portText)) return notAddress;
  const port = Number(portText);
  if (port > 65535) return `${notAddress}: port must be between 0 and 65535, got ${portText}`;
  return { host, port };
}

/**
 * Parses `host:port` (IPv6 as `[::1]:5170`, port 0..65535, 0 = any free port). The returned
 * host has no brackets, ready for `listen()`. Throws ConfigError naming `path`.
 */
export function parseAddress(text: string, path = 'address'): HostPort {
  const result = checkAddress(text);
  if (typeof result === 'string') throw new ConfigError([{ path, message: result }]);
  return result;
}

/** A form of the host that is equal for equal addresses (`::0:1` and `::1`, `LOCALHOST`). */
export function canonicalHost(host: string): string {
  if (isIPv6(host) && !host.includes('%')) return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  return host.toLowerCase();
}
