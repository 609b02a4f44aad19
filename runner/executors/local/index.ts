/** The local executor's public face; see README.md for how it works. */
// Code at a SHA lives in runner/sources/; the executor's callers take these names from here.
export { fileRepoCheckout, gitArchiveCheckout } from "../../sources/git-archive.js";
export { type Checkout, CheckoutRefused } from "../../sources/materialise.js";
export { createLocalExecutor, type LocalExecutorSetup } from "./create.js";
export { LocalExecutor, type LocalExecutorOptions } from "./executor.js";
export {
  LOCAL_SECRETS_VAR,
  type LocalSecretSource,
  localSecretSource,
  localSecretVariable,
  parseLocalSecrets,
} from "./secrets.js";
export { baseEnvFrom } from "./task-env.js";
