/**
 * A Tailscale-shaped stream into the daemon's splunk_hec source over HTTPS, out through the
 * aws_s3 sink into the run's shared Ceph RGW (inject('s3')): configuration audit events posted
 * to /services/collector/event with `Authorization: Splunk <token>`, stacked envelopes, some
 * gzip, several clients at once. Every event lands exactly once, as sent, with its tags.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { rgwClient } from '../s3/rgw.ts';
import { metricSum, scrape, startDaemon, tempDir } from '../helpers/daemon.ts';
import { countIds, freshBucket, openUploads, s3Connection, s3Env } from '../helpers/s3.ts';
import { waitUntil } from '@sluice/testkit';
import { makeTestPki } from '@sluice/sources/test-certs';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

const TOKEN = 'c0ffee00-1234-4abc-8def-0123456789ab';

/** One audit event the way Tailscale streams it to Splunk: `time` (epoch seconds) and `event`. */
function auditEnvelope(id: number): string {
  return JSON.stringify({
    time: 1732270000 + id / 1000,
    event: {
      eventGroupID: `group-${id}`,
      origin: 'ADMIN_CONSOLE',
      actor: { id: 'uXXXXCNTRL', type: 'USER', loginName: 'admin@example.com', displayName: 'Admin' },
      target: { id: `n${id}CNTRL`, name: `node-${id % 97}.tail1234.ts.net`, type: 'NODE' },
      action: id % 3 === 0 ? 'UPDATE' : 'CREATE',
      actionDetails: 'tags changed',
      old: { tags: ['tag:old'] },
      new: { tags: ['tag:new', `tag:n${id % 5}`] },
    },
  });
}

function post(
  address: string,
  ca: Buffer,
  headers: Record<string, string>,
  body: string | Buffer,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `https://${address}/services/collector/event`,
      { method: 'POST', headers, ca, servername: 'localhost' },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('end to end: Tailscale log streaming into splunk_hec, out to aws_s3 (Ceph RGW)', () => {
  it('20,000 audit events from 8 clients over HTTPS: each stored exactly once, as sent, tagged', {
    timeout: 60_000,
  }, async () => {
    const EVENTS = 20_000;
    const PER_REQUEST = 100;
    const CLIENTS = 8;
    const pki = makeTestPki();
    const bucket = await freshBucket(client, 'e2e-hec');
    const dir = tempDir();
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  tailscale:
    type: splunk_hec
    address: "[::1]:0"
    valid_tokens: ["\${HEC_TOKEN}"]
    extra_tags: { tailnet: example.com }
    tls: { cert_file: ${pki.certFile}, key_file: ${pki.keyFile} }
sinks:
  s3:
    type: aws_s3
    inputs: [tailscale]
    ${s3Connection(env.endpoint, bucket)}
    key_prefix: audit/
    upload_period_secs: 2
`,
      { dir, env: { ...s3Env(env), HEC_TOKEN: TOKEN } },
    );
    const address = daemon.sources['tailscale']![0]!;
    expect(address).toMatch(/^\[::1\]:\d+$/);

    // A wrong token first: refused, counted, nothing stored.
    expect(await post(address, pki.ca, { authorization: 'Splunk not-the-token' }, auditEnvelope(0))).toEqual({
      status: 403,
      body: '{"text":"Invalid token","code":4}',
    });

    const envelopes = Array.from({ length: EVENTS }, (_, id) => auditEnvelope(id));
    let next = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < EVENTS) {
          const start = next;
          next += PER_REQUEST;
          const body = envelopes.slice(start, start + PER_REQUEST).join('\n');
          const gzip = (start / PER_REQUEST) % 2 === 1;
          const headers: Record<string, string> = {
            authorization: `Splunk ${TOKEN}`,
            'content-type': 'application/json',
          };
          if (gzip) headers['content-encoding'] = 'gzip';
          const reply = await post(address, pki.ca, headers, gzip ? gzipSync(body) : body);
          expect(reply).toEqual({ status: 200, body: '{"text":"Success","code":0}' });
        }
      }),
    );
    const metrics = await scrape(daemon.apiPort);
    expect(metricSum(metrics, 'sluice_source_received_events_total', { component_id: 'tailscale' })).toBe(EVENTS + 1);
    expect(
      metricSum(metrics, 'sluice_source_discarded_events_total', { component_id: 'tailscale', reason: 'unauthorized' }),
    ).toBe(1);
    expect(metricSum(metrics, 'sluice_source_http_requests_total', { component_id: 'tailscale', status: '200' })).toBe(
      EVENTS / PER_REQUEST,
    );
    expect(await daemon.stop()).toBe(0);

    const wrong: string[] = [];
    const seen = await countIds(client, bucket, 'audit/', EVENTS, (rec) => {
      const id = Number(/^group-(\d+)$/.exec(String((rec['event'] as Record<string, unknown>)['eventGroupID']))![1]);
      const { tailnet, ...original } = rec;
      if (tailnet !== 'example.com' || JSON.stringify(original) !== envelopes[id]) wrong.push(JSON.stringify(rec));
      return id;
    });
    expect(wrong.slice(0, 3)).toEqual([]);
    expect(seen.every((n) => n === 1)).toBe(true);
    expect(await openUploads(client, bucket)).toEqual([]);
  });

  it('SIGHUP reloads the certificate for new connections; a broken file keeps the old one', {
    timeout: 30_000,
  }, async () => {
    const pki = makeTestPki();
    const dir = tempDir();
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(pki.certFile, cert);
    copyFileSync(pki.keyFile, key);
    const daemon = await startDaemon(
      `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  tailscale: { type: splunk_hec, address: "127.0.0.1:0", valid_tokens: [${TOKEN}], tls: { cert_file: ${cert}, key_file: ${key} } }
sinks:
  out: { type: file, inputs: [tailscale], path: ${dir}/out }
`,
      { dir },
    );
    const address = daemon.sources['tailscale']![0]!;
    const auth = { authorization: `Splunk ${TOKEN}`, connection: 'close' };
    expect((await post(address, pki.ca, auth, auditEnvelope(1))).status).toBe(200);
    copyFileSync(pki.otherCertFile, cert);
    copyFileSync(pki.otherKeyFile, key);
    daemon.proc.kill('SIGHUP');
    await waitUntil('the reload', () => daemon.logs.some((l) => l['msg'] === 'tls certificate reloaded'), 30_000, 20);
    expect((await post(address, pki.otherCa, auth, auditEnvelope(2))).status).toBe(200);
    await expect(post(address, pki.ca, auth, auditEnvelope(3))).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    writeFileSync(key, 'not a key\n');
    daemon.proc.kill('SIGHUP');
    await waitUntil(
      'the failed reload',
      () => daemon.logs.some((l) => String(l['msg']).startsWith('tls reload failed')),
      30_000,
      20,
    );
    expect((await post(address, pki.otherCa, auth, auditEnvelope(4))).status).toBe(200);
    expect(await daemon.stop()).toBe(0);
  });
});
