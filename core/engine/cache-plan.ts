/** What the memo cache means for one node (docs/design.md section 5), decided from data alone. */

import { keyInputs } from "../artifacts/ref.js";
import { type CacheIdentity, cacheIdentity, cacheKey } from "../hash/cache-key.js";
import type { Digest } from "../hash/digest.js";
import { digest } from "../hash/digest.js";
import type { JsonValue, TaskSpec } from "../spec/types.js";

export type CachePlan =
  | { enabled: false }
  | {
      enabled: true;
      key: Digest;
      identity: CacheIdentity;
      ttlSeconds: number | null;
      lookup: boolean;
    };

export function cachePlan(
  repo: string,
  task: TaskSpec,
  taskDigest: Digest,
  inputs: Readonly<Record<string, JsonValue>>,
  overwrite: boolean,
): CachePlan {
  if (!task.cache.enabled) return { enabled: false };
  const identity = cacheIdentity(repo, task, taskDigest);
  return {
    enabled: true,
    key: cacheKey(identity, keyInputs(task.inputs, inputs), task.cache.ignoreInputs),
    identity,
    ttlSeconds: task.cache.ttlSeconds,
    // --overwrite-cache skips the lookup and replaces the entry.
    lookup: !overwrite,
  };
}

/**
 * Recover mode matches a parent's succeeded node by content: the same task digest and the same
 * resolved inputs, whatever the node is called and whichever version it ran in.
 */
export function recoverKey(
  taskDigest: string,
  inputs: Readonly<Record<string, JsonValue>>,
): Digest {
  return digest({ taskDigest, inputs });
}
