/**
 * Memo cache identity and key (docs/design.md section 5). Scope is one repository: the repository is
 * part of every identity, so no repository can read or poison another's entries.
 */
import type { JsonValue, TaskSpec } from "../spec/types.js";
import { type Digest, digest } from "./digest.js";

export type CacheIdentity =
  /** Default: the task's content. Any change to what it computes misses; a rename does not. */
  | { repo: string; taskDigest: Digest }
  /** `cache.version` set: Flyte semantics, the user decides when results go stale. */
  | {
      repo: string;
      task: string;
      version: string;
      interface: Pick<TaskSpec, "inputs" | "outputs">;
    };

export function cacheIdentity(repo: string, task: TaskSpec, taskDigest: Digest): CacheIdentity {
  if (task.cache.version !== null) {
    return {
      repo,
      task: task.name,
      version: task.cache.version,
      interface: { inputs: task.inputs, outputs: task.outputs },
    };
  }
  return { repo, taskDigest };
}

/** `inputs` are the node's resolved inputs (defaults applied); ignored inputs are left out. */
export function cacheKey(
  identity: CacheIdentity,
  inputs: Readonly<Record<string, JsonValue>>,
  ignoreInputs: readonly string[] = [],
): Digest {
  const kept: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(inputs)) if (!ignoreInputs.includes(k)) kept[k] = v;
  return digest({ identity, inputs: kept });
}
