/**
 * The contract between the dispatcher (main thread) and the worker task: what crosses the
 * thread boundary. Types only, so the main thread can import them without loading task.ts.
 */
import type { Codec } from './codecs.ts';
import type { FrameFacts } from './facts.ts';
import type { BatchCounts } from './process.ts';

/** One piscina task: a record-aligned span [start, end) of a source's ring. */
export interface BatchTask {
  /** The ring's SharedArrayBuffer (shared, never copied, by postMessage). */
  sab: SharedArrayBuffer;
  /** Free-running u32 ring indices of the span (from Ring.claim). */
  start: number;
  end: number;
  /** Which source the span belongs to: selects its tags and dead-letter setting. */
  sourceId: string;
  /** One frame is returned per codec, in this order. */
  codecs: Codec[];
}

/** The answer to a {@link BatchTask}. Never a thrown error: failures are `{ ok: false }`. */
export type BatchResult =
  | {
      ok: true;
      /** One independent frame per requested codec, same order; each owns its ArrayBuffer (transferred). */
      frames: Uint8Array[];
      /** Dead-letter NDJSON, or null when dead-lettering is off for the source or no record was malformed. */
      deadLetter: Uint8Array | null;
      counts: BatchCounts;
      /** Bytes of ring span processed (end - start). */
      rawBytes: number;
      /** Bytes of NDJSON before compression. */
      ndjsonBytes: number;
      /** The batch's record-time range and field values, for its object's index (facts.ts); absent = no index. */
      facts?: FrameFacts;
      /** Milliseconds the worker spent on the task (the pool's busy time and utilisation add these up). */
      busyMs: number;
    }
  | { ok: false; error: string };

/** Per-source settings, compiled once per worker into a TagPlan. */
export interface SourceSettings {
  /** Flat string tags added to every record, overwriting keys of the same name. */
  extraTags: Record<string, string>;
  /** Key that receives the peer address (overwrites, applied after extraTags), or null. */
  hostKey: string | null;
  /** Keep malformed records as dead-letter NDJSON. */
  deadLetter: boolean;
}

/** piscina `workerData`: everything a worker needs, compiled once at module load. */
export interface WorkerSettings {
  sources: Record<string, SourceSettings>;
  levels: { zstd: number; gzip: number };
  /** Nesting limit of records (default 128, see process.ts). */
  maxDepth?: number;
  /** Gather each batch's index facts (facts.ts): some sink indexes its objects (`index`, on by default). Default false here. */
  index?: boolean;
}
