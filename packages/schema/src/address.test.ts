import { describe, expect, it } from 'vitest';
import { canonicalHost } from './address.ts';
import { ConfigError, parseAddress } from './index.ts';

describe('parseAddress', () => {
  it.each([
    ['0.0.0.0:5170', '0.0.0.0', 5170],
    ['127.0.0.1:0', '127.0.0.1', 0],
    ['localhost:65535', 'localhost', 65535],
    ['logs.example.com:514', 'logs.example.com', 514],
    ['[::1]:5170', '::1', 5170],
    ['[::]:6050', '::', 6050],
    ['[fd00::7]:9598', 'fd00::7', 9598],
    ['[fe80::1%eth0]:5170', 'fe80::1%eth0', 5170],
    ['[::ffff:10.0.0.1]:80', '::ffff:10.0.0.1', 80],
  ])('%s', (text, host, port) => {
    expect(parseAddress(text)).toEqual({ host, port });
  });

  it.each([
    ['127.0.0.1:notaport', '"127.0.0.1:notaport" is not host:port'],
    ['127.0.0.1', '"127.0.0.1" is not host:port'],
    ['127.0.0.1:', '"127.0.0.1:" is not host:port'],
    ['127.0.0.1:-1', '"127.0.0.1:-1" is not host:port'],
    ['127.0.0.1:65536', '"127.0.0.1:65536" is not host:port: port must be between 0 and 65535, got 65536'],
    ['127.0.0.1: 80', '"127.0.0.1: 80" is not host:port'],
    [':5170', '":5170" is not host:port: the host is missing (0.0.0.0 listens on every interface)'],
    ['::1:5170', '"::1:5170" is not host:port: write IPv6 addresses in brackets, as in [::1]:5170'],
    ['[::1]', '"[::1]" is not host:port'],
    ['[::1]5170', '"[::1]5170" is not host:port'],
    ['[nope]:5170', '"[nope]:5170" is not host:port: "nope" is not an IPv6 address'],
    ['256.1.1.1:80', '"256.1.1.1:80" is not host:port: "256.1.1.1" is not an IP address or host name'],
    ['my_host:80', '"my_host:80" is not host:port: "my_host" is not an IP address or host name'],
    ['tcp://1.2.3.4:80', '"tcp://1.2.3.4:80" is not host:port: write IPv6 addresses in brackets, as in [::1]:5170'],
  ])('rejects %s', (text, message) => {
    expect(() => parseAddress(text, 'sources.t.address')).toThrow(ConfigError);
    expect(() => parseAddress(text, 'sources.t.address')).toThrow(`sources.t.address: ${message}`);
  });

  it('canonicalizes hosts for comparison', () => {
    expect(canonicalHost('0:0::1')).toBe('::1');
    expect(canonicalHost('FD00::A')).toBe('fd00::a');
    expect(canonicalHost('LocalHost')).toBe('localhost');
  });
});
