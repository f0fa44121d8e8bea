/**
 * The seam between `sluice read` and a destination: list a sink's objects in key order and
 * fetch one object's stored bytes as a stream. One ObjectReader per location; a sink type
 * provides it through its definition (`reader`), so the read command names no type.
 */

/** One object as the listing saw it. */
export interface ListedObject {
  /** The object's key under the store's root, key_prefix included (`talos/2024/05/01/...`). */
  readonly key: string;
  /** Stored (compressed) size in bytes. */
  readonly size: number;
}

export interface ObjectReader {
  /** Where it reads, for people (`/data/out/talos/`, `s3://bucket/talos/`): never credentials. */
  readonly location: string;
  /**
   * Keys under the location that sort after `startAfter` (all of them when undefined), in
   * ascending key order (byte order), skipping objects still being written.
   * @throws SluiceError naming the location and what to fix when it cannot be listed.
   */
  list(startAfter: string | undefined, signal: AbortSignal): AsyncIterable<ListedObject>;
  /**
   * The object's stored bytes, in chunks (each chunk is the caller's to keep).
   * @throws when it cannot be fetched; the message names the reason, never a credential.
   */
  read(key: string, signal: AbortSignal): AsyncIterable<Uint8Array>;
  /** Let go of connections. */
  release(): void;
}

/** What `sluice read --path` passes besides the path. */
export interface ReadPathOptions {
  /** `--endpoint URL`, for a store reached through a URL. */
  readonly endpoint?: string;
  /** `--region R`. */
  readonly region?: string;
}
