/**
 * The seam between the object writer and a destination (file tree, S3). One ObjectStore per
 * sink; the writer opens one ObjectUpload per object and either closes or aborts it.
 * Contract: docs/internals.md, "ObjectStore".
 */

/** HTTP-style metadata of an object; the file store ignores it, S3 stores it. */
export interface ObjectMeta {
  contentType: string;
  /** `zstd` | `gzip`; absent for plain NDJSON. */
  contentEncoding?: string;
}

/** What check() found worth telling the operator. Nothing in it is ever deleted automatically. */
export interface ObjectStoreCheck {
  /** Partial objects left by an earlier crash (file store: `.<name>.<hex>.tmp` older than an hour). */
  staleTempFiles: number;
  /** One of them, for the log line. */
  firstStaleTempFile?: string;
  /** false when part of the destination could not be listed (the count is then a lower bound). */
  scanComplete: boolean;
}

export interface ObjectStore {
  /** Begin a new object. Never throws for I/O: failures surface from write/close. */
  open(key: string, meta: ObjectMeta): ObjectUpload;
  /**
   * Checks the destination is writable (mkdir -p / HeadBucket). Throws SluiceError.
   * May resolve a report for the daemon to log (the file store does); `void` is fine.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: stores without a report are `async check(): Promise<void>`.
  check(): Promise<ObjectStoreCheck | void>;
  /**
   * true when an upload's write() copies the chunk before it returns (S3's part buffers), so
   * the caller may free it at once. Absent or false: the upload keeps a reference until the
   * bytes are written (the file store's write streams).
   */
  readonly copiesChunks?: boolean;
  /**
   * Bytes written to this store's uploads and not yet stored (sluice_sink_buffered_bytes).
   * Optional: a store without a buffer of its own leaves it out.
   */
  readonly bufferedBytes?: number;
  /**
   * Abort what an earlier run left half-stored under exactly `key` (S3's incomplete multipart
   * uploads), resolving how many. Optional: a store that leaves nothing behind has none. A
   * method rather than a check of the store's class, so that the daemon need not load a
   * store's SDK to ask.
   */
  abortIncompleteUploads?(key: string): Promise<number>;
  /** Let go of what the store holds open (an S3 client's keep-alive sockets). Optional. */
  release?(): void;
  /**
   * true while a write waits for the local disk (full, read-only, failing: the file store's
   * retries). Its uploads' write() return false meanwhile. Optional: absent = never.
   */
  readonly blocked?: boolean;
}

export interface ObjectUpload {
  /**
   * Append bytes. false = buffered beyond the store's bound: wait for 'drain'.
   * The store keeps a reference to `chunk` until it is written: the caller must not reuse it.
   * A store whose upload already failed keeps accepting (and discarding) bytes and still
   * emits 'drain', so a writer waiting on it never hangs; the failure comes from close().
   */
  write(chunk: Uint8Array): boolean;
  once(event: 'drain', fn: () => void): void;
  /**
   * Finish the object so readers see it whole. Resolves when durable. When it rejects,
   * no reader sees the object (or any part of it) and the store has cleaned up after itself.
   */
  close(): Promise<void>;
  /** Throw away a partial object. */
  abort(): Promise<void>;
}
