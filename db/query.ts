import type { SQL } from "drizzle-orm";
import type { Db } from "./connect.js";

/** A database or an open transaction: both run queries the same way. */
export type Queryable = Pick<Db, "execute" | "select" | "insert" | "update" | "delete">;

/** Runs raw SQL and returns its rows; node-postgres and PGlite both answer `{ rows }`. */
export async function rows<T>(db: Queryable, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}
