/**
 * The embedded default's wiring: a LocalExecutor under the data directory, checking out local
 * repositories (file://...) with `git archive`, giving tasks PATH, HOME, LANG, TMPDIR and TZ
 * from the runner's environment and nothing else of it, but for the secrets REPRISE_LOCAL_SECRETS
 * allows (secrets.ts), to the tasks that name them.
 */
import { join } from "node:path";
import type { BlobStore } from "../../artifacts/store.js";
import type { SecretGrant } from "../secret-grants.js";
import { type Checkout, fileRepoCheckout } from "./checkout.js";
import { LocalExecutor } from "./executor.js";
import { LOCAL_SECRETS_VAR, localSecretSource, parseLocalSecrets } from "./secrets.js";
import { baseEnvFrom } from "./task-env.js";

export interface LocalExecutorSetup {
  /** The runner's data directory (Config.dataDir); the executor owns `<dataDir>/local`. */
  dataDir: string;
  /** Where code at a SHA comes from; by default local repositories, cached in `<dataDir>/local/checkouts`. */
  checkout?: Checkout;
  /** The environment to take the basics and secret values from (Config.environment: config.ts reads the environment). */
  env: Readonly<Record<string, string | undefined>>;
  /**
   * The variables of `env` tasks may receive as secrets and the repositories whose tasks may
   * (Config.localSecrets); by default what REPRISE_LOCAL_SECRETS of `env` says (a malformed
   * entry throws, as loadConfig refuses it).
   */
  secrets?: readonly SecretGrant[];
  /** Where `file` and `directory` values live (runner/artifacts/configure.ts). */
  artifacts?: BlobStore;
}

export function createLocalExecutor(setup: LocalExecutorSetup): LocalExecutor {
  const root = join(setup.dataDir, "local");
  const allowed = setup.secrets ?? localSecretsOf(setup.env);
  return new LocalExecutor({
    root,
    checkout: setup.checkout ?? fileRepoCheckout(join(root, "checkouts")),
    baseEnv: baseEnvFrom(setup.env),
    secrets: localSecretSource(allowed, setup.env),
    ...(setup.artifacts ? { artifacts: setup.artifacts } : {}),
  });
}

function localSecretsOf(env: Readonly<Record<string, string | undefined>>): SecretGrant[] {
  const { grants, problems } = parseLocalSecrets(env[LOCAL_SECRETS_VAR]);
  if (problems.length > 0) throw new Error(`${LOCAL_SECRETS_VAR}: ${problems.join("; ")}`);
  return grants;
}
