import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/**/src/**/*.test.ts', 'apps/**/src/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Real sockets, threads and child processes: keep files isolated, two at a time on 2 cores.
    globalSetup: ['test/s3/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
  },
});
