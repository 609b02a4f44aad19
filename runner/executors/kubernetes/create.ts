/**
 * The kubernetes executor's wiring from configuration: credentials from the kubeconfig file
 * `KUBECONFIG` names, or the pod's service account when there is none (in-cluster), the namespace
 * from `REPRISE_NAMESPACE`, else the kubeconfig context's, else "default".
 */
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import type { SecretGrant } from "../secret-grants.js";
import { grantMap } from "../secret-grants.js";
import { type CodeSource, defaultCodeSource } from "./code-source.js";
import { KubernetesExecutor, type KubernetesExecutorOptions } from "./executor.js";

export interface KubernetesExecutorSetup {
  /** Path of a kubeconfig file (Config.kubeconfig); null: in-cluster service account. */
  kubeconfig: string | null;
  /** Config.namespace; null: the kubeconfig context's namespace, else "default". */
  namespace: string | null;
  /** The runner's data directory; the executor keeps log tails in `<dataDir>/kubernetes/logs`. */
  dataDir: string;
  codeSource?: CodeSource;
  /** The Secrets tasks may name and by which repositories (Config.kubeSecrets); none by default. */
  secrets?: readonly SecretGrant[];
  /** Anything else of KubernetesExecutorOptions (timeouts, images, resources). */
  tuning?: Partial<
    Omit<
      KubernetesExecutorOptions,
      "kubeConfig" | "namespace" | "codeSource" | "logDir" | "secrets"
    >
  >;
}

export function createKubernetesExecutor(setup: KubernetesExecutorSetup): KubernetesExecutor {
  const kubeConfig = new KubeConfig();
  try {
    if (setup.kubeconfig) kubeConfig.loadFromFile(setup.kubeconfig);
    else kubeConfig.loadFromCluster();
  } catch (e) {
    const where = setup.kubeconfig
      ? `the kubeconfig file ${setup.kubeconfig}`
      : "the in-cluster service account";
    throw new Error(
      `the kubernetes executor cannot read ${where}: ${(e as Error).message}; set KUBECONFIG to a kubeconfig file, or run inside a cluster`,
      { cause: e },
    );
  }
  if (!kubeConfig.getCurrentCluster()) {
    throw new Error(
      `the kubeconfig ${setup.kubeconfig ?? "(in-cluster)"} has no current cluster: set its current-context`,
    );
  }
  const context = kubeConfig.getContextObject(kubeConfig.getCurrentContext());
  return new KubernetesExecutor({
    ...setup.tuning,
    kubeConfig,
    namespace: setup.namespace ?? context?.namespace ?? "default",
    codeSource: setup.codeSource ?? defaultCodeSource(),
    logDir: join(setup.dataDir, "kubernetes", "logs"),
    secrets: grantMap(setup.secrets ?? []),
  });
}
