import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MigrationError } from "../../db/errors.js";
import { openStore } from "../../db/store.js";
import { cliArgs } from "../fakes/cli.js";
import { createDatabase, databaseUrl, urlFor } from "../setup/postgres.js";
import { POSTGRES_AVAILABLE } from "../setup/stores.js";

const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup) await c();
});

function reprise(env: Record<string, string>, ...args: string[]) {
  const base = { ...process.env };
  delete base.DATABASE_URL;
  const r = spawnSync(process.execPath, cliArgs(...args), {
    encoding: "utf8",
    env: { ...base, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("reprise migrate", () => {
  it("migrates the embedded database under REPRISE_DATA_DIR, then says it is up to date", () => {
    const dir = mkdtempSync(join(tmpdir(), "reprise-migrate-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const first = reprise({ REPRISE_DATA_DIR: dir }, "migrate");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(
      `${dir}: applied 0000_init, 0001_immutable, 0002_artifacts, 0003_version_refs`,
    );
    const second = reprise({ REPRISE_DATA_DIR: dir }, "migrate", "--json");
    expect(JSON.parse(second.stdout)).toEqual({
      database: dir,
      applied: [],
      current: ["0000_init", "0001_immutable", "0002_artifacts", "0003_version_refs"],
    });
  }, 60_000);

  it("refuses bad configuration with what to fix, exit 2", () => {
    const bad = reprise({ DATABASE_URL: "mysql://localhost/x" }, "migrate");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("DATABASE_URL: must be a postgres:// or postgresql:// URL");
    const relative = reprise({ REPRISE_DATA_DIR: "relative/dir" }, "migrate");
    expect(relative.stderr).toContain("REPRISE_DATA_DIR: must be an absolute path");
  });

  it.skipIf(!POSTGRES_AVAILABLE)(
    "migrates a Postgres database, which is refused until then, naming the pending migrations",
    async () => {
      const url = databaseUrl() as string;
      const db = await createDatabase(url, null);
      cleanup.push(db.drop);
      const target = urlFor(url, db.name);
      const refused = await openStore({ databaseUrl: target }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(MigrationError);
      expect((refused as Error).message).toBe(
        "the database lacks migrations 0000_init, 0001_immutable, 0002_artifacts, 0003_version_refs; run `reprise migrate`",
      );
      // The server trusts local connections, so the password is ignored; it must never be printed.
      const withPassword = new URL(target);
      withPassword.password = "s3cret-pw";
      const r = reprise({ DATABASE_URL: withPassword.toString() }, "migrate");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(
        "applied 0000_init, 0001_immutable, 0002_artifacts, 0003_version_refs",
      );
      expect(r.stdout).toContain(":***@");
      expect(r.stdout + r.stderr).not.toContain("s3cret-pw");
      const open = await openStore({ databaseUrl: target });
      await open.close();
    },
    60_000,
  );
});
