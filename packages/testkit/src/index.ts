/**
 * Seeded data and condition waits for Sluice's tests, benchmarks and load generator. tmpfs.ts
 * (it spawns mount(8)) and pieces.ts are imported by path.
 */
export { mulberry32 } from './prng.ts';
export { kernelLine, serviceLine, TalosLineGenerator, type LineOptions } from './talos-lines.ts';
export { waitUntil } from './wait.ts';
