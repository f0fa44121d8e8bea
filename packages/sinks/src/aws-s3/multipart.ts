/**
 * MultipartUpload: one object streamed to S3 as it is written, with part buffers of our own.
 *
 *   write(chunk) ──copy──► part buffer (partSizeBytes) ──full──► UploadPart (queueSize at once)
 *   end() ──► the rest as the last part + CompleteMultipartUpload
 *            (nothing cut yet: one PutObject of what was written instead)
 *
 * Why not @aws-sdk/lib-storage's Upload over a stream: it keeps every written chunk until a part
 * is full, then copies them into a new part (Buffer.concat), so each byte is held twice, and
 * both copies are external memory that V8 frees only at its next full collection of the main
 * thread. Here each byte is copied once into a part buffer, and a part's buffer is freed
 * (detached) the moment S3 has stored it, so memory is the parts waiting or in flight and
 * nothing is left for the collector (a 1,000,000-line burst into S3: docs/benchmarks.md, "Memory").
 *
 * Failures: the client retries transient errors itself (config-to-client.ts), so a failure
 * that reaches us is final: no further part is sent, the parts in flight finish, the multipart
 * upload is aborted (nothing stays billed), and done() rejects with the first error. abort()
 * is the same failure on the caller's behalf, except once the completion (or the single
 * PutObject) is in flight: its answer then decides, as S3 does.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { freeNow } from '../free-now.ts';

export interface MultipartUploadOptions {
  client: S3Client;
  bucket: string;
  key: string;
  contentType: string;
  contentEncoding?: string;
  /** Bytes per part (S3: 5 MiB to 5 GiB; the last part may be smaller). */
  partSizeBytes: number;
  /** Parts uploading at once. */
  queueSize: number;
  /** S3 stored `bytes` more of the object (a part, or the single PutObject, answered). */
  onStored: (bytes: number) => void;
}

