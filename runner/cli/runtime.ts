/** Wiring for commands that execute: the configured store and executor, an engine. */
import { hostname } from "node:os";
import type { Logger } from "pino";
import { rootCause } from "../../db/errors.js";
import type { OpenStore } from "../../db/store.js";
import { openArtifactStore } from "../artifacts/configure.js";
import type { BlobStore } from "../artifacts/store.js";
import { type Config, ConfigError } from "../config.js";
import { Engine, type EngineEvent } from "../engine/engine.js";
import { createKubernetesExecutor } from "../executors/kubernetes/index.js";
import { createLocalExecutor } from "../executors/local/index.js";
import type { Executor } from "../executors/types.js";
import { githubAppCodeSource } from "../github/code-source.js";
import { githubAppCheckout } from "../github/tarball-checkout.js";
import { defaultLog } from "../log.js";
import { openConfiguredStore } from "../open-store.js";

export interface Runtime {
  open: OpenStore;
  artifacts: BlobStore;
  engine: Engine;
  executor: Executor;
  close(): Promise<void>;
}

export async function openRuntime(
  config: Config,
  onEvent?: (e: EngineEvent) => void,
  log?: Logger,
): Promise<Runtime> {
  const artifacts = await openArtifactStore(config);
  // The executor first: a bad kubeconfig should stop the start before the store is open.
  const executor = createConfiguredExecutor(config, log, artifacts);
  const open = await openConfiguredStore(config);
  const engine = new Engine({
    store: open.store,
    executor,
    artifacts,
    owner: `${hostname()}:${process.pid}`,
    maxParallel: config.maxParallel,
    leaseMs: config.leaseSeconds * 1000,
    listen: open.database.listen,
    ...(onEvent ? { onEvent } : {}),
    onError: engineErrorLog(log ?? defaultLog(config)),
  });
  return {
    open,
    artifacts,
    engine,
    executor,
    close: async () => {
      await executor.close();
      await open.close();
    },
  };
}

/** Errors the engine survived, with the execution they stopped (stderr, JSON lines). */
export function engineErrorLog(log: Logger): (e: Error, executionId?: string) => void {
  return (e, executionId) =>
    log.error({ executionId, err: e.stack ?? e.message }, `engine error: ${rootCause(e).message}`);
}

/** The executor REPRISE_EXECUTOR names: local processes, or Jobs in REPRISE_NAMESPACE. */
export function createConfiguredExecutor(
  config: Config,
  log?: Logger,
  artifacts?: BlobStore,
): Executor {
  if (config.executor === "kubernetes") {
    try {
      const codeSource = githubAppCodeSource(config, log);
      return createKubernetesExecutor({
        kubeconfig: config.kubeconfig,
        namespace: config.namespace,
        dataDir: config.dataDir,
        secrets: config.kubeSecrets,
        // With the GitHub App configured: GHE_HOST's tarball URL and a read-only token per repo.
        ...(codeSource ? { codeSource } : {}),
      });
    } catch (e) {
      throw new ConfigError((e as Error).message, { cause: e });
    }
  }
  const github = githubAppCheckout(config, log);
  return createLocalExecutor({
    dataDir: config.dataDir,
    env: config.environment,
    secrets: config.localSecrets,
    sandbox: config.sandbox,
    logMaxBytes: config.logMaxBytes,
    writable: config.sandboxWritable,
    ...(log ? { warn: (message: string) => log.warn(message) } : {}),
    ...(artifacts ? { artifacts } : {}),
    // With the GitHub App configured, GitHub repositories come from their tarball at the SHA.
    ...(github ? { checkout: github } : {}),
  });
}
