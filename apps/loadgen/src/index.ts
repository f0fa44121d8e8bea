export { prng, serviceLine, kernelLine } from './talos-lines.ts';
export type { LineOptions } from './talos-lines.ts';
