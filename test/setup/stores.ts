/** A fresh, migrated Store for a test file, on either driver. */
import { readFileSync } from "node:fs";
import { inject } from "vitest";
import { type OpenStore, openStore } from "../../db/store.js";
import { createDatabase, databaseUrl, urlFor } from "./postgres.js";

export type Driver = "pglite" | "postgres";

export interface TestStore extends OpenStore {
  driver: Driver;
  /** For Postgres: a URL to the same database, for extra connections. */
  url: string | null;
  dispose(): Promise<void>;
}

export async function openTestStore(
  driver: Driver,
  opts: { poolSize?: number } = {},
): Promise<TestStore> {
  if (driver === "pglite") {
    const blob = new Blob([readFileSync(inject("pgliteTemplate"))]);
    const open = await openStore({ memory: true, loadDataDir: blob });
    return { ...open, driver, url: null, dispose: () => open.close() };
  }
  const url = databaseUrl();
  if (!url) throw new Error("DATABASE_URL is not set");
  const db = await createDatabase(url, inject("postgresTemplate"));
  const dbUrl = urlFor(url, db.name);
  const open = await openStore({ databaseUrl: dbUrl, poolSize: opts.poolSize ?? 10 });
  return {
    ...open,
    driver,
    url: dbUrl,
    dispose: async () => {
      await open.close();
      await db.drop();
    },
  };
}

/** The drivers to run a contract suite on: PGlite always, Postgres when DATABASE_URL is set. */
export const POSTGRES_AVAILABLE = databaseUrl() !== null;
