/**
 * Test support: a throwaway PKI made with the openssl CLI in a temp directory. A CA, a server
 * certificate it signs for localhost / 127.0.0.1 / ::1, a client certificate it signs, and an
 * unrelated CA (to fail verification against). Not exported from the package index.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  otherCaFile: string;
  otherCertFile: string;
  otherKeyFile: string;
  ca: Buffer;
  otherCa: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function selfSignedCa(dir: string, name: string, cn: string): void {
  openssl(
    [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

function signed(dir: string, name: string, ca: string, cn: string, ext: string): void {
  openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`, '-addext', ext], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-copy_extensions',
      'copyall',
    ],
    dir,
  );
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pki-'));
  selfSignedCa(dir, 'ca', 'Sluice Test CA');
  selfSignedCa(dir, 'other-ca', 'Some Other CA');
  signed(dir, 'server', 'ca', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1');
  signed(dir, 'client', 'ca', 'talos-node-1', 'extendedKeyUsage=clientAuth');
  signed(dir, 'other', 'other-ca', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1');
  const f = (name: string) => join(dir, name);
  return {
    dir,
    caFile: f('ca.pem'),
    certFile: f('server.pem'),
    keyFile: f('server.key'),
    clientCertFile: f('client.pem'),
    clientKeyFile: f('client.key'),
    otherCaFile: f('other-ca.pem'),
    otherCertFile: f('other.pem'),
    otherKeyFile: f('other.key'),
    ca: readFileSync(f('ca.pem')),
    otherCa: readFileSync(f('other-ca.pem')),
    clientCert: readFileSync(f('client.pem')),
    clientKey: readFileSync(f('client.key')),
  };
}
