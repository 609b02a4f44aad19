/**
 * The one place that picks a driver: node-postgres when DATABASE_URL is set, embedded PGlite
 * otherwise. Everything above works against drizzle's Postgres core and never knows which.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import pg from "pg";
import { StoreError, StoreInUseError } from "./errors.js";
import * as schema from "./schema.js";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  driver: "postgres" | "pglite";
  /** Where it lives, without credentials: for logs and errors. */
  location: string;
  /** LISTEN on a channel; `pg_notify` from any connection (or process, on Postgres) reaches it. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Channel names are identifiers; ours are fixed, lowercase constants. */
const CHANNEL = /^[a-z_][a-z0-9_]*$/;

function checkChannel(channel: string): void {
  if (!CHANNEL.test(channel)) throw new StoreError(`invalid LISTEN channel name "${channel}"`);
}

/**
 * LISTEN on Postgres needs a connection of its own, outside the pool. It reconnects after a
 * server restart; wake-ups missed meanwhile are covered by the engine's periodic tick.
 */
function pgListener(url: string) {
  const listeners = new Map<string, Set<(payload: string) => void>>();
  let client: pg.Client | null = null;
  let closed = false;
  let connecting: Promise<void> | null = null;
  const connectOnce = async () => {
    const c = new pg.Client({ connectionString: url });
    c.on("notification", (m) => {
      for (const fn of listeners.get(m.channel) ?? []) fn(m.payload ?? "");
    });
    c.on("error", () => undefined);
    c.on("end", () => {
      client = null;
      if (!closed) setTimeout(() => void ensure().catch(() => undefined), 1_000).unref();
    });
    await c.connect();
    // Closed while connecting: this connection must not outlive the close.
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    for (const channel of listeners.keys()) await c.query(`LISTEN ${channel}`);
    client = c;
  };
  const ensure = () => {
    if (client || closed) return Promise.resolve();
    connecting ??= connectOnce().finally(() => {
      connecting = null;
    });
    return connecting;
  };
  return {
    async listen(channel: string, fn: (payload: string) => void) {
      checkChannel(channel);
      const set = listeners.get(channel) ?? new Set();
      const first = set.size === 0;
      set.add(fn);
      listeners.set(channel, set);
      await ensure();
      if (first && client) await client.query(`LISTEN ${channel}`);
      return async () => {
        set.delete(fn);
        if (set.size === 0 && client)
          await client.query(`UNLISTEN ${channel}`).catch(() => undefined);
      };
    },
    async close() {
      closed = true;
      await connecting?.catch(() => undefined);
      await client?.end().catch(() => undefined);
    },
  };
}

export type ConnectOptions =
  | { databaseUrl: string; poolSize?: number }
  | { dataDir: string }
  /** An in-memory PGlite, optionally started from a dumped data directory (tests). */
  | { memory: true; loadDataDir?: Blob };

export async function connect(opts: ConnectOptions): Promise<Database> {
  if ("databaseUrl" in opts) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 10 });
    const location = redact(opts.databaseUrl);
    // A pool reports errors of idle clients (a server restart) here; without a listener they crash the process.
    pool.on("error", () => undefined);
    // A checked-out client (inside a transaction, between two queries) reports a cut connection
    // as an 'error' event of its own; without a listener that crashes the process too. The query
    // in flight, or the next one, fails with the error instead, which the caller handles.
    pool.on("connect", (client) => client.on("error", () => undefined));
    try {
      const client = await pool.connect();
      client.release();
    } catch (e) {
      await pool.end();
      throw new StoreError(
        `cannot connect to Postgres at ${location}: ${(e as Error).message}; check DATABASE_URL`,
        { cause: e },
      );
    }
    const listener = pgListener(opts.databaseUrl);
    return {
      db: drizzlePg(pool, { schema }) as unknown as Db,
      driver: "postgres",
      location,
      listen: listener.listen,
      close: async () => {
        await listener.close();
        await pool.end();
      },
    };
  }
  // PGlite (a WASM Postgres, about 40 MB resident) is loaded only when it is the driver.
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle: drizzlePglite } = await import("drizzle-orm/pglite");
  if ("memory" in opts) {
    const client = await PGlite.create(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {});
    return {
      db: drizzlePglite(client, { schema }) as unknown as Db,
      driver: "pglite",
      location: "memory",
      listen: (channel, fn) => pgliteListen(client, channel, fn),
      close: () => client.close(),
    };
  }
  const dataDir = resolve(opts.dataDir);
  let release: () => void;
  try {
    release = lockDataDir(dataDir);
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError(
      `cannot use ${dataDir} for the embedded database: ${fsProblem(e)}. Set REPRISE_DATA_DIR to a writable directory, or DATABASE_URL to a Postgres server.`,
      { cause: e },
    );
  }
  let client: PGlite;
  try {
    client = await PGlite.create({ dataDir: join(dataDir, "pgdata") });
  } catch (e) {
    release();
    throw new StoreError(`cannot open the embedded database at ${dataDir}: ${fsProblem(e)}`, {
      cause: e,
    });
  }
  return {
    db: drizzlePglite(client, { schema }) as unknown as Db,
    driver: "pglite",
    location: dataDir,
    listen: (channel, fn) => pgliteListen(client, channel, fn),
    close: async () => {
      try {
        await client.close();
      } finally {
        release();
      }
    },
  };
}

/** A filesystem error in words a user can act on. */
function fsProblem(e: unknown): string {
  const code = (e as { code?: string }).code;
  const what: Record<string, string> = {
    ENOSPC: "the disk is full (free some space and run again)",
    EROFS: "the file system is read-only",
    EACCES: "permission denied",
    EPERM: "permission denied",
    ENOTDIR: "a file is in the way (a path component is not a directory)",
    ENOENT: "it cannot be created (a parent is missing or read-only)",
  };
  return (code && what[code]) ?? (e as Error).message;
}

/** PGlite is in-process: NOTIFY reaches LISTEN callbacks of the same instance. */
async function pgliteListen(client: PGlite, channel: string, fn: (payload: string) => void) {
  checkChannel(channel);
  const unlisten = await client.listen(channel, fn);
  return () => unlisten();
}

/** A database URL fit for logs and errors: the password replaced. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable DATABASE_URL)";
  }
}

const heldHere = new Set<string>();

/**
 * PGlite is one process at a time and does not lock its directory itself: two processes on one
 * directory corrupt it. A pid file created with O_EXCL is the lock; a stale one (its process is
 * gone) is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lock = join(dataDir, "reprise.pid");
  if (heldHere.has(dataDir)) throw new StoreInUseError(dataDir, process.pid);
  for (let tries = 0; tries < 2; tries++) {
    try {
      const fd = openSync(lock, "wx", 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      heldHere.add(dataDir);
      return () => {
        heldHere.delete(dataDir);
        rmSync(lock, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new StoreError(`cannot lock the embedded database at ${dataDir}: ${fsProblem(e)}`, {
          cause: e,
        });
      }
      const holder = Number.parseInt(readFileSync(lock, "utf8"), 10);
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder))
        throw new StoreInUseError(dataDir, holder);
      rmSync(lock, { force: true }); // stale: its process is gone
    }
  }
  throw new StoreError(
    `cannot lock the embedded database at ${dataDir}: another process keeps taking the lock`,
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
