/**
 * The runtime every edge that executes opens (`reprise run`/`relaunch`/`status --resume`,
 * `worker`, `serve`): the configured store, artifact store and executor, and an engine over them.
 *
 * It imports no edge. Code at a SHA of GitHub repositories comes from the GitHub App's side
 * (`GitHubCode`), handed in by whoever wires the process (runner/cli/bin.ts, the composition root).
 */
import { hostname } from "node:os";
import type { Logger } from "pino";
import { rootCause } from "../db/errors.js";
import type { OpenStore } from "../db/store.js";
import { openArtifactStore } from "./artifacts/configure.js";
import type { BlobStore } from "./artifacts/store.js";
import { type Config, ConfigError } from "./config.js";
import { Engine, type EngineEvent } from "./engine/engine.js";
import type { CodeSource } from "./executors/kubernetes/code-source.js";
import { createLocalExecutor } from "./executors/local/index.js";
import type { Executor } from "./executors/types.js";
import { defaultLog } from "./log.js";
import { openConfiguredStore } from "./open-store.js";
import { Scheduler } from "./schedules.js";
import type { Checkout } from "./sources/materialise.js";

export interface Runtime {
  open: OpenStore;
  artifacts: BlobStore;
  engine: Engine;
  executor: Executor;
  /** Fires `on.schedule` once per slot across replicas; `serve` and `worker` start it. */
  scheduler: Scheduler;
  close(): Promise<void>;
}

/**
 * Code at a SHA of GitHub repositories, when the GitHub App is configured (each returns null
 * otherwise): made by the App's side, which holds its credentials.
 */
export interface GitHubCode {
  /** The local executor's checkout: GitHub repositories from their tarball at the SHA. */
  checkout(config: Config, log?: Logger): Checkout | null | Promise<Checkout | null>;
  /** The kubernetes executor's code source: the tarball URL and a token for that repository. */
  codeSource(config: Config, log?: Logger): CodeSource | null | Promise<CodeSource | null>;
}

export interface RuntimeOptions {
  onEvent?: (e: EngineEvent) => void;
  log?: Logger;
  /** Without it, GitHub repositories are fetched as the executors do by default. */
  github?: GitHubCode;
}

export async function openRuntime(config: Config, opts: RuntimeOptions = {}): Promise<Runtime> {
  const { onEvent, log } = opts;
  const artifacts = await openArtifactStore(config);
  // The executor first: a bad kubeconfig should stop the start before the store is open.
  const executor = await createConfiguredExecutor(config, { ...opts, artifacts });
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
  const scheduler = new Scheduler({
    store: open.store,
    log: log ?? defaultLog(config),
    tickMs: config.scheduleTickMs,
  });
  return {
    open,
    artifacts,
    engine,
    executor,
    scheduler,
    close: async () => {
      await scheduler.stop();
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

/**
 * The executor REPRISE_EXECUTOR names: local processes, or Jobs in REPRISE_NAMESPACE. The
 * kubernetes executor is imported only when it is named: @kubernetes/client-node costs about
 * half a second of CPU to load, which every `reprise` command on a laptop would pay.
 */
export async function createConfiguredExecutor(
  config: Config,
  opts: { log?: Logger; artifacts?: BlobStore; github?: GitHubCode } = {},
): Promise<Executor> {
  const { log, artifacts, github } = opts;
  if (config.executor === "kubernetes") {
    const { createKubernetesExecutor } = await import("./executors/kubernetes/index.js");
    try {
      const codeSource = (await github?.codeSource(config, log)) ?? null;
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
  const checkout = (await github?.checkout(config, log)) ?? null;
  return createLocalExecutor({
    dataDir: config.dataDir,
    env: config.environment,
    secrets: config.localSecrets,
    sandbox: config.sandbox,
    logMaxBytes: config.logMaxBytes,
    checkoutMaxBytes: config.checkoutMaxBytes,
    cache: { maxBytes: config.cacheMaxBytes, maxAgeDays: config.cacheMaxAgeDays },
    writable: config.sandboxWritable,
    ...(log ? { warn: (message: string) => log.warn(message) } : {}),
    ...(artifacts ? { artifacts } : {}),
    // With the GitHub App configured, GitHub repositories come from their tarball at the SHA.
    ...(checkout ? { checkout } : {}),
  });
}
