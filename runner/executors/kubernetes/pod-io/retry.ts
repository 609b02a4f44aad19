/**
 * Retries with exponential backoff for the pod's requests (to the broker and to the store's
 * presigned URLs): what failed in transit (no answer, a connection cut, 5xx, 429) is tried again;
 * an answer that says no (401, 403, 404, 410, a bad digest) is not.
 */

export interface RetryPolicy {
  /** Tries in all, the first included; Infinity for the task's long poll (the Job's deadline ends it). */
  attempts: number;
  /** The first wait; each next one doubles, up to `maxMs`. */
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseMs: 500, maxMs: 8_000 };

/** A failure worth another try. */
export class TransientError extends Error {
  override readonly name = "TransientError";
  constructor(
    message: string,
    /** What the server asked to wait (Retry-After), if it did. */
    readonly retryAfterMs: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The attempt was stopped (SIGTERM): the pod is going away. */
export class StoppedError extends Error {
  override readonly name = "StoppedError";
}

/**
 * Runs `fn` until it succeeds, throws something other than TransientError, or the policy's tries
 * are spent; then the last transient failure is thrown as an Error saying how often it was tried.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  fn: (attempt: number) => Promise<T>,
  onRetry?: (error: TransientError, waitMs: number) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw new StoppedError("stopped (SIGTERM) before it was done");
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof TransientError)) throw e;
      if (signal?.aborted) throw new StoppedError("stopped (SIGTERM) before it was done");
      if (attempt >= policy.attempts)
        throw new Error(`${e.message} (tried ${attempt} times)`, { cause: e });
      const backoff = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      const waitMs = Math.min(policy.maxMs, Math.max(backoff, e.retryAfterMs ?? 0));
      onRetry?.(e, waitMs);
      await sleep(waitMs, signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Node's codes for a connection that never came or broke: worth another try. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

/** The code of a network failure (walking `cause`, where fetch puts it), or null. */
export function networkCode(e: unknown): string | null {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as Error).cause, depth++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
    if ((c as Error).name === "TimeoutError") return "ETIMEDOUT";
  }
  return null;
}

/** Statuses that say "not now" rather than "no". */
export function transientStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** Retry-After (seconds, or an HTTP date) in milliseconds, or null. */
export function retryAfterMs(value: string | null | undefined): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}
