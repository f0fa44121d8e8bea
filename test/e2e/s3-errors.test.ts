/**
 * What a user sees when an aws_s3 sink cannot work: wrong credentials, a missing bucket, an
 * endpoint nothing answers on. `sluice run` refuses to start (exit 1, one line on stderr
 * naming the sink, no stack) before binding a port; `sluice validate --check-connectivity`
 * reports each sink. The secret, given through `${ENV}`, appears nowhere.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { rgwClient } from '../s3/rgw.ts';
import { tempDir } from '../helpers/daemon.ts';
import { freshBucket, runCli } from '../helpers/s3.ts';

const env = inject('s3');
const client = rgwClient(env);
afterAll(() => client.destroy());

function config(endpoint: string, bucket: string): string {
  const dir = tempDir();
  const path = join(dir, 'sluice.yaml');
  writeFileSync(
    path,
    `
data_dir: ${dir}/data
log: { level: debug }
api: { address: 127.0.0.1:0 }
sources:
  talos: { type: tcp, address: 127.0.0.1:0 }
sinks:
  s3:
    type: aws_s3
    inputs: [talos]
    endpoint: ${endpoint}
    bucket: ${bucket}
    access_key_id: \${S3_ACCESS_KEY_ID}
    secret_access_key: \${S3_SECRET_ACCESS_KEY}
`,
  );
  return path;
}

describe('aws_s3 sink: errors a user sees', () => {
  it('wrong credentials, missing bucket, unreachable endpoint: `sluice run` and `sluice validate --check-connectivity`', {
    timeout: 60_000,
  }, async () => {
    const bucket = await freshBucket(client, 'e2e-errors');
    const missing = `no-such-bucket-${randomBytes(4).toString('hex')}`;
    // Port 1 (tcpmux, privileged): nothing listens there, and no port-0 listener of a parallel
    // test can be given it, as it could a port freePort() found free a moment ago.
    const deadPort = 1;
    const dead = `http://127.0.0.1:${deadPort}`;
    const wrongSecret = randomBytes(30).toString('base64');
    const good = { S3_ACCESS_KEY_ID: env.accessKeyId, S3_SECRET_ACCESS_KEY: env.secretAccessKey };
    const wrong = { S3_ACCESS_KEY_ID: env.accessKeyId, S3_SECRET_ACCESS_KEY: wrongSecret };
    const cases = [
      {
        name: 'wrong credentials',
        path: config(env.endpoint, bucket),
        env: wrong,
        message: `endpoint ${env.endpoint} refused the credentials for bucket "${bucket}" (HTTP 403 Forbidden); check access_key_id and secret_access_key, and that they may read and write the bucket (SLUICE_ERR_S3_CREDENTIALS)`,
      },
      {
        name: 'missing bucket',
        path: config(env.endpoint, missing),
        env: good,
        message: `bucket "${missing}" does not exist at endpoint ${env.endpoint}; create it or fix the sink's bucket (SLUICE_ERR_S3_NO_BUCKET)`,
      },
      {
        name: 'unreachable endpoint',
        path: config(dead, bucket),
        env: good,
        message: `cannot reach endpoint ${dead}: no answer within 5000 ms (connect ECONNREFUSED 127.0.0.1:${deadPort}); check the endpoint and the network (SLUICE_ERR_S3_UNREACHABLE)`,
      },
    ];
    // All at once: the unreachable endpoint takes the whole 5 s check timeout.
    const results = await Promise.all(
      cases.flatMap((c) => [
        runCli(['run', '--config', c.path], c.env).then((r) => ({ c, cmd: 'run', r })),
        runCli(['validate', '--config', c.path, '--check-connectivity'], c.env).then((r) => ({
          c,
          cmd: 'validate',
          r,
        })),
      ]),
    );
    for (const { c, cmd, r } of results) {
      const where = `${c.name}, sluice ${cmd}`;
      expect(r.status, where).toBe(1);
      if (cmd === 'run') {
        expect(r.stderr, where).toBe(`sluice: sink s3: ${c.message}\n`);
        // One structured line for log shippers, no stack, nothing bound.
        const logs = r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(
          logs.filter((l) => l['msg'] === 'sluice could not start'),
          where,
        ).toHaveLength(1);
        expect(
          logs.some((l) => l['msg'] === 'sluice is running'),
          where,
        ).toBe(false);
        expect(r.stdout, where).not.toMatch(/\n\s+at /);
      } else {
        expect(r.stdout, where).toBe(`${c.path}: OK (1 sources, 1 sinks)\n`);
        expect(r.stderr, where).toBe(`sinks.s3 (aws_s3): ${c.message}\n`);
      }
      // Bounded by the 5 s check, not by the SDK's retries; the slack is for six CLIs starting at once.
      expect(r.ms, where).toBeLessThan(30_000);
      for (const secret of [wrongSecret, env.secretAccessKey]) {
        expect(r.stdout + r.stderr, where).not.toContain(secret);
      }
    }

    const ok = await runCli(['validate', '--config', cases[0]!.path, '--check-connectivity'], good);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe(`${cases[0]!.path}: OK (1 sources, 1 sinks)\nsinks.s3 (aws_s3): OK\n`);
    expect(ok.status).toBe(0);
  });
});