/** S3's limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;

interface Part {
  number: number;
  buf: Buffer;
  length: number;
}

export class MultipartUpload {
  readonly #o: MultipartUploadOptions;
  /** The part being filled; allocated at its first byte (unwritten pages cost no memory). */
  #part: Buffer | null = null;
  #fill = 0;
  #nextNumber = 1;
  readonly #queued: Part[] = [];
  #inflight = 0;
  readonly #done: CompletedPart[] = [];
  #uploadId: string | undefined;
  #creating = false;
  #ended = false;
  /** The completion or the single PutObject was sent: its answer settles the upload. */
  #finishing = false;
  #error: { cause: unknown } | null = null;
  #settled = false;
  readonly #outcome: Promise<void>;
  #resolve!: () => void;
  #reject!: (err: unknown) => void;

  constructor(opts: MultipartUploadOptions) {
    this.#o = opts;
    this.#outcome = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Settled through done(); a caller that never asks must not see an unhandled rejection.
    this.#outcome.catch(() => {});
  }

  /** The multipart upload's id once CreateMultipartUpload answered; undefined for a single PutObject. */
  get uploadId(): string | undefined {
    return this.#uploadId;
  }

  /** Resolves when S3 has the whole object; rejects with the first final error (after cleaning up). */
  done(): Promise<void> {
    return this.#outcome;
  }

  /** Copies `chunk` (the caller may reuse it). Discarded after a failure or abort(). */
  write(chunk: Uint8Array): void {
    if (this.#error !== null || this.#ended) return;
    const size = this.#o.partSizeBytes;
    let off = 0;
    while (off < chunk.byteLength) {
      this.#part ??= Buffer.allocUnsafeSlow(size);
      const n = Math.min(chunk.byteLength - off, size - this.#fill);
      this.#part.set(n === chunk.byteLength ? chunk : chunk.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
      if (this.#fill === size) this.#cut();
    }
  }

  /** No more bytes: send what is left and finish the object. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#error !== null) return;
    if (this.#nextNumber === 1) {
      this.#putWhole();
      return;
    }
    if (this.#fill > 0) this.#cut();
    this.#pump();
  }

  /** Give up the object (see the header); done() rejects with `cause`. */
  abort(cause: unknown): void {
    if (this.#finishing) return;
    this.#fail(cause);
  }

  #cut(): void {
    if (this.#nextNumber > MAX_PARTS) {
      const why = `more than ${MAX_PARTS} parts in one multipart upload (part_size_bytes ${this.#o.partSizeBytes})`;
      this.#fail(new Error(why));
      return;
    }
    this.#queued.push({ number: this.#nextNumber++, buf: this.#part!, length: this.#fill });
    this.#part = null;
    this.#fill = 0;
    this.#pump();
  }

  #meta(): { Bucket: string; Key: string } {
    return { Bucket: this.#o.bucket, Key: this.#o.key };
  }

  #putWhole(): void {
    this.#finishing = true;
    const part = this.#part;
    const length = this.#fill;
    this.#part = null;
    const { contentType, contentEncoding } = this.#o;
    const body = part === null ? new Uint8Array(0) : part.subarray(0, length);
    const cmd = new PutObjectCommand({
      ...this.#meta(),
      Body: body,
      ContentType: contentType,
      ...(contentEncoding === undefined ? {} : { ContentEncoding: contentEncoding }),
    });
    this.#o.client.send(cmd).then(
      () => {
        if (part !== null) freeNow(part);
        this.#o.onStored(length);
        this.#settle();
      },
      (err: unknown) => {
        this.#finishing = false;
        this.#fail(err);
      },
    );
  }

  #pump(): void {
    if (this.#error !== null) return;
    if (this.#uploadId === undefined) {
      if (!this.#creating && this.#queued.length > 0) this.#create();
      return;
    }
    while (this.#inflight < this.#o.queueSize && this.#queued.length > 0) this.#send(this.#queued.shift()!);
    if (this.#ended && this.#inflight === 0 && this.#queued.length === 0 && !this.#finishing) this.#complete();
  }

  #create(): void {
    this.#creating = true;
    const { contentType, contentEncoding } = this.#o;
    const cmd = new CreateMultipartUploadCommand({
      ...this.#meta(),
      ContentType: contentType,
      ...(contentEncoding === undefined ? {} : { ContentEncoding: contentEncoding }),
    });
    this.#o.client.send(cmd).then(
      (out) => {
        this.#creating = false;
        if (out.UploadId === undefined) {
          this.#fail(new Error('CreateMultipartUpload answered no UploadId'));
          return;
        }
        this.#uploadId = out.UploadId;
        if (this.#error !== null) this.#settleFailure();
        else this.#pump();
      },
      (err: unknown) => {
        this.#creating = false;
        this.#fail(err);
      },
    );
  }

  #send(part: Part): void {
    this.#inflight++;
    const body = part.buf.subarray(0, part.length);
    const input = { ...this.#meta(), UploadId: this.#uploadId, PartNumber: part.number, Body: body };
    const cmd = new UploadPartCommand(input);
    this.#o.client.send(cmd).then(
      (out) => {
        this.#inflight--;
        freeNow(part.buf);
        if (out.ETag === undefined) {
          this.#fail(new Error(`UploadPart ${part.number} answered no ETag`));
          return;
        }
        this.#done.push({ PartNumber: part.number, ETag: out.ETag });
        this.#o.onStored(part.length);
        if (this.#error !== null) this.#settleFailure();
        else this.#pump();
      },
      (err: unknown) => {
        // Not detached: the request may still hold it; the collector frees it.
        this.#inflight--;
        this.#fail(err);
      },
    );
  }

  #complete(): void {
    this.#finishing = true;
    const parts = this.#done.sort((a, b) => a.PartNumber! - b.PartNumber!);
    const upload = { ...this.#meta(), UploadId: this.#uploadId, MultipartUpload: { Parts: parts } };
    const cmd = new CompleteMultipartUploadCommand(upload);
    this.#o.client.send(cmd).then(
      () => this.#settle(),
      (err: unknown) => {
        this.#finishing = false;
        this.#fail(err);
      },
    );
  }

  #fail(cause: unknown): void {
    if (this.#error === null) this.#error = { cause };
    // What was not sent never will be: drop it now.
    this.#queued.length = 0;
    this.#part = null;
    this.#fill = 0;
    this.#settleFailure();
  }

  /** After a failure: once no part is in flight, abort the multipart upload, then reject. */
  #settleFailure(): void {
    if (this.#settled || this.#inflight > 0 || this.#finishing) return;
    // CreateMultipartUpload still on its way: its answer comes back here with the id to abort.
    if (this.#creating && this.#uploadId === undefined) return;
    this.#settled = true;
    const cause = this.#error!.cause;
    const uploadId = this.#uploadId;
    if (uploadId === undefined) {
      this.#reject(cause);
      return;
    }
    this.#o.client
      .send(new AbortMultipartUploadCommand({ ...this.#meta(), UploadId: uploadId }))
      .catch(() => {}) // the caller's own cleanup tries again; the first error is the one to report
      .then(() => this.#reject(cause));
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#resolve();
  }
}
