/**
 * @sluice/wire: newline framing for TCP json_lines.
 *
 * A LineFramer turns socket chunks into lines without copying in the common case:
 *
 * ```
 *  chunk k:    [ ...tail of line A | line B \n | line C \r\n | start of line D ]
 *  chunk k+1:  [ rest of line D \n | line E \n | ...
 *
 *  B, C, E: emitted as subranges of their chunk (zero copy)
 *  A, D:    span chunks: assembled in one reused internal buffer (at most maxLineBytes + 1 bytes,
 *           the +1 holding a '\r' that may turn out to precede the '\n')
 * ```
 *
 * Backpressure: the emit callback returns false to refuse a line; the framer stops there and
 * offers the same line again on the next drain(). An oversize line is counted the moment it
 * provably exceeds maxLineBytes and skipped up to its '\n' without being buffered.
 *
 * Block mode (`maxBlockBytes` > 0, what the TCP source uses): consecutive complete lines of one
 * chunk go out as ONE block, `buf[start, end)` ending just past a '\n', each line keeping its
 * '\n' (and its '\r', if any). The ring then takes one record per block instead of one per line:
 * the main thread's per-line work is one memchr, and the worker splits the block. Empty and
 * oversize lines are never inside a block (they end it and are counted here, as in line mode),
 * and a line that spans chunks, or is longer than maxBlockBytes, goes out alone as in line mode.
 */

import { Buffer } from 'node:buffer';

const LF = 10;
const CR = 13;
// Buffer#indexOf (a native memchr) also works on a plain Uint8Array and finds the next '\n'
// of a 246-byte line in ~65 ns, against ~145 ns for Uint8Array#indexOf (Node 24, x64).
const indexOfByte = Buffer.prototype.indexOf;

/**
 * Receives one line: `buf[start, end)`, without the '\n' and one trailing '\r' (`lines` is 0), or
 * in block mode a block of `lines` >= 1 complete lines, each with its '\n' (see the file header).
 * `buf` is only valid during the call (it is the socket chunk or the framer's reused buffer):
 * copy what you keep. Return false to refuse it for now (it is offered again on the next
 * drain/finish).
 */
export type EmitLine = (buf: Uint8Array, start: number, end: number, lines: number) => boolean;

const EMPTY = new Uint8Array(0);

export class LineFramer {
  readonly #maxLineBytes: number;
  readonly #maxBlockBytes: number;
  /** Chunks pushed and not fully framed; #chunks[#head] is current, read from #pos. */
  #chunks: Uint8Array[] = [];
  #head = 0;
  #pos = 0;
  /** A line spanning chunks, assembled so far: #partial[0, #partialLen). */
  #partial: Uint8Array = EMPTY;
  #partialLen = 0;
  /** #partial holds a complete line (its '\n' was seen) that emit has not accepted yet. */
  #partialReady = false;
  /** Skipping the rest of an oversize line (already counted) up to its '\n'. */
  #discarding = false;
  /** Backing for retain()'s copies (see there). */
  #spare: Uint8Array = new Uint8Array(0);
  #oversizeLines = 0;
  #emptyLines = 0;

