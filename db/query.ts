import type { SQL } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import type { Db } from "./connect.js";
import * as schema from "./schema.js";

/** A database or an open transaction: both run queries the same way. */
export type Queryable = Pick<Db, "execute" | "select" | "insert" | "update" | "delete">;

/** Runs raw SQL and returns its rows; node-postgres and PGlite both answer `{ rows }`. */
export async function rows<T>(db: Queryable, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

/** A drizzle instance per pooled client, made once: the client is reused by the pool. */
const onClient = new WeakMap<pg.PoolClient, Db>();

/**
 * `db.transaction(fn)`, except that on a node-postgres pool the pooled client always goes back:
 * drizzle-orm 0.45's NodePgSession.transaction runs BEGIN outside its try/finally, so a BEGIN
 * that fails (its connection cut by a server restart) keeps the client checked out for good, and
 * a few outages exhaust the pool: the runner hangs (drizzle-team/drizzle-orm#6241 and #6114, still
 * open; found by test/faults/github-restart.test.ts). A client whose BEGIN, ROLLBACK or COMMIT
 * failed is destroyed rather than handed out again. PGlite goes through drizzle's own.
 */
export async function transaction<T>(db: Db, fn: (tx: Db) => Promise<T>): Promise<T> {
  const pool = (db as unknown as { $client?: unknown }).$client;
  if (!(pool instanceof pg.Pool)) return db.transaction((tx) => fn(tx as unknown as Db));
  const client = await pool.connect();
  let tx = onClient.get(client);
  if (!tx) {
    tx = drizzle(client, { schema }) as unknown as Db;
    onClient.set(client, tx);
  }
  let broken: Error | undefined;
  const run = async (statement: string) => {
    try {
      await client.query(statement);
    } catch (e) {
      broken = e as Error;
      throw e;
    }
  };
  try {
    await run("begin");
    let result: T;
    try {
      result = await fn(tx);
    } catch (e) {
      await run("rollback").catch(() => undefined);
      throw e;
    }
    await run("commit");
    return result;
  } finally {
    client.release(broken);
  }
}
