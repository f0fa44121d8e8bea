export * from './schema.ts';
export * from './components.ts';
export { SluiceError, ConfigError, type ConfigIssue } from './errors.ts';
export * from './error-codes.ts';
export { checkAddress, parseAddress, canonicalHost } from './address.ts';
export { interpolate, type Interpolation } from './interpolate.ts';
export { didYouMean, closest, editDistance } from './suggest.ts';
export type { Compression, WhenFull, HostPort, ListenAddress, Env } from './types.ts';
