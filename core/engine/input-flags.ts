/**
 * `-i name=value` flags to input values: how the CLI (`reprise run -i`) and the GitHub App
 * (`/run WORKFLOW name=value` comments) read inputs given as text. Strings pass as given, as do
 * artifacts (named by digest, `sha256:...`, or a path to upload, `@PATH`, which the CLI resolves);
 * every other declared type is JSON (`-i rows=3`, `-i flags='{"a":1}'`).
 */
import { isArtifactType } from "../artifacts/ref.js";
import type { InputDecl, JsonValue } from "../spec/types.js";

/** A flag that is not `name=value`, or a value that is not of its declared type: the message says which. */
export class InputFlagError extends Error {
  override readonly name = "InputFlagError";
}

export function parseInputFlags(
  flags: readonly string[],
  declared: Readonly<Record<string, InputDecl>>,
): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const flag of flags) {
    const eq = flag.indexOf("=");
    if (eq <= 0) throw new InputFlagError(`-i takes name=value, got "${flag}"`);
    const name = flag.slice(0, eq);
    const raw = flag.slice(eq + 1);
    const decl = declared[name];
    if (!decl || decl.type === "string" || isArtifactType(decl.type)) {
      out[name] = raw;
      continue;
    }
    try {
      out[name] = JSON.parse(raw) as JsonValue;
    } catch {
      throw new InputFlagError(
        `-i ${name}=${raw}: not a valid ${decl.type} (values other than strings are JSON)`,
      );
    }
  }
  return out;
}
