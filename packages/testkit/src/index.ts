/**
 * Seeded data and condition waits for Sluice's tests, benchmarks and load generator. The tmpfs
 * (it spawns mount(8)) and the slow writer are subpath exports: @sluice/testkit/tmpfs, /pieces.
 */
export { mulberry32 } from './prng.ts';
export { kernelLine, serviceLine, TalosLineGenerator, type LineOptions } from './talos-lines.ts';
export { waitUntil } from './wait.ts';
