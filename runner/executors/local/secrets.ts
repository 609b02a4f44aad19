/**
 * Task secrets for the local executor (DESIGN.md section 2): a spec's `{ env, secret, key }`
 * names a Kubernetes Secret and key; locally, the value is the runner's environment variable
 * `<SECRET>_<KEY>` (upper-cased, every other character than A-Z, 0-9 and `_` turned into `_`),
 * and only when REPRISE_LOCAL_SECRETS lists that variable. `aws-creds` / `access_key_id` is
 * AWS_CREDS_ACCESS_KEY_ID. The same reprise.yaml thus names the same credential on both
 * executors, and two tasks that read different Secrets into the same env name get different
 * values, as they would in the cluster.
 */
import type { SecretRef } from "../../../core/spec/types.js";

/** The runner's setting that lists the variables tasks may receive. */
export const LOCAL_SECRETS_VAR = "REPRISE_LOCAL_SECRETS";

const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The runner variable a secret reference reads: `<SECRET>_<KEY>`, upper-cased, `-`/`.` -> `_`. */
export function localSecretVariable(ref: Pick<SecretRef, "secret" | "key">): string {
  return `${ref.secret}_${ref.key}`.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

/**
 * REPRISE_LOCAL_SECRETS: variable names separated by commas and/or whitespace. Returns the names,
 * and one problem per entry that is not a variable name (config.ts stops the start on any).
 */
export function parseLocalSecrets(value: string | undefined): {
  names: string[];
  problems: string[];
} {
  const names: string[] = [];
  const problems: string[] = [];
  for (const entry of (value ?? "").split(/[\s,]+/)) {
    if (entry === "") continue;
    if (!VARIABLE.test(entry))
      problems.push(
        `${JSON.stringify(entry)} is not an environment variable name (letters, digits and '_', not starting with a digit)`,
      );
    else if (!names.includes(entry)) names.push(entry);
  }
  return { names, problems };
}

/** The allowed variables and their values, as the executor took them from the runner's environment. */
export interface LocalSecretSource {
  allowed: ReadonlySet<string>;
  /** Allowed variables that are set (and not empty), with their values. */
  values: ReadonlyMap<string, string>;
}

export function localSecretSource(
  names: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): LocalSecretSource {
  const values = new Map<string, string>();
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== "") values.set(name, value);
  }
  return { allowed: new Set(names), values };
}

export type Resolved = { ok: true; env: Record<string, string> } | { ok: false; problem: string };

/**
 * The task's secrets as env name -> value, or what to fix: a secret whose variable is not
 * allowed, or allowed but not set, fails the attempt (never an empty value in its place).
 */
export function resolveLocalSecrets(
  taskName: string,
  refs: readonly SecretRef[],
  source: LocalSecretSource,
): Resolved {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const ref of refs) {
    const variable = localSecretVariable(ref);
    const what = `secret ${ref.secret}/${ref.key} (as ${ref.env})`;
    if (!source.allowed.has(variable)) {
      problems.push(
        `${what} is read from the runner's environment variable ${variable}, which ${LOCAL_SECRETS_VAR} does not allow: set ${variable} where reprise runs and add it to ${LOCAL_SECRETS_VAR} (names separated by commas)`,
      );
      continue;
    }
    const value = source.values.get(variable);
    if (value === undefined) {
      problems.push(
        `${what} is read from the runner's environment variable ${variable}, which ${LOCAL_SECRETS_VAR} allows but is not set (or empty) in the runner's environment: set it where reprise runs`,
      );
      continue;
    }
    env[ref.env] = value;
  }
  if (problems.length > 0)
    return {
      ok: false,
      problem: `task "${taskName}" cannot get its secrets from the local executor: ${problems.join("; ")}`,
    };
  return { ok: true, env };
}
