/**
 * A real small filesystem for tests of a full disk: a tmpfs of a given size mounted on a fresh
 * folder, grown (or shrunk) in place with `mount -o remount,size=`, remounted read-only and
 * back, and unmounted in cleanup. Needs root (CI runs as root); a mount that fails throws, so
 * a test that needs one fails rather than skips.
 *
 * Kept out of index.ts: it spawns mount(8), which a seeded-data import has no business doing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  /** The mount point. */
  readonly dir: string;
  /** Remount with a new size in bytes (tmpfs keeps its files). */
  resize(bytes: number): void;
  /** Remount read-only (`ro: true`) or read-write. */
  readOnly(ro: boolean): void;
  /** Unmount (lazily if something still holds a file open) and remove the mount point. Idempotent. */
  unmount(): void;
}

function mount(args: string[]): void {
  try {
    execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new Error(
      `mount ${args.join(' ')} failed (tests of a full disk mount a tmpfs and need root): ${stderr || String(err)}`,
      { cause: err },
    );
  }
}

/** Mount a tmpfs of `bytes` on a new folder under the system temp dir. */
export function mountTmpfs(bytes: number, prefix = 'sluice-tmpfs-'): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    mount(['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let mounted = true;
  return {
    dir,
    resize: (n) => mount(['-o', `remount,size=${n}`, dir]),
    readOnly: (ro) => mount(['-o', `remount,${ro ? 'ro' : 'rw'}`, dir]),
    unmount: () => {
      if (!mounted) return;
      mounted = false;
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        // A process still holds a file open there (a daemon being killed): detach now, the
        // kernel frees it when the last file closes.
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
