/**
 * Once per test run: the CLI bundled for every end-to-end spawn (cli-bundle.ts), and a migrated
 * database template for each driver, which every test file copies instead of creating and
 * migrating its own (creating a PGlite database costs about 5 s; loading a dumped one about 1 s;
 * CREATE DATABASE ... TEMPLATE on Postgres is a file copy).
 */
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import pg from "pg";
import type { TestProject } from "vitest/node";
import type { Db } from "../../db/connect.js";
import { migrate } from "../../db/migrate.js";
import { bundleCli } from "./cli-bundle.js";
import { adminUrl, databaseUrl, withDatabase } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /**
     * The bundled CLI's entry (test/fakes/cli.ts runs `node --enable-source-maps` on it), or why
     * it did not build: then only the tests that spawn the CLI fail, with esbuild's message.
     */
    cliBundle: { path: string } | { error: string };
    pgliteTemplate: string;
    postgresTemplate: string | null;
  }
}

export default async function setup(project: TestProject) {
  ensureBubblewrap();
  const cliDir = await mkdtemp(join(tmpdir(), "reprise-cli-bundle-"));
  // Bundled while PGlite migrates its template below; awaited before anything can spawn it.
  const bundle = () =>
    bundleCli(cliDir).then(
      (path) => ({ path }),
      (e: unknown) => ({ error: e instanceof Error ? e.message : String(e) }),
    );
  const cliBundle = bundle();
  // `vitest --watch`: a rerun spawns the code as it is now, not as it was at the first run.
  project.onTestsRerun(async () => {
    project.provide("cliBundle", await bundle());
  });
  const pgliteTemplate = join(tmpdir(), `reprise-pglite-template-${process.pid}.tar`);
  const client = await PGlite.create();
  await migrate(drizzle(client) as unknown as Db);
  const dump = await client.dumpDataDir("none");
  writeFileSync(pgliteTemplate, Buffer.from(await dump.arrayBuffer()));
  await client.close();
  project.provide("pgliteTemplate", pgliteTemplate);
  project.provide("cliBundle", await cliBundle);

  let postgresTemplate: string | null = null;
  const url = databaseUrl();
  if (url) {
    postgresTemplate = `reprise_tpl_${process.pid}`;
    const admin = new pg.Client({ connectionString: adminUrl(url) });
    await admin.connect();
    await admin.query(`drop database if exists ${postgresTemplate}`);
    await admin.query(`create database ${postgresTemplate}`);
    await admin.end();
    await withDatabase(url, postgresTemplate, (db) => migrate(db));
  }
  project.provide("postgresTemplate", postgresTemplate);

  return async () => {
    await rm(pgliteTemplate, { force: true });
    await rm(cliDir, { recursive: true, force: true });
    if (url && postgresTemplate) {
      const admin = new pg.Client({ connectionString: adminUrl(url) });
      await admin.connect();
      await admin.query(`drop database if exists ${postgresTemplate} with (force)`);
      await admin.end();
    }
  };
}

/**
 * The local executor's sandbox tests need Debian's bubblewrap (/usr/bin/bwrap): installed here
 * when missing, as root with apt-get, or the run stops saying how to install it (never a skip).
 */
function ensureBubblewrap(): void {
  if (existsSync("/usr/bin/bwrap")) return;
  const root = process.getuid?.() === 0;
  const install = root
    ? spawnSync(
        "/bin/sh",
        [
          "-c",
          "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap",
        ],
        { stdio: "ignore" },
      )
    : null;
  if (install?.status === 0 && existsSync("/usr/bin/bwrap")) return;
  throw new Error(
    `the local executor's sandbox tests need /usr/bin/bwrap, which is missing${root ? " and apt-get install -y bubblewrap failed" : ""}: install it (sudo apt-get install bubblewrap) and run the tests again`,
  );
}
