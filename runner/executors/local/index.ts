/** The local executor's public face; see README.md for how it works. */
export {
  type Checkout,
  CheckoutRefused,
  fileRepoCheckout,
  gitArchiveCheckout,
} from "./checkout.js";
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
