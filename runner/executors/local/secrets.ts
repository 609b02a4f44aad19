/**
 * Task secrets for the local executor (docs/design.md section 2): a spec's `{ env, secret, key }`
 * names a Kubernetes Secret and key; locally, the value is the runner's environment variable
 * `<SECRET>_<KEY>` (upper-cased, every other character than A-Z, 0-9 and `_` turned into `_`),
 * and only when REPRISE_LOCAL_SECRETS allows that variable for the task's repository. `aws-creds` / `access_key_id` is
 * AWS_CREDS_ACCESS_KEY_ID. The same reprise.yaml thus names the same credential on both
 * executors, and two tasks that read different Secrets into the same env name get different
 * values, as they would in the cluster.
 */
import type { SecretRef } from "../../../core/spec/types.js";
import { granted, grantMap, parseSecretGrants, type SecretGrant } from "../secret-grants.js";

/** The runner's setting that lists the variables tasks may receive, and for which repositories. */
export const LOCAL_SECRETS_VAR = "REPRISE_LOCAL_SECRETS";

const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The runner variable a secret reference reads: `<SECRET>_<KEY>`, upper-cased, `-`/`.` -> `_`. */
export function localSecretVariable(ref: Pick<SecretRef, "secret" | "key">): string {
  return `${ref.secret}_${ref.key}`.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

/**
 * REPRISE_LOCAL_SECRETS: entries `VARIABLE@REPOSITORY` (or `VARIABLE@*`) separated by commas
 * and/or whitespace (../secret-grants.ts). Returns the variables with their repositories, and one
 * problem per entry that is not one (config.ts stops the start on any).
 */
export function parseLocalSecrets(value: string | undefined): {
  grants: SecretGrant[];
  problems: string[];
} {
  return parseSecretGrants(value, {
    name: VARIABLE,
    nameIs: "an environment variable name (letters, digits and '_', not starting with a digit)",
  });
}

/** The allowed variables and their values, as the executor took them from the runner's environment. */
export interface LocalSecretSource {
  /** Variable -> the repositories that may use it ("*": any). */
  allowed: ReadonlyMap<string, readonly string[]>;
  /** Allowed variables that are set (and not empty), with their values. */
  values: ReadonlyMap<string, string>;
}

export function localSecretSource(
  grants: readonly SecretGrant[],
  env: Readonly<Record<string, string | undefined>>,
): LocalSecretSource {
  const values = new Map<string, string>();
  for (const { name } of grants) {
    const value = env[name];
    if (value !== undefined && value !== "") values.set(name, value);
  }
  return { allowed: grantMap(grants), values };
}

export type Resolved = { ok: true; env: Record<string, string> } | { ok: false; problem: string };

/**
 * The task's secrets as env name -> value, or what to fix: a secret whose variable is not
 * allowed for the task's repository, or allowed but not set, fails the attempt (never an empty
 * value in its place).
 */
export function resolveLocalSecrets(
  task: { taskName: string; repo: string },
  refs: readonly SecretRef[],
  source: LocalSecretSource,
): Resolved {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const ref of refs) {
    const variable = localSecretVariable(ref);
    const what = `secret ${ref.secret}/${ref.key} (as ${ref.env}) is read from the runner's environment variable ${variable}, which ${LOCAL_SECRETS_VAR}`;
    const repos = source.allowed.get(variable);
    if (repos === undefined) {
      problems.push(
        `${what} does not allow: set ${variable} where reprise runs and add ${variable}@${task.repo} to ${LOCAL_SECRETS_VAR} (entries VARIABLE@REPOSITORY separated by commas)`,
      );
      continue;
    }
    if (!granted(repos, task.repo)) {
      problems.push(
        `${what} allows only for ${repos.join(", ")}, not for ${task.repo}: add ${variable}@${task.repo} to ${LOCAL_SECRETS_VAR} if this repository may use it`,
      );
      continue;
    }
    const value = source.values.get(variable);
    if (value === undefined) {
      problems.push(
        `${what} allows but is not set (or empty) in the runner's environment: set it where reprise runs`,
      );
      continue;
    }
    env[ref.env] = value;
  }
  if (problems.length > 0)
    return {
      ok: false,
      problem: `task "${task.taskName}" cannot get its secrets from the local executor: ${problems.join("; ")}`,
    };
  return { ok: true, env };
}
