/** Value types shared by every component's options. */

export type Compression = 'zstd' | 'gzip' | 'none';
/** What a sink does when it cannot take more: wait (push back) or drop the newest, counted. */
export type WhenFull = 'block' | 'drop_newest';

/** A listening address: `host` is ready for `listen()` (IPv6 without brackets). */
export interface HostPort {
  readonly host: string;
  /** 0..65535; 0 = any free port. */
  readonly port: number;
}

/** An `address` option: the text as written (after interpolation) and its parts. */
export interface ListenAddress extends HostPort {
  readonly address: string;
}

/** Environment variables for `${VAR}` interpolation. */
export type Env = Readonly<Record<string, string | undefined>>;
