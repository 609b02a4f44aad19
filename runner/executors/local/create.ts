/**
 * The embedded default's wiring: a LocalExecutor under the data directory, checking out local
 * repositories (file://...) with `git archive`, giving tasks PATH, HOME, LANG, TMPDIR and TZ
 * from the runner's environment and nothing else of it, but for the secrets REPRISE_LOCAL_SECRETS
 * allows (secrets.ts), to the tasks that name them.
 */
import { join } from "node:path";
import type { BlobStore } from "../../artifacts/store.js";
import { fileRepoCheckout } from "../../sources/git-archive.js";
import type { Checkout } from "../../sources/materialise.js";
import type { SecretGrant } from "../secret-grants.js";
import type { CacheLimits } from "./eviction.js";
import { LocalExecutor } from "./executor.js";
import {
  detectSandbox,
  parseSandboxWritable,
  SANDBOX_WRITABLE_VAR,
  type SandboxMode,
} from "./sandbox.js";
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
  /** REPRISE_SANDBOX (Config.sandbox); by default `auto`: bwrap when it works here. */
  sandbox?: SandboxMode;
  /** REPRISE_LOG_MAX_BYTES (Config.logMaxBytes); by default 64 MiB. */
  logMaxBytes?: number;
  /** REPRISE_CHECKOUT_MAX_BYTES (Config.checkoutMaxBytes) of the default checkout; by default 4 GiB. */
  checkoutMaxBytes?: number;
  /**
   * REPRISE_CACHE_MAX_BYTES and REPRISE_CACHE_MAX_AGE_DAYS (Config.cacheMaxBytes,
   * Config.cacheMaxAgeDays): eviction of checkouts and attempts; by default 20 GiB and 14 days.
   */
  cache?: Partial<CacheLimits>;
  /**
   * Directories every sandboxed task may write (Config.sandboxWritable); by default what
   * REPRISE_SANDBOX_WRITABLE of `env` says (a malformed entry throws, as loadConfig refuses it).
   */
  writable?: readonly string[];
  /** Told once, at creation, when tasks will run unsandboxed. */
  warn?: (message: string) => void;
}

export function createLocalExecutor(setup: LocalExecutorSetup): LocalExecutor {
  const root = join(setup.dataDir, "local");
  const allowed = setup.secrets ?? localSecretsOf(setup.env);
  const sandbox = detectSandbox(setup.sandbox ?? "auto");
  if (sandbox.kind === "none")
    (setup.warn ?? console.warn)(
      `local executor: tasks run unsandboxed (${sandbox.why}): they can read the runner's processes and files as its user, and a fork's pull request is refused; install bubblewrap (apt-get install bubblewrap) to sandbox them`,
    );
  const key = setup.env.PRIVATE_KEY_PATH;
  return new LocalExecutor({
    sandbox,
    hide: [setup.dataDir],
    blank: key ? [key] : [],
    shared: setup.writable ?? sandboxWritableOf(setup.env),
    ...(setup.logMaxBytes ? { logMaxBytes: setup.logMaxBytes } : {}),
    ...(setup.cache ? { cache: setup.cache } : {}),
    ...(setup.warn ? { warn: setup.warn } : {}),
    root,
    checkout:
      setup.checkout ??
      fileRepoCheckout(
        join(root, "checkouts"),
        setup.checkoutMaxBytes ? { maxBytes: setup.checkoutMaxBytes } : undefined,
      ),
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

function sandboxWritableOf(env: Readonly<Record<string, string | undefined>>): string[] {
  const { dirs, problems } = parseSandboxWritable(env[SANDBOX_WRITABLE_VAR]);
  if (problems.length > 0) throw new Error(`${SANDBOX_WRITABLE_VAR}: ${problems.join("; ")}`);
  return dirs;
}
