/** Wiring for commands that execute: the configured store, the local executor, an engine. */
import { hostname } from "node:os";
import type { OpenStore } from "../../db/store.js";
import type { Config } from "../config.js";
import { Engine, type EngineEvent } from "../engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../executors/local/index.js";
import { openConfiguredStore } from "../open-store.js";

export interface Runtime {
  open: OpenStore;
  engine: Engine;
  executor: LocalExecutor;
  close(): Promise<void>;
}

export async function openRuntime(
  config: Config,
  onEvent?: (e: EngineEvent) => void,
): Promise<Runtime> {
  const open = await openConfiguredStore(config);
  const executor = createLocalExecutor({ dataDir: config.dataDir, env: config.environment });
  const engine = new Engine({
    store: open.store,
    executor,
    owner: `${hostname()}:${process.pid}`,
    maxParallel: config.maxParallel,
    listen: open.database.listen,
    ...(onEvent ? { onEvent } : {}),
  });
  return {
    open,
    engine,
    executor,
    close: async () => {
      await executor.close();
      await open.close();
    },
  };
}
