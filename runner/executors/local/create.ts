/**
 * The embedded default's wiring: a LocalExecutor under the data directory, checking out local
 * repositories (file://...) with `git archive`, giving tasks PATH, HOME, LANG, TMPDIR and TZ
 * from the runner's environment and nothing else of it.
 */
import { join } from "node:path";
import { type Checkout, fileRepoCheckout } from "./checkout.js";
import { LocalExecutor } from "./executor.js";
import { baseEnvFrom } from "./task-env.js";

export interface LocalExecutorSetup {
  /** The runner's data directory (Config.dataDir); the executor owns `<dataDir>/local`. */
  dataDir: string;
  /** Where code at a SHA comes from; by default local repositories, cached in `<dataDir>/local/checkouts`. */
  checkout?: Checkout;
  /** The environment to take the basics from (Config.taskBaseEnv: config.ts reads the environment). */
  env: Readonly<Record<string, string | undefined>>;
}

export function createLocalExecutor(setup: LocalExecutorSetup): LocalExecutor {
  const root = join(setup.dataDir, "local");
  return new LocalExecutor({
    root,
    checkout: setup.checkout ?? fileRepoCheckout(join(root, "checkouts")),
    baseEnv: baseEnvFrom(setup.env),
  });
}
