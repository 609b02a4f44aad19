/** `reprise migrate`: applies pending migrations to the configured database. */
import { connect } from "../../db/connect.js";
import { migrate, migrationStatus } from "../../db/migrate.js";
import type { Config } from "../config.js";
import { EXIT, type Io } from "./io.js";

export async function migrateCommand(
  config: Config,
  opts: { json: boolean },
  io: Io,
): Promise<number> {
  const database = await connect(
    config.databaseUrl ? { databaseUrl: config.databaseUrl } : { dataDir: config.dataDir },
  );
  try {
    const applied = await migrate(database.db);
    const status = await migrationStatus(database.db);
    if (opts.json)
      io.out(JSON.stringify({ database: database.location, applied, current: status.applied }));
    else if (applied.length === 0)
      io.out(`${database.location}: up to date (${status.applied.length} migrations)`);
    else io.out(`${database.location}: applied ${applied.join(", ")}`);
    return EXIT.ok;
  } finally {
    await database.close();
  }
}
