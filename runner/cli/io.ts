/** What a command writes to, so tests and the real process share one code path. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** docs/design.md section 11. */
export const EXIT = {
  ok: 0,
  /** The execution failed or was aborted. */
  failed: 1,
  /** Usage, validation or configuration error. */
  invalid: 2,
} as const;

export class UsageError extends Error {
  override readonly name = "UsageError";
}
