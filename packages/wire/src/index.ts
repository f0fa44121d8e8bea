export { LineFramer } from './line-framer.ts';
export type { EmitLine } from './line-framer.ts';
