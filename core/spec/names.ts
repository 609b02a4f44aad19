/** Naming rules. Task, workflow and node names end up in Kubernetes labels and DNS-1123 names. */

export const NAME = /^[a-z][a-z0-9-]{0,62}$/;
export const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Kubernetes Secret names are DNS-1123 subdomains. */
export const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
export const RESERVED_ENV_PREFIX = "REPRISE_";

/** The environment variable a task input is also passed as (docs/design.md section 3). */
export function inputEnvName(input: string): string {
  return `${RESERVED_ENV_PREFIX}INPUT_${input.toUpperCase().replaceAll("-", "_")}`;
}

/** Where the task writes an artifact output (file or directory), as an environment variable. */
export function outputEnvName(output: string): string {
  return `${RESERVED_ENV_PREFIX}OUTPUT_${output.toUpperCase().replaceAll("-", "_")}`;
}

export const NAME_RULE =
  "lowercase letters, digits and '-', starting with a letter, at most 63 characters";
export const PARAM_RULE =
  "letters, digits, '_' and '-', starting with a letter or '_', at most 63 characters";
