/**
 * Throwaway Postgres databases for the benchmarks: created empty next to DATABASE_URL's (default:
 * the local test server), dropped at the end however the benchmark ends, Ctrl-C included.
 */
import { constants } from "node:os";
import pg from "pg";
import { redact } from "../db/connect.js";

export const DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test";

/** The server the benchmarks run on: DATABASE_URL, or the local test server. */
export function adminUrl(): string {
  return process.env.DATABASE_URL ?? DEFAULT_URL;
}

/**
 * Runs `fn` against databases of its own on the server of `admin`, one per suffix, named
 * `reprise_bench_<pid>[_<suffix>]`, created empty and dropped afterwards however `fn` ends.
 * `WITH (FORCE)` ends connections a failed run (or a child process) left open, so the drop never
 * waits on them. `label` prefixes the messages on stderr.
 */
export async function withScratchDatabases<T>(
  admin: string,
  suffixes: readonly string[],
  label: string,
  fn: (urls: string[]) => Promise<T>,
): Promise<T> {
  const names = suffixes.map((s) => `reprise_bench_${process.pid}${s ? `_${s}` : ""}`);
  const run = async (statement: (quoted: string) => string) => {
    const client = new pg.Client({ connectionString: admin });
    try {
      await client.connect();
    } catch (e) {
      throw new Error(
        `cannot connect to Postgres at ${redact(admin)}: ${(e as Error).message}; set DATABASE_URL`,
        { cause: e },
      );
    }
    try {
      for (const name of names) await client.query(statement(client.escapeIdentifier(name)));
    } finally {
      await client.end();
    }
  };
  const drop = () => run((db) => `drop database if exists ${db} with (force)`);
  // A previous process with this pid may have been killed before its cleanup.
  await drop();
  await run((db) => `create database ${db}`);
  let interrupted: Promise<never> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${label}: ${signal}, dropping ${names.join(", ")}\n`);
    interrupted ??= drop()
      .catch((e) => process.stderr.write(`${label}: could not drop ${names.join(", ")}: ${e}\n`))
      .then(() => process.exit(128 + constants.signals[signal]));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await fn(
      names.map((name) => {
        const url = new URL(admin);
        url.pathname = `/${name}`;
        return url.toString();
      }),
    );
  } catch (e) {
    // The drop ended the benchmark's connections mid-query: that failure is the interruption
    // itself, not worth a stack trace; wait for the exit instead.
    if (interrupted) return interrupted;
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (!interrupted) await drop();
  }
}
