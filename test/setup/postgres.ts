/** Real Postgres for tests: DATABASE_URL (CI sets it), one database per test file, copied from a migrated template. */
import { randomBytes } from "node:crypto";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import type { Db } from "../../db/connect.js";
import * as schema from "../../db/schema.js";

export function databaseUrl(): string | null {
  return process.env.DATABASE_URL || null;
}

/** The same server, database `postgres`: where CREATE and DROP DATABASE are issued from. */
export function adminUrl(url: string): string {
  const u = new URL(url);
  u.pathname = "/postgres";
  return u.toString();
}

export function urlFor(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * A pg Pool for a test, and `close()`, which resolves once every connection has closed.
 * pg-pool's own `end()` resolves as soon as its clients are told to end, before their sockets
 * close; a `drop database ... with (force)` right after can then terminate a connection still
 * closing, its client emits 'error', and the pool re-emits it: with no listener, an uncaught
 * exception in whatever test file is running (CI saw 15 of them once). Errors of connections
 * being closed are expected there; `errors` keeps them for a test that wants to look.
 */
export function testPool(
  url: string,
  max: number,
): { pool: pg.Pool; errors: Error[]; close(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max });
  const errors: Error[] = [];
  const open = new Set<pg.PoolClient>();
  pool.on("error", (e) => errors.push(e));
  pool.on("connect", (c) => open.add(c));
  const closed = new Promise<void>((resolve) => {
    pool.on("remove", (c) => {
      open.delete(c);
      if (pool.ended && open.size === 0) resolve();
    });
  });
  return {
    pool,
    errors,
    close: async () => {
      await pool.end();
      if (open.size > 0) await closed;
    },
  };
}

export async function withDatabase<T>(
  url: string,
  database: string,
  fn: (db: Db) => Promise<T>,
): Promise<T> {
  const { pool, close } = testPool(urlFor(url, database), 2);
  try {
    return await fn(drizzle(pool, { schema }) as unknown as Db);
  } finally {
    await close();
  }
}

/** Creates a database copied from `template` (or empty when null); returns its name and a drop function. */
export async function createDatabase(
  url: string,
  template: string | null,
): Promise<{ name: string; drop: () => Promise<void> }> {
  const name = `reprise_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl(url) });
  await admin.connect();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`create database ${name}${template ? ` template ${template}` : ""}`);
        break;
      } catch (e) {
        // 55006: the template is being copied by a parallel test file right now.
        if ((e as { code?: string }).code !== "55006" || attempt >= 50) throw e;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  } finally {
    await admin.end();
  }
  return {
    name,
    drop: async () => {
      const a = new pg.Client({ connectionString: adminUrl(url) });
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}
