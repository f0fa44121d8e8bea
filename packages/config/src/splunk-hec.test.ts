import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from './index.ts';
import { failure, fullRaw, issueLines } from './test-helpers.ts';

const MIB = 1024 * 1024;
const TOKEN = '3f1c9a52-0d4e-4b7a-9e61-7c2d8b5f0a13';

let dir = '';
let cert = '';
let key = '';
let otherKey = '';

/** A self-signed certificate and key (and an unrelated key) made with the openssl CLI. */
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-config-tls-'));
  cert = join(dir, 'cert.pem');
  key = join(dir, 'key.pem');
  otherKey = join(dir, 'other-key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
    ],
    { stdio: 'ignore' },
  );
  execFileSync(
    'openssl',
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', otherKey],
    { stdio: 'ignore' },
  );
  mkdirSync(join(dir, 'a-directory'));
  writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
});

/** fullRaw() plus a splunk_hec source `h` read by the file sink. */
function withHec(options: Record<string, unknown> = {}): Record<string, any> {
  const raw = fullRaw();
  raw.sources.h = { type: 'splunk_hec', address: '[::]:8088', valid_tokens: [TOKEN], ...options };
  raw.sinks.f.inputs = ['t', 'u', 'h'];
  return raw;
}

describe('splunk_hec source', () => {
  it('fills every default', () => {
    expect(validateConfig(withHec(), {}).sources.h).toEqual({
      id: 'h',
      type: 'splunk_hec',
      address: '[::]:8088',
      host: '::',
      port: 8088,
      extra_tags: {},
      host_key: null,
      ring_bytes: 2 * MIB,
      valid_tokens: [TOKEN],
      max_body_bytes: 16 * MIB,
      max_connections: 1024,
      header_timeout_secs: 10,
      body_timeout_secs: 10,
      min_body_bytes_per_sec: 1024,
      tls: null,
    });
  });

  it('checks ranges of max_body_bytes, max_connections and the slow-client deadlines', () => {
    const ranges = [
      ['max_body_bytes', 1024, 268_435_456],
      ['max_connections', 1, 65_535],
      ['header_timeout_secs', 1, 3600],
      ['body_timeout_secs', 1, 3600],
      ['min_body_bytes_per_sec', 0, 1_073_741_824],
    ] as const;
    for (const [option, min, max] of ranges) {
      expect(
        (validateConfig(withHec({ [option]: min }), {}).sources.h as unknown as Record<string, unknown>)[option],
      ).toBe(min);
      expect(
        (validateConfig(withHec({ [option]: max }), {}).sources.h as unknown as Record<string, unknown>)[option],
      ).toBe(max);
      expect(issueLines(() => validateConfig(withHec({ [option]: min - 1 }), {}))).toEqual([
        `sources.h.${option}: must be between ${min} and ${max}, got ${min - 1}`,
      ]);
      expect(issueLines(() => validateConfig(withHec({ [option]: max + 1 }), {}))).toEqual([
        `sources.h.${option}: must be between ${min} and ${max}, got ${max + 1}`,
      ]);
    }
  });

  it('requires valid_tokens, at least one, distinct, header-safe', () => {
    expect(issueLines(() => validateConfig(withHec({ valid_tokens: undefined }), {}))).toEqual([
      'sources.h.valid_tokens: is required',
    ]);
    expect(issueLines(() => validateConfig(withHec({ valid_tokens: [] }), {}))).toEqual([
      'sources.h.valid_tokens: must not be empty',
    ]);
    expect(issueLines(() => validateConfig(withHec({ valid_tokens: [TOKEN, 'b', TOKEN] }), {}))).toEqual([
      'sources.h.valid_tokens[2]: an entry is listed twice',
    ]);
    expect(issueLines(() => validateConfig(withHec({ valid_tokens: ['ok', `${TOKEN} x`, ''] }), {}))).toEqual([
      'sources.h.valid_tokens[1]: must be visible ASCII characters without spaces (value not shown)',
      'sources.h.valid_tokens[2]: must be visible ASCII characters without spaces (value not shown)',
    ]);
  });

  it('never shows a token in a message', () => {
    const cases = [
      withHec({ valid_tokens: TOKEN }),
      withHec({ valid_tokens: [TOKEN, TOKEN] }),
      withHec({ valid_tokens: [`${TOKEN} `] }),
      withHec({ valid_tokens: [`${TOKEN}\${`] }),
      withHec({ valid_tokens: [12_345_678_901] }),
      withHec({ valid_tokens: [TOKEN], max_body_bytes: 1, valid_tokenz: TOKEN }),
    ];
    for (const raw of cases) {
      const error = failure(() => validateConfig(raw, {}));
      expect(error.message).not.toContain(TOKEN.slice(0, 8));
      expect(error.message).not.toContain('12345678901');
      expect(JSON.stringify(error.issues)).not.toContain(TOKEN.slice(0, 8));
    }
    expect(failure(() => validateConfig(withHec({ valid_tokens: TOKEN }), {})).message).toBe(
      'sources.h.valid_tokens: expected a list of strings, got a string (redacted)',
    );
  });

  it('takes tokens from the environment', () => {
    const config = validateConfig(withHec({ valid_tokens: ['${HEC_TOKEN}', 'second'] }), { HEC_TOKEN: TOKEN });
    expect(config.sources.h).toMatchObject({ valid_tokens: [TOKEN, 'second'] });
  });

  it('listens on tcp: shares no address with a tcp source or the API', () => {
    const raw = withHec({ address: '127.0.0.1:5170' });
    raw.sources.h2 = { type: 'splunk_hec', address: '127.0.0.1:9598', valid_tokens: ['x'] };
    raw.sources.u.address = '127.0.0.1:5170'; // udp: another protocol
    raw.sinks.f.inputs.push('h2');
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources.h.address: tcp 127.0.0.1:5170 is already used by source `t`',
      'sources.h2.address: tcp 127.0.0.1:9598 is already used by api.address',
    ]);
  });

  it('names the types an option belongs to', () => {
    const raw = withHec({ max_line_bytes: 10 });
    raw.sources.u.tls = { cert_file: cert, key_file: key };
    raw.sources.u.valid_tokens = ['x'];
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      'sources.u.tls: unknown option `tls` for udp sources; it applies to tcp, splunk_hec sources',
      'sources.u.valid_tokens: unknown option `valid_tokens` for udp sources; it applies to splunk_hec sources',
      'sources.h.max_line_bytes: unknown option `max_line_bytes` for splunk_hec sources; it applies to tcp sources',
    ]);
  });
});

