/**
 * The environment a task runs with (docs/design.md section 3). It is built from scratch, not inherited:
 * a task sees a few basics from the runner, its own declared env, its secrets, and the REPRISE_*
 * contract, so a runner's credentials (DATABASE_URL, PRIVATE_KEY, ...) never leak into user code.
 */
import { inputEnvName } from "../../../core/spec/names.js";
import type { LaunchSpec } from "../types.js";

/** What a task needs from the machine to behave like a shell command would. */
const BASE_ENV_NAMES = ["PATH", "HOME", "LANG", "TMPDIR", "TZ"] as const;

export function baseEnvFrom(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const base: Record<string, string> = {};
  for (const name of BASE_ENV_NAMES) {
    const value = env[name];
    if (value !== undefined) base[name] = value;
  }
  return base;
}

export interface TaskFiles {
  inputs: string;
  outputs: string;
}

/** Later layers win: base, task env, secrets, then the REPRISE_* contract, which nothing overrides. */
export function taskEnv(
  base: Readonly<Record<string, string>>,
  spec: LaunchSpec,
  files: TaskFiles,
  /** The artifact variables (artifact-io.ts): REPRISE_INPUT_<NAME>_DIGEST, REPRISE_OUTPUT_<NAME>. */
  artifacts: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = { ...base, ...spec.env, ...spec.secrets };
  for (const [name, value] of Object.entries(spec.inputs)) {
    env[inputEnvName(name)] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return {
    ...env,
    ...artifacts,
    REPRISE_INPUTS: files.inputs,
    REPRISE_OUTPUTS: files.outputs,
    REPRISE_EXECUTION_ID: spec.executionId,
    REPRISE_NODE_ID: spec.nodeId,
    REPRISE_ATTEMPT: String(spec.attempt),
    REPRISE_GIT_SHA: spec.sha,
    REPRISE_TASK_DIGEST: spec.taskDigest,
  };
}

/**
 * The operating system cannot pass a NUL byte in an environment variable; say which one has it
 * (a string input usually) instead of failing inside spawn with a generic error.
 */
export function envProblem(env: Readonly<Record<string, string>>): string | null {
  for (const [name, value] of Object.entries(env)) {
    if (name.includes("\0") || name.includes("=") || name === "") {
      return `environment variable name ${JSON.stringify(name)} is not valid`;
    }
    if (value.includes("\0")) {
      return `environment variable ${name} contains a NUL byte, which no process can receive; pass such data through $REPRISE_INPUTS instead`;
    }
  }
  return null;
}