  /**
   * @param maxLineBytes longest accepted line, excluding the '\n' and a trailing '\r'.
   * @param opts.maxBlockBytes block mode: emit runs of complete lines of at most this many bytes
   *   as one block (0, the default: one line per emit).
   */
  constructor(maxLineBytes: number, opts: { maxBlockBytes?: number } = {}) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1 || maxLineBytes > 2 ** 30) {
      throw new RangeError(`max_line_bytes must be an integer between 1 and 2^30, got ${maxLineBytes}`);
    }
    const maxBlockBytes = opts.maxBlockBytes ?? 0;
    if (!Number.isInteger(maxBlockBytes) || maxBlockBytes < 0) {
      throw new RangeError(`maxBlockBytes must be an integer >= 0, got ${maxBlockBytes}`);
    }
    this.#maxLineBytes = maxLineBytes;
    this.#maxBlockBytes = maxBlockBytes;
  }

  /** Lines dropped for being longer than maxLineBytes. */
  get oversizeLines(): number {
    return this.#oversizeLines;
  }

  /** Empty lines (including a bare "\r") skipped. */
  get emptyLines(): number {
    return this.#emptyLines;
  }

  /** Bytes held: the unframed remainder of pushed chunks plus a partial line. */
  bufferedBytes(): number {
    let n = this.#partialLen;
    for (let i = this.#head; i < this.#chunks.length; i++) n += this.#chunks[i]!.length;
    return n - this.#pos;
  }

  /**
   * The caller is about to reuse the memory of the chunks it pushed (a socket read into one
   * reused buffer): copy the bytes still queued (lines refused under backpressure, and what
   * follows them) so the framer owns them. Free when nothing is queued, the usual case. The
   * copy goes into one spare buffer the framer keeps (sized to the largest copy so far) when
   * that is free: a socket is paused while lines are queued, so one is normally enough, and a
   * fresh allocation per blocked read made the main thread's full collections (external
   * memory) more frequent.
   */
  retain(): void {
    const chunks = this.#chunks;
    for (let i = this.#head; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      if (chunk.buffer === this.#spare.buffer) continue; // already ours
      const from = i === this.#head ? this.#pos : 0;
      const n = chunk.length - from;
      let owned: Uint8Array;
      if (!this.#spareInUse(i)) {
        if (this.#spare.length < n) this.#spare = new Uint8Array(Math.max(n, 4096));
        owned = this.#spare.subarray(0, n);
      } else {
        owned = new Uint8Array(n); // a copy (Buffer#slice would be a view of the memory about to be reused)
      }
      owned.set(from === 0 ? chunk : chunk.subarray(from));
      chunks[i] = owned;
      if (i === this.#head) this.#pos = 0;
    }
  }

  /** Whether a queued chunk other than chunks[except] lives in the spare buffer. */
  #spareInUse(except: number): boolean {
    const chunks = this.#chunks;
    for (let i = this.#head; i < chunks.length; i++)
      if (i !== except && chunks[i]!.buffer === this.#spare.buffer) return true;
    return false;
  }

  /**
   * Feed the next chunk from the socket. The framer keeps a reference (no copy): do not modify
   * the chunk afterwards. Normally called after drain() returned true; pushing while lines are
   * still pending (backpressure) queues the chunk behind them.
   */
  push(chunk: Uint8Array): void {
    if (chunk.length !== 0) this.#chunks.push(chunk);
  }

  /**
   * Emit every complete line, in order. Stops at the first line `emit` refuses and keeps it for
   * the next call. Oversize lines are dropped and counted, empty lines skipped and counted.
   * @returns true when every complete line has been emitted (only a partial line may remain).
   */
  drain(emit: EmitLine): boolean {
    if (this.#partialReady && !this.#emitPartial(emit)) return false;
    const max = this.#maxLineBytes;
    const maxBlock = this.#maxBlockBytes;
    const chunks = this.#chunks;
    while (this.#head < chunks.length) {
      const chunk = chunks[this.#head]!;
      const len = chunk.length;
      let pos = this.#pos;
      // Block mode: complete lines chunk[runStart, pos) not emitted yet (runLines of them).
      let runStart = pos;
      let runLines = 0;
      while (pos < len) {
        const nl = indexOfByte.call(chunk, LF, pos);
        if (this.#discarding) {
          if (nl === -1) {
            pos = len;
            break;
          }
          this.#discarding = false;
          pos = nl + 1;
          continue;
        }
        if (this.#partialLen !== 0) {
          // The line began in an earlier chunk: finish assembling it.
          const end = nl === -1 ? len : nl;
          if (!this.#append(chunk, pos, end, nl !== -1)) {
            pos = nl === -1 ? len : nl + 1;
            continue; // oversize: counted; discarding if its '\n' is still to come
          }
          if (nl === -1) {
            pos = len;
            break;
          }
          pos = nl + 1;
          this.#partialReady = true;
          if (!this.#emitPartial(emit)) {
            this.#pos = pos;
            return false;
          }
          continue;
        }
        if (nl === -1) {
          if (runLines !== 0 && !this.#emitRun(emit, chunk, runStart, pos, runLines)) return false;
          runLines = 0;
          // A line starts here and continues in a later chunk: copy the tail (bounded).
          this.#append(chunk, pos, len, false); // false = oversize already: counted, discarding
          pos = len;
          break;
        }
        let end = nl;
        if (end > pos && chunk[end - 1] === CR) end--;
        if (maxBlock !== 0 && end !== pos && end - pos <= max && nl + 1 - pos <= maxBlock) {
          // Block mode, a line that may join the run.
          if (runLines !== 0 && nl + 1 - runStart > maxBlock) {
            if (!this.#emitRun(emit, chunk, runStart, pos, runLines)) return false;
            runLines = 0;
          }
          if (runLines === 0) runStart = pos;
          runLines++;
          pos = nl + 1;
          continue;
        }
        // An empty, oversize or long line ends the run; nothing of it is counted until the run is taken.
        if (runLines !== 0 && !this.#emitRun(emit, chunk, runStart, pos, runLines)) return false;
        runLines = 0;
        if (end === pos) {
          this.#emptyLines++;
        } else if (end - pos > max) {
          this.#oversizeLines++;
        } else if (!emit(chunk, pos, end, 0)) {
          this.#pos = pos;
          return false;
        }
        pos = nl + 1;
      }
      if (runLines !== 0 && !this.#emitRun(emit, chunk, runStart, pos, runLines)) return false;
      // Chunk fully framed: drop our reference so the socket's buffer can be collected.
      chunks[this.#head] = EMPTY;
      this.#head++;
      this.#pos = 0;
    }
    chunks.length = 0;
    this.#head = 0;
    return true;
  }

  /** Offer the block chunk[start, end) of `lines` lines; refused, the next drain() starts over at `start`. */
  #emitRun(emit: EmitLine, chunk: Uint8Array, start: number, end: number, lines: number): boolean {
    if (emit(chunk, start, end, lines)) return true;
    this.#pos = start;
    return false;
  }

  /**
   * At connection close: drain, then emit the final line that had no '\n' (one trailing '\r'
   * removed; skipped if oversize or empty). Same return contract as drain(); once it returns
   * true the framer is empty and may be reused.
   */
  finish(emit: EmitLine): boolean {
    if (!this.drain(emit)) return false;
    this.#discarding = false;
    if (this.#partialLen === 0) return true;
    this.#partialReady = true;
    return this.#emitPartial(emit);
  }

  /**
   * Append src[start, end) to the partial line. `complete` says whether a '\n' follows `end`.
   * Returns false (and counts the line as oversize, dropping what was buffered) as soon as the
   * line provably exceeds maxLineBytes: more than max+1 raw bytes, or max+1 not ending in '\r'.
   */
  #append(src: Uint8Array, start: number, end: number, complete: boolean): boolean {
    const max = this.#maxLineBytes;
    const n = end - start;
    const total = this.#partialLen + n;
    const last = n !== 0 ? src[end - 1] : this.#partial[this.#partialLen - 1];
    const stripped = last === CR ? total - 1 : total;
    if (stripped > max || (!complete && total > max + 1)) {
      this.#oversizeLines++;
      this.#partialLen = 0;
      this.#discarding = !complete;
      return false;
    }
    if (total > this.#partial.length) this.#grow(total);
    this.#partial.set(n === src.length ? src : src.subarray(start, end), this.#partialLen);
    this.#partialLen = total;
    return true;
  }

  #grow(needed: number): void {
    // Double from 4 KiB, capped at max+1: one long line does not pin more than it needs.
    let size = Math.max(4096, this.#partial.length * 2);
    while (size < needed) size *= 2;
    const next = new Uint8Array(Math.min(size, this.#maxLineBytes + 1));
    next.set(this.#partial.subarray(0, this.#partialLen));
    this.#partial = next;
  }

  /** Offer the assembled line; clears it when accepted (or when it turns out empty). */
  #emitPartial(emit: EmitLine): boolean {
    let end = this.#partialLen;
    if (this.#partial[end - 1] === CR) end--;
    if (end === 0) {
      this.#emptyLines++;
    } else if (!emit(this.#partial, 0, end, 0)) {
      return false;
    }
    this.#partialLen = 0;
    this.#partialReady = false;
    return true;
  }
}