describe('tls on tcp and splunk_hec sources', () => {
  it('reads cert_file and key_file, defaults client_auth to none', () => {
    const raw = withHec({ tls: { cert_file: cert, key_file: key } });
    raw.sources.t.tls = { cert_file: cert, key_file: key, ca_file: cert, client_auth: 'required' };
    const config = validateConfig(raw, {});
    expect(config.sources.h).toMatchObject({
      tls: { cert_file: cert, key_file: key, ca_file: null, client_auth: 'none', handshake_timeout_secs: 10 },
    });
    expect(config.sources.t).toMatchObject({
      tls: { cert_file: cert, key_file: key, ca_file: cert, client_auth: 'required', handshake_timeout_secs: 10 },
    });
    expect(Object.isFrozen((config.sources.t as { tls: object }).tls)).toBe(true);
  });

  it('checks tls.handshake_timeout_secs, 1..3600, naming the option', () => {
    const withTimeout = (value: unknown): Record<string, any> => {
      const raw = withHec({ tls: { cert_file: cert, key_file: key, handshake_timeout_secs: value } });
      raw.sources.t.tls = { cert_file: cert, key_file: key, handshake_timeout_secs: value };
      return raw;
    };
    const config = validateConfig(withTimeout(3), {});
    expect(config.sources.h).toMatchObject({ tls: { handshake_timeout_secs: 3 } });
    expect(config.sources.t).toMatchObject({ tls: { handshake_timeout_secs: 3 } });
    expect(
      (validateConfig(withTimeout(3600), {}).sources.t as { tls: { handshake_timeout_secs: number } }).tls
        .handshake_timeout_secs,
    ).toBe(3600);
    expect(issueLines(() => validateConfig(withTimeout(0), {}))).toEqual([
      'sources.t.tls.handshake_timeout_secs: must be between 1 and 3600, got 0',
      'sources.h.tls.handshake_timeout_secs: must be between 1 and 3600, got 0',
    ]);
    expect(issueLines(() => validateConfig(withTimeout('10s'), {}))).toEqual([
      'sources.t.tls.handshake_timeout_secs: expected an integer, got string "10s"',
      'sources.h.tls.handshake_timeout_secs: expected an integer, got string "10s"',
    ]);
  });

  it('treats tls: null as plain', () => {
    expect(validateConfig(withHec({ tls: null }), {}).sources.h).toMatchObject({ tls: null });
  });

  it('says which file is missing, not a file, or unusable', () => {
    const raw = withHec({ tls: { cert_file: join(dir, 'nope.pem'), key_file: join(dir, 'a-directory') } });
    raw.sources.t.tls = { cert_file: cert, key_file: key, ca_file: join(dir, 'nope-ca.pem') };
    expect(issueLines(() => validateConfig(raw, {}))).toEqual([
      `sources.t.tls.ca_file: ${JSON.stringify(join(dir, 'nope-ca.pem'))} does not exist`,
      `sources.h.tls.cert_file: ${JSON.stringify(join(dir, 'nope.pem'))} does not exist`,
      `sources.h.tls.key_file: ${JSON.stringify(join(dir, 'a-directory'))} is not a file`,
    ]);
  });

  it('rejects a key that does not match the certificate, and a file that is not PEM', () => {
    const lines = issueLines(() => validateConfig(withHec({ tls: { cert_file: cert, key_file: otherKey } }), {}));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^sources\.h\.tls: cert_file, key_file and ca_file do not form a usable TLS setup: .*key values mismatch/,
    );
    const garbage = issueLines(() =>
      validateConfig(withHec({ tls: { cert_file: join(dir, 'garbage.pem'), key_file: key } }), {}),
    );
    expect(garbage[0]).toMatch(/^sources\.h\.tls: cert_file, key_file and ca_file do not form a usable TLS setup: /);
  });

  it('requires ca_file when clients must show a certificate', () => {
    for (const clientAuth of ['optional', 'required']) {
      expect(
        issueLines(() =>
          validateConfig(withHec({ tls: { cert_file: cert, key_file: key, client_auth: clientAuth } }), {}),
        ),
      ).toEqual([
        `sources.h.tls.ca_file: is required when client_auth is ${clientAuth} (the CA that client certificates must chain to)`,
      ]);
    }
  });

  it('checks the block like any other section', () => {
    expect(
      issueLines(() => validateConfig(withHec({ tls: { cert_file: cert, key_fille: key, client_auth: 'yes' } }), {})),
    ).toEqual([
      'sources.h.tls.key_fille: unknown option `key_fille`; did you mean `key_file`?',
      'sources.h.tls.key_file: is required',
      'sources.h.tls.client_auth: must be one of none, optional, required, got "yes"',
    ]);
    expect(issueLines(() => validateConfig(withHec({ tls: 'on' }), {}))).toEqual([
      'sources.h.tls: expected a map, got string "on"',
    ]);
  });
});
