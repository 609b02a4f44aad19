/**
 * Opens the store the configuration names. The embedded database belongs to one user on one
 * machine, so it is migrated on open; a shared Postgres is migrated only by `reprise migrate`,
 * and anything else refuses a database whose migrations do not match, naming them.
 */
import { type OpenStore, openStore } from "../db/store.js";
import type { Config } from "./config.js";

export function openConfiguredStore(
  config: Config,
  opts: { migrate?: boolean } = {},
): Promise<OpenStore> {
  if (config.databaseUrl)
    return openStore({ databaseUrl: config.databaseUrl, migrate: opts.migrate ?? false });
  return openStore({ dataDir: config.dataDir, migrate: opts.migrate ?? true });
}
