// Local config for the S3 tests until vitest.config.ts lists test/s3/global-setup.ts:
//   npx vitest run -c test/s3/vitest.s3.config.ts packages/sinks/src/aws-s3 test/s3
import { fileURLToPath } from 'node:url';
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../../vitest.config.ts';

export default mergeConfig(
  base,
  defineConfig({
    root: fileURLToPath(new URL('../..', import.meta.url)),
    test: { globalSetup: ['test/s3/global-setup.ts'] },
  }),
);
