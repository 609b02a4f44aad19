/**
 * The size limits of inputs passed as environment variables (docs/design.md section 3: each input is
 * also REPRISE_INPUT_<NAME>). Past them the operating system refuses to start the task (spawn
 * fails with E2BIG), whatever the executor: inputs over them are refused at start, and a node
 * whose upstream outputs would make them too big fails as a user failure naming the input.
 */
import { isArtifactType } from "../artifacts/ref.js";
import type { JsonValue, ValueType } from "../spec/types.js";

/** Linux refuses one environment string ("NAME=value" and its NUL) over MAX_ARG_STRLEN, 128 KiB. */
const MAX_ARG_STRLEN = 131_072;
/** One input's value, leaving room for the longest name (REPRISE_INPUT_ and 63 characters, "="). */
export const MAX_INPUT_ENV_BYTES = MAX_ARG_STRLEN - 128;
/**
 * All of a task's inputs together. Linux caps arguments and environment together at a quarter
 * of the stack limit (2 MiB with the default 8 MiB stack); the other half is the command's, the
 * task's own env's and its secrets'.
 */
export const MAX_INPUTS_ENV_BYTES = 1_048_576;

/** An input as its environment variable holds it: strings raw, other values as JSON. */
export function inputEnvValue(value: JsonValue): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

const utf8 = new TextEncoder();

/**
 * Why `inputs` cannot be passed as environment variables, naming the input, or null. `file` and
 * `directory` inputs are passed as paths, not values: they are the way to pass large data.
 */
export function inputsEnvProblem(
  types: Readonly<Record<string, ValueType>>,
  inputs: Readonly<Record<string, JsonValue>>,
): string | null {
  let total = 0;
  for (const [name, value] of Object.entries(inputs)) {
    const type = types[name];
    if (type !== undefined && isArtifactType(type)) continue;
    const bytes = utf8.encode(inputEnvValue(value)).byteLength;
    if (bytes > MAX_INPUT_ENV_BYTES)
      return `input "${name}" is ${bytes} bytes, over the ${MAX_INPUT_ENV_BYTES}-byte limit of one environment variable (tasks get each input as REPRISE_INPUT_<NAME>): pass large data as a file input (type: file)`;
    total += bytes;
  }
  if (total > MAX_INPUTS_ENV_BYTES)
    return `the inputs are ${total} bytes together, over the ${MAX_INPUTS_ENV_BYTES}-byte limit of a task's environment (tasks get each input as REPRISE_INPUT_<NAME>): pass large data as file inputs (type: file)`;
  return null;
}
