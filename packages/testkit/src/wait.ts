/**
 * Wait for a condition, not for the clock. Plain timers, no vitest: the end-to-end tests'
 * helpers and the benchmarks share it (a unit test can as well use `vi.waitFor`).
 */

/**
 * Run `check` now and then every `intervalMs` until it returns true. Rejects once `timeoutMs`
 * passed without that, naming `what`: a failure says what was awaited. A check that throws
 * rejects at once (a dead daemon is not worth waiting out the timeout for). Resolves with
 * `performance.now()` as the check that held returned, so a benchmark can time the condition.
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return performance.now();
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
