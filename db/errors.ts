/** Infrastructure errors of the store, each with what to do about it. */

export class StoreError extends Error {
  override readonly name: string = "StoreError";
}

/** A second process tried to open a PGlite data directory (PGlite is single-process). */
export class StoreInUseError extends StoreError {
  override readonly name = "StoreInUseError";
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `the embedded database at ${dataDir} is in use by pid ${pid}: PGlite serves one process at a time. ` +
        "Stop that process, use `reprise worker`/`reprise serve` with the same process, or set DATABASE_URL to a Postgres server that several processes can share.",
    );
  }
}

export class MigrationError extends StoreError {
  override readonly name = "MigrationError";
}

/** The caller no longer holds the execution's lease: another runner took it over. */
export class LeaseLostError extends StoreError {
  override readonly name = "LeaseLostError";
  constructor(
    readonly executionId: string,
    readonly owner: string,
  ) {
    super(`runner ${owner} lost the lease on execution ${executionId}; another runner owns it now`);
  }
}

export class NotFoundError extends StoreError {
  override readonly name = "NotFoundError";
}

/** Postgres error code (SQLSTATE) of an exception from either driver, if any. RP001: immutable. */
export function pgCode(e: unknown): string | undefined {
  for (let x: unknown = e; x && typeof x === "object"; x = (x as { cause?: unknown }).cause) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/**
 * The database's disk is full: Postgres's disk_full (SQLSTATE 53100), or ENOSPC from the
 * embedded database's files, anywhere in the cause chain.
 */
export function isDiskFull(e: unknown): boolean {
  if (pgCode(e) === "53100") return true;
  for (let x: unknown = e; x && typeof x === "object"; x = (x as { cause?: unknown }).cause) {
    if ((x as { code?: unknown }).code === "ENOSPC") return true;
    const message = (x as { message?: unknown }).message;
    if (typeof message === "string" && /No space left on device/i.test(message)) return true;
  }
  return false;
}

/**
 * The database could not be reached or could not serve anyone right now (a connection lost or
 * refused, a shutdown, no resources, a disk full, a serialization failure), as opposed to a
 * statement it refused for what it carries. The first passes for every execution alike and
 * says nothing about the one being driven.
 */
export function isUnavailable(e: unknown): boolean {
  const code = pgCode(e);
  if (code) return /^(08|53|57|58)/.test(code) || code === "40001" || code === "40P01";
  if (isDiskFull(e)) return true;
  for (let x: unknown = e; x && typeof x === "object"; x = (x as { cause?: unknown }).cause) {
    const errno = (x as { code?: unknown }).code;
    if (typeof errno === "string" && /^E[A-Z]+$/.test(errno)) return true;
    const message = (x as { message?: unknown }).message;
    if (
      typeof message === "string" &&
      /connection|terminated|timeout|closed|ECONN|socket/i.test(message)
    )
      return true;
  }
  return false;
}

/**
 * The innermost error of a cause chain: what the database said, rather than the query builder's
 * wrapper (drizzle's "Failed query: <the SQL> params: <the values>").
 */
export function rootCause(e: Error): Error {
  let x = e;
  while (x.cause instanceof Error) x = x.cause;
  return x;
}
