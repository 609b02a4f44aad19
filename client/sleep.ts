/**
 * Waiting, for every loop that polls: the engine's ticks, the App's processors, the followers of
 * the CLI and the Action. In client/ because client/ may import nothing but core/ and itself,
 * and everything else may import client/ (core/ holds no timers).
 */

/** Resolves after `ms`, or at once when `signal` aborts (never rejects: the caller looks at the signal). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
