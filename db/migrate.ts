/**
 * Migrations: the SQL files drizzle-kit generates in db/migrations, applied in order, recorded in
 * drizzle's own table (drizzle.__drizzle_migrations) so drizzle-kit keeps working. Applying is
 * serialized by an advisory lock, so two processes starting at once never race.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { readMigrationFiles } from "drizzle-orm/migrator";
import type { Db } from "./connect.js";
import { MigrationError } from "./errors.js";
import { rows, transaction } from "./query.js";

/** An arbitrary constant: the advisory lock key that serializes migrations. */
const MIGRATION_LOCK = 7_262_011;

export function migrationsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // From source (db/) or from the build (dist/db/), the SQL files stay in db/migrations.
  for (const dir of [join(here, "migrations"), join(here, "../../db/migrations")]) {
    if (existsSync(join(dir, "meta", "_journal.json"))) return dir;
  }
  throw new MigrationError(`no migrations found next to ${here}; is the package complete?`);
}

interface Known {
  tag: string;
  hash: string;
  millis: number;
  sql: string[];
}

function known(): Known[] {
  const dir = migrationsDir();
  const files = readMigrationFiles({ migrationsFolder: dir });
  // readMigrationFiles keeps the journal's order but not the tags; the journal has them.
  const journal = JSON.parse(readFileSync(join(dir, "meta", "_journal.json"), "utf8")) as {
    entries: Array<{ tag: string }>;
  };
  return files.map((f, i) => ({
    tag: journal.entries[i]?.tag ?? `#${i}`,
    hash: f.hash,
    millis: f.folderMillis,
    sql: f.sql,
  }));
}

async function applied(db: Db): Promise<Array<{ hash: string; created_at: string | number }>> {
  const [exists] = await rows<{ ok: boolean }>(
    db,
    sql`select to_regclass('drizzle.__drizzle_migrations') is not null as ok`,
  );
  if (!exists?.ok) return [];
  return rows(db, sql`select hash, created_at from drizzle.__drizzle_migrations order by id`);
}

export interface MigrationStatus {
  applied: string[];
  /** Known to this build, not applied to the database: run `reprise migrate`. */
  pending: string[];
  /** Applied to the database, unknown to this build: the database is newer than this code. */
  unknown: string[];
}

export async function migrationStatus(db: Db): Promise<MigrationStatus> {
  const files = known();
  const done = await applied(db);
  const doneHashes = new Set(done.map((r) => r.hash));
  const fileHashes = new Set(files.map((f) => f.hash));
  return {
    applied: files.filter((f) => doneHashes.has(f.hash)).map((f) => f.tag),
    pending: files.filter((f) => !doneHashes.has(f.hash)).map((f) => f.tag),
    unknown: done
      .filter((r) => !fileHashes.has(r.hash))
      .map(
        (r) =>
          `${r.hash.slice(0, 12)} (applied at ${new Date(Number(r.created_at)).toISOString()})`,
      ),
  };
}

/** Applies every pending migration in one transaction; returns the tags applied. */
export async function migrate(db: Db): Promise<string[]> {
  const files = known();
  return transaction(db, async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await tx.execute(sql`create schema if not exists drizzle`);
    await tx.execute(
      sql`create table if not exists drizzle.__drizzle_migrations (id serial primary key, hash text not null, created_at bigint)`,
    );
    const recorded = await rows<{ hash: string }>(
      tx,
      sql`select hash from drizzle.__drizzle_migrations`,
    );
    const done = new Set(recorded.map((r) => r.hash));
    const fileHashes = new Set(files.map((f) => f.hash));
    const unknown = [...done].filter((h) => !fileHashes.has(h));
    if (unknown.length > 0) {
      throw new MigrationError(
        `the database has ${unknown.length} migration(s) this version of Reprise does not know (${unknown.map((h) => h.slice(0, 12)).join(", ")}): it was migrated by a newer Reprise; upgrade this one`,
      );
    }
    const appliedNow: string[] = [];
    for (const f of files) {
      if (done.has(f.hash)) continue;
      for (const statement of f.sql)
        if (statement.trim() !== "") await tx.execute(sql.raw(statement));
      await tx.execute(
        sql`insert into drizzle.__drizzle_migrations (hash, created_at) values (${f.hash}, ${f.millis})`,
      );
      appliedNow.push(f.tag);
    }
    return appliedNow;
  });
}

/** For the service's start: refuses a database that is behind or ahead of this code, saying which. */
export async function assertMigrated(db: Db): Promise<void> {
  const status = await migrationStatus(db);
  if (status.unknown.length > 0) {
    throw new MigrationError(
      `the database has migrations this version of Reprise does not know: ${status.unknown.join(", ")}; upgrade Reprise`,
    );
  }
  if (status.pending.length > 0) {
    throw new MigrationError(
      `the database lacks migrations ${status.pending.join(", ")}; run \`reprise migrate\``,
    );
  }
}
