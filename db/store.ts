/**
 * The Store: one implementation over drizzle's Postgres core, shared by node-postgres and
 * PGlite. Each area is its own small class; `openStore` connects, checks migrations, and wires
 * them.
 */
import { type ConnectOptions, connect, type Database, type Db } from "./connect.js";
import { assertMigrated, migrate } from "./migrate.js";
import { ArtifactIndex } from "./store/artifacts.js";
import { CacheStore } from "./store/cache.js";
import { CheckRunStore } from "./store/check-runs.js";
import { ExecutionStore } from "./store/executions.js";
import { DeliveryInbox } from "./store/inbox.js";
import { ProductionStore } from "./store/production.js";
import { TokenStore } from "./store/tokens.js";
import { VersionStore } from "./store/versions.js";

export class Store {
  readonly versions: VersionStore;
  readonly executions: ExecutionStore;
  readonly cache: CacheStore;
  readonly production: ProductionStore;
  readonly deliveries: DeliveryInbox;
  readonly tokens: TokenStore;
  readonly checkRuns: CheckRunStore;
  readonly artifacts: ArtifactIndex;

  constructor(readonly db: Db) {
    this.versions = new VersionStore(db);
    this.executions = new ExecutionStore(db);
    this.cache = new CacheStore(db);
    this.production = new ProductionStore(db);
    this.deliveries = new DeliveryInbox(db);
    this.tokens = new TokenStore(db);
    this.checkRuns = new CheckRunStore(db);
    this.artifacts = new ArtifactIndex(db);
  }
}

export interface OpenStore {
  store: Store;
  database: Database;
  close(): Promise<void>;
}

/**
 * Connects and checks the schema. `migrate: true` applies pending migrations first (the
 * embedded default and `reprise migrate`); otherwise a database behind or ahead of this code is
 * refused with the migrations named.
 */
export async function openStore(opts: ConnectOptions & { migrate?: boolean }): Promise<OpenStore> {
  const database = await connect(opts);
  try {
    if (opts.migrate) await migrate(database.db);
    await assertMigrated(database.db);
  } catch (e) {
    await database.close();
    throw e;
  }
  return { store: new Store(database.db), database, close: () => database.close() };
}
