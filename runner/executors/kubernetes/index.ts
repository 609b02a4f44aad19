/** The kubernetes executor's public face; see README.md for how it works. */
export { type CodeLocation, type CodeSource, defaultCodeSource } from "./code-source.js";
export { createKubernetesExecutor, type KubernetesExecutorSetup } from "./create.js";
export {
  DEFAULT_FETCH_IMAGE,
  KubernetesExecutor,
  type KubernetesExecutorOptions,
} from "./executor.js";
export { attemptObjects, FETCH_SCRIPT, LABELS, PATHS } from "./manifests.js";
export { KUBE_SECRETS_VAR, kubeSecretsProblem, parseKubeSecrets } from "./secrets.js";
