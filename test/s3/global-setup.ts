/**
 * vitest globalSetup: one real Ceph RADOS Gateway for the whole run (~1.5 s to start).
 * Test files get its coordinates with `inject('s3')` (typed in ./rgw.ts) and create their
 * own buckets. Tests that stop the gateway start a private one with startRgw() instead.
 *
 * Installs Ceph first through scripts/ensure-ceph.sh (a no-op when present) unless
 * SLUICE_SKIP_CEPH_INSTALL=1. A gateway that cannot start fails the run: never a skip.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startRgw } from './rgw.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.SLUICE_SKIP_CEPH_INSTALL !== '1') {
    const script = fileURLToPath(new URL('../../scripts/ensure-ceph.sh', import.meta.url));
    execFileSync('bash', [script], { stdio: 'inherit' });
  }
  const rgw = await startRgw();
  project.provide('s3', {
    endpoint: rgw.endpoint,
    accessKeyId: rgw.accessKeyId,
    secretAccessKey: rgw.secretAccessKey,
    region: rgw.region,
  });
  return async () => {
    await rgw.stop();
  };
}
