/**
 * What a sink does when its local disk refuses a write: which errors are worth waiting out,
 * how long to wait between tries, and one "blocked" state per sink and target that the
 * metrics and the log report. Used by the file store (target `object`) and by the spooling
 * writer (target `spool`, apps/sluice/src/spooling.ts).
 *
 * A full disk is not a reason to throw away what was accepted: the write is tried again, at
 * the same file offset, until the disk takes it (an operator frees or grows it), while the
 * writer pushes back on the sources. Only errors that such an intervention can clear are
 * retried; anything else (ENOTDIR, EISDIR, EINVAL, EBADF, ...) is a bug or a config error,
 * and fails the object as before.
 */

/** Where the blocked write was going: an object in the sink's store, or the sink's spool. */
export type DiskTarget = 'object' | 'spool';

/**
 * Error codes a disk can throw and later stop throwing:
 * - ENOSPC, EDQUOT: full, or over a quota; space returns when files are removed or the
 *   volume grows.
 * - EIO: a failing or briefly lost device (a network block device, a USB disk reconnecting).
 * - EACCES, EPERM, EROFS: the volume was remounted read-only (ext4 errors=remount-ro) or its
 *   permissions changed under a running process; an operator puts it right.
 * - EMFILE, ENFILE: out of file descriptors, per process or system wide.
 * - EAGAIN, EBUSY: transient by definition.
 */
const RETRYABLE = new Set([
  'ENOSPC',
  'EDQUOT',
  'EIO',
  'EACCES',
  'EPERM',
  'EROFS',
  'EMFILE',
  'ENFILE',
  'EAGAIN',
  'EBUSY',
]);

/** The error's code (`ENOSPC`) when it is one a disk can stop throwing, else null. */
export function retryableDiskError(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE.has(code) ? code : null;
}

/** First wait after a refused write. */
export const DISK_RETRY_FIRST_MS = 100;
/**
 * The longest wait: a disk that gets space back is written to within 5 s, and a blocked sink
 * costs at most one failed syscall per open object every 5 s.
 */
export const DISK_RETRY_MAX_MS = 5_000;

/** Wait before try `attempt + 1` (attempt 0 is the first retry): 100 ms doubling to 5 s. */
export function diskRetryDelayMs(attempt: number): number {
  return Math.min(DISK_RETRY_MAX_MS, DISK_RETRY_FIRST_MS * 2 ** Math.min(attempt, 16));
}

/** One refused operation. `path` is the file or folder (never a secret: a local path). */
export interface DiskNotice {
  target: DiskTarget;
  /** `open`, `mkdir`, `write`, `rename`, `append`, `create`. */
  op: string;
  path: string;
  code: string;
}

/** How a sink's disk stalls are reported (observability.ts counts and logs them). */
export interface DiskHooks {
  /** An operation was refused and will be tried again after `delayMs`. */
  onRetry(notice: DiskNotice & { attempt: number; delayMs: number }): void;
  /** The first refusal of a stall: the target is blocked from now on. */
  onBlocked(notice: DiskNotice): void;
  /** Every operation that was refused went through (or was given up): blocked for `blockedMs`. */
  onRecovered(notice: { target: DiskTarget; path: string; blockedMs: number }): void;
}

/**
 * The blocked state of one sink's target: blocked while any of its writers (open objects, the
 * spool) waits to try a refused operation again, recovered once none does.
 */
export class DiskStall {
  readonly target: DiskTarget;
  readonly #hooks: DiskHooks | undefined;
  readonly #waiting = new Set<object>();
  readonly #listeners: (() => void)[] = [];
  #since = 0;
  #path = '';

  constructor(target: DiskTarget, hooks?: DiskHooks) {
    this.target = target;
    this.#hooks = hooks;
  }

  /** Whether a write of this target is waiting for the disk now. */
  get blocked(): boolean {
    return this.#waiting.size > 0;
  }

  /** `who` was refused (`code`) and tries again after `delayMs`. */
  retrying(who: object, op: string, path: string, code: string, attempt: number, delayMs: number): void {
    const notice: DiskNotice = { target: this.target, op, path, code };
    if (this.#waiting.size === 0) {
      this.#since = performance.now();
      this.#path = path;
      this.#hooks?.onBlocked(notice);
    }
    this.#waiting.add(who);
    this.#hooks?.onRetry({ ...notice, attempt, delayMs });
  }

  /** `who` got through (or gave up): when nothing else waits, the target has recovered. */
  clear(who: object): void {
    if (!this.#waiting.delete(who) || this.#waiting.size > 0) return;
    this.#hooks?.onRecovered({ target: this.target, path: this.#path, blockedMs: performance.now() - this.#since });
    for (const fn of this.#listeners) fn();
  }

  /** Called every time the target recovers (writers waiting on it may go on). */
  onRecovered(fn: () => void): void {
    this.#listeners.push(fn);
  }
}
